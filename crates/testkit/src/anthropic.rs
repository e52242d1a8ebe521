//! The Messages API's shapes: reading a recorded request, writing a reply as one JSON
//! message or as the streaming event sequence (`message_start`, per block
//! `content_block_start` / `_delta` / `_stop`, `message_delta`, `message_stop`).

use std::convert::Infallible;

use axum::response::{
    sse::{Event, KeepAlive, Sse},
    IntoResponse, Response,
};
use serde_json::{json, Value};

use crate::Block;

/// One request the replay received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub path: String,
    /// The query string (the CLI sends `beta=true`).
    pub query: Option<String>,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
}

/// The text inside a content value: a string, or blocks whose `text` (and, for
/// `tool_result` blocks, nested `content`) are joined with newlines.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => b.get("text").and_then(Value::as_str).unwrap_or("").into(),
                Some("tool_result") => b.get("content").map(content_text).unwrap_or_default(),
                _ => String::new(),
            })
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

impl Recorded {
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    pub fn has_tools(&self) -> bool {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty())
    }

    /// Names of the tools offered to the model.
    pub fn tool_names(&self) -> Vec<String> {
        self.body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect()
    }

    /// The system prompt as text (a string or text blocks).
    pub fn system_text(&self) -> String {
        self.body
            .get("system")
            .map(content_text)
            .unwrap_or_default()
    }

    /// Text and tool results of the last `user` message. The CLI may append other
    /// entries after it (an environment block), so this is not simply the last message.
    pub fn latest_user_text(&self) -> String {
        self.messages()
            .iter()
            .rev()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|m| m.get("content"))
            .map(content_text)
            .unwrap_or_default()
    }

    /// Every message's text, in order, one per line: the conversation so far.
    pub fn conversation_text(&self) -> String {
        self.messages()
            .iter()
            .filter_map(|m| m.get("content").map(content_text))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The `tool_result` blocks sent back: (tool_use_id, text of the result, is_error).
    pub fn tool_results(&self) -> Vec<(String, String, bool)> {
        self.messages()
            .iter()
            .filter_map(|m| m.get("content").and_then(Value::as_array))
            .flatten()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            .map(|b| {
                (
                    b.get("tool_use_id")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    b.get("content").map(content_text).unwrap_or_default(),
                    b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
                )
            })
            .collect()
    }
}

/// A rough token count (4 bytes a token): real-shaped numbers, not a tokenizer.
pub(crate) fn estimate_tokens(v: &Value) -> u64 {
    (v.to_string().len() as u64).div_ceil(4).max(1)
}

fn text_tokens(s: &str) -> u64 {
    (s.len() as u64).div_ceil(4).max(1)
}

/// One reply, with ids fixed at creation.
pub(crate) struct Reply {
    id: String,
    model: String,
    input_tokens: u64,
    /// (block, its `toolu_` id if a tool use)
    blocks: Vec<(Block, Option<String>)>,
}

/// Ids shaped like the service's: a prefix and 24 base-62-looking characters.
fn id(prefix: &str, n: u64) -> String {
    format!("{prefix}_01Rp{n:0>20}")
}

impl Reply {
    pub(crate) fn new(req: &Recorded, blocks: Vec<Block>, first_id: u64) -> Reply {
        let blocks = blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let tid = matches!(b, Block::ToolUse { .. })
                    .then(|| id("toolu", first_id + 1 + i as u64));
                (b, tid)
            })
            .collect();
        Reply {
            id: id("msg", first_id),
            model: req
                .body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("claude-sonnet-4-5")
                .to_string(),
            input_tokens: estimate_tokens(&req.body),
            blocks,
        }
    }

    fn stop_reason(&self) -> &'static str {
        if self.blocks.iter().any(|(_, t)| t.is_some()) {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    fn output_tokens(&self) -> u64 {
        self.blocks
            .iter()
            .map(|(b, _)| match b {
                Block::Text(t) => text_tokens(t),
                Block::ToolUse { name, input } => text_tokens(name) + estimate_tokens(input),
            })
            .sum()
    }

    fn usage(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    }

    fn full_block(block: &Block, tool_id: Option<&String>) -> Value {
        match block {
            Block::Text(t) => json!({"type": "text", "text": t}),
            Block::ToolUse { name, input } => {
                json!({"type": "tool_use", "id": tool_id, "name": name, "input": input})
            }
        }
    }

    /// The whole message, as a non-streaming response.
    pub(crate) fn message(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self
                .blocks
                .iter()
                .map(|(b, t)| Reply::full_block(b, t.as_ref()))
                .collect::<Vec<_>>(),
            "stop_reason": self.stop_reason(),
            "stop_sequence": null,
            "usage": self.usage(self.output_tokens()),
        })
    }

    /// The streaming event sequence, as (event name, data).
    pub(crate) fn events(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": self.usage(1),
            }}),
        )];
        out.push(("ping", json!({"type": "ping"})));
        for (index, (block, tool_id)) in self.blocks.iter().enumerate() {
            let (start, deltas): (Value, Vec<Value>) = match block {
                Block::Text(t) => (
                    json!({"type": "text", "text": ""}),
                    chunks(t)
                        .map(|c| json!({"type": "text_delta", "text": c}))
                        .collect(),
                ),
                Block::ToolUse { name, input } => (
                    json!({"type": "tool_use", "id": tool_id, "name": name, "input": {}}),
                    chunks(&input.to_string())
                        .map(|c| json!({"type": "input_json_delta", "partial_json": c}))
                        .collect(),
                ),
            };
            out.push((
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            ));
            for delta in deltas {
                out.push((
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
            }
            out.push((
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
        out.push((
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason(), "stop_sequence": null},
                "usage": {"output_tokens": self.output_tokens()}}),
        ));
        out.push(("message_stop", json!({"type": "message_stop"})));
        out
    }

    pub(crate) fn into_sse(self) -> Response {
        let events = self.events().into_iter().map(|(name, data)| {
            Ok::<_, Infallible>(Event::default().event(name).data(data.to_string()))
        });
        Sse::new(futures::stream::iter(events))
            .keep_alive(KeepAlive::default())
            .into_response()
    }
}

/// Pieces of about 24 bytes on char boundaries, so deltas arrive split as they do live.
fn chunks(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(24);
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}
