//! One shutdown path for the whole process: every component that holds acknowledged state in
//! memory (a Q-table's unsaved updates, a write-behind queue) registers a hook here, and
//! [`shutdown_all`] runs them in stage order, so that state saved at shutdown into a buffering
//! layer is flushed by that layer afterwards. [`on_signal`] runs it on SIGINT or SIGTERM.
//!
//! One registry rather than one per crate: two crates each installing a signal handler would
//! race, and the first to exit the process would cut the other's flush short.

use std::sync::{Mutex, Weak};

use async_trait::async_trait;

use crate::Result;

/// When a hook runs: every `State` hook finishes before any `Buffers` hook starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// In-memory state written into a store (the learning stores' savers).
    State,
    /// Layers that buffer writes flush them to their backends (write-behind).
    Buffers,
}

/// Something to run at shutdown.
#[async_trait]
pub trait ShutdownHook: Send + Sync {
    /// Its stage.
    fn stage(&self) -> Stage;
    /// Saves or flushes; an error is reported by [`shutdown_all`] after every hook ran.
    async fn shutdown(&self) -> Result<()>;
}

/// Every hook registered and possibly alive.
static HOOKS: Mutex<Vec<Weak<dyn ShutdownHook>>> = Mutex::new(Vec::new());

/// Registers a hook for as long as it is alive (it is held weakly: dropping it unregisters it).
pub fn register(hook: Weak<dyn ShutdownHook>) {
    let mut hooks = HOOKS.lock().unwrap_or_else(|e| e.into_inner());
    hooks.retain(|h| h.strong_count() > 0);
    hooks.push(hook);
}

/// Runs every live hook, the `State` ones first, then the `Buffers` ones; each runs even when
/// an earlier one failed, and the first error is returned.
pub async fn shutdown_all() -> Result<()> {
    let mut live: Vec<_> =
        HOOKS.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect();
    live.sort_by_key(|h| h.stage());
    let mut first = Ok(());
    for hook in live {
        if let Err(e) = hook.shutdown().await {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

/// Spawns a task (on the current tokio runtime) that waits for SIGINT or SIGTERM (Ctrl-C
/// elsewhere), runs [`shutdown_all`], logs a failure, then calls `then` (exit the process, say).
/// Installed once per process: later calls do nothing, and the first call's `then` is the one
/// that runs. Called outside a tokio runtime, it installs nothing.
#[cfg(feature = "signal")]
pub fn on_signal(then: impl FnOnce() + Send + 'static) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    // Outside a runtime there is nothing to spawn on: install nothing (and leave the flag, so a
    // later call inside one can).
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    runtime.spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).ok();
            let terminated = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminated => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        if let Err(e) = shutdown_all().await {
            // No tracing in core: stderr is where a process about to exit can still say it.
            eprintln!("orbstore: saving or flushing at shutdown failed: {e}");
        }
        then();
    });
}
