//! The writer thread: rusqlite is blocking, so one dedicated thread owns the writing connection
//! and runs jobs sent over a channel; async callers await a oneshot reply and never block the
//! runtime. A transaction is a session on this thread: it runs only that transaction's jobs
//! until commit or rollback, while plain reads go to reader connections (WAL).
//!
//! Group commit: the collections' writes outside transactions are grouped jobs. The thread runs
//! a grouped job together with every grouped job already waiting behind it (at most
//! [`MAX_GROUP`]) in one transaction, each job in a savepoint of its own (its failure rolls back
//! only its savepoint), and answers them all after the one `COMMIT`: an acknowledged write is
//! durable (one fsync for the group under `synchronous = FULL`), and when the commit fails,
//! every job of the group is answered with that failure. Nothing waits to fill a group: a lone
//! writer commits at once.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use orbstore_core::{Error, Result};
use parking_lot::Mutex;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::backend::Catalog;

/// How long a call may wait for the writer (an open transaction holds it) before it gives up
/// with a retryable `Unavailable`. Once a job has started it always runs to the end.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's state, handed to every job.
pub(crate) struct Writer {
    pub conn: Connection,
    /// The catalog cache, shared with the readers.
    pub catalog: Arc<parking_lot::RwLock<Catalog>>,
    /// The database is a file (not `:memory:`).
    pub file: bool,
}

/// A job for the writer thread.
pub(crate) type Job = Box<dyn FnOnce(&mut Writer) + Send>;

/// A job that may share its transaction with others: it runs (given the writer; `None`: it must
/// not run), and returns how to answer once the group's commit has succeeded (`None`) or failed.
type GroupJob = Box<dyn FnOnce(Option<&mut Writer>) -> Answer + Send>;
type Answer = Box<dyn FnOnce(Option<&Error>) + Send>;

/// What the thread runs: alone (transactions, DDL of the backend, maintenance) or grouped.
enum Task {
    Alone(Job),
    Grouped(GroupJob),
}

/// The most jobs one group commit takes.
pub(crate) const MAX_GROUP: usize = 1_000;

/// The longest a group takes in jobs before it commits (those queued behind wait for it).
const MAX_GROUP_TIME: Duration = Duration::from_millis(50);

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

/// The handle on the writer thread.
#[derive(Debug)]
pub(crate) struct Worker {
    sender: Mutex<Option<mpsc::Sender<Task>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    pub(crate) fn spawn(conn: Connection, catalog: Arc<parking_lot::RwLock<Catalog>>, file: bool) -> Worker {
        let (tx, rx) = mpsc::channel::<Task>();
        let thread = std::thread::Builder::new()
            .name("orbstore-sqlite-writer".into())
            .spawn(move || {
                let mut writer = Writer { conn, catalog, file };
                let mut next = None;
                loop {
                    let task = match next.take() {
                        Some(task) => task,
                        None => match rx.recv() {
                            Ok(task) => task,
                            Err(_) => break,
                        },
                    };
                    match task {
                        Task::Alone(job) => job(&mut writer),
                        Task::Grouped(job) => next = run_group(&mut writer, job, &rx),
                    }
                }
            })
            .expect("spawn the SQLite writer thread");
        Worker { sender: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) }
    }

    /// Runs `f` on the writer thread and returns its result.
    pub(crate) async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (reply, rx) = oneshot::channel();
        self.submit(
            move |w| {
                let _ = reply.send(f(w));
            },
            rx,
        )
        .await?
    }

    /// Runs `f` on the writer thread in a group commit (see the module) and returns its result
    /// once the group's transaction has committed. `f` must only write through savepoints.
    pub(crate) async fn call_grouped<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (reply, rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job_state = state.clone();
        let job: GroupJob = Box::new(move |w| {
            if job_state.compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire).is_err() {
                return Box::new(|_| {});
            }
            let result = match w {
                Some(w) => f(w),
                None => Err(Error::backend("the SQLite writer could not run the write", "not run")),
            };
            Box::new(move |commit: Option<&Error>| {
                let _ = reply.send(match (result, commit) {
                    (Ok(_), Some(e)) => Err(Error::new(
                        e.kind(),
                        format!("the write was not committed (its group commit failed): {}", e.message()),
                    )),
                    (result, _) => result,
                });
            })
        });
        self.send_and_wait(Task::Grouped(job), state, rx).await?
    }

    /// Submits a job that reports through `rx`; waits at most [`BUSY_TIMEOUT`] for it to start.
    pub(crate) async fn submit<T>(
        &self,
        job: impl FnOnce(&mut Writer) + Send + 'static,
        rx: oneshot::Receiver<T>,
    ) -> Result<T> {
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job_state = state.clone();
        let boxed: Job = Box::new(move |w| {
            if job_state.compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                job(w);
            }
        });
        self.send_and_wait(Task::Alone(boxed), state, rx).await
    }

    async fn send_and_wait<T>(
        &self,
        task: Task,
        state: Arc<AtomicU8>,
        mut rx: oneshot::Receiver<T>,
    ) -> Result<T> {
        {
            let sender = self.sender.lock();
            let sender = sender.as_ref().ok_or_else(closed)?;
            sender.send(task).map_err(|_| closed())?;
        }
        match tokio::time::timeout(BUSY_TIMEOUT, &mut rx).await {
            Ok(r) => r.map_err(|_| Error::backend("the SQLite writer stopped", "reply dropped")),
            Err(_) => {
                if state.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return Err(Error::unavailable(format!(
                        "the database stayed busy for {} s (a transaction is open); the operation was not run",
                        BUSY_TIMEOUT.as_secs()
                    )));
                }
                rx.await.map_err(|_| Error::backend("the SQLite writer stopped", "reply dropped"))
            }
        }
    }

    /// Stops the thread after the jobs already queued.
    pub(crate) fn shutdown(&self) {
        self.sender.lock().take();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }
}

