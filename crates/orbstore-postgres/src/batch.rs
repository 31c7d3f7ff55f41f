//! Group commit of concurrent single inserts into one collection (outside transactions).
//!
//! Each `insert_one` is its own transaction, so each costs the server a WAL flush and the
//! client a round trip; 64 concurrent writers reached 8k inserts/s. Here a writer queues its
//! document, and whoever holds one of [`MAX_IN_FLIGHT`] permits takes every document queued
//! (up to [`MAX_BATCH`]) into one `INSERT … SELECT FROM unnest(…) ON CONFLICT (id) DO NOTHING
//! RETURNING id`: one statement, one commit, and each writer is answered after it: inserted,
//! or `Conflict` when its id was taken (by a stored document or by an earlier one of the same
//! batch: the first wins, as if they ran in queue order). While statements are in flight the
//! queue fills, so batches grow with the load and a lone writer still runs alone.
//!
//! When another unique index refuses a row, or batches in flight deadlock on each other's
//! uncommitted keys (possible through a secondary unique index; rows go in id order, so not
//! through the primary key), the statement fails whole (nothing of it written) and the batch is
//! inserted again document by document, so each writer gets its own answer. Any
//! other failure is every writer's (the statement is atomic: none of them was written, unless
//! the connection died waiting for the commit's answer, which `Unavailable` already means for a
//! single insert). The statement runs in a task of its own, so a writer that stops waiting (a
//! cancelled future, a deadline) does not cancel the others' inserts.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use orbstore_core::{Document, Error, Id, Result};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Semaphore};
use tokio_postgres::error::SqlState;

use crate::backend::{Shared, Subject};
use crate::error::is_stale_catalog;
use crate::exec::Exec;
use crate::ops;

/// Most documents one statement carries.
pub const MAX_BATCH: usize = 1000;
/// Most insert statements of one collection in flight at once: a few writers keep their
/// parallelism on several connections, many share statements.
pub const MAX_IN_FLIGHT: usize = 4;

struct Entry {
    /// Which writer's (unique per queue).
    ticket: u64,
    id: Id,
    doc: Document,
    done: oneshot::Sender<Result<()>>,
}

/// One collection's queue of single inserts.
pub(crate) struct Inserts {
    pending: Mutex<VecDeque<Entry>>,
    in_flight: Arc<Semaphore>,
    tickets: AtomicU64,
}

/// How many batched insert statements ran and how many documents they carried (all
/// collections), for monitoring and for the tests that check batches form.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) statements: AtomicU64,
    pub(crate) documents: AtomicU64,
}

impl Inserts {
    pub(crate) fn new() -> Inserts {
        Inserts {
            pending: Mutex::new(VecDeque::new()),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            tickets: AtomicU64::new(0),
        }
    }

