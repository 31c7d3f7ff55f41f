//! Crash-test support (sled's way): run a writer process that prints each acknowledged id on a
//! line, kill it with SIGKILL after a while, and collect what it acknowledged.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Runs `program args`, kills it with SIGKILL after `run`, and returns the lines it printed (the
/// ids it acknowledged), in order. Panics when the program could not start or exited by itself.
pub fn run_and_kill(program: &str, args: &[&str], run: Duration) -> Vec<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let acked = acked.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                acked.lock().expect("not poisoned").push(line);
            }
        })
    };
    std::thread::sleep(run);
    child.kill().expect("SIGKILL the writer"); // Child::kill sends SIGKILL on Unix
    let status = child.wait().expect("reap the writer");
    assert!(!status.success(), "the writer must die by the kill, not exit: {status:?}");
    reader.join().expect("reader thread");
    let acked = acked.lock().expect("not poisoned").clone();
    acked
}
