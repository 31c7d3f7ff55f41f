//! Retry with exponential backoff and jitter ([`RetryLayer`]), and re-running a whole
//! transaction after a serialization failure ([`retry_transaction`]).
//!
//! What is retried, and why:
//! - only [`ErrorKind::Unavailable`]: the server could not be reached or did not answer, so the
//!   same call may succeed later. `InvalidInput`, `Conflict`, `NotFound`, `Unsupported`,
//!   `Corrupt`, `Io` and `Backend` would fail the same way again; `Aborted` needs the whole
//!   transaction re-run, which only the caller's code can do ([`retry_transaction`]).
//! - only operations marked [`Op::idempotent`] (reads, `create_index`, `begin`, ...): after an
//!   `Unavailable` the first attempt may have been applied (the connection dropped after the
//!   server committed), so repeating an `insert_one` or an `$inc` could apply it twice.
//! - never inside a transaction: the transaction died with its connection; repeating one of its
//!   statements on another connection would run it outside the transaction.
//! - never a refusal of an open circuit breaker ([`crate::breaker::is_circuit_open`]): the breaker
//!   knows the server is down, waiting a few milliseconds changes nothing.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::future::BoxFuture;
use orbstore_core::{Error, ErrorKind, PersistenceBackend, Result, Transaction};

use crate::around::{Around, Op};
use crate::breaker::is_circuit_open;

/// The environment variable [`RetryConfig::from_lookup`] reads for the number of retries.
pub const MAX_RETRIES_VAR: &str = "DB_MAX_RETRIES";

/// The most retries [`RetryConfig::from_lookup`] accepts (a larger value is more likely a typo
/// than a wish to wait for minutes).
pub const MAX_RETRIES_LIMIT: u32 = 100;

/// Settings of a [`RetryLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// How many times a failed operation is tried again (default 3: at most 4 attempts).
    /// 0 turns retrying off.
    pub max_retries: u32,
    /// The delay before the first retry (default 100 ms); each next delay doubles.
    pub min_delay: Duration,
    /// The longest delay between two attempts (default 5 s), before jitter. Jitter adds a
    /// random part of up to the delay itself, so that clients that failed together do not
    /// retry together.
    pub max_delay: Duration,
    /// How long one attempt may take before it is given up as `Unavailable` (default none:
    /// the backend's own timeouts apply). A server that accepts bytes and never answers is not
    /// caught by every backend's timeouts (see the crate README); an attempt timeout is.
    /// Giving up on a write does not undo it: its outcome is unknown, and it is retried only
    /// when it is idempotent.
    pub attempt_timeout: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 3,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            attempt_timeout: None,
        }
    }
}

impl RetryConfig {
    /// The defaults: 3 retries, 100 ms doubling up to 5 s, with jitter, no attempt timeout.
    pub fn new() -> RetryConfig {
        RetryConfig::default()
    }

    /// Sets [`RetryConfig::max_retries`].
    pub fn with_max_retries(mut self, max_retries: u32) -> RetryConfig {
        self.max_retries = max_retries;
        self
    }

    /// Sets [`RetryConfig::min_delay`].
    pub fn with_min_delay(mut self, delay: Duration) -> RetryConfig {
        self.min_delay = delay;
        self
    }

    /// Sets [`RetryConfig::max_delay`].
    pub fn with_max_delay(mut self, delay: Duration) -> RetryConfig {
        self.max_delay = delay;
        self
    }

    /// Sets [`RetryConfig::attempt_timeout`].
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> RetryConfig {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The defaults, with the number of retries from `DB_MAX_RETRIES` when it is set (an empty
    /// value counts as unset, as for the other settings). A value that is not a whole number
    /// from 0 to 100 is `InvalidInput` naming the variable and the value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<RetryConfig> {
        let mut config = RetryConfig::default();
        if let Some(raw) = lookup(MAX_RETRIES_VAR).filter(|v| !v.trim().is_empty()) {
            config.max_retries = raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= MAX_RETRIES_LIMIT)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "invalid {MAX_RETRIES_VAR} {raw:?}: a whole number of retries from 0 to {MAX_RETRIES_LIMIT}"
                    ))
                })?;
        }
        Ok(config)
    }

    /// The delays between attempts, from `backon`.
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay.max(self.min_delay))
            .with_factor(2.0)
            .with_max_times(self.max_retries as usize)
            .with_jitter()
    }
}

/// Retries operations that failed with `Unavailable` when running them again is safe (see the
/// module docs).
#[derive(Debug, Clone)]
pub struct RetryLayer {
    config: RetryConfig,
}

impl RetryLayer {
    /// A retry layer with these settings.
    pub fn new(config: RetryConfig) -> RetryLayer {
        RetryLayer { config }
    }

    /// Its settings.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new(RetryConfig::default())
    }
}

