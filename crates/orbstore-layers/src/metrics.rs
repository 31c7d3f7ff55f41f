//! Metrics and tracing for every operation ([`MetricsLayer`]), through the `metrics` facade (so
//! any recorder works: Prometheus with the `prometheus` feature, StatsD, a test recorder) and a
//! `tracing` span.
//!
//! What is recorded, per operation:
//! - counter `orbstore_operations_total{op, backend, outcome}`, `outcome` being `ok`, `error`, or
//!   `rejected` (failed at once by an open circuit breaker, never reaching the backend);
//! - counter `orbstore_errors_total{op, backend, kind}`, `kind` being the error kind in snake case
//!   (`unavailable`, `conflict`, `not_found`, ...);
//! - histogram `orbstore_operation_seconds{op, backend}`;
//! - a span `orbstore.op` with the fields `op`, `backend`, `collection`, `outcome` and, on an
//!   error, `error.kind`. Document contents, filter values and connection details never appear:
//!   only names of operations and collections.
//!
//! The other layers add: `orbstore_retries_total{op}` (each retry of [`crate::RetryLayer`] and
//! [`crate::retry_transaction`]), `orbstore_circuit_state{backend}` (gauge: 0 closed, 1 open,
//! 2 half-open), `orbstore_circuit_opened_total{backend}` and
//! `orbstore_circuit_rejected_total{backend}` ([`crate::BreakerLayer`]).

use std::future::Future;
use std::time::Instant;

use futures::future::BoxFuture;
use orbstore_core::{ErrorKind, Result};
use tracing::Instrument;

use crate::around::{Around, Op};
use crate::breaker::is_circuit_open;

/// Counts, errors by kind and latency of every operation, and a span per operation.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    backend: &'static str,
}

impl MetricsLayer {
    /// Metrics labelled with `backend` (pass the inner backend's `kind()`).
    pub fn new(backend: &'static str) -> MetricsLayer {
        MetricsLayer { backend }
    }
}

/// The `kind` label of an error kind: `not_found`, `conflict`, `invalid_input`, `unavailable`,
/// `aborted`, `unsupported`, `corrupt`, `io`, `backend`.
pub fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "not_found",
        ErrorKind::Conflict => "conflict",
        ErrorKind::InvalidInput => "invalid_input",
        ErrorKind::Unavailable => "unavailable",
        ErrorKind::Aborted => "aborted",
        ErrorKind::Unsupported => "unsupported",
        ErrorKind::Corrupt => "corrupt",
        ErrorKind::Io => "io",
        ErrorKind::Backend => "backend",
        // ErrorKind is non-exhaustive: a kind added later is still counted.
        _ => "other",
    }
}

impl Around for MetricsLayer {
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        let span = tracing::info_span!(
            "orbstore.op",
            op = op.name,
            backend = self.backend,
            collection = op.collection,
            outcome = tracing::field::Empty,
            error.kind = tracing::field::Empty,
        );
        let record = span.clone();
        Box::pin(
            async move {
                let start = Instant::now();
                let result = f().await;
                let seconds = start.elapsed().as_secs_f64();
                let outcome = match &result {
                    Ok(_) => "ok",
                    Err(e) if is_circuit_open(e) => "rejected",
                    Err(_) => "error",
                };
                let (op_name, backend) = (op.name, self.backend);
                ::metrics::counter!("orbstore_operations_total", "op" => op_name, "backend" => backend, "outcome" => outcome)
                    .increment(1);
                ::metrics::histogram!("orbstore_operation_seconds", "op" => op_name, "backend" => backend).record(seconds);
                record.record("outcome", outcome);
                if let Err(e) = &result {
                    let kind = kind_label(e.kind());
                    ::metrics::counter!("orbstore_errors_total", "op" => op_name, "backend" => backend, "kind" => kind)
                        .increment(1);
                    record.record("error.kind", kind);
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Registers the descriptions (help texts and units) of orbstore's metrics with the installed
/// recorder; `install_prometheus` (feature `prometheus`) calls it.
pub fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "orbstore_operations_total",
        "Operations by name, backend and outcome (ok, error, rejected)"
    );
    describe_counter!("orbstore_errors_total", "Failed operations by name, backend and error kind");
    describe_histogram!(
        "orbstore_operation_seconds",
        Unit::Seconds,
        "Duration of operations by name and backend"
    );
    describe_counter!("orbstore_retries_total", "Retries of operations and transactions");
    describe_gauge!("orbstore_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open");
    describe_counter!("orbstore_circuit_opened_total", "Times the circuit breaker opened");
    describe_counter!(
        "orbstore_circuit_rejected_total",
        "Operations the open circuit breaker failed at once"
    );
}

/// The histogram buckets of `orbstore_operation_seconds` in the Prometheus exporter: 100 µs to
/// 60 s (the PostgreSQL backend's statement timeout).
#[cfg(feature = "prometheus")]
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// Installs a Prometheus recorder as the process's global `metrics` recorder and returns its
/// handle: `handle.render()` is the text a scrape endpoint serves. Rendering also does the
/// recorder's upkeep; a process that renders rarely should call `handle.run_upkeep()` every few
/// seconds. A second install in one process is `InvalidInput` (there is one global recorder).
#[cfg(feature = "prometheus")]
pub fn install_prometheus() -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("orbstore_operation_seconds".to_owned()), SECONDS_BUCKETS)
        .and_then(|b| b.install_recorder())
        .map_err(|e| orbstore_core::Error::invalid(format!("cannot install the Prometheus recorder: {e}")))?;
    describe();
    Ok(handle)
}
