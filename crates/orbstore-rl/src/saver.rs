//! The persistence policy for state kept in memory (the Q-table): one reusable piece that saves
//! after N unsaved updates, after an interval, after a quiet period, on `flush()`, and on
//! shutdown ([`flush_all`], [`flush_on_signal`]). Saving writes only what changed; a failed save
//! keeps the changes and is retried at the next trigger.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use orbstore_core::Result;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// When in-memory state is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePolicy {
    /// Save once this many updates are unsaved (default 10).
    pub every_updates: usize,
    /// Save at least this often while there are unsaved updates (default 5 minutes).
    pub interval: Duration,
    /// Save once no update came for this long (default 1 s).
    pub debounce: Duration,
}

impl Default for SavePolicy {
    fn default() -> Self {
        SavePolicy { every_updates: 10, interval: Duration::from_secs(300), debounce: Duration::from_secs(1) }
    }
}

/// What a store saves: its changes since the last successful save.
#[async_trait]
pub trait SaveChanges: Send + Sync {
    /// Writes the changes; returns how many records were written. On error nothing is lost:
    /// the changes stay pending.
    async fn save_changes(&self) -> Result<usize>;
}

/// Where saving stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SaveStatus {
    /// Updates made since the last successful save.
    pub unsaved: usize,
    /// When the last successful save finished.
    pub last_save: Option<SystemTime>,
    /// The last save's error, if it failed (cleared by the next success).
    pub last_error: Option<String>,
}

struct Inner {
    policy: SavePolicy,
    target: Weak<dyn SaveChanges>,
    status: Mutex<SaveStatus>,
    wake: Notify,
    /// One save at a time.
    saving: tokio::sync::Mutex<()>,
}

/// Applies a [`SavePolicy`] to one store. Cloning shares it.
#[derive(Clone)]
pub struct AutoSaver {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AutoSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoSaver")
            .field("policy", &self.inner.policy)
            .field("status", &self.status())
            .finish()
    }
}

/// Every saver alive, for [`flush_all`].
static REGISTRY: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

impl AutoSaver {
    /// Starts saving `target` by `policy`: a background task (on the current tokio runtime)
    /// handles the interval and the quiet period; it ends when the target is dropped.
    pub fn start(policy: SavePolicy, target: Weak<dyn SaveChanges>) -> AutoSaver {
        let inner = Arc::new(Inner {
            policy,
            target,
            status: Mutex::new(SaveStatus::default()),
            wake: Notify::new(),
            saving: tokio::sync::Mutex::new(()),
        });
        {
            let mut registry = REGISTRY.lock();
            registry.retain(|w| w.strong_count() > 0);
            registry.push(Arc::downgrade(&inner));
        }
        let hook: Arc<dyn orbstore_core::shutdown::ShutdownHook> = inner.clone();
        orbstore_core::shutdown::register(Arc::downgrade(&hook));
        tokio::spawn(background(Arc::downgrade(&inner)));
        AutoSaver { inner }
    }

    /// Records `n` updates; saves at once when `every_updates` are pending, else lets the quiet
    /// period run. A failed save here is reported in [`AutoSaver::status`], not returned: the
    /// update itself happened (in memory) and will be saved by a later trigger.
    pub async fn changed(&self, n: usize) {
        let due = {
            let mut s = self.inner.status.lock();
            s.unsaved += n;
            s.unsaved >= self.inner.policy.every_updates
        };
        if due {
            let _ = save(&self.inner).await;
        } else {
            self.inner.wake.notify_one();
        }
    }

    /// Records `n` updates from synchronous code: saved by the quiet period or the interval
    /// (never inside the call), or by [`AutoSaver::flush`].
    pub(crate) fn changed_later(&self, n: usize) {
        self.inner.status.lock().unsaved += n;
        self.inner.wake.notify_one();
    }

    /// Records `n` updates without triggering a save: for a caller that saves at once with
    /// [`AutoSaver::flush`] and wants a failed save retried by the policy like any change.
    pub(crate) fn mark_unsaved(&self, n: usize) {
        self.inner.status.lock().unsaved += n;
    }

    /// Saves now.
    pub async fn flush(&self) -> Result<()> {
        save(&self.inner).await
    }

    /// Unsaved updates, last save time, last error.
    pub fn status(&self) -> SaveStatus {
        self.inner.status.lock().clone()
    }
}

async fn save(inner: &Inner) -> Result<()> {
    let _one = inner.saving.lock().await;
    let Some(target) = inner.target.upgrade() else { return Ok(()) };
    let pending = inner.status.lock().unsaved;
    match target.save_changes().await {
        Ok(_) => {
            let mut s = inner.status.lock();
            s.unsaved = s.unsaved.saturating_sub(pending);
            s.last_save = Some(SystemTime::now());
            s.last_error = None;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "saving learning state failed; will retry");
            inner.status.lock().last_error = Some(e.to_string());
            Err(e)
        }
    }
}

/// The quiet-period and interval triggers.
async fn background(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else { return };
        let policy = strong.policy;
        // Wait for an update (or the interval), then for a quiet period without one.
        let woke = tokio::time::timeout(policy.interval, strong.wake.notified()).await.is_ok();
        if woke {
            while tokio::time::timeout(policy.debounce, strong.wake.notified()).await.is_ok() {}
        }
        if strong.status.lock().unsaved > 0 {
            let _ = save(&strong).await;
        }
        if strong.target.strong_count() == 0 {
            return;
        }
    }
}

/// Saves every store that has an [`AutoSaver`]; the first error is returned after trying all.
pub async fn flush_all() -> Result<()> {
    let savers: Vec<Arc<Inner>> = REGISTRY.lock().iter().filter_map(Weak::upgrade).collect();
    let mut first = Ok(());
    for s in savers {
        if let Err(e) = save(&s).await {
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

/// Installs the process's one shutdown handler (`orbstore_core::shutdown::on_signal`): on
/// SIGINT or SIGTERM (Ctrl-C elsewhere) every saver saves, then every write-behind layer flushes
/// what it holds (the savers' writes included), then `then` runs (exit the process, say). The
/// same handler as `orbstore_layers::write_behind::flush_on_signal`: installing both installs one.
pub fn flush_on_signal(then: impl FnOnce() + Send + 'static) {
    orbstore_core::shutdown::on_signal(then);
}

#[async_trait]
impl orbstore_core::shutdown::ShutdownHook for Inner {
    fn stage(&self) -> orbstore_core::shutdown::Stage {
        orbstore_core::shutdown::Stage::State
    }

    async fn shutdown(&self) -> Result<()> {
        save(self).await
    }
}
