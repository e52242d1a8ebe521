//! `GET /sse/sessions`: the live feed. Each frame's `id` is the global cursor; a client
//! reconnecting with `Last-Event-ID` gets everything after it from the store, then live
//! items — subscribed *before* the replay, deduplicated by cursor, so no gap and no repeat.

use crate::auth::policy::Grant;
use aof_wire::error::ErrorCode;
use std::{convert::Infallible, sync::atomic::Ordering, time::Duration};

use axum::{
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue},
    response::{
        sse::{Event as SseEvent, KeepAlive, Sse},
        IntoResponse,
    },
};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use aof_wire::sse::{self, FeedItem};

use crate::{
    auth::{Caller, Principal},
    error::{ApiError, ApiResult},
    extract::QueryMap,
    AppState,
};

const REPLAY_PAGE: i64 = 500;

fn frame(item: &FeedItem) -> SseEvent {
    SseEvent::default()
        .id(item.cursor.to_string())
        .event(item.kind.clone())
        .data(&*item.data)
}

/// Whether a filtered stream sends `item`: items of no session go to everyone but a
/// session token (`strict`), which gets its own session's items only.
fn wanted(item: &FeedItem, filter: Option<&str>, strict: bool) -> bool {
    match (filter, item.session_id.as_deref()) {
        (Some(f), Some(s)) => f == s,
        (Some(_), None) => !strict,
        (None, _) => true,
    }
}

/// Decrements the SSE client gauge when the stream task ends, however it ends.
struct ClientGuard(std::sync::Arc<crate::metrics::Metrics>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

#[utoipa::path(get, path = "/sse/sessions", extensions(("x-aof-grants" = json!([Grant::Viewer, Grant::OwnSessionFeed]))), tag = "sse", params(("session_id" = Option<String>, Query, description = "Only this session"), ("include_init" = Option<bool>, Query, description = "Send the init frame (default true)"), ("last-event-id" = Option<String>, Header, description = "Replay everything after this cursor, then live"), ("last_event_id" = Option<i64>, Query, description = "Same as the Last-Event-ID header")), responses((status = 200, description = "text/event-stream of init, session_created, session_updated, session_deleted, event, run_failed frames; id = global cursor", body = String, content_type = "text/event-stream"), (status = 400, description = "Bad request", body = aof_wire::ErrorBody)))]
pub(crate) async fn sessions(
    State(st): State<AppState>,
    Caller(caller): Caller,
    slot: crate::caps::StreamSlot,
    headers: HeaderMap,
    q: QueryMap,
) -> ApiResult<impl IntoResponse> {
    // A session token sees its own session, whatever the query says (the policy already
    // required `session_id` = its own; this holds if that rule ever loosens). No policy
    // grants it its children's feed today.
    let (filter, strict) = match &caller {
        Principal::Session { session_id, .. } => (Some(session_id.clone()), true),
        _ => (q.get("session_id").map(str::to_string), false),
    };
    let include_init = q.bool("include_init", true)?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("last_event_id").map(str::to_string));
    let resume_from = match last_id.as_deref() {
        None => None,
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            ApiError::BadRequest(
                format!("Last-Event-ID must be an event id from this coordinator, got '{v}'"),
                ErrorCode::InvalidLastEventId,
            )
        })?),
    };
    // Subscribe first: anything committed from here on is either replayed or received.
    let mut live = st.store.subscribe();
    // The head is read before the response goes out, so every event committed after the
    // client sees 200 has a larger cursor and is delivered.
    let head = match resume_from {
        Some(c) => c,
        None => st.store.feed_head().await?,
    };
    let (tx, rx) = mpsc::channel::<Result<SseEvent, Infallible>>(256);
    st.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = ClientGuard(st.metrics.clone());
    let store = st.store.clone();
    tokio::spawn(async move {
        let _guard = (guard, slot); // gauge and cap slot: released when the client leaves
        let mut last = match resume_from {
            Some(c) => c,
            None => {
                if include_init {
                    // One session's stream reads just that session, not every one.
                    let data = match filter.as_deref() {
                        Some(id) => store.get_session(id).await.map(|s| {
                            serde_json::json!({ "sessions": Vec::from_iter(s) }).to_string()
                        }),
                        None => super::session_list::text(store.clone()).await,
                    };
                    let data = match data {
                        Ok(d) => d,
                        Err(e) => {
                            tracing::warn!(error = %e, "sse: cannot list sessions");
                            return;
                        }
                    };
                    let init = SseEvent::default()
                        .id(head.to_string())
                        .event(sse::INIT)
                        .data(data);
                    if tx.send(Ok(init)).await.is_err() {
                        return;
                    }
                }
                head
            }
        };
        // Replay from the store until caught up; also used after falling behind live.
        loop {
            loop {
                let page = match store.feed_after(last, filter.as_deref(), REPLAY_PAGE).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "sse: replay failed");
                        return;
                    }
                };
                let n = page.len() as i64;
                for item in page {
                    last = item.cursor;
                    if wanted(&item, filter.as_deref(), strict)
                        && tx.send(Ok(frame(&item))).await.is_err()
                    {
                        return;
                    }
                }
                if n < REPLAY_PAGE {
                    break;
                }
            }
            // Live: items arrive in cursor order; skip what the replay already sent.
            loop {
                let next = tokio::select! {
                    r = live.recv() => r,
                    // The client went away: end now rather than at the next item.
                    _ = tx.closed() => return,
                };
                match next {
                    Ok(item) => {
                        if item.cursor <= last {
                            continue;
                        }
                        last = item.cursor;
                        if wanted(&item, filter.as_deref(), strict)
                            && tx.send(Ok(frame(&item))).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(skipped)) => {
                        // Fell behind the live buffer: catch up from the store, no gap.
                        tracing::debug!(skipped, "sse: subscriber lagged; replaying from store");
                        break;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    });
    let stream = Sse::new(ReceiverStream::new(rx)).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("heartbeat"),
    );
    // As the AOF reference sends it: a reverse proxy (nginx) in front of the coordinator
    // must pass frames on at once, not buffer them until its buffer fills.
    Ok((
        [(NO_PROXY_BUFFERING, HeaderValue::from_static("no"))],
        stream,
    ))
}

/// nginx's per-response switch for proxy buffering.
const NO_PROXY_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
