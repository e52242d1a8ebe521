//! A thin typed client for the coordinator's runner protocol. It only speaks HTTP:
//! retries, leases and ordering are decided by its callers.
//!
//! Failover: the client knows one or more coordinators (all on one shared store) and
//! talks to one at a time. A request that gets no answer (connection refused or reset,
//! timeout) moves every clone of the client to the next URL; the caller's retry then
//! goes there. An HTTP answer, even a 4xx or 5xx, never moves it: that coordinator is up.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use aof_wire::{
    session::{BindRequest, Session, SessionEnvelope},
    ErrorBody, Event, HeartbeatRequest, HeartbeatResponse, PollResponse, RegisterRequest,
    RegisterResponse, Run,
};
use reqwest::{header, Method, RequestBuilder, Response, StatusCode, Url};
use serde::de::DeserializeOwned;

use crate::execution::Report;

mod approvals;

pub(crate) use approvals::MAX_WAIT;

/// Timeout of every request but the long-poll; a write that hangs longer is retried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// Connection refused, reset, timed out…: the coordinator may come back.
    #[error("transport error: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("HTTP {status}: {}", body.message())]
    Status { status: u16, body: ErrorBody },
    /// A success status with a body we cannot read (a proxy's page, a newer coordinator).
    #[error("unreadable response body: {0}")]
    Decode(String),
    /// No bearer token from the OAuth token endpoint (`oauth`).
    #[error("{0}")]
    Token(#[from] crate::oauth::TokenError),
}

impl ClientError {
    pub(crate) fn status(code: u16, body: Option<ErrorBody>) -> ClientError {
        ClientError::Status {
            status: code,
            body: body.unwrap_or(ErrorBody {
                detail: serde_json::Value::Null,
                code: None,
                details: None,
            }),
        }
    }

    pub(crate) fn status_code(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the same request may succeed later.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Decode(_) => true,
            ClientError::Token(e) => e.retryable,
            ClientError::Status { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
        }
    }

    /// The stable error code from the coordinator's envelope, for logs.
    pub(crate) fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status { body, .. } => body.code.as_deref(),
            _ => None,
        }
    }
}

/// What a long-poll brought.
#[derive(Debug)]
pub(crate) enum Polled {
    /// 204: nothing within the poll timeout.
    Nothing,
    /// 204 marked `X-AOF-Draining`: that coordinator is stopping (the client has
    /// moved on to the next one, if any). Poll again at once.
    Draining,
    Got(PollResponse),
}

/// What identifies a run on every write made for it: the fencing headers.
#[derive(Debug, Clone)]
pub(crate) struct RunRef {
    pub run_id: String,
    pub session_id: String,
    pub lease_token: Option<String>,
    pub attempt: i64,
}

