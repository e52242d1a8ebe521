//! Small response envelopes of the HTTP API, typed so the OpenAPI document is exact.

use serde::{Deserialize, Serialize};

use crate::{session::Affinity, Session};

/// `{"status": "..."}` — health, readiness and session status.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatusResponse {
    pub status: String,
}

/// AOF-RS `GET /stats`: how many sessions and runs are in each status (statuses with
/// none are left out), for a summary that must not list everything (the dashboard's
/// overview).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StatsResponse {
    pub sessions_by_status: std::collections::BTreeMap<String, i64>,
    pub runs_by_status: std::collections::BTreeMap<String, i64>,
    pub runners_online: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OkResponse {
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SessionOkResponse {
    pub ok: bool,
    pub session: Session,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AffinityResponse {
    pub affinity: Affinity,
}

/// Answer to an event post: its cursor and sequence, or `duplicate` for a repeated key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EventPosted {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DeletedCounts {
    pub session: bool,
    pub events_count: u64,
    pub runs_count: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DeleteSessionResponse {
    pub ok: bool,
    pub session_id: String,
    pub deleted: DeletedCounts,
    pub runs_removed_from_cache: u64,
}

/// Result of a stop request (run or session), shaped like the reference's.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StopResponse {
    pub ok: bool,
    pub session_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RemoveRunnerResponse {
    pub ok: bool,
    pub message: String,
    pub initiated_by: String,
}

/// AOF-RS `POST /retention/purge`: removes ended sessions (finished, failed, stopped)
/// without activity for `older_than_seconds`, with their runs and events.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Last activity (creation or latest resume) at least this long ago.
    pub older_than_seconds: u64,
    /// Only sessions of this agent.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// List what would go; delete nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PurgeResponse {
    pub ok: bool,
    pub dry_run: bool,
    /// Sessions removed (or, on a dry run, that would be).
    pub session_ids: Vec<String>,
    pub events_count: u64,
    pub runs_count: u64,
    /// Bytes the store gave back to the file system afterwards (SQLite: vacuum).
    pub bytes_reclaimed: u64,
}

/// AOF-RS: most events in one `POST /sessions/{id}/events/batch`.
pub const MAX_BATCH_EVENTS: usize = 1000;

/// AOF-RS: body of `POST /sessions/{id}/events/batch` — 1 to [`MAX_BATCH_EVENTS`]
/// events, stored all or none, in this order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EventBatch {
    pub events: Vec<crate::Event>,
}

/// Answer to a batch post: one [`EventPosted`] per event, in the order sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EventBatchPosted {
    pub ok: bool,
    pub events: Vec<EventPosted>,
}
