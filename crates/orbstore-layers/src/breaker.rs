//! A circuit breaker ([`BreakerLayer`]): after a run of `Unavailable` failures it stops sending
//! operations to a backend that is down, and fails them at once, so that callers do not each
//! wait out a connect timeout and the server is not hammered while it restarts.
//!
//! States:
//! - **closed**: every operation goes through; `Unavailable` failures in a row are counted and any
//!   other outcome (a success, or an error the server answered with, such as `Conflict`) resets
//!   the count. When it reaches the threshold (default 5) the circuit opens.
//! - **open**: every operation fails at once with `Unavailable` ("circuit open, retrying in …"),
//!   for a cool-down (default 10 s; doubled after each failed probe, up to a maximum).
//! - **half-open**: after the cool-down, the next operations are probes, at most a bounded number
//!   at a time (default 1); the others fail at once, so a recovering server does not get a
//!   thundering herd. A probe that succeeds closes the circuit; one that fails opens it again.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use orbstore_core::{Error, ErrorKind, HealthReport, Result};
use parking_lot::Mutex;

use crate::around::{Around, Op};

/// Settings of a [`BreakerLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// How many `Unavailable` failures in a row open the circuit (default 5).
    pub failure_threshold: u32,
    /// How long the circuit stays open before probing (default 10 s).
    pub cool_down: Duration,
    /// The longest cool-down: each probe that fails doubles the cool-down up to this (default
    /// 60 s); set it to `cool_down` for a fixed cool-down.
    pub max_cool_down: Duration,
    /// How many probes may be in flight at once while half-open (default 1).
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cool_down: Duration::from_secs(10),
            max_cool_down: Duration::from_secs(60),
            half_open_probes: 1,
        }
    }
}

impl BreakerConfig {
    /// The defaults: opens after 5 failures, 10 s cool-down doubling up to 60 s, 1 probe.
    pub fn new() -> BreakerConfig {
        BreakerConfig::default()
    }

    /// Sets [`BreakerConfig::failure_threshold`] (at least 1).
    pub fn with_failure_threshold(mut self, failures: u32) -> BreakerConfig {
        self.failure_threshold = failures.max(1);
        self
    }

    /// Sets [`BreakerConfig::cool_down`].
    pub fn with_cool_down(mut self, cool_down: Duration) -> BreakerConfig {
        self.cool_down = cool_down;
        self
    }

    /// Sets [`BreakerConfig::max_cool_down`].
    pub fn with_max_cool_down(mut self, max: Duration) -> BreakerConfig {
        self.max_cool_down = max;
        self
    }

    /// Sets [`BreakerConfig::half_open_probes`] (at least 1).
    pub fn with_half_open_probes(mut self, probes: u32) -> BreakerConfig {
        self.half_open_probes = probes.max(1);
        self
    }
}

/// Where the circuit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Operations go through.
    Closed,
    /// Operations fail at once.
    Open,
    /// A bounded number of probes go through; the others fail at once.
    HalfOpen,
}

impl Circuit {
    /// `"closed"`, `"open"` or `"half-open"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open => "open",
            Circuit::HalfOpen => "half-open",
        }
    }

    /// The value of the `orbstore_circuit_state` gauge: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            Circuit::Closed => 0.0,
            Circuit::Open => 1.0,
            Circuit::HalfOpen => 2.0,
        }
    }
}

/// What [`BreakerLayer::state`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BreakerState {
    /// Closed, open or half-open.
    pub circuit: Circuit,
    /// `Unavailable` failures in a row (while closed), or the run that opened the circuit.
    pub consecutive_failures: u32,
    /// When the circuit last opened, while it is open or half-open.
    pub opened_at: Option<Instant>,
    /// While open: how long until the next probe is let through.
    pub retry_in: Option<Duration>,
    /// While half-open: probes in flight.
    pub probes_in_flight: u32,
    /// How many times the circuit has opened since the layer was made.
    pub times_opened: u64,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit {}", self.circuit.as_str())?;
        let since = self.opened_at.map(|t| t.elapsed()).unwrap_or_default();
        match self.circuit {
            Circuit::Closed => Ok(()),
            Circuit::Open => write!(
                f,
                " for {since:.1?} after {} consecutive failures, retrying in {:.1?}",
                self.consecutive_failures,
                self.retry_in.unwrap_or_default()
            ),
            Circuit::HalfOpen => {
                write!(f, " after {since:.1?} open, {} probe(s) in flight", self.probes_in_flight)
            }
        }
    }
}

