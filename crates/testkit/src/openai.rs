//! Record and replay of an OpenAI-compatible `POST /v1/chat/completions` endpoint.
//!
//! [`Recorder`] is a loopback proxy in front of a real server (llama.cpp's
//! `llama-server` in AOF's tests): it forwards each request unchanged and keeps the
//! request with the response's status, content type and exact body bytes.
//! [`Replay`] serves such [`Exchange`]s back byte for byte: a request is answered by the
//! recorded exchange whose request ended with the same message (role, content and
//! `tool_call_id`), so a conversation replays in any order and with any extra tools.
//! Exchanges with the same last message answer in turn, the last one repeatedly.
//! [`Replay::fail_next`] puts answers of a given status in front (429, 503), for retry
//! tests. A request nothing matches gets a 404 naming its last message.
//!
//! A response whose stream broke (the server died mid-answer) is recorded with `cut`
//! set and replayed the same way: the recorded bytes, then the connection is aborted.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use serde_json::{json, Value};

/// One recorded request and the endpoint's answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exchange {
    pub request: Value,
    pub status: u16,
    pub content_type: String,
    /// The response body exactly as sent.
    pub body: String,
    /// The stream broke after `body` (no clean end of the response).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cut: bool,
}

impl Exchange {
    /// What a request is matched by: its last message's role, content and call id.
    pub fn key(request: &Value) -> Value {
        let last = request
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.last())
            .cloned()
            .unwrap_or(Value::Null);
        json!([
            last.get("role"),
            last.get("content"),
            last.get("tool_call_id")
        ])
    }

    /// Reads JSON lines of exchanges (a fixture file's text).
    pub fn parse_lines(text: &str) -> Vec<Exchange> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).expect("fixture line is an Exchange"))
            .collect()
    }

    /// JSON lines, for a fixture file.
    pub fn to_lines(exchanges: &[Exchange]) -> String {
        exchanges
            .iter()
            .map(|e| serde_json::to_string(e).expect("serializable") + "\n")
            .collect()
    }
}

struct Server {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(app: Router) -> std::io::Result<Server> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server { addr, task })
}

#[derive(Default)]
struct ReplayState {
    /// Locked only for a lookup, never across an await.
    exchanges: Mutex<Vec<(Exchange, bool)>>,
    failures: Mutex<VecDeque<(u16, String)>>,
    requests: Mutex<Vec<Value>>,
}

/// A replay server on `127.0.0.1`; stops when dropped.
pub struct Replay {
    server: Server,
    state: Arc<ReplayState>,
}

impl Replay {
    pub async fn start(exchanges: Vec<Exchange>) -> std::io::Result<Replay> {
        let state = Arc::new(ReplayState {
            exchanges: Mutex::new(exchanges.into_iter().map(|e| (e, false)).collect()),
            ..Default::default()
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(replay))
            .with_state(state.clone());
        Ok(Replay {
            server: serve(app).await?,
            state,
        })
    }

    /// `http://127.0.0.1:PORT/v1`, an executor's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
    }

    /// The next `n` requests get `status` with an error body in llama.cpp's shape.
    pub fn fail_next(&self, n: usize, status: u16, message: &str) {
        let mut f = self.state.failures.lock().expect("not poisoned");
        for _ in 0..n {
            f.push_back((status, message.to_string()));
        }
    }

    /// Every request body received, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.state.requests.lock().expect("not poisoned").clone()
    }
}

async fn replay(State(st): State<Arc<ReplayState>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    st.requests
        .lock()
        .expect("not poisoned")
        .push(request.clone());
    if let Some((status, message)) = st.failures.lock().expect("not poisoned").pop_front() {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            json!({"error": {"code": status, "message": message, "type": "unavailable_error"}});
        return (
            code,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    let key = Exchange::key(&request);
    let found = {
        let mut ex = st.exchanges.lock().expect("not poisoned");
        let same: Vec<usize> = (0..ex.len())
            .filter(|&i| Exchange::key(&ex[i].0.request) == key)
            .collect();
        let pick = same
            .iter()
            .copied()
            .find(|&i| !ex[i].1)
            .or_else(|| same.last().copied());
        pick.map(|i| {
            ex[i].1 = true;
            ex[i].0.clone()
        })
    };
    let Some(e) = found else {
        let body = json!({"error": {"code": 404, "type": "not_found_error",
            "message": format!("replay: no recorded exchange ends with {key}")}});
        return (StatusCode::NOT_FOUND, body.to_string()).into_response();
    };
    // SSE frame by frame, so the client reads a stream as it would from the server.
    let frames: Vec<Bytes> = e
        .body
        .split_inclusive("\n\n")
        .map(|f| Bytes::from(f.to_string()))
        .collect();
    respond(e.status, &e.content_type, frames, e.cut)
}

/// A streamed response of `frames`; `cut`: then the connection is aborted (a body
/// error makes hyper drop it without the final chunk), as when a server dies.
fn respond(status: u16, content_type: &str, frames: Vec<Bytes>, cut: bool) -> Response {
    use futures::StreamExt;
    let items = futures::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>));
    let end = futures::stream::once(async move {
        if !cut {
            return None;
        }
        // One pending poll first: hyper flushes the bytes it holds (headers and
        // frames) before it sees the error and drops the connection.
        tokio::task::yield_now().await;
        Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "recorded stream was cut here",
        )))
    })
    .filter_map(|e| async move { e });
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(items.chain(end)))
        .expect("valid response")
}

/// A recording proxy in front of a real endpoint; stops when dropped.
pub struct Recorder {
    server: Server,
    log: Arc<Mutex<Vec<Exchange>>>,
    received: Arc<AtomicUsize>,
}

impl Recorder {
    /// Proxy to `upstream` (an API root like `http://127.0.0.1:PORT/v1`).
    pub async fn start(upstream: &str) -> std::io::Result<Recorder> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::new(AtomicUsize::new(0));
        let target = format!("{}/chat/completions", upstream.trim_end_matches('/'));
        let (l, r, t) = (log.clone(), received.clone(), Arc::new(target));
        let app = Router::new().route(
            "/v1/chat/completions",
            post(move |body: Bytes| forward(l.clone(), r.clone(), t.clone(), body)),
        );
        Ok(Recorder {
            server: serve(app).await?,
            log,
            received,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().expect("not poisoned").clone()
    }

    /// Response bytes received from upstream so far, over all exchanges (to act at a
    /// chosen point of a stream, e.g. kill the server mid-answer).
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }
}

async fn forward(
    log: Arc<Mutex<Vec<Exchange>>>,
    received: Arc<AtomicUsize>,
    target: Arc<String>,
    body: Bytes,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let resp = reqwest::Client::new()
        .post(target.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // A cut stream still yields what arrived before the cut.
    let mut bytes = Vec::new();
    let mut cut = false;
    let mut stream = resp.bytes_stream();
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                bytes.extend_from_slice(&c);
                received.fetch_add(c.len(), Ordering::SeqCst);
            }
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    let body = String::from_utf8_lossy(&bytes).into_owned();
    log.lock().expect("not poisoned").push(Exchange {
        request,
        status,
        content_type: content_type.clone(),
        body: body.clone(),
        cut,
    });
    respond(status, &content_type, vec![Bytes::from(body)], cut)
}
