//! The maintenance scheduler: backups, retention runs and compaction on schedules, spawned on
//! the application's tokio runtime, one run of each task at a time across every process sharing
//! the store.
//!
//! Exclusion is a lease document per task in the store itself (`orbstore_maintenance`): a
//! process runs a task only after inserting the task's lease (an insert of an existing `_id` is
//! a `Conflict` on every backend), and deletes it when done; a lease left by a crashed process
//! expires (its `until` is past) and is taken over. This works on every backend alike, which an
//! advisory lock (PostgreSQL only) would not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orbstore_core::{parse_bool, Error, ErrorKind, Filter, PersistenceBackend, Result, ID_FIELD};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};

use crate::backup::{backup, BackupOptions};
use crate::retention::{self, RetentionOptions};

/// The collection of the leases.
pub const LEASES: &str = "orbstore_maintenance";

/// What to run, and how often.
#[derive(Clone)]
pub struct MaintenanceConfig {
    /// Backups (`BACKUP_ENABLED=true`, every `BACKUP_FREQUENCY`: `hourly`, `daily` or a duration
    /// such as `6h`; default daily), with the backup settings (`BACKUP_DIR`, ...).
    pub backup: Option<(Duration, BackupOptions)>,
    /// Retention runs (`ORB_RETENTION_INTERVAL`, a duration), with the archive directory.
    pub retention: Option<(Duration, RetentionOptions)>,
    /// Compaction (`ORB_COMPACT_INTERVAL`, a duration).
    pub compact: Option<Duration>,
}

fn duration(var: &str, value: &str) -> Result<Duration> {
    let d = match value.trim().to_ascii_lowercase().as_str() {
        "hourly" => Duration::from_secs(3600),
        "daily" => Duration::from_secs(86_400),
        other => humantime::parse_duration(other).map_err(|e| {
            Error::invalid(format!(
                "invalid {var} {value:?}: {e} (write hourly, daily, or a duration such as 6h)"
            ))
        })?,
    };
    if d < Duration::from_secs(1) {
        return Err(Error::invalid(format!("invalid {var} {value:?}: at least one second")));
    }
    Ok(d)
}

impl MaintenanceConfig {
    /// The settings through `lookup`; a bad value is `InvalidInput` naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<MaintenanceConfig> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let backup = if parse_bool("BACKUP_ENABLED", get("BACKUP_ENABLED"))? {
            let every = match get("BACKUP_FREQUENCY") {
                Some(v) => duration("BACKUP_FREQUENCY", &v)?,
                None => Duration::from_secs(86_400),
            };
            Some((every, BackupOptions::from_lookup(&lookup)?))
        } else {
            None
        };
        let retention = match get("ORB_RETENTION_INTERVAL") {
            Some(v) => {
                Some((duration("ORB_RETENTION_INTERVAL", &v)?, RetentionOptions::from_lookup(&lookup)))
            }
            None => None,
        };
        let compact =
            get("ORB_COMPACT_INTERVAL").map(|v| duration("ORB_COMPACT_INTERVAL", &v)).transpose()?;
        Ok(MaintenanceConfig { backup, retention, compact })
    }
}

/// Where one task stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TaskStatus {
    /// `backup`, `retention` or `compact`.
    pub task: String,
    /// How often it runs, in seconds.
    pub every_secs: u64,
    /// Runs done by this process.
    pub runs: u64,
    /// Turns skipped because another process held the task's lease.
    pub skipped: u64,
    /// When this process last finished a run (RFC 3339).
    pub last_run: Option<String>,
    /// When the next turn is due (RFC 3339).
    pub next_run: Option<String>,
    /// The last run's error (cleared by a successful run).
    pub last_error: Option<String>,
    /// Whether a run is going on now.
    pub running: bool,
}

/// The running scheduler (see the module docs).
pub struct Maintenance {
    status: Arc<Mutex<BTreeMap<String, TaskStatus>>>,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Takes the task's lease for `hold`; `false` when another holder's lease is still valid.
async fn take_lease(
    store: &dyn PersistenceBackend,
    task: &str,
    holder: &str,
    hold: Duration,
) -> Result<bool> {
    let leases = store.collection(LEASES).await?;
    let now = SystemTime::now();
    let doc =
        json!({ID_FIELD: task, "holder": holder, "until_ms": millis(now + hold), "since": rfc3339(now)});
    let doc = doc.as_object().cloned().unwrap_or_default();
    match leases.insert_one(doc.clone()).await {
        Ok(_) => return Ok(true),
        Err(e) if e.kind() == ErrorKind::Conflict => {}
        Err(e) => return Err(e),
    }
    // Held: take it over only when it has expired (its holder crashed, or overran by far).
    let expired = Filter::and([Filter::eq(ID_FIELD, task), Filter::lt("until_ms", millis(now))]);
    if leases.delete_one(&expired).await? == 0 {
        return Ok(false);
    }
    match leases.insert_one(doc).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::Conflict => Ok(false),
        Err(e) => Err(e),
    }
}

