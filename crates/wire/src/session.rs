//! Sessions: one agent conversation, made of runs and an append-only event log.

use serde::{Deserialize, Serialize};

/// Session statuses (`aof_core::session`), serialized to the AOF names.
pub use aof_core::SessionStatus;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Session {
    pub session_id: String,
    pub status: SessionStatus,
    pub created_at: String,
    pub project_dir: Option<String>,
    pub agent_name: Option<String>,
    pub last_resumed_at: Option<String>,
    pub parent_session_id: Option<String>,
    pub executor_session_id: Option<String>,
    pub executor_profile: Option<String>,
    pub hostname: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
    /// AOF-RS, only in a page (`limit` or `cursor` given): pass it as `cursor` for the
    /// next page. Absent on the last page and from the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// AOF-RS, only in a page: the live feed's cursor, read before the page. Opening
    /// `/sse/sessions` with `last_event_id` = this delivers every change made after
    /// the page was read, none missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_head: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SessionEnvelope {
    pub session: Session,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SessionResult {
    pub result_text: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub result_data: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Affinity {
    pub session_id: String,
    pub hostname: Option<String>,
    pub project_dir: Option<String>,
    pub executor_profile: Option<String>,
}

/// Body of `POST /sessions/{id}/bind`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct BindRequest {
    pub executor_session_id: String,
    pub hostname: String,
    pub executor_profile: String,
    #[serde(default)]
    pub project_dir: Option<String>,
}

/// Body of `PATCH /sessions/{id}/metadata`: non-null fields are written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct MetadataPatch {
    #[serde(default)]
    pub project_dir: Option<String>,
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub last_resumed_at: Option<String>,
    #[serde(default)]
    pub executor_session_id: Option<String>,
    #[serde(default)]
    pub executor_profile: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
}
