//! Runs: one unit of work on a session (start it, or resume it with a new prompt).

use serde::{Deserialize, Serialize};

/// Run statuses: the enum the lifecycle (`aof_core::run`) is written over, serialized
/// to the AOF names. An unknown name fails where it enters (deserialization).
pub use aof_core::RunStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunType {
    StartSession,
    ResumeSession,
}

impl RunType {
    pub fn as_str(self) -> &'static str {
        match self {
            RunType::StartSession => "start_session",
            RunType::ResumeSession => "resume_session",
        }
    }
}

impl std::str::FromStr for RunType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [RunType::StartSession, RunType::ResumeSession]
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("unknown run type '{s}'"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    #[default]
    Sync,
    AsyncPoll,
    AsyncCallback,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Sync => "sync",
            ExecutionMode::AsyncPoll => "async_poll",
            ExecutionMode::AsyncCallback => "async_callback",
        }
    }
}

impl std::str::FromStr for ExecutionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ExecutionMode::Sync,
            ExecutionMode::AsyncPoll,
            ExecutionMode::AsyncCallback,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| format!("unknown execution mode '{s}'"))
    }
}

/// What a run needs from a runner. Unset fields match anything; `tags` must all be present.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default, utoipa::ToSchema)]
pub struct Demands {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Demands {
    /// Merge `other` under `self`: scalars already set win, tags are unioned (sorted).
    pub fn merge(mut self, other: &Demands) -> Demands {
        fn pick(a: &mut Option<String>, b: &Option<String>) {
            if a.as_deref().is_none_or(str::is_empty) {
                a.clone_from(b);
            }
        }
        pick(&mut self.hostname, &other.hostname);
        pick(&mut self.project_dir, &other.project_dir);
        pick(&mut self.executor_profile, &other.executor_profile);
        pick(&mut self.executor_type, &other.executor_type);
        for t in &other.tags {
            if !self.tags.contains(t) {
                self.tags.push(t.clone());
            }
        }
        self.tags.sort();
        self
    }
}

/// Body of `POST /runs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RunCreate {
    #[serde(rename = "type")]
    pub run_type: RunType,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub project_dir: Option<String>,
    #[serde(default)]
    pub parent_session_id: Option<String>,
    #[serde(default)]
    pub execution_mode: ExecutionMode,
    #[serde(default)]
    pub additional_demands: Option<Demands>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub scope: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RunCreateResponse {
    pub run_id: String,
    pub session_id: String,
    pub status: RunStatus,
}

/// A run as `GET /runs` shows it. The runner's poll adds `scope`,
/// `resolved_agent_blueprint`, `lease_token` and `attempt`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Run {
    pub run_id: String,
    #[serde(rename = "type")]
    pub run_type: RunType,
    pub session_id: String,
    pub agent_name: Option<String>,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    pub project_dir: Option<String>,
    pub parent_session_id: Option<String>,
    pub execution_mode: ExecutionMode,
    pub demands: Option<Demands>,
    pub status: RunStatus,
    pub runner_id: Option<String>,
    pub error: Option<String>,
    pub created_at: String,
    pub claimed_at: Option<String>,
    pub started_at: Option<String>,
    pub completed_at: Option<String>,
    pub timeout_at: Option<String>,
    /// AOF-RS: attempt number, starting at 1; bumps when an expired lease re-queues the run.
    #[serde(default)]
    pub attempt: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub scope: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub resolved_agent_blueprint: Option<serde_json::Value>,
    /// AOF-RS: only in the poll response, to the runner that holds the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_token: Option<String>,
    /// AOF-RS, auth on: a token bound to this run's session, for the agent to call the
    /// coordinator as that session. Only in the poll response; never listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// AOF-RS: the W3C `traceparent` of the span that created the run, when the
    /// coordinator exports OpenTelemetry traces; the runner's execution span is its
    /// child. Only in the poll response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Run {
    pub fn prompt(&self) -> Option<&str> {
        self.parameters.get("prompt").and_then(|p| p.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct RunList {
    pub runs: Vec<Run>,
    /// AOF-RS, only in a page (`limit` or `cursor` given): pass it as `cursor` for the
    /// next page. Absent on the last page and from the whole list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