/// Why a failed operation is not tried again, for the error message; `None` when it may be.
fn refusal(op: &Op<'_>, e: &Error) -> Option<&'static str> {
    if e.kind() != ErrorKind::Unavailable || is_circuit_open(e) {
        Some("")
    } else if op.in_transaction {
        Some("; not retried inside a transaction")
    } else if !op.idempotent {
        Some("; not retried: the first attempt may have been applied")
    } else {
        None
    }
}

/// The error of the last attempt, with how many attempts were made; its kind unchanged and the
/// last attempt's error as its source.
fn with_attempts(e: Error, attempts: u32, why: &str) -> Error {
    let plural = if attempts == 1 { "" } else { "s" };
    Error::new(e.kind(), format!("{} (after {attempts} attempt{plural}{why})", e.message())).with_source(e)
}

/// Runs one attempt, bounded by the attempt timeout when there is one.
async fn attempt<T>(
    fut: impl Future<Output = Result<T>>,
    op: &Op<'_>,
    timeout: Option<Duration>,
) -> Result<T> {
    let Some(limit) = timeout else { return fut.await };
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result,
        Err(_) => {
            let unknown = if op.write { "; its outcome is unknown" } else { "" };
            Err(Error::unavailable(format!("{} got no answer within {limit:?}{unknown}", op.name)))
        }
    }
}

impl Around for RetryLayer {
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            // Built at the first failure: the happy path pays nothing for the backoff's RNG.
            let mut delays = None;
            let mut attempts = 1u32;
            loop {
                let e = match attempt(f(), &op, self.config.attempt_timeout).await {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                };
                if let Some(why) = refusal(&op, &e) {
                    // A circuit refusal or a non-retryable kind on the first attempt passes
                    // through as it is; otherwise the count says what happened.
                    if attempts == 1 && why.is_empty() {
                        return Err(e);
                    }
                    return Err(with_attempts(e, attempts, why));
                }
                let delays = delays.get_or_insert_with(|| self.config.backoff().build());
                let Some(delay) = delays.next() else { return Err(with_attempts(e, attempts, "")) };
                tracing::debug!(
                    op = op.name,
                    collection = op.collection,
                    attempt = attempts,
                    delay_ms = delay.as_millis() as u64,
                    error = %e,
                    "retrying an operation"
                );
                ::metrics::counter!("orbstore_retries_total", "op" => op.name).increment(1);
                tokio::time::sleep(delay).await;
                attempts += 1;
            }
        })
    }
}

/// Runs `body` in a fresh transaction and commits it; when the transaction is `Aborted` (a
/// concurrent transaction overtook it, at any step), or `begin` fails with `Unavailable`, it is
/// rolled back and the whole of `body` runs again in a new transaction, up to `max_retries` more
/// times, with the same backoff as [`RetryLayer`].
///
/// Any other error ends it at once (the transaction is rolled back), in particular an
/// `Unavailable` from the body or the commit: the body may have done things outside the
/// transaction, and a commit whose answer was lost may have been applied. The final error says
/// how many attempts were made. `body` must not keep anything from a failed attempt.
///
/// ```
/// # use orbstore_core::{CollectionExt, Filter, PersistenceBackend, Update};
/// # async fn demo(store: &dyn PersistenceBackend) -> orbstore_core::Result<()> {
/// orbstore_layers::retry_transaction(store, 5, |tx| {
///     Box::pin(async move {
///         let accounts = tx.collection("accounts").await?;
///         accounts.update_one(&Filter::eq("_id", "a"), &Update::new().inc("balance", -10)).await?;
///         accounts.update_one(&Filter::eq("_id", "b"), &Update::new().inc("balance", 10)).await?;
///         Ok(())
///     })
/// })
/// .await
/// # }
/// ```
pub async fn retry_transaction<S, T, F>(store: &S, max_retries: u32, mut body: F) -> Result<T>
where
    S: PersistenceBackend + ?Sized,
    F: for<'t> FnMut(&'t dyn Transaction) -> BoxFuture<'t, Result<T>>,
{
    let mut delays = RetryConfig::default().with_max_retries(max_retries).backoff().build();
    let mut attempts = 1u32;
    loop {
        let (e, again) = match store.begin().await {
            Err(e) => {
                let again =
                    matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Aborted) && !is_circuit_open(&e);
                (e, again)
            }
            Ok(tx) => match body(&*tx).await {
                Ok(v) => match tx.commit().await {
                    Ok(()) => return Ok(v),
                    Err(e) => {
                        let again = e.kind() == ErrorKind::Aborted;
                        (e, again)
                    }
                },
                Err(e) => {
                    if let Err(rollback) = tx.rollback().await {
                        tracing::debug!(error = %rollback, "rolling back a failed transaction");
                    }
                    let again = e.kind() == ErrorKind::Aborted;
                    (e, again)
                }
            },
        };
        if !again {
            return Err(if attempts == 1 { e } else { with_attempts(e, attempts, "") });
        }
        let Some(delay) = delays.next() else { return Err(with_attempts(e, attempts, "")) };
        tracing::debug!(attempt = attempts, delay_ms = delay.as_millis() as u64, error = %e, "re-running a transaction");
        ::metrics::counter!("orbstore_retries_total", "op" => "transaction").increment(1);
        tokio::time::sleep(delay).await;
        attempts += 1;
    }
}
