//! Server-sent event names and payloads of `GET /sse/sessions`.

use serde::{Deserialize, Serialize};

use crate::{Event, Session};

pub const INIT: &str = "init";
pub const SESSION_CREATED: &str = "session_created";
pub const SESSION_UPDATED: &str = "session_updated";
pub const SESSION_DELETED: &str = "session_deleted";
pub const EVENT: &str = "event";
pub const RUN_FAILED: &str = "run_failed";
/// AOF-RS: sent before closing a stream whose client fell too far behind to be served.
pub const RESYNC: &str = "resync";

/// One entry of the coordinator's feed: what SSE clients see, with its global cursor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedItem {
    pub cursor: i64,
    /// SSE event name (one of the constants above).
    pub kind: String,
    pub session_id: Option<String>,
    /// The SSE `data` payload.
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionPayload {
    pub session: Session,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EventPayload {
    pub data: Event,
}
