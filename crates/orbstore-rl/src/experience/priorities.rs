//! [`Priorities`]: what saves a replay buffer's priorities, each set priority written into its
//! experience's document (field `priority`) by the buffer's [`AutoSaver`](crate::AutoSaver).

use std::sync::Arc;

use orbstore_core::{CollectionRef, Filter, Result, Update};
use parking_lot::Mutex;

use super::index::Index;
use super::PRIORITY_FIELD;
use crate::saver::SaveChanges;

/// The save target of a buffer's priorities.
pub(super) struct Priorities {
    pub(super) raw: CollectionRef,
    pub(super) index: Arc<Mutex<Index>>,
}

#[async_trait::async_trait]
impl SaveChanges for Priorities {
    async fn save_changes(&self) -> Result<usize> {
        // Each slot's priority as it is now (set twice since the last save: the last one), for
        // the experiences still held: one evicted or replaced meanwhile has nothing to save.
        let pending: Vec<((u32, u32), String, f64)> = {
            let mut idx = self.index.lock();
            let dirty = idx.take_dirty();
            dirty
                .into_iter()
                .filter(|&(slot, generation)| idx.is_current(slot, generation))
                .map(|(slot, generation)| ((slot, generation), idx.id_string(slot), idx.priority(slot)))
                .collect()
        };
        for (done, (_, id, p)) in pending.iter().enumerate() {
            // An update, not a replacement: an experience deleted meanwhile (evicted, cleaned
            // up, erased) is not brought back.
            let update = Update::new().set(PRIORITY_FIELD, *p);
            if let Err(e) = self.raw.update_one(&Filter::eq("_id", id.as_str()), &update).await {
                // Keep what was not saved for the next attempt.
                let left: Vec<(u32, u32)> = pending[done..].iter().map(|(s, ..)| *s).collect();
                self.index.lock().restore_dirty(&left);
                return Err(e);
            }
        }
        Ok(pending.len())
    }
}
