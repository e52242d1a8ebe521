//! The runner protocol: register, long-poll, report, heartbeat.

use serde::{Deserialize, Serialize};

use crate::Run;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct RegisterRequest {
    pub hostname: String,
    pub project_dir: String,
    pub executor_profile: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub executor: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Left out when unset: the AOF reference takes a boolean here and refuses `null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_matching_tags: Option<bool>,
    /// AOF-RS: random per runner process. The same instance may register again (after a
    /// coordinator restart) without a duplicate-runner conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RegisterResponse {
    pub runner_id: String,
    pub poll_endpoint: String,
    pub poll_timeout_seconds: u64,
    pub heartbeat_interval_seconds: u64,
    /// AOF-RS: how long a claim stays valid without a heartbeat.
    #[serde(default)]
    pub lease_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub protocol_version: Option<u32>,
}

/// On a 204 long-poll answer: the coordinator is stopping and answered at once rather
/// than at the poll timeout. Our runner polls again without backoff, on its next
/// coordinator URL when it has several; a runner that ignores the header just polls
/// again, as after any 204.
pub const DRAINING_HEADER: &str = "x-aof-draining";

/// What a long-poll returns (HTTP 200); an empty poll is HTTP 204.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum PollResponse {
    Run { run: Box<Run> },
    Stop { stop_sessions: Vec<String> },
    Deregistered { deregistered: bool },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct RunnerIdBody {
    pub runner_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CompletedBody {
    pub runner_id: String,
    #[serde(default = "success")]
    pub status: String,
    #[serde(default)]
    pub session_status: Option<String>,
}

fn success() -> String {
    "success".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FailedBody {
    pub runner_id: String,
    pub error: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct StoppedBody {
    pub runner_id: String,
    #[serde(default = "sigterm")]
    pub signal: String,
}

fn sigterm() -> String {
    "SIGTERM".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SessionStatusBody {
    pub runner_id: String,
    pub status: String,
}

/// A lease our runner believes it holds, sent with heartbeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct HeldLease {
    pub run_id: String,
    pub lease_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct HeartbeatRequest {
    pub runner_id: String,
    /// AOF-RS: leases to renew. Reference runners omit it; then every lease of the runner is renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leases: Option<Vec<HeldLease>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct HeartbeatResponse {
    pub ok: bool,
    /// AOF-RS: runs in `leases` the runner no longer holds; it must stop them.
    #[serde(default)]
    pub revoked: Vec<String>,
}

/// A registered runner's liveness: `stale` once it is silent past the stale threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunnerStatus {
    Online,
    Stale,
}

impl RunnerStatus {
    pub const ALL: [RunnerStatus; 2] = [RunnerStatus::Online, RunnerStatus::Stale];

    pub fn as_str(self) -> &'static str {
        match self {
            RunnerStatus::Online => "online",
            RunnerStatus::Stale => "stale",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RunnerInfo {
    pub runner_id: String,
    pub registered_at: String,
    pub last_heartbeat: String,
    pub hostname: String,
    pub project_dir: String,
    pub executor_profile: String,
    #[schema(value_type = Object)]
    pub executor: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
    pub require_matching_tags: bool,
    pub status: RunnerStatus,
    pub seconds_since_heartbeat: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RunnerList {
    pub runners: Vec<RunnerInfo>,
    /// AOF-RS, only in a page (`limit` or `cursor` given): pass it as `cursor` for the
    /// next page. Absent on the last page and from the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_register_options_are_left_out_for_the_reference() {
        let v = serde_json::to_value(RegisterRequest::default()).unwrap();
        assert!(v.get("require_matching_tags").is_none(), "{v}");
        let v = serde_json::to_value(RegisterRequest {
            require_matching_tags: Some(true),
            ..RegisterRequest::default()
        })
        .unwrap();
        assert_eq!(v["require_matching_tags"], true);
    }
}
