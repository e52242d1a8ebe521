//! A thin typed client for the coordinator's runner protocol. It only speaks HTTP:
//! retries, leases and ordering are decided by its callers.

use std::time::Duration;

use aof_wire::{
    session::{BindRequest, Session, SessionEnvelope},
    ErrorBody, Event, HeartbeatRequest, HeartbeatResponse, PollResponse, RegisterRequest,
    RegisterResponse, Run,
};
use reqwest::{header, Method, RequestBuilder, Response, StatusCode, Url};
use serde::{de::DeserializeOwned, Serialize};

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
    base: Url,
}

impl Client {
    pub(crate) fn new(base: &str, key: Option<&crate::ApiKey>) -> anyhow::Result<Client> {
        let base = Url::parse(base)
            .map_err(|e| anyhow::anyhow!("invalid coordinator URL {base:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            anyhow::bail!("coordinator URL must be http(s)://host[:port][/prefix], got {base}");
        }
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
        Ok(Client { http, base })
    }

    /// `base` joined with path segments, each percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http
            .request(method, self.url(segments))
            .timeout(REQUEST_TIMEOUT)
    }

    /// A request for one run, with its fencing headers.
    fn run_request(&self, run: &RunRef, segments: &[&str]) -> RequestBuilder {
        let mut rb = self
            .request(Method::POST, segments)
            .header(aof_wire::RUN_HEADER, &run.run_id)
            // The run's trace context (W3C traceparent), when traces are exported.
            .headers(aof_otel::current_headers());
        if let Some(token) = &run.lease_token {
            rb = rb.header(aof_wire::LEASE_HEADER, token);
        }
        rb
    }

    pub(crate) async fn register(
        &self,
        req: &RegisterRequest,
    ) -> Result<RegisterResponse, ClientError> {
        let resp = send(
            self.request(Method::POST, &["runner", "register"])
                .json(req),
        )
        .await?;
        json(resp).await
    }

    /// One long-poll; `None` when the coordinator had nothing for us (204).
    pub(crate) async fn poll(
        &self,
        runner_id: &str,
        accept_runs: bool,
        timeout: Duration,
    ) -> Result<Option<PollResponse>, ClientError> {
        let mut rb = self
            .request(Method::GET, &["runner", "runs"])
            .query(&[("runner_id", runner_id)])
            .timeout(timeout);
        if !accept_runs {
            // AOF-RS: all slots busy; ask only for stops and deregistration.
            rb = rb.query(&[("accept_runs", "false")]);
        }
        let resp = send(rb).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        json(resp).await.map(Some)
    }

    pub(crate) async fn heartbeat(
        &self,
        req: &HeartbeatRequest,
        timeout: Duration,
    ) -> Result<HeartbeatResponse, ClientError> {
        let rb = self
            .request(Method::POST, &["runner", "heartbeat"])
            .json(req)
            .timeout(timeout);
        json(send(rb).await?).await
    }

    pub(crate) async fn deregister(&self, runner_id: &str) -> Result<(), ClientError> {
        let rb = self
            .request(Method::DELETE, &["runners", runner_id])
            .query(&[("self", "true")]);
        send(rb).await.map(drop)
    }

    /// `POST /runner/runs/{id}/{what}` where `what` is started, completed, failed or stopped.
    pub(crate) async fn report(
        &self,
        run: &RunRef,
        what: &str,
        body: &impl Serialize,
    ) -> Result<(), ClientError> {
        let rb = self
            .run_request(run, &["runner", "runs", &run.run_id, what])
            .json(body);
        send(rb).await.map(drop)
    }

    /// `POST /sessions/{id}/events`; `key` makes a re-send after a lost response harmless.
    pub(crate) async fn post_event(
        &self,
        run: &RunRef,
        key: &str,
        event: &Event,
    ) -> Result<(), ClientError> {
        let rb = self
            .run_request(run, &["sessions", &run.session_id, "events"])
            .header(aof_wire::IDEMPOTENCY_HEADER, key)
            .json(event);
        send(rb).await.map(drop)
    }

    /// `GET /sessions/{id}`. A runner key may not read sessions when auth is on, so the
    /// run's session token (allowed to read its own session) is used when there is one.
    pub(crate) async fn session(
        &self,
        session_id: &str,
        session_token: Option<&str>,
    ) -> Result<Session, ClientError> {
        let mut rb = self.request(Method::GET, &["sessions", session_id]);
        if let Some(token) = session_token {
            // Replaces the default (runner key) Authorization header for this request.
            rb = rb.bearer_auth(token);
        }
        let env: SessionEnvelope = json(send(rb).await?).await?;
        Ok(env.session)
    }

    /// `GET /sessions/{id}/events`: the whole stored log, with the run's session token
    /// when there is one (like `session`).
    pub(crate) async fn events(
        &self,
        session_id: &str,
        session_token: Option<&str>,
    ) -> Result<Vec<aof_wire::StoredEvent>, ClientError> {
        let mut rb = self.request(Method::GET, &["sessions", session_id, "events"]);
        if let Some(token) = session_token {
            rb = rb.bearer_auth(token);
        }
        let list: aof_wire::event::EventList = json(send(rb).await?).await?;
        Ok(list.events)
    }

    pub(crate) async fn bind(&self, run: &RunRef, req: &BindRequest) -> Result<(), ClientError> {
        let rb = self
            .run_request(run, &["sessions", &run.session_id, "bind"])
            .json(req);
        send(rb).await.map(drop)
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
        let c = Client::new("http://127.0.0.1:8765/api/", None).unwrap();
        assert_eq!(
            c.url(&["sessions", "a/b", "events"]).as_str(),
            "http://127.0.0.1:8765/api/sessions/a%2Fb/events"
        );
        let c = Client::new("http://h:1", None).unwrap();
        assert_eq!(
            c.url(&["runner", "register"]).as_str(),
            "http://h:1/runner/register"
        );
        assert!(Client::new("ftp://h", None).is_err());
        assert!(Client::new("not a url", None).is_err());
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
