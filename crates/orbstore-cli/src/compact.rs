//! `orb compact [--json]`: reclaims the space of deleted and overwritten documents as the
//! backend does it (`PersistenceBackend::compact`), with the store's bytes before and after.

use std::process::ExitCode;

use orbstore::Store;
use serde_json::json;

use crate::output::{self, Channel};

/// Runs the command.
pub async fn run(store: &Store, as_json: bool) -> ExitCode {
    let result = store.compact().await;
    let counts =
        result.as_ref().map(|r| json!({"bytes_before": r.bytes_before, "bytes_after": r.bytes_after}));
    crate::audit::note(&**store, "compact", store.kind(), counts).await;
    match result {
        Ok(r) => {
            let size = |b: Option<u64>| b.map_or_else(|| "unknown".to_owned(), output::size);
            let mut human: Vec<String> = r.actions.iter().map(|a| format!("- {a}")).collect();
            human.insert(0, format!("Compacted the {} backend:", r.backend));
            human.push(format!("Storage: {} before, {} after.", size(r.bytes_before), size(r.bytes_after)));
            let fields = serde_json::to_value(&r).map(output::fields).unwrap_or_default();
            output::success(as_json, Channel::Stdout, fields, &human)
        }
        Err(e) => output::failure(as_json, Channel::Stdout, "compact", &e, Default::default(), &[]),
    }
}