impl From<&Run> for RunRef {
    fn from(run: &Run) -> RunRef {
        RunRef {
            run_id: run.run_id.clone(),
            session_id: run.session_id.clone(),
            lease_token: run.lease_token.clone(),
            attempt: run.attempt,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    /// The coordinators, in the order they are tried.
    bases: Arc<[Url]>,
    /// Index into `bases` of the one in use; shared by every clone.
    current: Arc<AtomicUsize>,
    /// Bearer tokens from an OAuth token endpoint, instead of a fixed key.
    tokens: Option<Arc<crate::oauth::Tokens>>,
}

/// A request bound to the coordinator it goes to (the index into `bases`), so that a
/// failure moves the client on only if it is still on that coordinator.
pub(crate) struct Req {
    base: usize,
    rb: RequestBuilder,
}

impl Req {
    fn with(self, f: impl FnOnce(RequestBuilder) -> RequestBuilder) -> Req {
        Req {
            base: self.base,
            rb: f(self.rb),
        }
    }
}

fn parse_base(base: &str) -> anyhow::Result<Url> {
    let url =
        Url::parse(base).map_err(|e| anyhow::anyhow!("invalid coordinator URL {base:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        anyhow::bail!("coordinator URL must be http(s)://host[:port][/prefix], got {url}");
    }
    Ok(url)
}

impl Client {
    /// `bases`: one coordinator URL or several sharing one store (tried in order).
    pub(crate) fn new(bases: &[String], key: Option<&crate::ApiKey>) -> anyhow::Result<Client> {
        if bases.is_empty() {
            anyhow::bail!("no coordinator URL given");
        }
        let bases = bases
            .iter()
            .map(|b| parse_base(b))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut headers = header::HeaderMap::new();
        headers.insert(
            aof_wire::PROTOCOL_HEADER,
            header::HeaderValue::from(aof_wire::PROTOCOL_VERSION),
        );
        if let Some(key) = key {
            let mut v =
                header::HeaderValue::from_str(&format!("Bearer {}", key.0)).map_err(|_| {
                    anyhow::anyhow!("AOF_API_KEY holds characters not allowed in a header")
                })?;
            // Keeps the key out of reqwest's and hyper's debug output.
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(Client {
            http,
            bases: bases.into(),
            current: Arc::new(AtomicUsize::new(0)),
            tokens: None,
        })
    }

    /// Every request carries a token from `tokens` (`oauth`) as its `Authorization`.
    pub(crate) fn with_tokens(mut self, tokens: crate::oauth::Tokens) -> Client {
        self.tokens = Some(Arc::new(tokens));
        self
    }

    /// The coordinator in use now.
    pub(crate) fn base(&self) -> &Url {
        &self.bases[self.current.load(Ordering::Acquire) % self.bases.len()]
    }

    /// `base` joined with path segments, each percent-encoded.
    fn url_on(&self, base: usize, segments: &[&str]) -> Url {
        let mut url = self.bases[base].clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    #[cfg(test)]
    fn url(&self, segments: &[&str]) -> Url {
        self.url_on(
            self.current.load(Ordering::Acquire) % self.bases.len(),
            segments,
        )
    }

    fn request(&self, method: Method, segments: &[&str]) -> Req {
        let base = self.current.load(Ordering::Acquire) % self.bases.len();
        Req {
            base,
            rb: self
                .http
                .request(method, self.url_on(base, segments))
                .timeout(REQUEST_TIMEOUT),
        }
    }

    /// Sends; a request that got no answer moves the client to the next coordinator
    /// (unless another request already moved it off this one).
    async fn send(&self, req: Req) -> Result<Response, ClientError> {
        let (rb, bearer) = match &self.tokens {
            Some(t) => {
                let bearer = t.bearer().await?;
                (
                    req.rb.header(header::AUTHORIZATION, bearer.clone()),
                    Some(bearer),
                )
            }
            None => (req.rb, None),
        };
        let res = send(rb).await;
        if let (Some(t), Some(bearer), Some(401)) = (
            &self.tokens,
            &bearer,
            res.as_ref().err().and_then(ClientError::status_code),
        ) {
            // Revoked or expired early: the caller's retry fetches a new one.
            t.refused(bearer).await;
        }
        if let Err(ClientError::Transport(e)) = &res {
            self.move_on(req.base, &format!("coordinator unreachable: {e}"));
        }
        res
    }

    /// Moves every clone to the coordinator after `from`, unless there is no other or
    /// another request already moved it off `from`.
    fn move_on(&self, from: usize, why: &str) {
        if self.bases.len() < 2 {
            return;
        }
        let next = (from + 1) % self.bases.len();
        let moved = self
            .current
            .compare_exchange(from, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved {
            tracing::warn!(from = %self.bases[from], to = %self.bases[next], "{why}; failing over");
        }
    }

    /// A POST for one run, with its fencing headers.
    fn run_request(&self, run: &RunRef, segments: &[&str]) -> Req {
        self.run_request_as(Method::POST, run, segments)
    }

    /// A request for one run, with its fencing headers.
    fn run_request_as(&self, method: Method, run: &RunRef, segments: &[&str]) -> Req {
        // The run's trace context (W3C traceparent), when traces are exported; taken
        // now, in the caller's span.
        let trace = aof_otel::current_headers();
        self.request(method, segments).with(move |rb| {
            let rb = rb.header(aof_wire::RUN_HEADER, &run.run_id).headers(trace);
            match &run.lease_token {
                Some(token) => rb.header(aof_wire::LEASE_HEADER, token),
                None => rb,
            }
        })
    }

    pub(crate) async fn register(
        &self,
        req: &RegisterRequest,
    ) -> Result<RegisterResponse, ClientError> {
        let r = self
            .request(Method::POST, &["runner", "register"])
            .with(|rb| rb.json(req));
        json(self.send(r).await?).await
    }

    /// One long-poll.
    pub(crate) async fn poll(
        &self,
        runner_id: &str,
        accept_runs: bool,
        timeout: Duration,
    ) -> Result<Polled, ClientError> {
        let r = self.request(Method::GET, &["runner", "runs"]).with(|rb| {
            let rb = rb.query(&[("runner_id", runner_id)]).timeout(timeout);
            if accept_runs {
                rb
            } else {
                // AOF-RS: all slots busy; ask only for stops and deregistration.
                rb.query(&[("accept_runs", "false")])
            }
        });
        let base = r.base;
        let resp = self.send(r).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            if resp
                .headers()
                .contains_key(aof_wire::runner::DRAINING_HEADER)
            {
                self.move_on(base, "coordinator is stopping");
                return Ok(Polled::Draining);
            }
            return Ok(Polled::Nothing);
        }
        json(resp).await.map(Polled::Got)
    }

    pub(crate) async fn heartbeat(
        &self,
        req: &HeartbeatRequest,
        timeout: Duration,
    ) -> Result<HeartbeatResponse, ClientError> {
        let r = self
            .request(Method::POST, &["runner", "heartbeat"])
            .with(|rb| rb.json(req).timeout(timeout));
        json(self.send(r).await?).await
    }

    pub(crate) async fn deregister(&self, runner_id: &str) -> Result<(), ClientError> {
        let r = self
            .request(Method::DELETE, &["runners", runner_id])
            .with(|rb| rb.query(&[("self", "true")]));
        self.send(r).await.map(drop)
    }

    /// `POST /runner/runs/{id}/{report's path}` with the report's body.
    pub(crate) async fn report(
        &self,
        run: &RunRef,
        report: &Report,
        runner_id: &str,
    ) -> Result<(), ClientError> {
        let r = self
            .run_request(run, &["runner", "runs", &run.run_id, report.path()])
            .with(|rb| rb.json(&report.body(runner_id)));
        self.send(r).await.map(drop)
    }

    /// `POST /sessions/{id}/events`; `key` makes a re-send after a lost response
    /// harmless, on this coordinator or, after a failover, on another one.
    pub(crate) async fn post_event(
        &self,
        run: &RunRef,
        key: &str,
        event: &Event,
    ) -> Result<(), ClientError> {
        let r = self
            .run_request(run, &["sessions", &run.session_id, "events"])
            .with(|rb| rb.header(aof_wire::IDEMPOTENCY_HEADER, key).json(event));
        self.send(r).await.map(drop)
    }

    /// `GET /sessions/{id}`. A runner key may not read sessions when auth is on, so the
    /// run's session token (allowed to read its own session) is used when there is one.
    pub(crate) async fn session(
        &self,
        session_id: &str,
        session_token: Option<&str>,
    ) -> Result<Session, ClientError> {
        // The token replaces the default (runner key) Authorization header.
        let r = self
            .request(Method::GET, &["sessions", session_id])
            .with(|rb| with_token(rb, session_token));
        let env: SessionEnvelope = json(self.send(r).await?).await?;
        Ok(env.session)
    }

    /// `GET /sessions/{id}/events`: the whole stored log, with the run's session token
    /// when there is one (like `session`).
    pub(crate) async fn events(
        &self,
        session_id: &str,
        session_token: Option<&str>,
    ) -> Result<Vec<aof_wire::StoredEvent>, ClientError> {
        let r = self
            .request(Method::GET, &["sessions", session_id, "events"])
            .with(|rb| with_token(rb, session_token));
        let list: aof_wire::event::EventList = json(self.send(r).await?).await?;
        Ok(list.events)
    }

    pub(crate) async fn bind(&self, run: &RunRef, req: &BindRequest) -> Result<(), ClientError> {
        let r = self
            .run_request(run, &["sessions", &run.session_id, "bind"])
            .with(|rb| rb.json(req));
        self.send(r).await.map(drop)
    }
}

fn with_token(rb: RequestBuilder, token: Option<&str>) -> RequestBuilder {
    match token {
        Some(t) => rb.bearer_auth(t),
        None => rb,
    }
}

/// Send, and turn a non-2xx answer into `ClientError::Status` with its error envelope.
async fn send(rb: RequestBuilder) -> Result<Response, ClientError> {
    let resp = rb.send().await.map_err(ClientError::Transport)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    // A body we cannot read still leaves the status, which is what callers act on.
    let text = resp.text().await.unwrap_or_default();
    let parsed = serde_json::from_str::<ErrorBody>(&text);
    let body = parsed.unwrap_or(ErrorBody {
        detail: serde_json::Value::String(text),
        code: None,
        details: None,
    });
    Err(ClientError::status(status.as_u16(), Some(body)))
}

async fn json<T: DeserializeOwned>(resp: Response) -> Result<T, ClientError> {
    let bytes = resp.bytes().await.map_err(ClientError::Transport)?;
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_prefix_and_encode_segments() {
        let c = Client::new(&["http://127.0.0.1:8765/api/".into()], None).unwrap();
        assert_eq!(
            c.url(&["sessions", "a/b", "events"]).as_str(),
            "http://127.0.0.1:8765/api/sessions/a%2Fb/events"
        );
        let c = Client::new(&["http://h:1".into()], None).unwrap();
        assert_eq!(
            c.url(&["runner", "register"]).as_str(),
            "http://h:1/runner/register"
        );
        assert!(Client::new(&["ftp://h".into()], None).is_err());
        assert!(Client::new(&["not a url".into()], None).is_err());
        assert!(Client::new(&["http://h:1".into(), "ftp://h".into()], None).is_err());
        assert!(Client::new(&[], None).is_err());
    }

    /// A loopback port nobody listens on (connections are refused).
    async fn dead_url() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    /// A real HTTP server on loopback that answers every request with 404.
    async fn answering_404() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let body = r#"{"detail":"nope","code":"not_found"}"#;
                    let resp = format!(
                        "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn fails_over_on_no_answer_but_not_on_an_http_error() {
        let (dead, live) = (dead_url().await, answering_404().await);
        let c = Client::new(&[dead.clone(), live.clone()], None).unwrap();
        assert_eq!(c.base().as_str(), format!("{dead}/"));
        let e = c.deregister("r1").await.unwrap_err();
        assert!(matches!(e, ClientError::Transport(_)), "{e:?}");
        // Every clone moved with it.
        let clone = c.clone();
        assert_eq!(clone.base().as_str(), format!("{live}/"));
        // The live one answers 404: an answer, so the client stays.
        let e = clone.deregister("r1").await.unwrap_err();
        assert_eq!(e.status_code(), Some(404));
        assert_eq!(e.code(), Some("not_found"));
        assert_eq!(c.base().as_str(), format!("{live}/"));
        // With one URL there is nowhere to go.
        let one = Client::new(std::slice::from_ref(&dead), None).unwrap();
        assert!(one.deregister("r1").await.is_err());
        assert_eq!(one.base().as_str(), format!("{dead}/"));
    }

    #[test]
    fn retryable_statuses() {
        assert!(ClientError::status(503, None).is_retryable());
        assert!(ClientError::status(429, None).is_retryable());
        assert!(!ClientError::status(409, None).is_retryable());
        assert!(!ClientError::status(404, None).is_retryable());
        assert_eq!(ClientError::status(409, None).status_code(), Some(409));
    }
}
