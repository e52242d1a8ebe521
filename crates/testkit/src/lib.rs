//! aof-testkit: test support shared by AOF's test suites (never shipped).
//!
//! [`ReplayServer`] is a loopback replay of the Anthropic Messages API, so the real
//! Claude Code CLI can run offline: point `ANTHROPIC_BASE_URL` at [`ReplayServer::base_url`]
//! and the CLI talks to it as it would to the service, including real tool runs when
//! a reply carries `tool_use` blocks. Replies come from a script of [`Rule`]s; every
//! request is recorded for assertions ([`ReplayServer::requests`]).
//!
//! ```text
//! let replay = ReplayServer::start([
//!     Rule::when("spawn two").reply([
//!         Block::text("Starting the children."),
//!         Block::tool_use("mcp__agent-orchestrator__start_agent_session",
//!                         json!({"agent_name": "child", "prompt": "one"})),
//!     ]).times(1),
//!     Rule::otherwise().reply([Block::text("All done.")]),
//! ]).await?;
//! // runner env: ANTHROPIC_BASE_URL = replay.base_url(), ANTHROPIC_API_KEY = anything
//! let last = replay.turns().pop().unwrap();   // what the CLI sent, for assertions
//! assert!(last.tool_results().iter().any(|(_, out, _)| out.contains("ses_")));
//! ```
//!
//! It answers `POST /v1/messages` (streaming SSE in the service's event order, or one
//! JSON message when `stream` is false) and `POST /v1/messages/count_tokens`. Any other
//! path is recorded and answered 404 in the API's error shape.

mod anthropic;
pub mod http;
pub mod llama;
pub mod mcp;
pub mod openai;
pub mod sse;
pub mod wait;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes,
    extract::{OriginalUri, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};

pub use anthropic::Recorded;

/// One content block of a scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text(String),
    /// A tool call: the CLI runs the tool `name` with `input` and sends back a
    /// `tool_result` in its next request. `name` is as Claude sees it, e.g. `Bash` or
    /// `mcp__agent-orchestrator__start_agent_session`.
    ToolUse {
        name: String,
        input: Value,
    },
}

impl Block {
    pub fn text(text: impl Into<String>) -> Block {
        Block::Text(text.into())
    }

    pub fn tool_use(name: impl Into<String>, input: Value) -> Block {
        Block::ToolUse {
            name: name.into(),
            input,
        }
    }
}

/// A scripted answer: when the latest user turn of a request (its text and tool
/// results, see [`Recorded::latest_user_text`]) contains `needle`, reply with `blocks`.
/// Rules are tried in order; the first that matches (and has uses left) answers.
#[derive(Debug, Clone)]
pub struct Rule {
    needle: Option<String>,
    blocks: Vec<Block>,
    /// How many more times it may answer; `None`: always.
    uses: Option<usize>,
}

impl Rule {
    /// Matches a latest user turn containing `needle`.
    pub fn when(needle: impl Into<String>) -> Rule {
        Rule {
            needle: Some(needle.into()),
            blocks: Vec::new(),
            uses: None,
        }
    }

    /// Matches any request that reaches it (put it last, as a fallback).
    pub fn otherwise() -> Rule {
        Rule {
            needle: None,
            blocks: Vec::new(),
            uses: None,
        }
    }

    /// The reply's content blocks. With any `tool_use` block the reply stops with
    /// `stop_reason: tool_use`, else `end_turn`.
    pub fn reply(mut self, blocks: impl IntoIterator<Item = Block>) -> Rule {
        self.blocks = blocks.into_iter().collect();
        self
    }

    /// Answer at most `n` times, then let later rules answer.
    pub fn times(mut self, n: usize) -> Rule {
        self.uses = Some(n);
        self
    }

    fn matches(&self, latest: &str) -> bool {
        self.uses != Some(0) && self.needle.as_deref().is_none_or(|n| latest.contains(n))
    }
}

/// Text of the reply when no rule matches, so a test's log shows what was missing.
pub const NO_RULE_TEXT: &str = "replay: no rule matched this request";

/// Requests without tools are the CLI's side calls (titles, summaries); they get this
/// short text and never consume a rule.
pub const SIDE_CALL_TEXT: &str = "replay";

struct ReplayState {
    /// Rules in order; `uses` counts down. Locked only for a lookup, never across await.
    rules: Mutex<Vec<Rule>>,
    /// Every request received, in order. Same locking rule.
    requests: Mutex<Vec<Recorded>>,
    /// Numbers the ids of messages and tool uses.
    counter: Mutex<u64>,
}

