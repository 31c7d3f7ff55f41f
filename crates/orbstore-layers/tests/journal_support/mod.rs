//! Servers the journal's fault tests start for themselves, never the machine's shared ones: a
//! private PostgreSQL cluster (`initdb` + `pg_ctl` on a free loopback port, as the `postgres` OS
//! user when run as root) and a private nx-27017 (a MongoDB wire-protocol server) over a SQLite
//! file, so it keeps its data across a kill. Each guard stops its server when dropped, so also
//! when the test panics. Also the workload the outage tests share, and its checks.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orbstore::{CollectionExt, Config, Filter, Query, Store, Update};
use serde_json::json;

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind a free port").local_addr().expect("its address").port()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Opens the store at `url` with the `orbstore` factory, as an application would.
pub async fn open_url(url: &str) -> orbstore::Result<Store> {
    let url = url.to_owned();
    orbstore::open(Config::from_lookup(|k| (k == "DATABASE_URL").then(|| url.clone()))?).await
}

/// A journal over `inner` whose replica and files live in `dir`, retrying fast (50 ms to
/// 500 ms) with `attempt_timeout` per attempt; `tune` adjusts the rest of its settings.
pub async fn open_journal(
    inner: Store,
    dir: &Path,
    attempt_timeout: Duration,
    tune: impl FnOnce(&mut orbstore_layers::JournalConfig),
) -> Arc<orbstore_layers::JournalLayer> {
    let local = orbstore_file::FileBackend::open(orbstore::FileConfig {
        dir: dir.join("replica"),
        sync: orbstore::FileSync::Debounced(Duration::from_secs(1)),
        strict: false,
    })
    .await
    .expect("open the local store");
    let mut config = orbstore_layers::JournalConfig::new(dir.join("journal"));
    config.min_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(500);
    config.attempt_timeout = attempt_timeout;
    tune(&mut config);
    Arc::new(
        orbstore_layers::JournalLayer::open(inner, Arc::new(local), config).await.expect("open the journal"),
    )
}

/// A private PostgreSQL cluster; stopped (`-m immediate`) when dropped.
pub struct PgCluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PgCluster {
    /// initdb into a temporary directory and start the server.
    pub fn start() -> PgCluster {
        let mut bins: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
                    .filter(|(_, b): &(u32, PathBuf)| b.join("initdb").exists())
                    .collect()
            })
            .unwrap_or_default();
        bins.sort();
        let bin = bins.pop().map(|(_, b)| b).expect(
            "the journal's PostgreSQL outage tests need initdb and pg_ctl from Debian's postgresql package \
             (/usr/lib/postgresql/<version>/bin)",
        );
        let dir = tempfile::Builder::new().prefix("orbstore-journal-pg-").tempdir().expect("temp dir");
        let as_postgres = is_root();
        if as_postgres {
            assert!(Command::new("chown").arg("postgres").arg(dir.path()).status().expect("chown").success());
        }
        let mut pg = PgCluster { bin, dir, port: free_port(), as_postgres };
        pg.run(&format!("{} -D {} -A trust -U postgres --no-sync", pg.prog("initdb"), quote(&pg.data())));
        pg.port = free_port();
        pg.start_server();
        pg
    }

    fn prog(&self, name: &str) -> String {
        quote(&self.bin.join(name).display().to_string())
    }

    fn data(&self) -> String {
        self.dir.path().join("pg").display().to_string()
    }

    fn command(&self, cmd: &str) -> Command {
        let mut c = if self.as_postgres {
            let mut c = Command::new("su");
            c.args(["postgres", "-c", cmd]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", cmd]);
            c
        };
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, cmd: &str) {
        let out = self.command(cmd).output().expect("run a PostgreSQL program");
        assert!(
            out.status.success(),
            "{cmd}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_server(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        self.run(&format!(
            "{} -D {} -o {} -l {} -w start",
            self.prog("pg_ctl"),
            quote(&self.data()),
            quote(&options),
            quote(&self.dir.path().join("pg.log").display().to_string())
        ));
    }

    /// A crash of the server: `pg_ctl stop -m immediate`.
    pub fn crash(&self) {
        self.run(&format!("{} -D {} stop -m immediate", self.prog("pg_ctl"), quote(&self.data())));
    }

    /// Its URL (user and database `postgres`).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Whatever state the test left it in; "not running" is fine.
        let _ = self
            .command(&format!("{} -D {} stop -m immediate", self.prog("pg_ctl"), quote(&self.data())))
            .output();
    }
}

/// Where nx-27017 is installed: `ORBSTORE_NX_27017`, else the venvs `.ci/run` and
/// `../shared/services.md` create.
pub fn nx_program() -> Option<PathBuf> {
    std::env::var_os("ORBSTORE_NX_27017")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/tmp/orbstore-nx-venv/bin/nx-27017", "/tmp/nx-venv/bin/nx-27017"].map(PathBuf::from))
        .find(|p| p.exists())
}

