//! Approvals for the Claude Code CLI. The CLI asks the coordinator itself: with
//! `--permission-prompt-tool` every permission prompt becomes a call of the orchestrator's
//! `approval_prompt` MCP tool, which waits for a person when the run's policy lists the
//! tool (and allows the rest at once). The runner's floor reaches the coordinator as a
//! header of that MCP server (`FLOOR_HEADER`), since the coordinator only knows the
//! blueprint's policy.
//!
//! The CLI only prompts for what no rule already decided, so a run whose settings
//! would let a listed tool through unasked is refused rather than run unguarded:
//! `bypassPermissions` (never asks), a blueprint's own `agent-orchestrator` server
//! (would answer the prompts), no orchestrator at all. The listed tools are also
//! passed as `ask` rules (`--settings`), which win over allow rules and the CLI's
//! read-only auto-allow.

use std::time::Duration;

use serde_json::json;

use super::{ClaudeCodeConfig, ORCHESTRATOR_SERVER};
use crate::{approval::Approvals, ExecError, Job};

/// The orchestrator's tool the CLI asks (`mcp__<server>__<tool>`).
pub const PERMISSION_PROMPT_TOOL: &str = "mcp__agent-orchestrator__approval_prompt";

pub use aof_wire::approval::FLOOR_HEADER;

/// Margin over the approval timeout: the coordinator's sweeper decides a little after
/// expiry, and its answer still has to travel back.
const MARGIN: Duration = Duration::from_secs(120);

/// Whether this run can be held to its approval policy; the error says why not.
pub(crate) fn check(cfg: &ClaudeCodeConfig, job: &Job, a: &Approvals) -> Result<(), ExecError> {
    if a.policy.is_empty() {
        return Ok(());
    }
    let listed = a.policy.tools.join(", ");
    let refuse = |why: String| {
        Err(ExecError::BadParameters(format!(
            "claude_code: tools {listed} need a human approval, but {why}"
        )))
    };
    if cfg.permission_mode.as_deref() == Some("bypassPermissions") {
        return refuse(
            "permission_mode bypassPermissions never asks for permission; use default or acceptEdits".into(),
        );
    }
    if a.approver.is_none() {
        return refuse("this runner cannot ask for approvals".into());
    }
    if job.orchestrator_mcp_url.is_none() {
        return refuse("the run has no coordinator MCP endpoint to ask through".into());
    }
    let own = job
        .blueprint
        .as_ref()
        .and_then(|b| b.get("mcp_servers"))
        .and_then(|s| s.get(ORCHESTRATOR_SERVER))
        .is_some();
    if own {
        return refuse(format!(
            "the blueprint defines its own '{ORCHESTRATOR_SERVER}' MCP server, which would answer the approval prompts"
        ));
    }
    Ok(())
}

/// Flags for a run with a policy: the prompt tool, and the listed tools as `ask` rules.
pub(crate) fn arguments(a: &Approvals) -> Vec<String> {
    if a.policy.is_empty() {
        return Vec::new();
    }
    let ask: Vec<String> = a.policy.tools.iter().filter_map(|t| ask_rule(t)).collect();
    let mut args = vec![
        "--permission-prompt-tool".to_string(),
        PERMISSION_PROMPT_TOOL.to_string(),
    ];
    if !ask.is_empty() {
        args.push("--settings".into());
        args.push(json!({"permissions": {"ask": ask}}).to_string());
    }
    args
}

/// A policy pattern as a Claude permission rule: a plain name as is, `mcp__<server>__*`
/// as the server's rule; other globs have no rule form (the prompt tool still gates
/// them whenever the CLI prompts).
fn ask_rule(pattern: &str) -> Option<String> {
    if !pattern.contains('*') {
        return Some(pattern.to_string());
    }
    let server = pattern.strip_prefix("mcp__")?.strip_suffix("__*")?;
    (!server.is_empty() && !server.contains('*')).then(|| format!("mcp__{server}"))
}

/// The CLI's limit on one MCP call (`MCP_TOOL_TIMEOUT`, ms), so it does not give up on
/// a prompt that waits for a person.
pub(crate) fn tool_timeout(a: &Approvals) -> Option<(String, String)> {
    (!a.policy.is_empty()).then(|| {
        let wait = Duration::from_secs(a.policy.timeout_seconds()) + MARGIN;
        ("MCP_TOOL_TIMEOUT".to_string(), wait.as_millis().to_string())
    })
}

