//! Helpers for the backends' `cleanup()` tests: orphan reports in a comparable form, and a
//! collection's whole contents to compare before and after.

use orbstore_core::{CleanupReport, Document, Filter, IndexSpec, PersistenceBackend, Query};

/// `(kind, name, removed)` of each orphan of a report, sorted.
pub fn summary(r: &CleanupReport) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = r.orphans.iter().map(|o| (o.kind.clone(), o.name.clone(), o.removed)).collect();
    v.sort();
    v
}

/// One expected line of [`summary`].
pub fn o(kind: &str, name: &str, removed: bool) -> (String, String, bool) {
    (kind.to_owned(), name.to_owned(), removed)
}

/// Every document, index and the count of a collection.
pub async fn contents(store: &dyn PersistenceBackend, name: &str) -> (Vec<Document>, Vec<IndexSpec>, u64) {
    let c = store.collection(name).await.unwrap();
    (
        c.find(&Query::all()).await.unwrap(),
        c.list_indexes().await.unwrap(),
        c.count(&Filter::All).await.unwrap(),
    )
}