/// Runs `first` and every grouped job queued behind it in one transaction, then answers them.
/// Returns a task taken from the queue that could not join the group.
fn run_group(w: &mut Writer, first: GroupJob, rx: &mpsc::Receiver<Task>) -> Option<Task> {
    // A transaction left open by a failure (a ROLLBACK that failed too) must not swallow the
    // group's writes without a COMMIT: roll it back and start clean.
    if !w.conn.is_autocommit() {
        tracing::error!("the SQLite writer found a transaction open between jobs; rolling it back");
        if let Err(e) = w.conn.execute_batch("ROLLBACK") {
            let e = crate::error::map("roll back a transaction left open", e);
            first(None)(Some(&e));
            return None;
        }
    }
    // If BEGIN fails the job runs alone and commits its own savepoint, as without grouping.
    let grouped = w.conn.execute_batch("BEGIN IMMEDIATE").is_ok();
    let started = std::time::Instant::now();
    let mut answers = vec![first(Some(&mut *w))];
    let mut leftover = None;
    // SQLite rolls a transaction back by itself after some errors (a full disk): the group
    // then stops at once, so no later job runs outside it.
    while grouped
        && answers.len() < MAX_GROUP
        && started.elapsed() < MAX_GROUP_TIME
        && !w.conn.is_autocommit()
    {
        match rx.try_recv() {
            Ok(Task::Grouped(job)) => answers.push(job(Some(&mut *w))),
            Ok(other) => {
                leftover = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    let outcome = if !grouped {
        Ok(())
    } else if w.conn.is_autocommit() {
        Err(Error::aborted("SQLite rolled the group's transaction back"))
    } else {
        w.conn.execute_batch("COMMIT").map_err(|e| crate::error::map("commit a group of writes", e))
    };
    if outcome.is_err() {
        if !w.conn.is_autocommit() {
            let _ = w.conn.execute_batch("ROLLBACK");
        }
        // The jobs updated the cached catalog as they went (a new collection, multikey flags):
        // read it again from what the database holds.
        match crate::backend::load_catalog(&w.conn) {
            Ok(catalog) => *w.catalog.write() = catalog,
            Err(e) => tracing::error!("reloading the SQLite catalog after a failed group commit: {e}"),
        }
    }
    let failure = outcome.err();
    for answer in answers {
        answer(failure.as_ref());
    }
    leftover
}

pub(crate) fn closed() -> Error {
    Error::invalid("the SQLite backend was closed")
}