/// The stall watchdog's limit: a CLI waiting for a decision writes nothing meanwhile.
pub(crate) fn stall(base: Duration, a: &Approvals) -> Duration {
    if a.policy.is_empty() {
        return base;
    }
    base.max(Duration::from_secs(a.policy.timeout_seconds()) + MARGIN)
}

/// The floor as the orchestrator header's value, when there is one.
pub(crate) fn floor_header(a: &Approvals) -> Option<String> {
    (!a.floor.is_empty()).then(|| serde_json::to_string(&a.floor).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::approval::{ApprovalAnswer, ApprovalPolicy, Approver, JsonObject};

    struct Yes;

    #[async_trait::async_trait]
    impl Approver for Yes {
        async fn ask(&self, _: &str, _: &JsonObject, _: &str) -> ApprovalAnswer {
            ApprovalAnswer::Allow {
                updated_input: None,
            }
        }
    }

    fn approvals(tools: &[&str], floor: &[&str]) -> Approvals {
        let floor = ApprovalPolicy {
            tools: floor.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        Approvals {
            policy: ApprovalPolicy {
                tools: tools.iter().map(|t| t.to_string()).collect(),
                timeout_seconds: Some(600),
                on_timeout: None,
            }
            .with_floor(&floor),
            floor,
            approver: Some(Arc::new(Yes)),
        }
    }

    fn job(blueprint: serde_json::Value) -> Job {
        Job {
            run_id: "r".into(),
            session_id: "s".into(),
            agent_name: None,
            prompt: String::new(),
            parameters: json!({}),
            project_dir: None,
            resume: None,
            blueprint: Some(blueprint),
            system_prompt: None,
            orchestrator_mcp_url: Some("http://c/mcp".into()),
            history: None,
        }
    }

    #[test]
    fn a_policy_adds_the_prompt_tool_ask_rules_and_timeouts() {
        let a = approvals(&["Bash", "mcp__github__*", "*_file"], &["Write"]);
        assert_eq!(
            arguments(&a),
            [
                "--permission-prompt-tool",
                PERMISSION_PROMPT_TOOL,
                "--settings",
                r#"{"permissions":{"ask":["Bash","mcp__github","Write"]}}"#
            ]
        );
        assert_eq!(
            tool_timeout(&a),
            Some(("MCP_TOOL_TIMEOUT".into(), "720000".into()))
        );
        assert_eq!(stall(Duration::from_secs(60), &a), Duration::from_secs(720));
        assert_eq!(floor_header(&a).as_deref(), Some(r#"{"tools":["Write"]}"#));
        let none = Approvals::default();
        assert!(arguments(&none).is_empty());
        assert_eq!(tool_timeout(&none), None);
        assert_eq!(
            stall(Duration::from_secs(60), &none),
            Duration::from_secs(60)
        );
        assert_eq!(floor_header(&none), None);
    }

    #[test]
    fn runs_that_could_not_be_held_to_the_policy_are_refused() {
        let a = approvals(&["Bash"], &[]);
        let ok = ClaudeCodeConfig::default();
        assert!(check(&ok, &job(json!({})), &a).is_ok());
        // Nothing listed: nothing to hold.
        let bypass = ClaudeCodeConfig {
            permission_mode: Some("bypassPermissions".into()),
            ..Default::default()
        };
        assert!(check(&bypass, &job(json!({})), &Approvals::default()).is_ok());
        let why = |cfg: &ClaudeCodeConfig, j: &Job, a: &Approvals| {
            check(cfg, j, a).unwrap_err().to_string()
        };
        assert!(why(&bypass, &job(json!({})), &a).contains("bypassPermissions never asks"));
        let own = job(json!({"mcp_servers": {"agent-orchestrator": {"url": "http://x/mcp"}}}));
        assert!(why(&ok, &own, &a).contains("its own 'agent-orchestrator'"));
        let mut no_url = job(json!({}));
        no_url.orchestrator_mcp_url = None;
        assert!(why(&ok, &no_url, &a).contains("no coordinator MCP endpoint"));
        let no_approver = Approvals {
            approver: None,
            ..a.clone()
        };
        assert!(why(&ok, &job(json!({})), &no_approver).contains("cannot ask for approvals"));
    }
}
