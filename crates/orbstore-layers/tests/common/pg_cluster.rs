//! A private PostgreSQL cluster for fault tests: `initdb` into a temporary directory and
//! `pg_ctl start` on a free loopback port, as the `postgres` OS user when the test runs as root.
//! Never the machine's shared server. The guard stops it (`pg_ctl stop -m immediate`) when
//! dropped, so also when the test panics.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running private cluster; dropped, it is stopped and its directory removed.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

/// The newest PostgreSQL server programs of Debian's packages.
fn server_bin() -> PathBuf {
    let mut bins: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .filter(|b| b.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    bins.sort_by_key(|b| {
        b.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    bins.pop().unwrap_or_else(|| {
        panic!(
            "this test starts a private PostgreSQL cluster and needs the server programs (initdb, pg_ctl) \
             of Debian's postgresql package under /usr/lib/postgresql/<version>/bin"
        )
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Quotes for a `sh -c` word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl PgCluster {
    /// Creates and starts a cluster (trust authentication, user `postgres`, fsync off: nothing
    /// here must survive a power loss).
    pub fn start() -> PgCluster {
        let bin = server_bin();
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("orbstore-pg-").tempdir().unwrap();
        if as_postgres {
            let ok = Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap().success();
            assert!(ok, "chown postgres {}", dir.path().display());
        }
        let mut cluster = PgCluster { bin, dir, port: 0, as_postgres };
        let data = cluster.data();
        cluster.run(&format!(
            "{} -D {} -A trust -U postgres --no-sync",
            cluster.prog("initdb"),
            sh_quote(&data)
        ));
        cluster.port = free_port();
        cluster.start_server();
        cluster
    }

    fn prog(&self, name: &str) -> String {
        sh_quote(&self.bin.join(name).display().to_string())
    }

    fn data(&self) -> String {
        self.dir.path().join("pg").display().to_string()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a shell command as the cluster's owner; panics with its output when it fails.
    fn run(&self, cmd: &str) {
        let out = self.command(cmd).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn command(&self, cmd: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("su");
            c.args(["postgres", "-c", cmd]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", cmd]);
            c
        }
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.path().display()
        );
        self.run(&format!(
            "{} -D {} -o {} -l {} -w start",
            self.prog("pg_ctl"),
            sh_quote(&self.data()),
            sh_quote(&options),
            sh_quote(&self.path().join("pg.log").display().to_string())
        ));
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn crash(&self) {
        self.run(&format!("{} -D {} stop -m immediate", self.prog("pg_ctl"), sh_quote(&self.data())));
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A URL for user `postgres` and database `postgres` at `addr` (the server, or a proxy).
    pub fn url_via(addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/postgres")
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Whatever state the test left it in: stop it, ignoring "not running".
        let cmd = format!("{} -D {} stop -m immediate", self.prog("pg_ctl"), sh_quote(&self.data()));
        if let Ok(out) = self.command(&cmd).output() {
            if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("Is server running?") {
                eprintln!(
                    "stopping the private PostgreSQL cluster: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}
