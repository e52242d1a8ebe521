//! Human approval of tool calls (issue #25). A run's effective policy is the
//! blueprint's `approval` with the runner's floor applied (`ApprovalPolicy::with_floor`);
//! a tool it lists runs only after an [`Approver`] said yes.
//!
//! Per executor:
//! - `model_api` asks before each listed call and gives the model the denial as the
//!   tool's result (`model`).
//! - `claude_code` never asks here: the CLI asks the coordinator itself through
//!   `--permission-prompt-tool` (the orchestrator's `approval_prompt`), see `claude`.
//! - `command` and `echo` call no tools AOF can see, so a policy has nothing to gate.
//!
//! The approver is the runner's (HTTP to the coordinator, which records the approval
//! events); executors only ask and obey.

use std::sync::Arc;

use async_trait::async_trait;

pub use aof_wire::approval::{ApprovalPolicy, JsonObject};

/// What the model (or the CLI) is told when a listed tool cannot be asked about.
pub const NO_APPROVER: &str =
    "Denied: this tool needs a human approval and this runner cannot ask for one";

/// The answer to one tool call.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalAnswer {
    /// Run the tool, with `updated_input` instead of the requested input when given.
    Allow { updated_input: Option<JsonObject> },
    /// Do not run it; `message` is what the agent is told instead of a result.
    Deny { message: String },
}

impl ApprovalAnswer {
    pub fn deny(message: impl Into<String>) -> ApprovalAnswer {
        ApprovalAnswer::Deny {
            message: message.into(),
        }
    }
}

/// Asks someone whether a tool call may run; waits until they decided (or the run ends).
#[async_trait]
pub trait Approver: Send + Sync + 'static {
    /// `request_key` identifies this call within the run: asking again with the same
    /// key (a retry) must find the same approval, never make a second one.
    async fn ask(&self, tool_name: &str, input: &JsonObject, request_key: &str) -> ApprovalAnswer;
}

/// A run's approvals: the policy in force and who to ask.
#[derive(Clone, Default)]
pub struct Approvals {
    /// The blueprint's policy with the runner's floor applied.
    pub policy: ApprovalPolicy,
    /// The runner's floor alone (the Claude CLI passes it on to the coordinator, which
    /// decides its calls from the blueprint).
    pub floor: ApprovalPolicy,
    /// None: no approval is possible, so a listed tool is denied, never run unasked.
    pub approver: Option<Arc<dyn Approver>>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("policy", &self.policy)
            .field("floor", &self.floor)
            .field("approver", &self.approver.is_some())
            .finish()
    }
}

impl Approvals {
    /// Whether a call known by any of `names` (a tool may have several, e.g. the name
    /// the model sees and `mcp__<server>__<tool>`) must wait for a decision.
    pub fn requires<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> bool {
        names.into_iter().any(|n| self.policy.requires(n))
    }

    /// Ask about a listed call; without an approver the answer is a denial.
    pub async fn ask(
        &self,
        tool_name: &str,
        input: &JsonObject,
        request_key: &str,
    ) -> ApprovalAnswer {
        match &self.approver {
            Some(a) => a.ask(tool_name, input, request_key).await,
            None => ApprovalAnswer::deny(NO_APPROVER),
        }
    }
}

/// The text an agent gets in place of a denied tool's result.
pub fn denial_text(message: &str) -> String {
    let m = message.trim();
    if m.is_empty() {
        "Denied by reviewer".to_string()
    } else if m.starts_with("Denied") {
        m.to_string()
    } else {
        format!("Denied by reviewer: {m}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_an_approver_a_listed_tool_is_denied() {
        let a = Approvals {
            policy: ApprovalPolicy {
                tools: vec!["add".into(), "mcp__calc__*".into()],
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(a.requires(["add"]));
        assert!(a.requires(["sum", "mcp__calc__sum"]));
        assert!(!a.requires(["sum", "mcp__other__sum"]));
        assert_eq!(
            a.ask("add", &JsonObject::new(), "k").await,
            ApprovalAnswer::deny(NO_APPROVER)
        );
        assert!(!Approvals::default().requires(["add"]));
    }

    #[test]
    fn denial_texts() {
        assert_eq!(denial_text(""), "Denied by reviewer");
        assert_eq!(denial_text("not today"), "Denied by reviewer: not today");
        assert_eq!(denial_text("Denied: run stopped"), "Denied: run stopped");
    }
}
