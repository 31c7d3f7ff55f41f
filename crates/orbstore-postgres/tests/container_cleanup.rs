//! Test containers are not left behind: a test process that panics while holding a private
//! container and the shared one removes both (the private one while unwinding, the shared one
//! when the process exits), and the container of a process killed with SIGKILL, which can remove
//! nothing, is removed by the next process that starts one. Checked against the Docker engine
//! by the owner label (`orbstore_testkit::containers::LABEL`).
//!
//! The two `child_*` tests are the child processes' entry points, run by the parent test only
//! (they do nothing without `ORBSTORE_CONTAINER_CHILD`, the file they write their container's id
//! to).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orbstore_testkit::containers::{containers_of, postgres_url, PgContainer};

const CHILD: &str = "ORBSTORE_CONTAINER_CHILD";

#[test]
#[ignore = "child process of containers_are_removed_after_a_panic_and_after_a_kill"]
fn child_panics_holding_containers() {
    let Some(out) = std::env::var_os(CHILD) else { return };
    postgres_url().expect("a shared container");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let own = rt.block_on(PgContainer::start()).unwrap();
    std::fs::write(out, own.id()).unwrap();
    panic!("a test failing while it holds containers");
}

#[test]
#[ignore = "child process of containers_are_removed_after_a_panic_and_after_a_kill"]
fn child_is_killed_holding_a_container() {
    let Some(out) = std::env::var_os(CHILD) else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let own = rt.block_on(PgContainer::start()).unwrap();
    std::fs::write(out, own.id()).unwrap();
    std::thread::sleep(Duration::from_secs(600));
}

/// Starts one child entry point, writing its container's id to `out`.
fn child(test: &str, out: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--ignored", "--test-threads", "1"])
        .env(CHILD, out)
        .env_remove("ORBSTORE_TEST_POSTGRES_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child test")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(orbstore_no_docker, ignore = "needs a Docker engine")]
async fn containers_are_removed_after_a_panic_and_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("panicked");
    let mut c = child("child_panics_holding_containers", &out);
    let status = c.wait().unwrap();
    assert!(!status.success(), "the child test panics");
    assert!(out.exists(), "the child started its containers");
    let left = containers_of(c.id()).await.unwrap();
    assert!(left.is_empty(), "containers left behind by a panicking test: {left:?}");

    let out = dir.path().join("killed");
    let mut c = child("child_is_killed_holding_a_container", &out);
    let start = Instant::now();
    while !out.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "the child did not start its container");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // the id written whole
    c.kill().unwrap();
    c.wait().unwrap();
    let id = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        containers_of(c.id()).await.unwrap(),
        std::slice::from_ref(&id),
        "a SIGKILL removes nothing itself"
    );
    // The next container started sweeps those whose owner is gone.
    let next = PgContainer::start().await.unwrap();
    assert!(containers_of(c.id()).await.unwrap().is_empty(), "{id} was not swept");
    next.remove().await.unwrap();
}
