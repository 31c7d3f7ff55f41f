//! `orb cleanup [--apply] [--json]`: lists what the backend left behind that belongs to no
//! collection (`PersistenceBackend::cleanup`), and removes it only with `--apply` (audited).

use std::process::ExitCode;

use orbstore::Store;
use serde_json::json;

use crate::output::{self, Channel};

/// Runs the command.
pub async fn run(store: &Store, apply: bool, as_json: bool) -> ExitCode {
    let result = store.cleanup(apply).await;
    if apply {
        let counts = result.as_ref().map(|r| {
            let removed = r.orphans.iter().filter(|o| o.removed).count();
            json!({"found": r.orphans.len(), "removed": removed})
        });
        crate::audit::note(&**store, "cleanup", store.kind(), counts).await;
    }
    match result {
        Ok(r) => {
            let mut human = Vec::new();
            if r.orphans.is_empty() {
                human.push(format!("No orphans on the {} backend.", r.backend));
            } else {
                let removed = r.orphans.iter().filter(|o| o.removed).count();
                human.push(if r.applied {
                    format!(
                        "Found {} orphan(s) on the {} backend, removed {removed}:",
                        r.orphans.len(),
                        r.backend
                    )
                } else {
                    format!("Found {} orphan(s) on the {} backend:", r.orphans.len(), r.backend)
                });
                for o in &r.orphans {
                    let size = o.bytes.map(|b| format!(", {}", output::size(b))).unwrap_or_default();
                    let state = if o.removed { " (removed)" } else { "" };
                    human.push(format!("- {}: {} ({}{size}){state}", o.kind, o.name, o.detail));
                }
                if !r.applied {
                    human.push("Nothing was removed: run again with --apply to remove them.".into());
                }
            }
            human.extend(r.notes.iter().map(|n| format!("({n})")));
            let fields = serde_json::to_value(&r).map(output::fields).unwrap_or_default();
            output::success(as_json, Channel::Stdout, fields, &human)
        }
        Err(e) => output::failure(as_json, Channel::Stdout, "cleanup", &e, Default::default(), &[]),
    }
}
