//! PostgreSQL-specific promises: index use proved with EXPLAIN, the multikey flags across
//! processes, injection, concurrent migration, COPY atomicity, exact numbers, and failures.

mod common;

use std::time::{Duration, Instant};

use orbstore_core::config::PostgresConfig;
use orbstore_core::{
    CollectionExt, Document, ErrorKind, Filter, IndexSpec, PersistenceBackend, Query, Secret,
};
use orbstore_postgres::PostgresBackend;
use orbstore_testkit::{d, ids};
use serde_json::json;

fn range_docs(n: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            d(json!({"_id": format!("d{i:06}"), "score": (i % 1000) as f64 / 10.0, "pad": "x".repeat(150)}))
        })
        .collect()
}

async fn analyze(store: &PostgresBackend, table: &str) {
    let c = store.raw_client().await.unwrap();
    c.batch_execute(&format!("ANALYZE \"{}\".\"{table}\"", store.schema())).await.unwrap();
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn indexed_range_query_is_a_bounded_index_scan_of_the_right_type() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    c.insert_many(range_docs(20_000)).await.unwrap();
    c.create_index(IndexSpec::new(["score"])).await.unwrap();
    analyze(&store, "t").await;
    let q = Query::new(Filter::from_json(&json!({"score": {"$gte": 10, "$lt": 11}})).unwrap());
    let (plan, explain) = store.explain("t", &q).await.unwrap();
    let text = explain.join("\n");
    assert!(plan.exact_filter, "{plan:?}");
    assert!(text.contains("Index Scan") || text.contains("Bitmap Index Scan"), "{text}");
    assert!(text.contains("_ix_"), "our index is used: {text}");
    assert!(!text.contains("Seq Scan on t"), "{text}");
    // The index condition bounds the type class (numbers only) and both ends of the range.
    let cond = explain
        .iter()
        .find(|l| l.contains("Index Cond") && l.contains("(_x"))
        .unwrap_or_else(|| panic!("an index condition on the typed index columns: {text}"));
    assert!(cond.contains("c = 1)") && cond.contains("n >= '10'::numeric") && cond.contains("<"), "{cond}");
    assert_eq!(c.find(&q).await.unwrap().len(), 200);

    // A sort on the indexed field is served in index order, with a limit.
    let top = Query::new(Filter::All).sort_desc("score").limit(5);
    let (plan, explain) = store.explain("t", &top).await.unwrap();
    assert!(plan.sort_in_sql, "{plan:?}");
    assert!(explain.iter().any(|l| l.contains("Index Scan Backward")), "{}", explain.join("\n"));
    let got = c.find(&top).await.unwrap();
    assert!(got.iter().all(|d| d["score"] == json!(99.9)), "{got:?}");

    // Once an array appears on the path, the query is exact through the evaluator instead.
    c.insert_value(json!({"_id": "arr", "score": [10.5, 500]})).await.unwrap();
    let (plan, _) = store.explain("t", &q).await.unwrap();
    assert!(!plan.exact_filter, "{plan:?}");
    let found = c.find(&q).await.unwrap();
    assert_eq!(found.len(), 201);
    assert!(ids(&found).contains(&"arr".to_owned()));
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn a_stale_multikey_cache_in_another_process_costs_a_replan_not_a_wrong_answer() {
    let (a, cfg) = common::setup().await;
    let b = PostgresBackend::open(cfg.clone()).await.unwrap();
    let ca = a.collection("t").await.unwrap();
    ca.insert_many(vec![d(json!({"_id": "1", "tags": "x"})), d(json!({"_id": "2", "tags": "y"}))])
        .await
        .unwrap();
    let q = Query::new(Filter::eq("tags", "x"));
    let sorted = Query::new(Filter::All).sort_asc("tags");
    assert_eq!(ids(&ca.find(&q).await.unwrap()), ["1"]);
    assert_eq!(ids(&ca.find(&sorted).await.unwrap()), ["1", "2"]);
    assert_eq!(ca.count(&q.filter).await.unwrap(), 1);
    // Another process stores an array and an object where `a` believes there are none.
    let cb = b.collection("t").await.unwrap();
    cb.insert_value(json!({"_id": "3", "tags": ["w", "x"]})).await.unwrap();
    cb.insert_value(json!({"_id": "4", "tags": {"k": 1}})).await.unwrap();
    assert_eq!(ids(&ca.find(&q).await.unwrap()), ["1", "3"]);
    assert_eq!(ca.count(&q.filter).await.unwrap(), 2);
    // In the order: strings (the array by its smallest element, "w"), then objects.
    assert_eq!(ids(&ca.find(&sorted).await.unwrap()), ["3", "1", "2", "4"]);
    // Dropped and created again elsewhere: the first process's cache says "array", the
    // catalog no longer does; writes and reads stay right.
    assert!(b.drop_collection("t").await.unwrap());
    cb.insert_value(json!({"_id": "5", "tags": "x"})).await.unwrap();
    ca.insert_value(json!({"_id": "6", "tags": ["x"]})).await.unwrap();
    assert_eq!(ids(&cb.find(&q).await.unwrap()), ["5", "6"]);
    a.close().await.unwrap();
    b.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

/// The tables, columns, indexes and functions of a schema, to compare before and after.
async fn schema_shape(store: &PostgresBackend) -> Vec<String> {
    let c = store.raw_client().await.unwrap();
    let rows = c
        .query(
            "SELECT c.relkind::text || ' ' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1
             UNION ALL SELECT 'f ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
             ORDER BY 1",
            &[&store.schema()],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn hostile_names_paths_and_values_are_refused_or_stored_literally() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    let before = schema_shape(&store).await;
    for name in ["t; DROP TABLE t", "t\"", "T", "x'--", "_collections", "a b"] {
        assert_eq!(store.collection(name).await.unwrap_err().kind(), ErrorKind::InvalidInput, "{name}");
    }
    let hostile = ["'; DROP TABLE t; --", "\" OR 1=1 --", "x$1", "\\'", "') OR TRUE --"];
    for (i, h) in hostile.iter().enumerate() {
        let mut doc = Document::new();
        doc.insert("_id".into(), json!(format!("h{i}")));
        doc.insert((*h).to_owned(), json!(h));
        doc.insert("v".into(), json!(h));
        c.insert_one(doc).await.unwrap();
        let by_key = c.find(&Query::new(Filter::eq(*h, *h))).await.unwrap();
        assert_eq!(ids(&by_key), [format!("h{i}")], "path {h:?}");
        let by_value = c.find(&Query::new(Filter::eq("v", *h))).await.unwrap();
        assert_eq!(ids(&by_value), [format!("h{i}")], "value {h:?}");
        c.create_index(IndexSpec::new([*h]).named(format!("hostile_{i}"))).await.unwrap();
        assert_eq!(c.find(&Query::new(Filter::eq(*h, *h)).sort_asc(*h)).await.unwrap().len(), 1);
    }
    let mut after = schema_shape(&store).await;
    // The indexes, and the function filling their columns for writers behind (crate::layout).
    after.retain(|r| !r.starts_with("i _ix_") && !r.starts_with("f _fx_"));
    assert_eq!(before, after, "only index relations and the index function were added");
    assert_eq!(c.count_all().await.unwrap(), hostile.len() as u64);
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn ten_pools_opening_at_once_apply_each_migration_once() {
    let mut cfg = common::require(common::config());
    cfg.pool_size = 1;
    let opens: Vec<_> = (0..10).map(|_| tokio::spawn(PostgresBackend::open(cfg.clone()))).collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().expect("every open succeeds"));
    }
    let c = stores[0].raw_client().await.unwrap();
    let rows = c
        .query(&format!("SELECT version FROM \"{}\"._migrations ORDER BY version", cfg.schema), &[])
        .await
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, [1, 2]);
    drop(c); // each pool has one connection
             // They all work on the same collections.
    for (i, s) in stores.iter().enumerate() {
        s.collection("t").await.unwrap().insert_value(json!({"_id": format!("p{i}")})).await.unwrap();
    }
    assert_eq!(stores[9].collection("t").await.unwrap().count_all().await.unwrap(), 10);
    for s in &stores {
        s.close().await.unwrap();
    }
    common::drop_schema(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn copy_batches_are_all_or_nothing() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    let n = orbstore_postgres::COPY_THRESHOLD * 2;
    let mut batch: Vec<Document> = (0..n).map(|i| d(json!({"_id": format!("k{i:04}"), "i": i}))).collect();
    batch.push(d(json!({"_id": "k0007"})));
    let e = c.insert_many(batch).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(c.count_all().await.unwrap(), 0, "nothing of a failed COPY is stored");
    c.insert_value(json!({"_id": "k0100"})).await.unwrap();
    let batch: Vec<Document> = (0..n).map(|i| d(json!({"_id": format!("k{i:04}")}))).collect();
    assert_eq!(c.insert_many(batch).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(c.count_all().await.unwrap(), 1);
    c.create_index(IndexSpec::new(["u"]).unique()).await.unwrap();
    let batch: Vec<Document> = (0..n).map(|i| d(json!({"u": i % (n - 1)}))).collect();
    assert_eq!(c.insert_many(batch).await.unwrap_err().kind(), ErrorKind::Conflict);
    assert_eq!(c.count_all().await.unwrap(), 1);
    let batch: Vec<Document> = (0..n).map(|i| d(json!({"u": i, "tags": [i]}))).collect();
    assert_eq!(c.insert_many(batch).await.unwrap().len(), n);
    assert_eq!(c.count(&Filter::eq("tags", 3)).await.unwrap(), 1);
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn numbers_compare_exactly_beyond_two_to_the_53() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    let big = 1_152_921_504_606_846_976_i64; // 2^60, also exactly a float
    c.insert_many(vec![
        d(json!({"_id": "f", "x": big as f64})),
        d(json!({"_id": "i", "x": big + 1})),
        d(json!({"_id": "m", "x": i64::MAX})),
        d(json!({"_id": "n", "x": i64::MIN})),
        d(json!({"_id": "h", "x": 0.1})),
    ])
    .await
    .unwrap();
    c.create_index(IndexSpec::new(["x"])).await.unwrap();
    let cases = [
        (json!({"x": {"$gt": big}}), vec!["i", "m"]),
        (json!({"x": big}), vec!["f"]),
        (json!({"x": {"$lte": big as f64}}), vec!["f", "h", "n"]),
        (json!({"x": {"$gt": 0.1, "$lt": 1}}), vec![]),
        (json!({"x": 0.1}), vec!["h"]),
    ];
    for (f, want) in cases {
        assert_eq!(ids(&c.find(&Query::new(Filter::from_json(&f).unwrap())).await.unwrap()), want, "{f}");
    }
    let sorted = c.find(&Query::new(Filter::All).sort_asc("x")).await.unwrap();
    assert_eq!(ids(&sorted), ["n", "h", "f", "i", "m"]);
    assert!(c.find_by_id("f").await.unwrap().unwrap()["x"].is_f64(), "a float stays a float");
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
async fn server_down_at_open_is_a_prompt_unavailable_without_the_password() {
    let cfg = PostgresConfig {
        host: "127.0.0.1".into(),
        port: 1, // nothing listens here
        database: "test".into(),
        user: "postgres".into(),
        password: Some(Secret::new("hunter2-secret")),
        ssl: false,
        pool_size: 2,
        schema: "orbstore".into(),
        connect_timeout: PostgresConfig::DEFAULT_CONNECT_TIMEOUT,
        statement_timeout: PostgresConfig::DEFAULT_STATEMENT_TIMEOUT,
    };
    let start = Instant::now();
    let e = PostgresBackend::open(cfg.clone()).await.unwrap_err();
    assert!(
        start.elapsed() < orbstore_postgres::CONNECT_TIMEOUT + Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
    for text in [e.to_string(), format!("{e:?}"), format!("{cfg:?}")] {
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert!(e.to_string().contains("127.0.0.1:1/test"), "{e}");
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn stats_report_rows_and_relation_sizes() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    c.insert_many(range_docs(500)).await.unwrap();
    c.create_index(IndexSpec::new(["score"])).await.unwrap();
    store.collection("empty").await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.backend, "postgres");
    let names: Vec<_> = stats.collections.iter().map(|c| (c.name.as_str(), c.documents, c.indexes)).collect();
    assert_eq!(names, [("empty", 0, 0), ("t", 500, 1)]);
    assert!(stats.collections[1].bytes.unwrap() > 500 * 150);
    assert!(stats.storage_bytes.unwrap() >= stats.collections[1].bytes.unwrap());
    let health = store.health().await;
    assert!(health.healthy && health.message.contains("PostgreSQL"), "{health:?}");
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
async fn a_bad_schema_name_is_refused_before_connecting() {
    for schema in ["", "Bad", "a-b", "1x", "x\"; DROP SCHEMA public; --"] {
        let cfg = PostgresConfig {
            host: "127.0.0.1".into(),
            port: 1,
            database: "test".into(),
            user: "postgres".into(),
            password: None,
            ssl: false,
            pool_size: 1,
            schema: schema.into(),
            connect_timeout: PostgresConfig::DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: PostgresConfig::DEFAULT_STATEMENT_TIMEOUT,
        };
        let e = PostgresBackend::open(cfg).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{schema:?}: {e}");
        assert!(e.to_string().contains("schema"), "{e}");
    }
}

/// `EventStore::query_events`' shape: a boolean equality pinning an index's leading column, a
/// range on the next, sorted on it, limited: one index scan answers the filter and the order of
/// the sort key (no full sort of the matches; at most the `_id` tie-break sorted within equal
/// times), and the answer is the evaluator's.
#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn a_boolean_equality_and_a_range_use_one_index_for_filter_and_sort() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("events").await.unwrap();
    let docs = orbstore_testkit::mixed_archived_events(20_000, 100);
    c.insert_many(docs.clone()).await.unwrap();
    c.create_index(IndexSpec::new(["archived", "timestamp_us"])).await.unwrap();
    analyze(&store, "events").await;
    for pin in [json!(false), json!(true)] {
        let range = Filter::and([
            Filter::eq("archived", pin.clone()),
            Filter::gte("timestamp_us", 100),
            Filter::lt("timestamp_us", 9000),
        ]);
        for q in [
            Query::new(range.clone()).sort_desc("timestamp_us").limit(100),
            Query::new(range.clone()).sort_asc("timestamp_us").limit(100),
        ] {
            let (plan, explain) = store.explain("events", &q).await.unwrap();
            let text = explain.join("\n");
            assert!(plan.exact_filter && plan.sort_in_sql, "{pin}: {plan:?}");
            assert!(text.contains("Index Scan") && text.contains("_ix_"), "{pin}: {text}");
            assert!(
                !text.contains("Seq Scan on events") && !text.contains("Bitmap Heap Scan on events"),
                "{pin}: {text}"
            );
            let full_sorts: Vec<&String> = explain
                .iter()
                .filter(|l| {
                    l.contains("Sort")
                        && !l.contains("Incremental Sort")
                        && !l.contains("Presorted")
                        && !l.contains("Sort Key")
                })
                .collect();
            assert!(full_sorts.is_empty(), "{pin}: the index orders the matches: {text}");
            let found = c.find(&q).await.unwrap();
            assert_eq!(found, q.apply(docs.clone()), "{pin}: {q:?}");
        }
    }
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn concurrent_single_inserts_share_statements_and_each_gets_its_own_answer() {
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    c.create_index(IndexSpec::new(["email"]).unique()).await.unwrap();
    c.insert_one(d(json!({"_id": "stored", "email": "stored@x"}))).await.unwrap();
    // 64 writers in pairs, 50 inserts each. Most ids are written by both writers of a pair (one
    // wins, the other gets Conflict); every tenth document has an id of its own and an email its
    // pair partner also writes (the unique index refuses one of them, so the batch carrying it
    // falls back to one statement per document); "stored" is taken already.
    let writers: Vec<_> = (0..64)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for i in 0..50 {
                    let id = match i {
                        49 => "stored".to_owned(),
                        i if i % 10 == 0 => format!("u{w}-{i}"),
                        i => format!("k{}-{i}", w / 2),
                    };
                    let email =
                        if i % 10 == 0 { format!("shared-{}-{i}@x", w / 2) } else { format!("{w}-{i}@x") };
                    let r = c.insert_one(d(json!({"_id": id, "email": email, "w": w}))).await;
                    answers.push((id, r.map(|_| ()).map_err(|e| e.kind())));
                }
                answers
            })
        })
        .collect();
    let mut ok = std::collections::BTreeMap::<String, usize>::new();
    let mut conflicts = 0;
    for w in writers {
        for (id, r) in w.await.unwrap() {
            match r {
                Ok(()) => *ok.entry(id).or_default() += 1,
                Err(ErrorKind::Conflict) => conflicts += 1,
                Err(other) => panic!("insert {id}: {other:?}"),
            }
        }
    }
    assert!(ok.values().all(|n| *n == 1), "an id acknowledged twice");
    assert!(!ok.contains_key("stored"), "a taken id was acknowledged");
    // What was acknowledged is exactly what is stored.
    let stored = c.find(&Query::new(Filter::All)).await.unwrap();
    let mut stored_ids: Vec<String> = stored.iter().map(|d| d["_id"].as_str().unwrap().to_owned()).collect();
    stored_ids.retain(|i| i != "stored");
    assert_eq!(stored_ids, ok.keys().cloned().collect::<Vec<_>>());
    assert_eq!(ok.len() + conflicts, 64 * 50);
    // Each pair: 44 shared ids and 5 shared emails, one acknowledgement each.
    assert_eq!(ok.len(), 32 * 49);
    let emails: std::collections::HashSet<&str> =
        stored.iter().map(|d| d["email"].as_str().unwrap()).collect();
    assert_eq!(emails.len(), stored.len(), "the unique index holds");
    let (statements, documents) = store.insert_statements();
    assert_eq!(documents, 64 * 50 + 1);
    assert!(statements < documents, "concurrent inserts shared statements: {statements} for {documents}");
    eprintln!("{documents} inserts in {statements} statements");
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}

#[tokio::test]
#[cfg_attr(orbstore_no_postgres, ignore = "needs ORBSTORE_TEST_POSTGRES_URL (a PostgreSQL server)")]
async fn stored_reads_hand_over_texts_when_sql_does_all_the_work() {
    use futures::TryStreamExt;
    use orbstore_core::StoredDocument;
    let (store, cfg) = common::setup().await;
    let c = store.collection("t").await.unwrap();
    c.insert_many(
        (0..1_500).map(|i| d(json!({"_id": format!("d{i:05}"), "n": i % 10, "tags": ["x"]}))).collect(),
    )
    .await
    .unwrap();
    c.insert_value(json!({"_id": "nul", "n": 3, "s": "a\u{0}b"})).await.unwrap();
    let kinds = |q: Query| {
        let c = c.clone();
        async move {
            let all: Vec<StoredDocument> =
                c.find_stored_stream(&q).await.unwrap().try_collect().await.unwrap();
            let texts = all.iter().filter(|s| matches!(s, StoredDocument::Json(_))).count();
            (texts, all.len() - texts)
        }
    };
    // A whole scan in `_id` order (two pages), an exact sorted and limited query: texts, but the
    // document holding a NUL, which only the parsed form restores.
    assert_eq!(kinds(Query::all()).await, (1_500, 1));
    assert_eq!(kinds(Query::new(Filter::eq("n", 3)).sort_desc("_id").limit(100)).await, (99, 1));
    // Work left to Rust (an array on the path, a projection): parsed.
    assert_eq!(kinds(Query::new(Filter::eq("tags", "x")).limit(5)).await, (0, 5));
    assert_eq!(kinds(Query::all().project(orbstore_core::Projection::include(["n"])).limit(5)).await, (0, 5));
    store.close().await.unwrap();
    common::drop_schema(&cfg).await;
}
