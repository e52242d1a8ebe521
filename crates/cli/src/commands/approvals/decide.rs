//! `aof approvals approve ID [--message M] [--input JSON]` and
//! `aof approvals deny ID --reason R`: `POST /approvals/{id}`.

use aof_wire::approval::{Approval, ApprovalDecision, Decision, JsonObject, Resolution};
use reqwest::StatusCode;

use crate::client::{seg, Api, Refused};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof approvals approve apr_0123456789ab\n  \
    aof approvals approve apr_0123456789ab --input '{\"command\": \"ls -la\"}' --message 'ls only'")]
pub struct ApproveArgs {
    /// Approval id.
    pub id: String,
    /// A note kept with the decision (and shown to the agent).
    #[arg(long)]
    pub message: Option<String>,
    /// Run the tool with this JSON object as its input instead of the requested one.
    #[arg(long, value_name = "JSON", value_parser = parse_object)]
    pub input: Option<JsonObject>,
}

#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Example:\n  aof approvals deny apr_0123456789ab --reason 'not on the production host'"
)]
pub struct DenyArgs {
    /// Approval id.
    pub id: String,
    /// Why: the agent gets this as the tool's answer.
    #[arg(long, value_parser = non_blank)]
    pub reason: String,
}

fn parse_object(s: &str) -> Result<JsonObject, String> {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(o)) => Ok(o),
        Ok(_) => Err("the tool input must be a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

fn non_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("say why (the agent is told)".into())
    } else {
        Ok(s.to_string())
    }
}

impl ApproveArgs {
    pub fn decision(&self) -> ApprovalDecision {
        ApprovalDecision {
            decision: Decision::Approve,
            message: self.message.clone(),
            updated_input: self.input.clone(),
        }
    }
}

impl DenyArgs {
    pub fn decision(&self) -> ApprovalDecision {
        ApprovalDecision {
            decision: Decision::Deny,
            message: Some(self.reason.clone()),
            updated_input: None,
        }
    }
}

pub async fn approve(api: &Api, json: bool, args: ApproveArgs) -> anyhow::Result<u8> {
    decide(api, json, &args.id, &args.decision()).await
}

pub async fn deny(api: &Api, json: bool, args: DenyArgs) -> anyhow::Result<u8> {
    decide(api, json, &args.id, &args.decision()).await
}

async fn decide(api: &Api, json: bool, id: &str, d: &ApprovalDecision) -> anyhow::Result<u8> {
    let path = format!("/approvals/{}", seg(id));
    let body = match api.post(&path, &serde_json::to_value(d)?).await {
        Ok(b) => b,
        Err(e) => return Err(already_decided(api, &path, e).await),
    };
    if json {
        crate::table::print_json(&body);
        return Ok(0);
    }
    let a: Approval = serde_json::from_value(body)
        .map_err(|e| anyhow::anyhow!("the approval is not in the AOF shape: {e}"))?;
    eprintln!("{}", summary(&a));
    Ok(0)
}

/// A 409 says only that someone was first; the approval itself says who and when, which
/// is what the person at the terminal wants to know. Any other error passes unchanged.
async fn already_decided(api: &Api, path: &str, err: anyhow::Error) -> anyhow::Error {
    let mut refused = match err.downcast::<Refused>() {
        Ok(r) if r.status == StatusCode::CONFLICT => r,
        Ok(r) => return r.into(),
        Err(other) => return other,
    };
    if let Ok(a) = api
        .get(path)
        .await
        .and_then(|b| Ok(serde_json::from_value::<Approval>(b)?))
    {
        refused.message = decided_line(&a);
    }
    refused.into()
}

/// `already decided: approved by key:k1 at 2026-…` (or how a timeout or ended run decided).
pub fn decided_line(a: &Approval) -> String {
    let at = a.decided_at.as_deref().unwrap_or("an unknown time");
    let how = match (a.resolution, a.decided_by.as_deref()) {
        (Some(Resolution::Timeout), _) => "by its timeout".to_string(),
        (Some(Resolution::RunEnded), _) => "because its run ended".to_string(),
        (_, Some(by)) => format!("by {by}"),
        (_, None) => "by someone".to_string(),
    };
    let mut line = format!("already decided: {} {how} at {at}", a.status.as_str());
    if let Some(m) = a.message.as_deref().filter(|m| !m.trim().is_empty()) {
        line.push_str(&format!(" ({m})"));
    }
    line
}

/// `approval apr_1 (Bash in ses_1): approved by key:k1`.
pub fn summary(a: &Approval) -> String {
    let by = a
        .decided_by
        .as_deref()
        .map(|b| format!(" by {b}"))
        .unwrap_or_default();
    format!(
        "approval {} ({} in {}): {}{by}",
        a.approval_id,
        a.tool_name,
        a.session_id,
        a.status.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    #[derive(Parser)]
    enum T {
        Approve(ApproveArgs),
        Deny(DenyArgs),
    }

    #[test]
    fn flags_make_the_decision_body() {
        let T::Approve(a) = T::try_parse_from([
            "t",
            "approve",
            "apr_1",
            "--message",
            "ok",
            "--input",
            r#"{"command":"ls"}"#,
        ])
        .unwrap() else {
            unreachable!()
        };
        assert_eq!(
            serde_json::to_value(a.decision()).unwrap(),
            json!({"decision": "approve", "message": "ok", "updated_input": {"command": "ls"}})
        );
        let T::Approve(a) = T::try_parse_from(["t", "approve", "apr_1"]).unwrap() else {
            unreachable!()
        };
        assert_eq!(
            serde_json::to_value(a.decision()).unwrap(),
            json!({"decision": "approve", "message": null, "updated_input": null})
        );
        let T::Deny(d) = T::try_parse_from(["t", "deny", "apr_1", "--reason", "no"]).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(
            serde_json::to_value(d.decision()).unwrap(),
            json!({"decision": "deny", "message": "no", "updated_input": null})
        );
    }

    #[test]
    fn a_second_decision_says_who_was_first() {
        let mut a: Approval = serde_json::from_value(json!({
            "approval_id": "apr_1", "session_id": "ses_1", "run_id": "run_1",
            "tool_name": "Bash", "tool_input": {}, "status": "approved",
            "created_at": "t0", "expires_at": "t9", "on_timeout": "deny",
            "resolution": "reviewer", "decided_by": "key:k1", "decided_at": "t1"}))
        .unwrap();
        assert_eq!(
            decided_line(&a),
            "already decided: approved by key:k1 at t1"
        );
        a.status = aof_wire::approval::ApprovalStatus::Denied;
        a.resolution = Some(Resolution::Timeout);
        a.decided_by = None;
        a.message = Some("nobody answered".into());
        assert_eq!(
            decided_line(&a),
            "already decided: denied by its timeout at t1 (nobody answered)"
        );
        a.resolution = Some(Resolution::RunEnded);
        assert!(decided_line(&a).contains("because its run ended"));
    }

    #[test]
    fn bad_flags_are_refused_before_any_request() {
        for argv in [
            &["t", "deny", "apr_1"][..],                    // --reason is required
            &["t", "deny", "apr_1", "--reason", "  "],      // and must say something
            &["t", "approve", "apr_1", "--input", "[1]"],   // input is an object
            &["t", "approve", "apr_1", "--input", "{nope"], // and JSON
            &["t", "approve"],                              // an id
        ] {
            assert!(T::try_parse_from(argv).is_err(), "{argv:?}");
        }
    }
}
