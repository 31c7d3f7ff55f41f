//! The tracing span of each operation: it names the operation, backend, collection and outcome
//! but never document contents, ids or filter values. Guards against leaking data into logs.
//! Alone in its file: `tracing` caches per callsite whether anyone listens, and another test
//! running the same callsites on another thread without a subscriber could make this one miss
//! spans.

use std::io::Write;
use std::sync::{Arc, Mutex};

use orbstore_core::{CollectionExt, Filter, PersistenceBackend};
use orbstore_layers::{AroundBackend, MetricsLayer};
use serde_json::json;

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_operation_has_a_span_with_names_and_outcome_but_no_data() {
    use tracing_subscriber::fmt::format::FmtSpan;
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let inner: Arc<dyn PersistenceBackend> = Arc::new(orbstore_memory::MemoryBackend::new());
            let store = AroundBackend::new(inner, MetricsLayer::new("memory"));
            let c = store.collection("profiles").await.unwrap();
            c.insert_value(json!({"_id": "p1", "password": "hunter2-secret", "note": "private-text"}))
                .await
                .unwrap();
            c.insert_value(json!({"_id": "p1"})).await.unwrap_err();
            c.find(&orbstore_core::Query::new(Filter::eq("password", "hunter2-secret"))).await.unwrap();
        });
    });
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let spans: Vec<&str> = log.lines().filter(|l| l.contains("orbstore.op")).collect();
    assert_eq!(spans.len(), 4, "{log}");
    let insert = spans[1];
    for needle in ["op=\"insert_one\"", "backend=\"memory\"", "collection=\"profiles\"", "outcome=\"ok\""] {
        assert!(insert.contains(needle), "{needle} missing in {insert}");
    }
    assert!(
        spans[2].contains("outcome=\"error\"") && spans[2].contains("error.kind=\"conflict\""),
        "{}",
        spans[2]
    );
    assert!(spans[3].contains("op=\"find\""), "{}", spans[3]);
    for secret in ["hunter2", "private-text", "p1"] {
        assert!(!log.contains(secret), "{secret} leaked into the log:\n{log}");
    }
}