/// The source of every error a breaker fails an operation with, so that it can be told from a
/// failure of the backend itself ([`is_circuit_open`]).
#[derive(Debug, Clone, Copy)]
pub struct CircuitOpen;

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("refused by the circuit breaker without reaching the backend")
    }
}

impl std::error::Error for CircuitOpen {}

/// Whether the error is a circuit breaker's refusal (anywhere in its source chain), which never
/// reached the backend.
pub fn is_circuit_open(e: &Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if err.is::<CircuitOpen>() {
            return true;
        }
        next = err.source();
    }
    false
}

/// The breaker's mutable state, behind one lock (held only to decide, never across an await).
#[derive(Debug)]
struct Inner {
    circuit: Circuit,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    open_until: Instant,
    /// The cool-down of the current or last opening.
    cool_down: Duration,
    probes: u32,
    /// Bumped at every change of circuit, so that the result of an operation admitted before
    /// the change (a slow call that fails after the circuit already opened and closed again)
    /// is ignored instead of counted against the new state.
    epoch: u64,
    times_opened: u64,
}

/// Opens after a run of `Unavailable` failures, fails fast while open, probes when half-open
/// (see the module docs).
pub struct BreakerLayer {
    config: BreakerConfig,
    backend: &'static str,
    inner: Mutex<Inner>,
}

impl fmt::Debug for BreakerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerLayer").field("backend", &self.backend).field("state", &self.state()).finish()
    }
}

/// What an admitted operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Normal,
    Probe,
}

/// An admitted operation; dropped unfinished (the caller gave up on it), a probe frees its slot.
struct Permit<'a> {
    breaker: &'a BreakerLayer,
    role: Role,
    epoch: u64,
    finished: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.finished && self.role == Role::Probe {
            let mut s = self.breaker.inner.lock();
            if s.epoch == self.epoch {
                s.probes = s.probes.saturating_sub(1);
            }
        }
    }
}

impl BreakerLayer {
    /// A breaker for a backend of kind `backend` (the `backend` label of its metrics).
    pub fn new(backend: &'static str, config: BreakerConfig) -> BreakerLayer {
        let now = Instant::now();
        let layer = BreakerLayer {
            inner: Mutex::new(Inner {
                circuit: Circuit::Closed,
                consecutive_failures: 0,
                opened_at: None,
                open_until: now,
                cool_down: config.cool_down,
                probes: 0,
                epoch: 0,
                times_opened: 0,
            }),
            config,
            backend,
        };
        ::metrics::gauge!("orbstore_circuit_state", "backend" => backend).set(Circuit::Closed.gauge());
        layer
    }

    /// Its settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// Where the circuit is now. An open circuit whose cool-down is over reports open with
    /// `retry_in` zero until an operation arrives to probe.
    pub fn state(&self) -> BreakerState {
        let s = self.inner.lock();
        let now = Instant::now();
        BreakerState {
            circuit: s.circuit,
            consecutive_failures: s.consecutive_failures,
            opened_at: s.opened_at,
            retry_in: (s.circuit == Circuit::Open).then(|| s.open_until.saturating_duration_since(now)),
            probes_in_flight: s.probes,
            times_opened: s.times_opened,
        }
    }

