//! The metrics layer's counters, labels and histogram through a `metrics-util` debugging
//! recorder, and the breaker's and the retry layer's metrics. Guards against wrong or missing
//! labels. (The tracing span is tested in `metrics_tracing.rs`.)

#[path = "common/faults.rs"]
mod faults;

use std::sync::Arc;
use std::time::Duration;

use faults::{scripted_memory, wrap};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use orbstore_core::{CollectionExt, ErrorKind, Filter};
use orbstore_layers::{BreakerConfig, BreakerLayer, MetricsLayer, RetryConfig, RetryLayer};
use serde_json::json;

/// Runs `test` on a current-thread runtime with a debugging recorder installed for this thread
/// only (tests run in parallel; nothing global), and returns the recorder's snapshotter.
fn with_recorder<Fut: std::future::Future<Output = ()>>(test: impl FnOnce() -> Fut) -> Snapshotter {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || rt.block_on(test()));
    snapshotter
}

/// Every metric as `(name, "k=v,k=v" with labels sorted, value)`.
fn metrics_of(s: &Snapshotter) -> Vec<(String, String, DebugValue)> {
    s.snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> =
                key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            (key.name().to_owned(), labels.join(","), value)
        })
        .collect()
}

fn counter(all: &[(String, String, DebugValue)], name: &str, labels: &str) -> u64 {
    all.iter()
        .find_map(|(n, l, v)| match v {
            DebugValue::Counter(c) if n == name && l == labels => Some(*c),
            _ => None,
        })
        .unwrap_or(0)
}

#[test]
fn operations_errors_and_latency_are_counted_per_operation_and_backend() {
    let s = with_recorder(|| async {
        let store = wrap(Arc::new(orbstore_memory::MemoryBackend::new()), MetricsLayer::new("memory"));
        let c = store.collection("users").await.unwrap();
        c.insert_value(json!({"_id": "u1"})).await.unwrap();
        let e = c.insert_value(json!({"_id": "u1"})).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        c.find_by_id("u1").await.unwrap();
        c.find_by_id("nobody").await.unwrap();
        assert_eq!(store.collection("Bad Name").await.unwrap_err().kind(), ErrorKind::InvalidInput);
    });
    let all = metrics_of(&s);
    let ops = "orbstore_operations_total";
    assert_eq!(counter(&all, ops, "backend=memory,op=insert_one,outcome=ok"), 1);
    assert_eq!(counter(&all, ops, "backend=memory,op=insert_one,outcome=error"), 1);
    assert_eq!(counter(&all, ops, "backend=memory,op=find_by_id,outcome=ok"), 2, "a miss is not an error");
    assert_eq!(counter(&all, ops, "backend=memory,op=collection,outcome=ok"), 1);
    assert_eq!(counter(&all, ops, "backend=memory,op=collection,outcome=error"), 1);
    let errors = "orbstore_errors_total";
    assert_eq!(counter(&all, errors, "backend=memory,kind=conflict,op=insert_one"), 1);
    assert_eq!(counter(&all, errors, "backend=memory,kind=invalid_input,op=collection"), 1);
    assert_eq!(all.iter().filter(|(n, _, _)| n == errors).count(), 2, "no other error series: {all:?}");
    let latencies = all
        .iter()
        .find_map(|(n, l, v)| match v {
            DebugValue::Histogram(h)
                if n == "orbstore_operation_seconds" && l == "backend=memory,op=find_by_id" =>
            {
                Some(h.clone())
            }
            _ => None,
        })
        .expect("a find_by_id histogram");
    assert_eq!(latencies.len(), 2);
    assert!(latencies.iter().all(|s| s.0 >= 0.0 && s.0 < 1.0), "{latencies:?}");
}

#[test]
fn the_breaker_state_retries_and_refusals_are_in_the_metrics() {
    let s = with_recorder(|| async {
        let (inner, script) = scripted_memory();
        let breaker =
            wrap(inner, BreakerLayer::new("memory", BreakerConfig::new().with_failure_threshold(2)));
        let fast = RetryConfig::new().with_min_delay(Duration::from_millis(1)).with_max_retries(1);
        let store = wrap(wrap(breaker, RetryLayer::new(fast)), MetricsLayer::new("memory"));
        let c = store.collection("c").await.unwrap();
        script.fail_always("*", ErrorKind::Unavailable);
        // Two attempts (one retry) open the circuit; the next call is refused.
        c.count(&Filter::all()).await.unwrap_err();
        c.count(&Filter::all()).await.unwrap_err();
    });
    let all = metrics_of(&s);
    assert_eq!(counter(&all, "orbstore_retries_total", "op=count"), 1);
    assert_eq!(counter(&all, "orbstore_circuit_opened_total", "backend=memory"), 1);
    assert_eq!(counter(&all, "orbstore_circuit_rejected_total", "backend=memory"), 1);
    assert_eq!(counter(&all, "orbstore_operations_total", "backend=memory,op=count,outcome=error"), 1);
    assert_eq!(counter(&all, "orbstore_operations_total", "backend=memory,op=count,outcome=rejected"), 1);
    assert_eq!(counter(&all, "orbstore_errors_total", "backend=memory,kind=unavailable,op=count"), 2);
    let gauge = all.iter().find_map(|(n, l, v)| match v {
        DebugValue::Gauge(g) if n == "orbstore_circuit_state" && l == "backend=memory" => Some(g.0),
        _ => None,
    });
    assert_eq!(gauge, Some(1.0), "open");
}
