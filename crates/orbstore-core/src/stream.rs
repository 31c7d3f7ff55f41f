//! Streaming reads in bounded memory: a query read page by page in `_id` order (a keyset scan),
//! written once for every backend. Each backend supplies how to read one page.

use std::future::Future;

use futures::stream::{self, StreamExt};

use crate::backend::DocumentStream;
use crate::document::Document;
use crate::error::Result;
use crate::filter::Filter;
use crate::id::Id;
use crate::query::{Direction, Query};

/// How many stored documents one page reads. Large enough that a page's round trip is small
/// beside its rows, small enough that a page of ~300-byte documents stays well under 1 MB.
pub const PAGE_ROWS: u64 = 1000;

/// One page of a keyset scan.
#[derive(Debug, Default)]
pub struct Page {
    /// The page's documents that match the query's filter, in `_id` order, not projected.
    pub docs: Vec<Document>,
    /// The `_id` of the last stored document the page read (matching or not), where the next
    /// page starts; `None` when the scan reached the end.
    pub next: Option<Id>,
}

impl Query {
    /// Whether the query's order is `_id` ascending (no sort keys, or `_id` ascending alone), so
    /// it can be read page by page without computing the whole result first.
    pub fn in_id_order(&self) -> bool {
        match self.sort.as_slice() {
            [] => true,
            [s] => s.path.as_str() == crate::document::ID_FIELD && s.direction == Direction::Ascending,
            _ => false,
        }
    }

    /// Whether the query reads every document, whole, in `_id` order (no filter, projection,
    /// offset or limit): a backend storing text can then hand over each row's text as stored
    /// (`Collection::find_stored_stream`).
    pub fn is_whole_scan(&self) -> bool {
        self.filter == crate::Filter::All
            && self.projection.is_none()
            && self.in_id_order()
            && self.offset == 0
            && self.limit.is_none()
    }
}

/// Streams a query in `_id` order, page by page: `fetch(handle, filter, after)` reads at most
/// [`PAGE_ROWS`] stored documents with `_id` greater than `after` (all from the start when
/// `None`) and keeps those matching the filter; `handle` (a collection handle, a frozen map) is
/// cloned for each page. Offset, limit and projection are applied here; no page is read once the
/// limit is reached. Only for queries where [`Query::in_id_order`] holds.
pub fn keyset_stream<H, F, Fut>(handle: H, query: &Query, fetch: F) -> DocumentStream
where
    H: Clone + Send + Sync + 'static,
    F: Fn(H, Filter, Option<Id>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Page>> + Send + 'static,
{
    let filter = query.filter.clone();
    let fetch = move |after: Option<Id>| fetch(handle.clone(), filter.clone(), after);
    struct State<F> {
        fetch: F,
        after: Option<Id>,
        done: bool,
        skip: u64,
        left: Option<u64>,
    }
    let state = State { fetch, after: None, done: false, skip: query.offset, left: query.limit };
    let projection = query.projection.clone();
    stream::try_unfold(state, |mut st| async move {
        loop {
            if st.done || st.left == Some(0) {
                return Ok(None);
            }
            let page = (st.fetch)(st.after.take()).await?;
            st.done = page.next.is_none();
            st.after = page.next;
            let mut docs = page.docs;
            let skipped = usize::try_from(st.skip).unwrap_or(usize::MAX).min(docs.len());
            docs.drain(..skipped);
            st.skip -= skipped as u64;
            if let Some(left) = st.left.as_mut() {
                docs.truncate(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= docs.len() as u64;
            }
            if !docs.is_empty() {
                return Ok(Some((docs, st)));
            }
        }
    })
    .map(move |page: Result<Vec<Document>>| {
        let projection = projection.clone();
        stream::iter(match page {
            Ok(docs) => docs
                .into_iter()
                .map(|d| {
                    Ok(match &projection {
                        Some(p) => p.apply(&d),
                        None => d,
                    })
                })
                .collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    })
    .flatten()
    .boxed()
}

/// Streams a result already computed (for orders a keyset scan cannot give).
pub fn computed_stream(docs: Vec<Document>) -> DocumentStream {
    stream::iter(docs.into_iter().map(Ok)).boxed()
}
