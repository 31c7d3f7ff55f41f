//! A scripted layer for the retry, breaker and metrics tests: counts every attempt that reaches
//! it, per operation, and fails, slows or hangs the next ones as told, without a real server.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use orbstore_core::{Error, ErrorKind, PersistenceBackend, Result};
use orbstore_layers::{Around, AroundBackend, Op};
use parking_lot::Mutex;

#[derive(Default)]
struct State {
    calls: HashMap<&'static str, u32>,
    /// Failures to inject, in order: `(op name or "*", kind)`.
    next: VecDeque<(&'static str, ErrorKind)>,
    /// Every call of these operations (or of all, with "*") fails with this kind.
    always: Option<(&'static str, ErrorKind)>,
    /// Every call waits this long before running (a slow or silent server).
    delay: Option<Duration>,
}

/// A layer doing what the test says; clones share the script.
#[derive(Clone, Default)]
pub struct Script(Arc<Mutex<State>>);

impl Script {
    /// The next calls of `op` ("*": any) fail with these kinds, one each.
    pub fn fail_next(&self, op: &'static str, kinds: &[ErrorKind]) {
        self.0.lock().next.extend(kinds.iter().map(|k| (op, *k)));
    }

    /// Every call of `op` ("*": any) fails with `kind`, until [`Script::heal`].
    pub fn fail_always(&self, op: &'static str, kind: ErrorKind) {
        self.0.lock().always = Some((op, kind));
    }

    /// Every call waits `delay` first.
    pub fn delay(&self, delay: Option<Duration>) {
        self.0.lock().delay = delay;
    }

    /// No more failures or delays.
    pub fn heal(&self) {
        let mut s = self.0.lock();
        s.next.clear();
        s.always = None;
        s.delay = None;
    }

    /// How many calls of `op` ("*": all) reached the script.
    pub fn calls(&self, op: &str) -> u32 {
        let s = self.0.lock();
        if op == "*" {
            s.calls.values().sum()
        } else {
            s.calls.get(op).copied().unwrap_or(0)
        }
    }

    /// Forgets the counts.
    pub fn reset_calls(&self) {
        self.0.lock().calls.clear();
    }

    /// What the script decides for a call of `op`: `(delay, failure)`.
    fn decide(&self, op: &'static str) -> (Option<Duration>, Option<ErrorKind>) {
        let mut s = self.0.lock();
        *s.calls.entry(op).or_default() += 1;
        let mut failure = None;
        if let Some(i) = s.next.iter().position(|(o, _)| *o == "*" || *o == op) {
            failure = s.next.remove(i).map(|(_, k)| k);
        } else if let Some((o, k)) = s.always {
            if o == "*" || o == op {
                failure = Some(k);
            }
        }
        (s.delay, failure)
    }
}

impl Around for Script {
    fn call<'a, T, F, Fut>(&'a self, op: Op<'a>, mut f: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: FnMut() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T>> + Send + 'a,
    {
        let (delay, failure) = self.decide(op.name);
        Box::pin(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            match failure {
                Some(kind) => Err(Error::new(kind, format!("{}: injected {kind}", op.name))),
                None => f().await,
            }
        })
    }
}

/// A memory backend behind a script; returns the backend and the script.
pub fn scripted_memory() -> (Arc<dyn PersistenceBackend>, Script) {
    let script = Script::default();
    let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
    (Arc::new(AroundBackend::new(inner, script.clone())), script)
}

/// Wraps `inner` in `layer`.
pub fn wrap<A: Around>(inner: Arc<dyn PersistenceBackend>, layer: A) -> Arc<dyn PersistenceBackend> {
    Arc::new(AroundBackend::new(inner, layer))
}
