//! Approvals of tool calls (issue #25), as the routes and the MCP tool share them:
//! asking (checked, with the run's policy filled in), waiting for a decision, deciding,
//! and the sweep that applies timeouts. The rules of the rows live in
//! `aof_store::approvals`; this module adds who, limits, metrics and waking waiters.
//!
//! Who may do what: a runner asks only under the lease of the running run
//! (`api::approvals`, the event posts' fence); an agent's Claude CLI asks through the
//! `/mcp` tool with its run's session token, for that run only; only an operator or an
//! admin decides (the policy table refuses everyone else, the agent's own session token
//! included), and the decider's identity is recorded from its credential, never from
//! the body.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;

use aof_store::{
    approvals::{NewApproval, Verdict},
    NewAuditEntry, Writer,
};
use aof_wire::{
    approval::{
        Approval, ApprovalDecision, ApprovalPolicy, ApprovalStatus, Decision, JsonObject,
        Resolution, MAX_TIMEOUT_SECONDS,
    },
    audit::ActorKind,
    error::ErrorCode,
};

use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    AppState,
};

/// Longest tool name, request key and reviewer message accepted.
const MAX_NAME: usize = 256;
const MAX_MESSAGE: usize = 4000;
/// A tool input (or edited input) larger than this is refused: it goes into two events.
const MAX_INPUT_BYTES: usize = 64 * 1024;
/// How long one `?wait=` may park at most (a long-poll, re-asked by the caller).
pub const MAX_WAIT: Duration = Duration::from_secs(30);

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(msg.into(), ErrorCode::InvalidApproval)
}

fn check_input(field: &str, input: &JsonObject) -> ApiResult<()> {
    let n = serde_json::to_vec(input).map_or(usize::MAX, |v| v.len());
    if n > MAX_INPUT_BYTES {
        return Err(ApiError::TooLarge(
            format!("{field} is {n} bytes; at most {MAX_INPUT_BYTES}"),
            ErrorCode::EventTooLarge,
        ));
    }
    Ok(())
}

/// A tool call to put before a person.
pub struct Ask {
    pub session_id: String,
    pub run_id: String,
    pub tool_name: String,
    pub tool_input: JsonObject,
    pub request_key: Option<String>,
    /// The caller's effective policy, if it sent one; else the run's blueprint's.
    pub timeout_seconds: Option<u64>,
    pub on_timeout: Option<Decision>,
}

/// The approval policy of a run: its resolved blueprint's `approval`.
pub fn run_policy(rec: &aof_store::RunRecord) -> ApprovalPolicy {
    // The registry refused an invalid policy when the blueprint was stored; a stored
    // run from before that check gets the strictest reading of "unreadable": none.
    ApprovalPolicy::from_blueprint(rec.run.resolved_agent_blueprint.as_ref()).unwrap_or_default()
}

/// Stores the request (or finds the one stored under its key). `who`: the runner
/// writing under its lease; `None` for the MCP tool, which acts for the run its
/// session token belongs to.
pub async fn request(st: &AppState, ask: Ask, who: Option<&Writer>) -> ApiResult<(Approval, bool)> {
    if ask.tool_name.trim().is_empty() || ask.tool_name.len() > MAX_NAME {
        return Err(invalid(format!(
            "tool_name must be 1 to {MAX_NAME} characters"
        )));
    }
    if ask
        .request_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_NAME)
    {
        return Err(invalid(format!(
            "request_key must be 1 to {MAX_NAME} characters"
        )));
    }
    if let Some(t) = ask.timeout_seconds {
        if t == 0 || t > MAX_TIMEOUT_SECONDS {
            return Err(invalid(format!(
                "timeout_seconds must be between 1 and {MAX_TIMEOUT_SECONDS}, not {t}"
            )));
        }
    }
    check_input("tool_input", &ask.tool_input)?;
    let policy = match (ask.timeout_seconds, ask.on_timeout) {
        (Some(t), Some(o)) => ApprovalPolicy {
            tools: Vec::new(),
            timeout_seconds: Some(t),
            on_timeout: Some(o),
        },
        (t, o) => {
            let rec = st.store.get_run(&ask.run_id).await?;
            let base = rec.as_ref().map(run_policy).unwrap_or_default();
            ApprovalPolicy {
                tools: Vec::new(),
                timeout_seconds: t.or(base.timeout_seconds),
                on_timeout: o.or(base.on_timeout),
            }
        }
    };
    let new = NewApproval {
        approval_id: aof_core::ids::new_approval_id(),
        session_id: ask.session_id,
        run_id: ask.run_id,
        tool_name: ask.tool_name,
        tool_input: ask.tool_input,
        request_key: ask.request_key,
        timeout: chrono::Duration::seconds(policy.timeout_seconds() as i64),
        on_timeout: policy.on_timeout(),
        created_at: Utc::now(),
    };
    let (a, created) = st.store.request_approval(new, who).await?;
    if created {
        tracing::info!(approval_id = %a.approval_id, session_id = %a.session_id, run_id = %a.run_id, tool = %a.tool_name, "approval requested");
    }
    Ok((a, created))
}

