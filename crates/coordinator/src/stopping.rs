//! Stopping within a bound, for every server `aof` runs: the coordinator (`aof
//! coordinator`, `aof up`) and the standalone dashboard (`aof dashboard`).
//!
//! A stop has two steps, each a token, so `aof up` can take the first while its runner
//! still reports to the coordinator:
//! - *announced*: `/ready` answers 503, so load balancers stop sending new traffic;
//!   everything else goes on.
//! - *draining*: the listener closes; every event stream a `GET` opened (a
//!   subscription: `/sse/sessions`, an MCP session's stream, either forwarded by the
//!   dashboard) gets a last frame with `retry:` at its next event boundary and ends
//!   (browsers and `aof … --follow` reconnect — to another coordinator where there is
//!   one — and resume from their `Last-Event-ID`); long-polls and MCP calls waiting for
//!   a child answer at once (they watch [`Stopping::draining`]), and an MCP call's own
//!   stream (a `POST`'s) ends with its answer; every other request finishes, so writes
//!   commit.
//!
//! Whatever is still open when the bound passes (or at once on [`Stopping::hurry`], a
//! second signal) is cut: [`serve`] returns what it was, for the caller to log. Every
//! request is tracked from arrival to the end of its response body, which is what
//! holds a connection open.

use std::{
    collections::BTreeMap,
    future::{Future, IntoFuture},
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::{MatchedPath, Request, State},
    http::{header, Method},
    middleware::Next,
    response::Response,
    Router,
};
use http_body::{Frame, SizeHint};
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The last frame of every event stream: a comment for people reading the raw stream,
/// and `retry:` so an `EventSource` comes back soon, with its `Last-Event-ID`. It has
/// no `data`, so no client dispatches it as an event.
pub const LAST_FRAME: &[u8] = b": the server is stopping; reconnect\nretry: 1000\n\n";

/// The stop of one server: its tokens and the requests it has open. Cheap to clone.
#[derive(Clone, Default)]
pub struct Stopping {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    announced: CancellationToken,
    draining: CancellationToken,
    hurry: CancellationToken,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Open>>,
}

struct Open {
    method: Method,
    /// The route template (`/sessions/{id}/events`): never ids or query strings.
    route: String,
    stream: bool,
}

impl Stopping {
    pub fn new() -> Stopping {
        Stopping::default()
    }

    /// First step: readiness fails from now on; nothing else changes.
    pub fn announce(&self) {
        if !self.inner.announced.is_cancelled() {
            tracing::info!("stopping: /ready now answers 503");
        }
        self.inner.announced.cancel();
    }

    /// Second step: stop accepting, end streams, answer waits (announces too).
    pub fn drain(&self) {
        self.announce();
        self.inner.draining.cancel();
    }

    /// Stop waiting for open requests: [`serve`] cuts them now (a second signal).
    pub fn hurry(&self) {
        self.drain();
        self.inner.hurry.cancel();
    }

    pub fn is_announced(&self) -> bool {
        self.inner.announced.is_cancelled()
    }

    /// Cancelled when draining starts: what waits on something (a long-poll, an MCP
    /// call waiting for a child run) answers then instead.
    pub fn draining(&self) -> &CancellationToken {
        &self.inner.draining
    }

    /// What is open now, grouped: `"3× GET /sse/sessions (stream)"`.
    pub fn open_requests(&self) -> Vec<String> {
        let open = self.inner.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut groups: BTreeMap<(String, &str, bool), usize> = BTreeMap::new();
        for o in open.values() {
            *groups
                .entry((o.method.to_string(), o.route.as_str(), o.stream))
                .or_default() += 1;
        }
        groups
            .into_iter()
            .map(|((method, route, stream), n)| {
                let kind = if stream { " (stream)" } else { "" };
                format!("{n}× {method} {route}{kind}")
            })
            .collect()
    }

    fn enter(&self, method: Method, route: String) -> Entry {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id,
                Open {
                    method,
                    route,
                    stream: false,
                },
            );
        Entry {
            inner: self.inner.clone(),
            id,
        }
    }
}

/// How [`serve`] ended.
#[derive(Debug, Default)]
pub struct Served {
    /// From the start of the drain until every connection had closed or was cut.
    pub drained_in: Duration,
    /// What was still open at the bound (empty: everything finished).
    pub cut: Vec<String>,
}

/// Serves `app` on `listener` until [`Stopping::drain`]; then waits for open requests
/// (streams end at once, see the module doc) for at most `bound`, or until
/// [`Stopping::hurry`]. Requests still open then are cut when the runtime ends.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stopping: &Stopping,
    bound: Duration,
) -> std::io::Result<Served> {
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            stopping.clone(),
            track,
        ))
        // Connect info: the coordinator's audit log records the peer address.
        .into_make_service_with_connect_info::<SocketAddr>();
    let draining = stopping.inner.draining.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { draining.cancelled().await })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        r = &mut server => { r?; return Ok(Served::default()); }
        _ = stopping.inner.draining.cancelled() => {}
    }
    let started = Instant::now();
    let open = stopping.open_requests();
    if !open.is_empty() {
        tracing::info!(open = ?open, bound_s = bound.as_secs_f64(), "draining: waiting for open requests (streams are told to go)");
    }
    let finished = tokio::select! {
        r = &mut server => { r?; true }
        _ = tokio::time::sleep(bound) => false,
        _ = stopping.inner.hurry.cancelled() => false,
    };
    let cut = if finished {
        Vec::new()
    } else {
        stopping.open_requests()
    };
    Ok(Served {
        drained_in: started.elapsed(),
        cut,
    })
}

