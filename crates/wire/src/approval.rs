//! AOF-RS: human approval of agent tool calls. A blueprint's `approval` section names the
//! tools that wait for a person; each such call becomes an [`Approval`] that an operator
//! approves or denies (`POST /approvals/{id}`), or that times out.

use serde::{Deserialize, Serialize};

/// A JSON object (a tool's input).
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The seconds an approval waits when the policy does not say.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 900;
/// The longest wait a policy may ask for (a day): a lease is held all that time.
pub const MAX_TIMEOUT_SECONDS: u64 = 86_400;
/// Header on an agent's `agent-orchestrator` MCP entry carrying its runner's floor (an
/// `approval` policy as compact JSON), which the blueprint's policy cannot lower: the
/// coordinator's `approval_prompt` tool applies it.
pub const FLOOR_HEADER: &str = "x-aof-approval-floor";

/// What a person (or the timeout) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Deny,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 3] = [
        ApprovalStatus::Pending,
        ApprovalStatus::Approved,
        ApprovalStatus::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<ApprovalStatus> {
        ApprovalStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl From<Decision> for ApprovalStatus {
    fn from(d: Decision) -> ApprovalStatus {
        match d {
            Decision::Approve => ApprovalStatus::Approved,
            Decision::Deny => ApprovalStatus::Denied,
        }
    }
}

/// Who ended an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// A person (`decided_by`) decided.
    Reviewer,
    /// Nobody decided within the timeout; the policy's `on_timeout` applied.
    Timeout,
    /// The run ended (stopped, failed, lease lost) while the approval waited: denied.
    RunEnded,
}

impl Resolution {
    pub const ALL: [Resolution; 3] = [
        Resolution::Reviewer,
        Resolution::Timeout,
        Resolution::RunEnded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Reviewer => "reviewer",
            Resolution::Timeout => "timeout",
            Resolution::RunEnded => "run_ended",
        }
    }
}

/// A blueprint's `approval` section (and a runner profile's floor):
/// `{"tools": ["Bash", "Write", "mcp__github__*"], "timeout_seconds": 900, "on_timeout": "deny"}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPolicy {
    /// Tool names; `*` matches any run of characters (`mcp__github__*`).
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<Decision>,
}

impl ApprovalPolicy {
    /// Parse and check a policy value; the message says what is wrong.
    pub fn parse(v: &serde_json::Value) -> Result<ApprovalPolicy, String> {
        let p = ApprovalPolicy::deserialize(v).map_err(|e| format!("approval: {e}"))?;
        if let Some(t) = p.timeout_seconds {
            if t == 0 || t > MAX_TIMEOUT_SECONDS {
                return Err(format!(
                    "approval: timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}, not {t}"
                ));
            }
        }
        if let Some(bad) = p.tools.iter().find(|t| t.trim().is_empty()) {
            return Err(format!("approval: tool pattern '{bad}' is empty"));
        }
        Ok(p)
    }

    /// The `approval` of a resolved blueprint; absent or null is "nothing needs approval".
    pub fn from_blueprint(bp: Option<&serde_json::Value>) -> Result<ApprovalPolicy, String> {
        match bp.and_then(|b| b.get("approval")) {
            None | Some(serde_json::Value::Null) => Ok(ApprovalPolicy::default()),
            Some(v) => ApprovalPolicy::parse(v),
        }
    }

    /// True when a call of `tool` must wait for a decision.
    pub fn requires(&self, tool: &str) -> bool {
        self.tools.iter().any(|p| glob_match(p, tool))
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub fn timeout_seconds(&self) -> u64 {
        self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)
    }

    pub fn on_timeout(&self) -> Decision {
        self.on_timeout.unwrap_or(Decision::Deny)
    }

