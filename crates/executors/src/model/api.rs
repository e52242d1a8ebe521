//! One chat-completions call to an OpenAI-compatible endpoint, streamed: SSE chunks
//! (`data: {…}` … `data: [DONE]`) are merged into the step's text, tool calls (OpenAI
//! deltas: id, type and name first, then pieces of `arguments`), finish reason and
//! usage. Text is forwarded as `message_delta` events while it streams, a few per
//! second at most, so the session log holds chunks, not single tokens.
//!
//! Retries: a failure before the stream starts (connect error, timeout, HTTP 429 or
//! 5xx), or a stream cut before any text arrived (the server died mid tool call), is
//! retried with exponential backoff (honouring `Retry-After`) up to `retries` times.
//! Final at once: any failure after text has streamed (it is in the log; a retry would
//! repeat it), and an error the endpoint sends inside the stream. llama.cpp sends one
//! (`{"error":{"code":500,…}}`, then ends without a finish chunk) when the model's
//! output does not parse as the tool-call format (e.g. fenced JSON): it is a property of
//! the model's output, so at temperature 0 or with a seed a retry returns the same.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::{sync::mpsc, time::Instant};

use aof_wire::sse::parse::Parser;

use crate::ExecEvent;

/// How often streamed text is forwarded at most.
const DELTA_EVERY: Duration = Duration::from_millis(150);
/// First retry delay; doubles each time, capped at `BACKOFF_MAX`.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(20);
/// Without a byte from the endpoint for this long, a request or stream has failed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Endpoint and sampling settings, fixed for a run.
pub(crate) struct Api {
    pub http: reqwest::Client,
    /// `<base_url>/chat/completions`.
    pub url: String,
    pub key: Option<String>,
    pub retries: u32,
    pub backoff_base: Duration,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One model step, merged from its chunks.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Reply {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    /// `reasoning_content` some servers stream separately (kept, not shown as text).
    pub reasoning: String,
    /// How many attempts it took (1 = no retry).
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("HTTP {status}: {body}")]
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    #[error("{0}")]
    Transport(String),
    #[error("the stream ended without a finish_reason (cut off after {chunks} chunk(s))")]
    Cut { chunks: usize },
    #[error("the endpoint failed mid-stream (error {code} after {chunks} chunk(s)): {message}")]
    InStream {
        code: String,
        chunks: usize,
        message: String,
    },
    #[error("malformed chunk: {0}")]
    Malformed(String),
}

impl ApiError {
    fn retryable(&self) -> bool {
        match self {
            ApiError::Status { status, .. } => *status == 429 || *status >= 500,
            // Only reached when no text had streamed (see `step`).
            ApiError::Transport(_) | ApiError::Cut { .. } => true,
            ApiError::InStream { .. } | ApiError::Malformed(_) => false,
        }
    }
}

/// The error message of an OpenAI-style error body, else the body itself (clipped).
fn error_text(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let msg = v.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let s = msg.unwrap_or_else(|| body.trim().to_string());
    match s.char_indices().nth(500) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// Coalesces streamed text into `message_delta` events.
struct Deltas<'a> {
    events: &'a mpsc::Sender<ExecEvent>,
    pending: String,
    last: Instant,
}

impl Deltas<'_> {
    async fn push(&mut self, text: &str) {
        self.pending.push_str(text);
        if self.last.elapsed() >= DELTA_EVERY {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.pending);
        self.last = Instant::now();
        let _ = self
            .events
            .send(ExecEvent::Structured {
                event: json!({
                    "event_type": "message_delta",
                    "role": "assistant",
                    "content": [{"type": "text", "text": text}],
                }),
            })
            .await;
    }
}

