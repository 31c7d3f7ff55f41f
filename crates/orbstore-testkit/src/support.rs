//! Fixtures and helpers the suite functions share.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use orbstore_core::{id_of, CollectionRef, Document, ErrorKind, Filter, PersistenceBackend, Query, Result};
use serde_json::Value;

/// A fresh, empty backend for one test, and how to clean up after it.
pub struct Fixture {
    backend: Arc<dyn PersistenceBackend>,
    teardown: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl Fixture {
    /// A fixture with nothing to clean up.
    pub fn new(backend: Arc<dyn PersistenceBackend>) -> Fixture {
        Fixture { backend, teardown: None }
    }

    /// Runs `teardown` at the end of the test (dropping a schema or a database, say).
    pub fn with_teardown(mut self, teardown: impl Future<Output = ()> + Send + 'static) -> Fixture {
        self.teardown = Some(Box::pin(teardown));
        self
    }

    /// The backend under test.
    pub fn backend(&self) -> &Arc<dyn PersistenceBackend> {
        &self.backend
    }

    /// A collection handle; panics when the backend refuses a valid name.
    pub async fn coll(&self, name: &str) -> CollectionRef {
        self.backend.collection(name).await.expect("open collection")
    }

    /// Cleans up.
    pub async fn teardown(self) {
        if let Some(t) = self.teardown {
            t.await;
        }
    }
}

/// Why a factory cannot give a backend here (a server that is not configured or reachable).
///
/// A test whose factory skips **fails**: a test that did not run must not count as a pass. Tests
/// that need a server are meant to be marked `#[ignore]` at build time when it is not configured
/// (see the crate's README), so a plain run reports them as ignored and never reaches the factory.
#[derive(Debug, Clone)]
pub struct Skip(pub String);

/// Makes a fresh, empty backend for each test.
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// A fresh backend, or the reason there is none here.
    async fn create(&self) -> std::result::Result<Fixture, Skip>;
}

/// A factory from an async closure.
pub struct FnFactory<F>(pub F);

#[async_trait]
impl<F, Fut> BackendFactory for FnFactory<F>
where
    F: Fn() -> Fut + Send + Sync,
    Fut: Future<Output = std::result::Result<Fixture, Skip>> + Send,
{
    async fn create(&self) -> std::result::Result<Fixture, Skip> {
        (self.0)().await
    }
}

/// Whether `ORBSTORE_REQUIRE_SERVERS=1` (or `true`) asks for every server-backed test to run.
///
/// The server crates' build scripts read the same variable: with it set, no server test is
/// ignored at build time, so a missing server fails the run (what CI wants).
pub fn servers_required() -> bool {
    std::env::var("ORBSTORE_REQUIRE_SERVERS").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Opens a fixture; panics when the factory cannot give one ([`Skip`]), so that a test that could
/// not run fails instead of passing. Always `Some`: the `Option` lets the suite's functions read
/// `let Some(fx) = open(f).await else { return };`.
pub async fn open(factory: &dyn BackendFactory) -> Option<Fixture> {
    match factory.create().await {
        Ok(fx) => Some(fx),
        Err(Skip(why)) if servers_required() => {
            panic!("ORBSTORE_REQUIRE_SERVERS=1 but the backend is not available: {why}")
        }
        Err(Skip(why)) => panic!(
            "the backend is not available, so this test cannot run: {why} (server tests are \
             ignored at build time when their URL is not set; see orbstore-testkit's README)"
        ),
    }
}

/// A document from a JSON object literal.
pub fn d(v: Value) -> Document {
    match v {
        Value::Object(m) => m,
        other => panic!("test document must be an object, got {other}"),
    }
}

/// `n` documents of `EventStore::query_events`' shape for index tests: `_id` `e00000`…, two per
/// `timestamp_us`, and `archived` cycling through `true`, `0`, `null`, `false`, `false` (so
/// booleans sit beside a number and a null on the same path), with `pad` bytes of padding.
pub fn mixed_archived_events(n: usize, pad: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            let archived = match i % 5 {
                0 => Value::Bool(true),
                1 => Value::from(0),
                2 => Value::Null,
                _ => Value::Bool(false),
            };
            d(serde_json::json!({"_id": format!("e{i:05}"), "archived": archived,
                                 "timestamp_us": (i / 2) as i64, "pad": "x".repeat(pad)}))
        })
        .collect()
}

/// Documents from a JSON array of objects.
pub fn docs(v: Value) -> Vec<Document> {
    match v {
        Value::Array(items) => items.into_iter().map(d).collect(),
        other => panic!("expected an array of documents, got {other}"),
    }
}

/// The ids of documents, in order.
pub fn ids(docs: &[Document]) -> Vec<String> {
    docs.iter().map(|d| id_of(d).unwrap_or("<no _id>").to_owned()).collect()
}

/// Asserts that `r` failed with `kind`, and returns the error message.
#[track_caller]
pub fn assert_kind<T: Debug>(r: Result<T>, kind: ErrorKind) -> String {
    match r {
        Err(e) if e.kind() == kind => e.to_string(),
        other => panic!("expected a {kind:?} error, got {other:?}"),
    }
}

/// Inserts `docs` into collection `t` of the fixture and returns the handle.
pub async fn seeded(fx: &Fixture, documents: Value) -> CollectionRef {
    let c = fx.coll("t").await;
    c.insert_many(docs(documents)).await.expect("seed documents");
    c
}

/// Runs each JSON filter against the collection and checks the ids found (in `_id` order),
/// the count, and that the reference evaluator agrees on the same documents.
pub async fn check_filters(c: &CollectionRef, reference: &[Document], cases: &[(Value, &[&str])]) {
    for (filter_json, want) in cases {
        let filter = Filter::from_json(filter_json)
            .unwrap_or_else(|e| panic!("filter {filter_json} did not parse: {e}"));
        let got = ids(&c.find(&Query::new(filter.clone())).await.expect("find"));
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want, "filter {filter_json}");
        let reference_ids = ids(&Query::new(filter.clone()).apply(reference.iter().cloned()));
        assert_eq!(reference_ids, want, "reference evaluator disagrees on {filter_json}");
        assert_eq!(c.count(&filter).await.expect("count"), want.len() as u64, "count of {filter_json}");
    }
}

/// Seeds `t` with `documents`, then [`check_filters`].
pub async fn expect_filters(factory: &dyn BackendFactory, documents: Value, cases: &[(Value, &[&str])]) {
    let Some(fx) = open(factory).await else { return };
    let c = seeded(&fx, documents.clone()).await;
    check_filters(&c, &docs(documents), cases).await;
    fx.teardown().await;
}

/// Seeds `t`, runs the query, and checks the ids returned, in order.
pub async fn expect_query(factory: &dyn BackendFactory, documents: Value, query: Query, want: &[&str]) {
    let Some(fx) = open(factory).await else { return };
    let c = seeded(&fx, documents.clone()).await;
    let got = ids(&c.find(&query).await.expect("find"));
    assert_eq!(got, want, "query {query:?}");
    assert_eq!(ids(&query.apply(docs(documents))), want, "reference evaluator disagrees on {query:?}");
    fx.teardown().await;
}
