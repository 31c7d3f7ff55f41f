//! `find_stored_stream`: a whole scan in `_id` order hands over the stored texts unparsed, page
//! by page; each parses into the document `find_stream` returns, in the same order. Anything
//! narrower (a filter, a projection, a sort, a limit) streams parsed documents. Guards the
//! replay buffer's open, which reads a million experiences this way.

use futures::StreamExt;
use orbstore_core::{
    Document, Filter, PersistenceBackend, Projection, Query, SqliteConfig, SqliteLocation, StoredDocument,
};
use orbstore_sqlite::SqliteBackend;
use serde_json::json;

async fn parsed(stream: orbstore_core::StoredDocumentStream) -> (Vec<Document>, usize) {
    let items: Vec<StoredDocument> = stream.map(|d| d.unwrap()).collect().await;
    let texts = items.iter().filter(|d| matches!(d, StoredDocument::Json(_))).count();
    let docs = items
        .into_iter()
        .map(|d| match d {
            StoredDocument::Json(t) => serde_json::from_str(&t).unwrap(),
            StoredDocument::Parsed(d) => d,
        })
        .collect();
    (docs, texts)
}

async fn streamed(c: &orbstore_core::CollectionRef, q: &Query) -> Vec<Document> {
    c.find_stream(q).await.unwrap().map(|d| d.unwrap()).collect().await
}

#[tokio::test]
async fn a_whole_scan_hands_over_the_stored_texts_in_id_order_and_narrower_ones_parse() {
    let dir = tempfile::tempdir().unwrap();
    let b = SqliteBackend::open(SqliteConfig::new(SqliteLocation::File(dir.path().join("s.sqlite3"))))
        .await
        .unwrap();
    let c = b.collection("things").await.unwrap();
    let (none, texts) = parsed(c.find_stored_stream(&Query::all()).await.unwrap()).await;
    assert_eq!((none.len(), texts), (0, 0), "an empty collection");
    // More than a page (1000 rows), inserted out of `_id` order.
    let docs: Vec<Document> = (0..2500)
        .rev()
        .map(|i| orbstore_core::to_document(json!({"_id": format!("k{i:05}"), "n": i, "s": "é\"x"})).unwrap())
        .collect();
    c.insert_many(docs).await.unwrap();
    let all = Query::all();
    let (docs, texts) = parsed(c.find_stored_stream(&all).await.unwrap()).await;
    assert_eq!(texts, 2500, "every document as its text");
    assert_eq!(docs, streamed(&c, &all).await);
    assert_eq!(docs[0]["_id"], "k00000");
    for q in [
        Query::new(Filter::gte("n", 100)),
        Query::all().project(Projection::include(["n"])),
        Query::all().sort_asc("n").limit(10),
        Query::all().offset(2499),
    ] {
        let (docs, texts) = parsed(c.find_stored_stream(&q).await.unwrap()).await;
        assert_eq!(texts, 0, "{q:?}: parsed");
        assert_eq!(docs, streamed(&c, &q).await, "{q:?}");
    }
}