impl Api {
    /// Runs one step with retries; `body` is the whole request (with `stream: true`).
    pub(crate) async fn step(
        &self,
        body: &Value,
        events: &mpsc::Sender<ExecEvent>,
    ) -> Result<Reply, ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let err = match self.send(body).await {
                Ok(resp) => {
                    let mut text_sent = false;
                    match self.read(resp, events, &mut text_sent).await {
                        Ok(mut r) => {
                            r.attempts = attempt;
                            return Ok(r);
                        }
                        // The partial text is in the log: a retry would repeat it.
                        Err(e) if text_sent => return Err(e),
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            if !err.retryable() || attempt > self.retries {
                return Err(if attempt > 1 {
                    ApiError::Transport(format!("{err} (after {attempt} attempts)"))
                } else {
                    err
                });
            }
            let backoff = (self.backoff_base * 2u32.saturating_pow(attempt - 1)).min(BACKOFF_MAX);
            let wait = match &err {
                ApiError::Status {
                    retry_after: Some(d),
                    ..
                } => (*d).min(BACKOFF_MAX),
                _ => backoff,
            };
            tracing::warn!(attempt, error = %err, wait_ms = wait.as_millis() as u64, "model endpoint failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    async fn send(&self, body: &Value) -> Result<reqwest::Response, ApiError> {
        let mut rb = self.http.post(&self.url).json(body);
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k);
        }
        let resp = tokio::time::timeout(IDLE_TIMEOUT, rb.send())
            .await
            .map_err(|_| {
                ApiError::Transport(format!("no answer within {}s", IDLE_TIMEOUT.as_secs()))
            })?
            .map_err(|e| ApiError::Transport(transport_text(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(|s| Duration::try_from_secs_f64(s).ok());
        let text = resp.text().await.unwrap_or_default();
        Err(ApiError::Status {
            status: status.as_u16(),
            body: error_text(&text),
            retry_after,
        })
    }

    /// Reads the stream; `text_sent` tells the caller whether any text was forwarded.
    async fn read(
        &self,
        resp: reqwest::Response,
        events: &mpsc::Sender<ExecEvent>,
        text_sent: &mut bool,
    ) -> Result<Reply, ApiError> {
        let mut stream = resp.bytes_stream();
        let mut parser = Parser::default();
        let mut merge = Merge::default();
        let mut deltas = Deltas {
            events,
            pending: String::new(),
            last: Instant::now(),
        };
        let mut done = false;
        while !done {
            let chunk = match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
                Err(_) => {
                    deltas.flush().await;
                    return Err(ApiError::Transport(format!(
                        "the stream was silent for {}s",
                        IDLE_TIMEOUT.as_secs()
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    deltas.flush().await;
                    // Mid-stream: a cut connection, reported as such below.
                    tracing::warn!(error = %transport_text(&e), "model stream broke");
                    break;
                }
                Ok(Some(Ok(c))) => c,
            };
            for frame in parser.feed(&chunk) {
                if frame.data.trim() == "[DONE]" {
                    done = true;
                    break;
                }
                let text = match merge.chunk(&frame.data) {
                    Ok(t) => t,
                    Err(e) => {
                        deltas.flush().await;
                        return Err(e);
                    }
                };
                if !text.is_empty() {
                    *text_sent = true;
                    deltas.push(&text).await;
                }
            }
        }
        deltas.flush().await;
        if merge.reply.finish_reason.is_none() {
            return Err(ApiError::Cut {
                chunks: merge.chunks,
            });
        }
        Ok(merge.finish())
    }
}

fn transport_text(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Chunk merging, kept apart from IO for unit tests.
#[derive(Debug, Default)]
pub(crate) struct Merge {
    pub reply: Reply,
    pub chunks: usize,
}

impl Merge {
    /// Merges one `data:` payload; returns its new text.
    pub(crate) fn chunk(&mut self, data: &str) -> Result<String, ApiError> {
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ApiError::Malformed(format!("{e}: {}", clip(data))))?;
        if let Some(err) = v.get("error") {
            let code = match err.get("code") {
                Some(Value::String(c)) => c.clone(),
                Some(c) if !c.is_null() => c.to_string(),
                _ => "?".into(),
            };
            return Err(ApiError::InStream {
                code,
                chunks: self.chunks,
                message: error_text(&json!({ "error": err }).to_string()),
            });
        }
        self.chunks += 1;
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.reply.usage = Some(u.clone());
        }
        let mut text = String::new();
        for choice in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
                self.reply.finish_reason = Some(f.to_string());
            }
            let Some(delta) = choice.get("delta") else {
                continue;
            };
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                text.push_str(t);
            }
            if let Some(t) = delta.get("reasoning_content").and_then(Value::as_str) {
                self.reply.reasoning.push_str(t);
            }
            for tc in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = tc.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                let calls = &mut self.reply.tool_calls;
                if calls.len() <= index {
                    calls.resize(index + 1, ToolCall::default());
                }
                let call = &mut calls[index];
                if let Some(id) = tc.get("id").and_then(Value::as_str) {
                    call.id = id.to_string();
                }
                if let Some(f) = tc.get("function") {
                    if let Some(n) = f.get("name").and_then(Value::as_str) {
                        call.name.push_str(n);
                    }
                    if let Some(a) = f.get("arguments").and_then(Value::as_str) {
                        call.arguments.push_str(a);
                    }
                }
            }
        }
        self.reply.text.push_str(&text);
        Ok(text)
    }

    pub(crate) fn finish(mut self) -> Reply {
        // Calls without a name are gaps in the indices, not calls.
        self.reply.tool_calls.retain(|c| !c.name.is_empty());
        self.reply
    }
}

fn clip(s: &str) -> String {
    match s.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_text_tool_call_deltas_and_usage() {
        let mut m = Merge::default();
        let chunks = [
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Let me "}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"add","arguments":"{\"a\":"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"17,\"b\":25}"}}]}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#,
        ];
        let texts: Vec<String> = chunks.iter().map(|c| m.chunk(c).unwrap()).collect();
        assert_eq!(texts[1], "Let me ");
        let r = m.finish();
        assert_eq!(r.text, "Let me ");
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(
            r.tool_calls,
            vec![ToolCall {
                id: "call_1".into(),
                name: "add".into(),
                arguments: r#"{"a":17,"b":25}"#.into()
            }]
        );
        assert_eq!(r.usage.unwrap()["total_tokens"], 15);

        let mut m = Merge::default();
        assert!(matches!(m.chunk("nope"), Err(ApiError::Malformed(_))));
        let e = m
            .chunk(r#"{"error":{"code":500,"message":"boom","type":"server_error"}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the endpoint failed mid-stream (error 500 after 0 chunk(s)): boom"
        );
        assert_eq!(error_text(r#"{"error":{"message":"x"}}"#), "x");
        assert_eq!(error_text("plain"), "plain");
        assert!(ApiError::Status {
            status: 429,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(ApiError::Status {
            status: 503,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        assert!(!ApiError::Status {
            status: 400,
            body: String::new(),
            retry_after: None
        }
        .retryable());
        // A cut is retried only before text streamed, which `step` checks first.
        assert!(ApiError::Cut { chunks: 1 }.retryable());
        assert!(!ApiError::Malformed(String::new()).retryable());
    }
}