    /// Inserts one validated document, answering after the statement carrying it committed.
    pub(crate) async fn insert(&self, shared: &Arc<Shared>, name: &str, id: Id, doc: Document) -> Result<()> {
        let (done, mut answer) = oneshot::channel();
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        self.pending.lock().push_back(Entry { ticket, id, doc, done });
        loop {
            let permit = self.in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
            match answer.try_recv() {
                Ok(result) => return result,
                Err(oneshot::error::TryRecvError::Closed) => return Err(lost()),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<Entry> = {
                let mut p = self.pending.lock();
                let n = p.len().min(MAX_BATCH);
                p.drain(..n).collect()
            };
            if batch.is_empty() {
                // Ours is in a statement in flight.
                drop(permit);
                return answer.await.unwrap_or_else(|_| Err(lost()));
            }
            if batch.len() == 1 && batch[0].ticket == ticket {
                // Only this writer's own insert: no one else to shield from its cancellation,
                // so no task hop (a lone writer's latency).
                run(shared.clone(), name.to_owned(), batch, permit).await;
            } else {
                let task = tokio::spawn(run(shared.clone(), name.to_owned(), batch, permit));
                // A panic in the task drops its entries' senders: their writers get `lost()`.
                let _ = task.await;
            }
        }
    }
}

/// The answer for a writer whose batch ended without one (its task panicked or the runtime
/// shut down): the insert may or may not have been stored.
fn lost() -> Error {
    Error::unavailable(
        "the statement carrying this insert ended without an answer; it may or may not be stored",
    )
}

fn taken(id: &str) -> Error {
    Error::conflict(format!("insert {id:?}: a document with this _id already exists"))
}

/// The same failure for each writer of a batch.
fn copy(e: &Error) -> Error {
    Error::new(e.kind(), e.message().to_owned())
}

/// Whether a failed batch statement is retried one document per statement.
fn one_by_one(e: &tokio_postgres::Error) -> bool {
    let code = e.code();
    code == Some(&SqlState::UNIQUE_VIOLATION)
        || code == Some(&SqlState::T_R_DEADLOCK_DETECTED)
        || code == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
}

/// What a batch's statement came to.
enum Outcome {
    /// The ids the statement inserted (the others were taken).
    Inserted(HashSet<String>),
    /// Another unique index refused one of them: each document's own result, inserted one by one.
    OneByOne(Vec<Result<()>>),
    /// A batch of one, inserted by the plain single-row statement (cheaper for the server than
    /// the batch's `unnest`, and a lone writer's latency is what it waits for).
    Lone(Result<()>),
}

/// Runs the batch's statement (and the one-by-one fallback) in one scope.
async fn attempt(
    shared: &Arc<Shared>,
    name: &str,
    batch: &[Entry],
    distinct: &[(&str, &Document)],
) -> Result<Outcome> {
    let exec = Exec::Direct(shared.clone());
    shared
        .bounded(Subject("collection", name), async {
            let scope = exec.scope(false).await?;
            if let [only] = batch {
                let result = ops::insert_one(scope.client(), shared, name, &only.id, &only.doc).await;
                // A stale catalog is the whole attempt's error (the caller creates the table
                // again); anything else is the writer's own answer.
                let result = match result {
                    Err(e) if is_stale_catalog(&e) => Err(e),
                    other => Ok(Outcome::Lone(other)),
                };
                return scope.end(result).await;
            }
            let layout = match shared.layout(scope.client(), name).await {
                Ok(l) => l,
                Err(e) => return scope.end(Err(e)).await,
            };
            let result = match ops::insert_batch(scope.client(), shared, name, &layout, distinct).await {
                Ok(inserted) => Ok(Outcome::Inserted(inserted)),
                // Another unique index refused a row, or two batches in flight deadlocked on each
                // other's uncommitted keys (the victim's statement is rolled back whole): one
                // statement per document, which waits for another's key but holds none that
                // another waits for, so it cannot deadlock. In queue order, so the first of a
                // repeated id is the one stored.
                Err(e) if one_by_one(&e) => {
                    let mut each = Vec::with_capacity(batch.len());
                    for e in batch {
                        each.push(ops::insert_one(scope.client(), shared, name, &e.id, &e.doc).await);
                    }
                    Ok(Outcome::OneByOne(each))
                }
                Err(e) => Err(crate::error::map(&format!("insert {} documents", distinct.len()), e)),
            };
            scope.end(result).await
        })
        .await
}

async fn run(
    shared: Arc<Shared>,
    name: String,
    batch: Vec<Entry>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    // The first of a repeated id goes into the statement; the later ones conflict with it.
    let is_first: Vec<bool> = {
        let mut seen = HashSet::with_capacity(batch.len());
        batch.iter().map(|e| seen.insert(e.id.as_str())).collect()
    };
    let mut distinct: Vec<(&str, &Document)> = batch
        .iter()
        .zip(&is_first)
        .filter(|(_, first)| **first)
        .map(|(e, _)| (e.id.as_str(), &e.doc))
        .collect();
    // In id order, as every batch: two batches in flight then take their primary-key entries in
    // the same order, and do not deadlock on them.
    distinct.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut outcome = attempt(&shared, &name, &batch, &distinct).await;
    if outcome.as_ref().is_err_and(is_stale_catalog) {
        // Dropped by another handle or process since this one created it (or re-created with
        // other index columns): create it again if needed and write once more, as every other
        // write does.
        shared.forget(&name);
        outcome =
            match crate::collection::PgCollection::new(&name, Exec::Direct(shared.clone())).ensure().await {
                Ok(()) => attempt(&shared, &name, &batch, &distinct).await,
                Err(e) => Err(e),
            };
    }
    let counters = shared.insert_counters();
    let statements = match &outcome {
        Ok(Outcome::OneByOne(each)) => 1 + each.len() as u64,
        _ => 1,
    };
    counters.statements.fetch_add(statements, Ordering::Relaxed);
    counters.documents.fetch_add(batch.len() as u64, Ordering::Relaxed);
    match outcome {
        Ok(Outcome::Inserted(inserted)) => {
            for (e, first) in batch.into_iter().zip(is_first) {
                let ok = first && inserted.contains(&e.id);
                let _ = e.done.send(if ok { Ok(()) } else { Err(taken(&e.id)) });
            }
        }
        Ok(Outcome::OneByOne(each)) => {
            for (e, result) in batch.into_iter().zip(each) {
                let _ = e.done.send(result);
            }
        }
        Ok(Outcome::Lone(result)) => {
            if let Some(e) = batch.into_iter().next() {
                let _ = e.done.send(result);
            }
        }
        Err(error) => {
            for e in batch {
                let _ = e.done.send(Err(copy(&error)));
            }
        }
    }
}