async fn release_lease(store: &dyn PersistenceBackend, task: &str, holder: &str) -> Result<()> {
    let mine = Filter::and([Filter::eq(ID_FIELD, task), Filter::eq("holder", holder)]);
    store.collection(LEASES).await?.delete_one(&mine).await.map(drop)
}

type Job = Arc<
    dyn Fn(Arc<dyn PersistenceBackend>) -> futures::future::BoxFuture<'static, Result<Value>> + Send + Sync,
>;

impl Maintenance {
    /// Starts one task per configured schedule on the current tokio runtime. Each first runs
    /// one period after the start.
    pub fn spawn(store: Arc<dyn PersistenceBackend>, config: MaintenanceConfig) -> Maintenance {
        let status = Arc::new(Mutex::new(BTreeMap::new()));
        let (stop, _) = tokio::sync::watch::channel(false);
        let holder = orbstore_core::generate_id();
        let mut jobs: Vec<(&'static str, Duration, Job)> = Vec::new();
        if let Some((every, options)) = config.backup {
            jobs.push((
                "backup",
                every,
                Arc::new(move |s| {
                    let options = options.clone();
                    Box::pin(async move {
                        let r = backup(&s, &options).await?;
                        Ok(json!({"path": r.path, "documents": r.manifest.total_documents(), "pruned": r.pruned.len()}))
                    })
                }),
            ));
        }
        if let Some((every, options)) = config.retention {
            jobs.push((
                "retention",
                every,
                Arc::new(move |s| {
                    let options = options.clone();
                    Box::pin(async move {
                        // Ages are measured from the start of each run.
                        let options = RetentionOptions { now: SystemTime::now(), ..options };
                        let r = retention::run(&s, &options).await?;
                        Ok(json!({"due": r.total_due()}))
                    })
                }),
            ));
        }
        if let Some(every) = config.compact {
            jobs.push((
                "compact",
                every,
                Arc::new(|s| {
                    Box::pin(async move {
                        let r = s.compact().await?;
                        Ok(json!({"bytes_before": r.bytes_before, "bytes_after": r.bytes_after}))
                    })
                }),
            ));
        }
        let mut tasks = Vec::new();
        for (name, every, job) in jobs {
            status.lock().insert(
                name.to_owned(),
                TaskStatus {
                    task: name.to_owned(),
                    every_secs: every.as_secs(),
                    next_run: Some(rfc3339(SystemTime::now() + every)),
                    ..TaskStatus::default()
                },
            );
            let (store, status, holder, mut stop) =
                (store.clone(), status.clone(), holder.clone(), stop.subscribe());
            tasks.push(tokio::spawn(async move {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = stop.changed() => return,
                    }
                    // A lease outlives a slow run by far, and a crashed holder's by one period.
                    let hold = every.max(Duration::from_secs(600));
                    let outcome = match take_lease(&*store, name, &holder, hold).await {
                        Ok(false) => None,
                        Ok(true) => {
                            if let Some(s) = status.lock().get_mut(name) {
                                s.running = true;
                            }
                            // The run itself is not cut by a stop: shutdown waits for it to end.
                            let r = job(store.clone()).await;
                            let released = release_lease(&*store, name, &holder).await;
                            Some(r.and_then(|v| released.map(|()| v)))
                        }
                        Err(e) => Some(Err(e)),
                    };
                    let mut all = status.lock();
                    let Some(s) = all.get_mut(name) else { return };
                    s.running = false;
                    s.next_run = Some(rfc3339(SystemTime::now() + every));
                    match outcome {
                        None => s.skipped += 1,
                        Some(Ok(_)) => {
                            s.runs += 1;
                            s.last_run = Some(rfc3339(SystemTime::now()));
                            s.last_error = None;
                        }
                        Some(Err(e)) => {
                            tracing::warn!(target: "orbstore::maintenance", task = name, "run failed: {e}");
                            s.last_error = Some(e.to_string());
                        }
                    }
                }
            }));
        }
        Maintenance { status, stop, tasks }
    }

    /// Every task's status, by name.
    pub fn status(&self) -> Vec<TaskStatus> {
        self.status.lock().values().cloned().collect()
    }

    /// Stops the schedules; a run going on is finished first (its lease released), so this
    /// returns at a safe point.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}