/// Tracks each request until its response body ends; ends event streams while draining.
async fn track(State(s): State<Stopping>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str)
        .to_string();
    let get = req.method() == Method::GET;
    let entry = s.enter(req.method().clone(), route);
    let resp = next.run(req).await;
    let stream = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if stream {
        entry.mark_stream();
    }
    // A POST's stream carries the answer to one call: cutting it short would lose the
    // answer, and it ends with the answer anyway.
    let sse = (stream && get).then(|| EventStreamEnd {
        draining: Box::pin(s.inner.draining.clone().cancelled_owned()),
        tail: Vec::new(),
    });
    resp.map(|inner| {
        Body::new(Tracked {
            inner,
            _entry: entry,
            sse,
            done: false,
        })
    })
}

/// Removes its request from the open set when dropped (the response body ended, or
/// the connection went away).
struct Entry {
    inner: Arc<Inner>,
    id: u64,
}

impl Entry {
    fn mark_stream(&self) {
        if let Some(o) = self
            .inner
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&self.id)
        {
            o.stream = true;
        }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.inner
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// A response body that keeps its request's [`Entry`] and, for an event stream, ends it
/// with [`LAST_FRAME`] once draining starts.
struct Tracked {
    inner: Body,
    _entry: Entry,
    sse: Option<EventStreamEnd>,
    done: bool,
}

struct EventStreamEnd {
    draining: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The last bytes sent (at most 4): whether the stream stands between two events.
    tail: Vec<u8>,
}

impl EventStreamEnd {
    /// An event ends at a blank line; a frame cut in half would reach the client as a
    /// corrupt event (the dashboard proxy forwards chunks as they come, split anywhere).
    fn between_events(&self) -> bool {
        let t = self.tail.as_slice();
        t.is_empty() || t.ends_with(b"\n\n") || t.ends_with(b"\r\r") || t.ends_with(b"\r\n\r\n")
    }

    fn sent(&mut self, data: &[u8]) {
        self.tail
            .extend_from_slice(&data[data.len().saturating_sub(4)..]);
        let extra = self.tail.len().saturating_sub(4);
        self.tail.drain(..extra);
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(sse) = &mut this.sse {
            if sse.between_events() && sse.draining.as_mut().poll(cx).is_ready() {
                this.done = true;
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(LAST_FRAME)))));
            }
        }
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(sse), Some(data)) = (&mut this.sse, frame.data_ref()) {
                    sse.sent(data);
                }
            }
            Poll::Ready(None | Some(Err(_))) => this.done = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.sse.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // An event stream may grow by the last frame; anything else is passed through
        // unchanged (so `Content-Length` stays).
        match self.sse {
            Some(_) => SizeHint::default(),
            None => self.inner.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end() -> EventStreamEnd {
        EventStreamEnd {
            draining: Box::pin(CancellationToken::new().cancelled_owned()),
            tail: Vec::new(),
        }
    }

    #[test]
    fn event_boundaries_across_chunks() {
        let mut e = end();
        assert!(e.between_events(), "nothing sent yet");
        e.sent(b"id: 1\nevent: x\ndata: {\"a\"");
        assert!(!e.between_events());
        e.sent(b":1}\n");
        assert!(!e.between_events(), "one line ended, not the event");
        e.sent(b"\n");
        assert!(e.between_events(), "blank line split over two chunks");
        e.sent(b": heartbeat\r\n\r\n");
        assert!(e.between_events());
        e.sent(b"data: y\r\r");
        assert!(e.between_events());
        e.sent(b"d");
        assert!(!e.between_events());
        assert!(e.tail.len() <= 4);
    }

    #[test]
    fn open_requests_are_grouped_without_ids() {
        let s = Stopping::new();
        let a = s.enter(Method::GET, "/sse/sessions".into());
        a.mark_stream();
        let b = s.enter(Method::GET, "/sse/sessions".into());
        b.mark_stream();
        let c = s.enter(Method::POST, "/sessions/{session_id}/events".into());
        assert_eq!(
            s.open_requests(),
            vec![
                "2× GET /sse/sessions (stream)".to_string(),
                "1× POST /sessions/{session_id}/events".to_string(),
            ]
        );
        drop((a, b, c));
        assert!(s.open_requests().is_empty());
    }

    #[test]
    fn steps_imply_the_earlier_ones() {
        let s = Stopping::new();
        assert!(!s.is_announced());
        s.announce();
        assert!(s.is_announced() && !s.draining().is_cancelled());
        s.hurry();
        assert!(s.draining().is_cancelled() && s.inner.hurry.is_cancelled());
    }
}