    /// Lets an operation through as a normal call or a probe, or refuses it.
    fn admit(&self) -> Result<Permit<'_>> {
        let mut s = self.inner.lock();
        let role = match s.circuit {
            Circuit::Closed => Role::Normal,
            Circuit::Open => {
                let now = Instant::now();
                if now < s.open_until {
                    let wait = s.open_until - now;
                    let failures = s.consecutive_failures;
                    drop(s);
                    return Err(self.refuse(format!(
                        "circuit open, retrying in {wait:.1?} (opened after {failures} consecutive Unavailable errors)"
                    )));
                }
                self.enter(&mut s, Circuit::HalfOpen);
                Role::Probe
            }
            Circuit::HalfOpen => {
                if s.probes >= self.config.half_open_probes {
                    let probes = s.probes;
                    drop(s);
                    return Err(self.refuse(format!(
                        "circuit half-open, {probes} probe(s) in flight; retry after the probe answers"
                    )));
                }
                Role::Probe
            }
        };
        if role == Role::Probe {
            s.probes += 1;
        }
        Ok(Permit { breaker: self, role, epoch: s.epoch, finished: false })
    }

    fn refuse(&self, message: String) -> Error {
        ::metrics::counter!("orbstore_circuit_rejected_total", "backend" => self.backend).increment(1);
        Error::unavailable(message).with_source(CircuitOpen)
    }

    /// Records the outcome of an admitted operation.
    fn finish(&self, mut permit: Permit<'_>, failed: bool) {
        permit.finished = true;
        let mut s = self.inner.lock();
        if s.epoch != permit.epoch {
            return;
        }
        match (permit.role, failed) {
            (Role::Normal, false) => s.consecutive_failures = 0,
            (Role::Normal, true) => {
                s.consecutive_failures += 1;
                if s.consecutive_failures >= self.config.failure_threshold {
                    s.cool_down = self.config.cool_down;
                    self.open(&mut s);
                }
            }
            (Role::Probe, false) => {
                s.consecutive_failures = 0;
                s.opened_at = None;
                s.cool_down = self.config.cool_down;
                self.enter(&mut s, Circuit::Closed);
                tracing::info!(backend = self.backend, "circuit closed: a probe succeeded");
            }
            (Role::Probe, true) => {
                s.cool_down = (s.cool_down * 2).min(self.config.max_cool_down.max(self.config.cool_down));
                self.open(&mut s);
            }
        }
    }

    fn open(&self, s: &mut Inner) {
        let now = Instant::now();
        s.opened_at = Some(now);
        s.open_until = now + s.cool_down;
        s.times_opened += 1;
        self.enter(s, Circuit::Open);
        ::metrics::counter!("orbstore_circuit_opened_total", "backend" => self.backend).increment(1);
        tracing::warn!(
            backend = self.backend,
            failures = s.consecutive_failures,
            cool_down_ms = s.cool_down.as_millis() as u64,
            "circuit opened: operations fail fast until the cool-down ends"
        );
    }

    fn enter(&self, s: &mut Inner, circuit: Circuit) {
        s.circuit = circuit;
        s.epoch += 1;
        s.probes = 0;
        ::metrics::gauge!("orbstore_circuit_state", "backend" => self.backend).set(circuit.gauge());
    }
}

/// Only `Unavailable` says the backend is unreachable; any other answer shows it is up.
fn is_failure<T>(result: &Result<T>) -> bool {
    matches!(result, Err(e) if e.kind() == ErrorKind::Unavailable && !is_circuit_open(e))
}

impl Around for BreakerLayer {
    fn call<'a, T, F, Fut>(&'a self, _op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        Box::pin(async move {
            let permit = self.admit()?;
            let result = f().await;
            self.finish(permit, is_failure(&result));
            result
        })
    }

    /// Unhealthy while the circuit is not closed; the message ends with the circuit's state.
    fn health(&self, mut report: HealthReport) -> HealthReport {
        let state = self.state();
        if state.circuit != Circuit::Closed {
            report.healthy = false;
        }
        report.message = format!("{}; {state}", report.message);
        report
    }
}