    /// This policy with a runner's `floor` applied: the floor's tools are added, and a
    /// blueprint can neither wait longer than the floor allows nor turn its deny into
    /// an approve.
    pub fn with_floor(&self, floor: &ApprovalPolicy) -> ApprovalPolicy {
        let mut tools = self.tools.clone();
        for t in &floor.tools {
            if !tools.contains(t) {
                tools.push(t.clone());
            }
        }
        let timeout_seconds = match (self.timeout_seconds, floor.timeout_seconds) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Unset means deny: only a policy that says approve, under a floor that does
        // not say deny, approves on timeout (a floor's approve cannot loosen a default).
        let on_timeout = match (self.on_timeout, floor.on_timeout) {
            (None, None) => None,
            (Some(Decision::Approve), None | Some(Decision::Approve)) => Some(Decision::Approve),
            _ => Some(Decision::Deny),
        };
        ApprovalPolicy {
            tools,
            timeout_seconds,
            on_timeout,
        }
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*`: exact
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// One tool call waiting for (or past) a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Approval {
    pub approval_id: String,
    pub session_id: String,
    pub run_id: String,
    pub tool_name: String,
    #[schema(value_type = Object)]
    pub tool_input: JsonObject,
    pub status: ApprovalStatus,
    pub created_at: String,
    /// When the policy's `on_timeout` applies if nobody decided.
    pub expires_at: String,
    pub on_timeout: Decision,
    #[serde(default)]
    pub resolution: Option<Resolution>,
    #[serde(default)]
    pub decided_at: Option<String>,
    /// The deciding credential (`key:<id>`, `user:<sub>`); null for a timeout.
    #[serde(default)]
    pub decided_by: Option<String>,
    /// The reviewer's message (for a denial: what the agent is told).
    #[serde(default)]
    pub message: Option<String>,
    /// An approval may change the tool's input; the agent runs the tool with this.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub updated_input: Option<JsonObject>,
}

/// Body of `POST /sessions/{session_id}/approvals` (a runner holding the run's lease).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub run_id: String,
    pub tool_name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tool_input: JsonObject,
    /// The caller's id of this tool call (e.g. the model's tool call id): asking again
    /// with the same key answers the approval already stored.
    #[serde(default)]
    pub request_key: Option<String>,
    /// The runner's effective policy for this call (blueprint plus its floor); absent:
    /// the run's blueprint's.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub on_timeout: Option<Decision>,
}

/// Body of `POST /approvals/{approval_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecision {
    pub decision: Decision,
    #[serde(default)]
    pub message: Option<String>,
    /// Only with `approve`: the input the tool runs with instead of the requested one.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub updated_input: Option<JsonObject>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApprovalList {
    pub approvals: Vec<Approval>,
}

/// Session event types of approvals.
pub mod events {
    pub const REQUESTED: &str = "approval_requested";
    pub const RESOLVED: &str = "approval_resolved";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names() {
        for (p, n, m) in [
            ("Bash", "Bash", true),
            ("Bash", "BashX", false),
            ("Bash", "Bas", false),
            ("mcp__github__*", "mcp__github__create_issue", true),
            ("mcp__github__*", "mcp__gitlab__x", false),
            ("*", "anything", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("a*a", "a", false),
            ("*_file", "write_file", true),
        ] {
            assert_eq!(glob_match(p, n), m, "{p} vs {n}");
        }
    }

    #[test]
    fn floors_only_tighten() {
        let bp = ApprovalPolicy {
            tools: vec!["Write".into()],
            timeout_seconds: Some(600),
            on_timeout: Some(Decision::Approve),
        };
        let floor = ApprovalPolicy {
            tools: vec!["Bash".into()],
            timeout_seconds: Some(300),
            on_timeout: Some(Decision::Deny),
        };
        let p = bp.with_floor(&floor);
        assert!(p.requires("Bash") && p.requires("Write"));
        assert_eq!(p.timeout_seconds(), 300);
        assert_eq!(p.on_timeout(), Decision::Deny);
        let none = ApprovalPolicy::default().with_floor(&ApprovalPolicy::default());
        assert!(none.is_empty());
        assert_eq!(none.on_timeout(), Decision::Deny);
        assert_eq!(none.timeout_seconds(), DEFAULT_TIMEOUT_SECONDS);
        let approving = ApprovalPolicy {
            on_timeout: Some(Decision::Approve),
            ..ApprovalPolicy::default()
        };
        let silent = ApprovalPolicy::default();
        assert_eq!(silent.with_floor(&approving).on_timeout(), Decision::Deny);
        assert_eq!(
            approving.with_floor(&silent).on_timeout(),
            Decision::Approve
        );
        assert_eq!(
            approving.with_floor(&approving).on_timeout(),
            Decision::Approve
        );
    }

    #[test]
    fn bad_policies_say_why() {
        let e =
            ApprovalPolicy::parse(&serde_json::json!({"tools": ["Bash"], "timeout_seconds": 0}))
                .unwrap_err();
        assert!(e.contains("timeout_seconds"), "{e}");
        let e =
            ApprovalPolicy::parse(&serde_json::json!({"tools": ["Bash"], "on_timeout": "maybe"}))
                .unwrap_err();
        assert!(
            e.contains("on_timeout") || e.contains("unknown variant"),
            "{e}"
        );
        let e = ApprovalPolicy::parse(&serde_json::json!({"tool": ["Bash"]})).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let ok = ApprovalPolicy::parse(&serde_json::json!({"tools": ["Bash"]})).unwrap();
        assert!(ok.requires("Bash") && !ok.requires("Read"));
    }
}
