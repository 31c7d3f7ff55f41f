//! The writer thread: rusqlite is blocking, so one dedicated thread owns the writing connection
//! and runs jobs sent over a channel; async callers await a oneshot reply and never block the
//! runtime. A transaction is a session on this thread: it runs only that transaction's jobs
//! until commit or rollback, while plain reads go to reader connections (WAL).

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

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;

/// The handle on the writer thread.
#[derive(Debug)]
pub(crate) struct Worker {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Worker {
    pub(crate) fn spawn(conn: Connection, catalog: Arc<parking_lot::RwLock<Catalog>>, file: bool) -> Worker {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("orbstore-sqlite-writer".into())
            .spawn(move || {
                let mut writer = Writer { conn, catalog, file };
                while let Ok(job) = rx.recv() {
                    job(&mut writer);
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
        {
            let sender = self.sender.lock();
            let sender = sender.as_ref().ok_or_else(closed)?;
            sender.send(boxed).map_err(|_| closed())?;
        }
        let mut rx = rx;
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

pub(crate) fn closed() -> Error {
    Error::invalid("the SQLite backend was closed")
}