/// A private nx-27017 over a SQLite file in a temporary directory; killed when dropped.
pub struct NxServer {
    program: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Mutex<Option<Child>>,
}

impl NxServer {
    /// Starts it on a free port and waits until the port answers.
    pub fn start(program: PathBuf) -> NxServer {
        let dir = tempfile::Builder::new().prefix("orbstore-journal-nx-").tempdir().expect("temp dir");
        let nx = NxServer { program, dir, port: free_port(), child: Mutex::new(None) };
        nx.start_server();
        nx
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Starts the server (again) over the same database file.
    pub fn start_server(&self) {
        let child = Command::new(&self.program)
            .args(["--db", &self.file("nx.db"), "--host", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["--pid-file", &self.file("nx.pid"), "--log-file", &self.file("nx.log")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nx-27017");
        *self.child.lock().unwrap() = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nx-27017 did not listen on {} within 60 s", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A crash of the server: SIGKILL.
    pub fn crash(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its URL, with a database of its own.
    pub fn url(&self) -> String {
        format!("mongodb://127.0.0.1:{}/journal_outage?directConnection=true", self.port)
    }

    /// Its directory (for the log in a failure message).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for NxServer {
    fn drop(&mut self) {
        self.crash();
    }
}

/// The outage workload's acknowledgements: every insert acknowledged (by its tag) and every
/// increment acknowledged, per counter.
#[derive(Debug, Default)]
pub struct Acked {
    pub tags: Vec<String>,
    pub incs: BTreeMap<String, u64>,
    pub failures: Vec<String>,
}

/// Counters the writers increment.
pub const COUNTERS: usize = 4;

/// Creates the counters (at 0) through `store`.
pub async fn create_counters(store: &Store) {
    let c = store.collection("counters").await.expect("counters");
    for k in 0..COUNTERS {
        c.upsert(orbstore::to_document(json!({"_id": format!("c{k}"), "n": 0})).unwrap())
            .await
            .expect("counter");
    }
}

/// `writers` tasks inserting documents (without `_id`: the tag identifies them) and
/// incrementing the shared counters until `stop`, recording what was acknowledged.
pub fn spawn_writers(
    store: Store,
    writers: usize,
    round: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let (store, stop, acked) = (store.clone(), stop.clone(), acked.clone());
            tokio::spawn(async move {
                let items = store.collection("items").await.expect("items");
                let counters = store.collection("counters").await.expect("counters");
                let mut i = 0u64;
                while !stop.load(Ordering::Acquire) {
                    let tag = format!("r{round}-w{w}-{i}");
                    match items.insert_value(json!({"tag": tag, "w": w, "round": round, "i": i})).await {
                        Ok(_) => acked.lock().unwrap().tags.push(tag),
                        Err(e) => acked.lock().unwrap().failures.push(format!("insert {tag}: {e}")),
                    }
                    let counter = format!("c{}", (w + i as usize) % COUNTERS);
                    match counters.update_by_id(&counter, &Update::new().inc("n", 1)).await {
                        Ok(true) => *acked.lock().unwrap().incs.entry(counter).or_default() += 1,
                        Ok(false) => {
                            acked.lock().unwrap().failures.push(format!("counter {counter} missing"))
                        }
                        Err(e) => acked.lock().unwrap().failures.push(format!("inc {counter}: {e}")),
                    }
                    i += 1;
                }
            })
        })
        .collect()
}

/// Jepsen's set and counter checks, read from the server itself: every acknowledged insert
/// present exactly once, nothing else, and every counter equal to its acknowledged increments.
pub async fn check_server(server: &Store, acked: &Acked) {
    let items = server.collection("items").await.expect("items on the server");
    let docs = items.find(&Query::new(Filter::All)).await.expect("read the items");
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for d in &docs {
        *seen.entry(d["tag"].as_str().expect("a tag").to_owned()).or_default() += 1;
    }
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(doubled.is_empty(), "inserts applied more than once: {doubled:?}");
    let missing: Vec<_> = acked.tags.iter().filter(|t| !seen.contains_key(*t)).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged inserts missing on the server (of {}): {missing:?}",
        acked.tags.len()
    );
    assert_eq!(docs.len(), acked.tags.len(), "the server holds inserts that were never acknowledged");
    let counters = server.collection("counters").await.expect("counters on the server");
    for k in 0..COUNTERS {
        let id = format!("c{k}");
        let doc = counters.find_by_id(&id).await.expect("read a counter").expect("the counter exists");
        let want = acked.incs.get(&id).copied().unwrap_or(0);
        assert_eq!(
            doc["n"].as_u64(),
            Some(want),
            "counter {id}: the server's value vs acknowledged increments"
        );
    }
}