/// A running replay server on `127.0.0.1`; stops when dropped.
pub struct ReplayServer {
    addr: SocketAddr,
    state: Arc<ReplayState>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplayServer {
    /// Bind a free loopback port and serve `rules` until dropped.
    pub async fn start(rules: impl IntoIterator<Item = Rule>) -> std::io::Result<ReplayServer> {
        let state = Arc::new(ReplayState {
            rules: Mutex::new(rules.into_iter().collect()),
            requests: Mutex::new(Vec::new()),
            counter: Mutex::new(0),
        });
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .fallback(unknown)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ReplayServer { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("not poisoned").clone()
    }

    /// The `POST /v1/messages` requests that carried tools: the agent's own turns.
    pub fn turns(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v1/messages" && r.has_tools())
            .collect()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn api_error(status: StatusCode, kind: &str, message: String) -> Response {
    (
        status,
        Json(json!({"type": "error", "error": {"type": kind, "message": message}})),
    )
        .into_response()
}

// The error is the response itself, built once and returned straight away.
#[allow(clippy::result_large_err)]
fn record(state: &ReplayState, uri: &OriginalUri, body: &Bytes) -> Result<Recorded, Response> {
    let parsed = serde_json::from_slice::<Value>(body);
    let rec = Recorded {
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        body: parsed.as_ref().cloned().unwrap_or(Value::Null),
    };
    state
        .requests
        .lock()
        .expect("not poisoned")
        .push(rec.clone());
    match parsed {
        Ok(Value::Object(_)) => Ok(rec),
        Ok(_) => Err(api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "body must be a JSON object".into(),
        )),
        Err(e) => Err(api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!("body is not JSON: {e}"),
        )),
    }
}

async fn messages(
    State(state): State<Arc<ReplayState>>,
    uri: OriginalUri,
    body: Bytes,
) -> Response {
    let rec = match record(&state, &uri, &body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !rec.body.get("messages").is_some_and(Value::is_array) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "messages: field required".into(),
        );
    }
    let blocks = if rec.has_tools() {
        let latest = rec.latest_user_text();
        let mut rules = state.rules.lock().expect("not poisoned");
        match rules.iter_mut().find(|r| r.matches(&latest)) {
            Some(rule) => {
                if let Some(n) = rule.uses.as_mut() {
                    *n -= 1;
                }
                rule.blocks.clone()
            }
            None => vec![Block::text(NO_RULE_TEXT)],
        }
    } else {
        vec![Block::text(SIDE_CALL_TEXT)]
    };
    let first_id = {
        let mut c = state.counter.lock().expect("not poisoned");
        let first = *c + 1;
        *c += 1 + blocks.len() as u64;
        first
    };
    let reply = anthropic::Reply::new(&rec, blocks, first_id);
    if rec.body.get("stream").and_then(Value::as_bool) == Some(true) {
        reply.into_sse()
    } else {
        Json(reply.message()).into_response()
    }
}

async fn count_tokens(
    State(state): State<Arc<ReplayState>>,
    uri: OriginalUri,
    body: Bytes,
) -> Response {
    match record(&state, &uri, &body) {
        Ok(rec) => {
            Json(json!({"input_tokens": anthropic::estimate_tokens(&rec.body)})).into_response()
        }
        Err(resp) => resp,
    }
}

async fn unknown(State(state): State<Arc<ReplayState>>, uri: OriginalUri, body: Bytes) -> Response {
    let _ = record(&state, &uri, &body);
    api_error(
        StatusCode::NOT_FOUND,
        "not_found_error",
        format!("the replay does not serve {}", uri.path()),
    )
}

#[cfg(test)]
mod tests;

/// The Claude Code CLI for tests: `AOF_CLAUDE_BIN` (set by `scripts/test.sh` after
/// `scripts/ci/claude.sh`). Missing under `CI=true`: panics, a run must not pass
/// without it. Missing locally: prints why and returns `None` (the caller skips).
pub fn claude_bin() -> Option<std::path::PathBuf> {
    let bin = std::env::var_os("AOF_CLAUDE_BIN")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_file());
    if bin.is_none() {
        let why = "AOF_CLAUDE_BIN is not set to the Claude Code CLI; run \
                   `export AOF_CLAUDE_BIN=$(bash scripts/ci/claude.sh)`";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED (no real CLI): {why}");
    }
    bin
}

/// The unprivileged system user agent-isolation tests run agents as
/// (`runner.agent_user`), created on first use with `useradd --system`.
pub const AGENT_TEST_USER: &str = "aof-agent-test";

/// [`AGENT_TEST_USER`]'s `(uid, gid)`, creating the user if missing. Tests run as root
/// here, so this never skips: if the user cannot be made it panics — as root, or under
/// `CI=true`. Only a non-root, non-CI run (a developer's own account, which could not
/// switch users anyway) gets `None`, with the reason printed.
pub fn agent_test_user() -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = std::process::Command::new("id")
            .args([flag, AGENT_TEST_USER])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    let lookup = || Some((id("-u")?, id("-g")?));
    if let Some(found) = lookup() {
        return Some(found);
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut why = String::new();
    // Tests run in parallel processes: another may be adding it right now
    // (`useradd` then fails to lock /etc/passwd, or finds the user exists).
    for _ in 0..20 {
        match std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(AGENT_TEST_USER)
            .output()
        {
            Ok(o) if o.status.success() => {}
            Ok(o) => why = String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => why = format!("cannot run useradd: {e}"),
        }
        if let Some(found) = lookup() {
            return Some(found);
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let why = format!("cannot create the system user {AGENT_TEST_USER}: {why}");
    assert!(
        !root && std::env::var("CI").as_deref() != Ok("true"),
        "{why}"
    );
    eprintln!("SKIPPED (not root, no agent user): {why}");
    None
}