/// The approval, once decided or after `max` (then still pending). Woken by the
/// session's feed (its `approval_resolved`), re-read every second in case the feed
/// lagged or another coordinator decided; a stop ends the wait early.
pub async fn wait(st: &AppState, id: &str, max: Duration) -> ApiResult<Approval> {
    let deadline = tokio::time::Instant::now() + max;
    let mut feed = st.store.subscribe();
    loop {
        let a = st.store.get_approval(id).await?.ok_or_else(not_found)?;
        let now = tokio::time::Instant::now();
        if a.status != ApprovalStatus::Pending || now >= deadline {
            return Ok(a);
        }
        let session_id = a.session_id.clone();
        let woken = async {
            loop {
                match feed.recv().await {
                    Ok(item) if item.session_id.as_deref() == Some(&session_id) => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        let tick = (deadline - now).min(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::timeout(tick, woken) => {}
            _ = st.stopping.draining().cancelled() => {
                return st.store.get_approval(id).await?.ok_or_else(not_found);
            }
        }
    }
}

pub fn not_found() -> ApiError {
    ApiError::NotFound("Approval not found".into(), ErrorCode::ApprovalNotFound)
}

/// Who decided, as the approval records it: the credential, never a name from the body.
pub fn decider(p: &Principal) -> String {
    match p {
        Principal::Open => "anonymous".into(),
        Principal::Key { id, .. } => format!("key:{id}"),
        Principal::Internal => "internal".into(),
        Principal::Oidc { subject, .. } => format!("oidc:{subject}"),
        Principal::Session { session_id, .. } => format!("session:{session_id}"),
    }
}

/// A person's decision (the route has checked the role).
pub async fn decide(
    st: &AppState,
    id: &str,
    d: ApprovalDecision,
    by: &Principal,
) -> ApiResult<Approval> {
    if d.decision == Decision::Deny && d.updated_input.is_some() {
        return Err(invalid("updated_input goes only with approve"));
    }
    if d.message.as_ref().is_some_and(|m| m.len() > MAX_MESSAGE) {
        return Err(invalid(format!(
            "message must be at most {MAX_MESSAGE} bytes"
        )));
    }
    if let Some(i) = &d.updated_input {
        check_input("updated_input", i)?;
    }
    let verdict = Verdict {
        decision: d.decision,
        resolution: Resolution::Reviewer,
        decided_by: Some(decider(by)),
        message: d.message.filter(|m| !m.trim().is_empty()),
        updated_input: d.updated_input,
        at: Utc::now(),
    };
    let a = st.store.decide_approval(id, verdict).await?;
    observe(st, &a);
    tracing::info!(approval_id = %a.approval_id, session_id = %a.session_id, status = %a.status.as_str(), decided_by = a.decided_by.as_deref().unwrap_or(""), "approval decided");
    Ok(a)
}

fn observe(st: &AppState, a: &Approval) {
    let (Some(asked), Some(decided)) = (
        chrono::DateTime::parse_from_rfc3339(&a.created_at).ok(),
        a.decided_at
            .as_deref()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok()),
    ) else {
        return;
    };
    let secs = (decided - asked).num_milliseconds() as f64 / 1000.0;
    st.metrics.observe_approval(a.resolution, secs);
}

/// The sweeper's part: applies `on_timeout` to approvals past their deadline and denies
/// those whose run ended; each is audited as decided by the coordinator (nobody).
pub async fn sweep(st: &AppState) -> ApiResult<usize> {
    let closed = st.store.close_approvals(Utc::now()).await?;
    for a in &closed {
        observe(st, a);
        tracing::warn!(approval_id = %a.approval_id, session_id = %a.session_id, status = %a.status.as_str(), resolution = ?a.resolution, "approval closed without a reviewer");
        st.audit
            .push(NewAuditEntry {
                at: Utc::now(),
                actor_kind: ActorKind::Coordinator,
                actor_id: None,
                actor_name: None,
                role: None,
                action: match a.resolution {
                    Some(Resolution::RunEnded) => "approval.run_ended".into(),
                    _ => "approval.timeout".into(),
                },
                target: Some(a.approval_id.clone()),
                status: 200,
                // No request made this decision: the sweep's own id, so entries stay
                // distinct and searchable.
                request_id: format!("sweep-{}", a.approval_id),
                remote_addr: None,
            })
            .await;
    }
    Ok(closed.len())
}

/// The answer the Claude CLI's `--permission-prompt-tool` expects.
pub fn permission_answer(a: &Approval, original: &JsonObject) -> Value {
    match a.status {
        ApprovalStatus::Approved => serde_json::json!({
            "behavior": "allow",
            "updatedInput": a.updated_input.clone().unwrap_or_else(|| original.clone()),
        }),
        _ => serde_json::json!({
            "behavior": "deny",
            "message": deny_text(a),
        }),
    }
}

/// What a denied (or undecided) call tells the agent, so the model can react.
pub fn deny_text(a: &Approval) -> String {
    let why = a.message.as_deref().unwrap_or("no reason given");
    match (a.status, a.resolution) {
        (ApprovalStatus::Pending, _) => {
            format!("Approval of {} is still pending; not run", a.tool_name)
        }
        (_, Some(Resolution::Timeout)) => {
            format!("Denied: nobody approved {} in time ({why})", a.tool_name)
        }
        (_, Some(Resolution::RunEnded)) => format!("Denied: {why}"),
        _ => format!(
            "Denied by {}: {why}",
            a.decided_by.as_deref().unwrap_or("a reviewer")
        ),
    }
}

use aof_wire::approval::FLOOR_HEADER;

/// The `approval_prompt` MCP tool (the Claude CLI's `--permission-prompt-tool`): a call
/// the run's policy lists waits for a decision; any other is allowed at once. Acts for
/// the run of the caller's session token (with auth off: the running run of the session
/// named in `X-Agent-Session-Id`).
pub async fn prompt(
    st: &AppState,
    caller: &crate::mcp::Caller,
    headers: &axum::http::HeaderMap,
    tool_name: String,
    input: JsonObject,
    tool_use_id: Option<String>,
) -> ApiResult<Value> {
    let run = match (&caller.principal, &caller.session) {
        (Principal::Session { run_id, .. }, _) => st.store.get_run(run_id).await?,
        (p, Some(session_id)) if p.role() == Some(aof_wire::auth::Role::Admin) => {
            st.store.latest_run(session_id).await?
        }
        _ => {
            return Err(ApiError::Forbidden(
                "approval_prompt acts for a run: call it with the run's session token".into(),
                ErrorCode::Forbidden,
            ))
        }
    };
    let rec = run.ok_or_else(|| {
        ApiError::Conflict(
            "This session has no run to ask for".into(),
            ErrorCode::LeaseConflict,
        )
    })?;
    let floor = match headers.get(FLOOR_HEADER) {
        None => ApprovalPolicy::default(),
        Some(v) => {
            let json: Value = v
                .to_str()
                .ok()
                .and_then(|s| serde_json::from_str(s).ok())
                .ok_or_else(|| invalid(format!("{FLOOR_HEADER} is not JSON")))?;
            ApprovalPolicy::parse(&json).map_err(invalid)?
        }
    };
    let policy = run_policy(&rec).with_floor(&floor);
    if !policy.requires(&tool_name) {
        return Ok(serde_json::json!({"behavior": "allow", "updatedInput": input}));
    }
    let _slot = st
        .caps
        .acquire(crate::caps::Kind::McpWait, &caller.principal)?;
    let ask = Ask {
        session_id: rec.run.session_id.clone(),
        run_id: rec.run.run_id.clone(),
        tool_name,
        tool_input: input.clone(),
        request_key: tool_use_id.filter(|k| !k.is_empty()),
        timeout_seconds: Some(policy.timeout_seconds()),
        on_timeout: Some(policy.on_timeout()),
    };
    let (mut a, _) = request(st, ask, None).await?;
    // Until decided: the sweeper decides at the deadline at the latest. A stopping
    // coordinator answers deny (the CLI cannot wait across a restart; the row stays
    // pending and is closed when the run ends).
    while a.status == ApprovalStatus::Pending {
        if st.stopping.draining().is_cancelled() {
            break;
        }
        a = wait(st, &a.approval_id, MAX_WAIT).await?;
    }
    Ok(permission_answer(&a, &input))
}
