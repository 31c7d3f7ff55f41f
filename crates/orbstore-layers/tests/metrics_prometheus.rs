//! With the `prometheus` feature: `install_prometheus` installs the global recorder once, and
//! its rendering holds the layer's counters with their labels, the latency histogram as
//! buckets, and the help texts. One test per process, since the recorder is global.
#![cfg(feature = "prometheus")]

use std::sync::Arc;

use orbstore_core::{CollectionExt, ErrorKind, PersistenceBackend};
use orbstore_layers::{AroundBackend, MetricsLayer};
use serde_json::json;

#[tokio::test]
async fn the_prometheus_rendering_has_the_counters_histogram_and_help() {
    let handle = orbstore_layers::metrics::install_prometheus().unwrap();
    let inner = Arc::new(orbstore_memory::MemoryBackend::new());
    let store = AroundBackend::new(inner, MetricsLayer::new("memory"));
    let c = store.collection("q").await.unwrap();
    c.insert_value(json!({"_id": "a"})).await.unwrap();
    c.insert_value(json!({"_id": "a"})).await.unwrap_err();
    let text = handle.render();
    for line in [
        "orbstore_operations_total{op=\"insert_one\",backend=\"memory\",outcome=\"ok\"} 1",
        "orbstore_operations_total{op=\"insert_one\",backend=\"memory\",outcome=\"error\"} 1",
        "orbstore_errors_total{op=\"insert_one\",backend=\"memory\",kind=\"conflict\"} 1",
        "orbstore_operation_seconds_count{op=\"insert_one\",backend=\"memory\"} 2",
        "# HELP orbstore_operations_total Operations by name, backend and outcome (ok, error, rejected)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    assert!(
        text.contains("orbstore_operation_seconds_bucket{op=\"insert_one\",backend=\"memory\",le=\"0.001\"}"),
        "{text}"
    );
    let again = orbstore_layers::metrics::install_prometheus().unwrap_err();
    assert_eq!(again.kind(), ErrorKind::InvalidInput);
}
