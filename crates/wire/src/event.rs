//! Session events: what executors report (messages, tools, results) and what the
//! coordinator adds (`run_start`, `run_completed`).

use serde::{Deserialize, Serialize};

/// An event as posted to `POST /sessions/{id}/events` and sent in SSE `event` frames.
/// All fields are always serialized (nulls included), like the reference.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct Event {
    pub event_type: String,
    pub session_id: String,
    pub timestamp: String,
    #[serde(default)]
    pub tool_name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_input: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_output: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub content: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    pub result_text: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub result_data: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Event {
    pub fn new(event_type: &str, session_id: &str) -> Event {
        Event {
            event_type: event_type.to_string(),
            session_id: session_id.to_string(),
            timestamp: crate::now_ts(),
            ..Default::default()
        }
    }

    pub fn message(session_id: &str, role: &str, text: &str) -> Event {
        Event {
            role: Some(role.to_string()),
            content: Some(vec![serde_json::json!({"type": "text", "text": text})]),
            ..Event::new("message", session_id)
        }
    }

    /// The plain text of a message event's content blocks.
    pub fn text(&self) -> Option<String> {
        let blocks = self.content.as_ref()?;
        let parts: Vec<&str> = blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(|t| t.as_str()))
            .collect();
        (!parts.is_empty()).then(|| parts.join(""))
    }
}

/// An event as stored: the reference's `id`, plus our per-session `seq` and the run it
/// belongs to. `id` is the global, commit-ordered cursor (also the SSE `id`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StoredEvent {
    pub id: i64,
    /// 1, 2, 3… within the session, without gaps.
    pub seq: i64,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EventList {
    pub events: Vec<StoredEvent>,
}

pub mod types {
    pub const MESSAGE: &str = "message";
    pub const RESULT: &str = "result";
    pub const RUN_START: &str = "run_start";
    pub const RUN_COMPLETED: &str = "run_completed";
    pub const RUN_FAILED: &str = "run_failed";
    pub const RUN_STOPPED: &str = "run_stopped";
    pub const PRE_TOOL: &str = "pre_tool";
    pub const POST_TOOL: &str = "post_tool";
    pub const RAW: &str = "raw";
}
