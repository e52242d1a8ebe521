//! The whole session list as JSON (`{"sessions":[…]}`, newest first), as the AOF
//! reference answers it, built from store pages of [`PAGE`] sessions: a coordinator
//! with 100k sessions never holds them all, nor their JSON, at once (before, three
//! listings left it at 122 MiB and the SSE `init` frame at 244 MiB; BENCHMARKS.md).
//! Pages are keyset on `(created_at, row)` from the last session sent, so a session
//! created meanwhile is not listed and none is listed twice. [`one_page`] is the paged
//! answer (`limit`/`cursor`: the dashboard's), one store read.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt as _, TryStreamExt as _};

use aof_store::{prelude::*, SessionCursor, SessionFilter, SessionPage, StoreResult};
use aof_wire::session::SessionList;

/// Sessions per store read.
const PAGE: i64 = 1000;

/// The list of the sessions passing `filter` as chunks of one page each. The first page
/// is read before this returns, so a failing store is an error here, before any answer
/// has started.
pub(crate) async fn chunks(
    store: Arc<dyn Store>,
    filter: SessionFilter,
) -> StoreResult<impl Stream<Item = StoreResult<Bytes>> + Send> {
    let first = store.list_sessions_page(&filter, None, PAGE).await?;
    let filter = Arc::new(filter);
    let mut wrote = false;
    let mut render = move |page: &SessionPage, first: bool| -> StoreResult<Bytes> {
        let mut buf = Vec::with_capacity(page.sessions.len() * 320 + 16);
        if first {
            buf.extend_from_slice(br#"{"sessions":["#);
        }
        for s in &page.sessions {
            if std::mem::replace(&mut wrote, true) {
                buf.push(b',');
            }
            serde_json::to_writer(&mut buf, s).map_err(anyhow::Error::from)?;
        }
        if page.next.is_none() {
            buf.extend_from_slice(b"]}");
        }
        Ok(Bytes::from(buf))
    };
    let head = render(&first, true);
    let rest = futures::stream::try_unfold(first.next, move |cursor| {
        let (store, filter) = (store.clone(), filter.clone());
        async move {
            let Some(cursor) = cursor else {
                return Ok(None);
            };
            let page = store
                .list_sessions_page(&filter, Some(cursor), PAGE)
                .await?;
            let next = page.next.clone();
            Ok(Some((page, next)))
        }
    })
    .and_then(move |page| std::future::ready(render(&page, false)));
    Ok(futures::stream::once(std::future::ready(head)).chain(rest))
}

/// The same list as one string (the SSE `init` frame's data).
pub(crate) async fn text(store: Arc<dyn Store>) -> StoreResult<String> {
    let mut out = Vec::new();
    let mut parts = std::pin::pin!(chunks(store, SessionFilter::default()).await?);
    while let Some(chunk) = parts.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(String::from_utf8(out).map_err(anyhow::Error::from)?)
}

/// One page of `limit` sessions passing `filter` after `after`, with the next page's
/// cursor when another follows and the feed cursor to follow changes from.
pub(crate) async fn one_page(
    store: &dyn Store,
    filter: &SessionFilter,
    after: Option<SessionCursor>,
    limit: i64,
) -> StoreResult<SessionList> {
    // Read first: a change committed while the page is read is then replayed too.
    let head = store.feed_head().await?;
    let page = store.list_sessions_page(filter, after, limit).await?;
    Ok(SessionList {
        sessions: page.sessions,
        next_cursor: page.next.as_ref().map(super::paging::encode),
        feed_head: Some(head),
    })
}
