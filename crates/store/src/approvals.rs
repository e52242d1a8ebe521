//! Approvals of tool calls (issue #25): what both stores decide, written once.
//!
//! An approval is a row and two session events. Asking ([`on_request`]) and deciding
//! ([`on_decide`]) each return a lifecycle [`Plan`] that the backend executes in the
//! transaction it loaded the rows in, like a run's report:
//! - asking: the run must be `running` (and, from a runner, under the writer's lease);
//!   a repeated `request_key` for the same run answers the stored approval and writes
//!   nothing; else insert the row, append `approval_requested`, set the session to
//!   `waiting_approval`;
//! - deciding (a person, the timeout, or the run's end): only a `pending` approval; the
//!   row's write is a compare-and-set on `pending`, so two deciders cannot both win;
//!   append `approval_resolved`; the session goes back to `running` when it was
//!   `waiting_approval` and no other approval of it is pending.

use aof_core::{RunStatus, SessionStatus};
use aof_wire::{
    approval::{events, Approval, ApprovalStatus, Decision, JsonObject, Resolution},
    format_ts, Event,
};
use chrono::{DateTime, Utc};

use crate::{
    events::lease_lost,
    lifecycle::{Plan, Step},
    RunRecord, StoreError, StoreResult, Writer,
};

/// The `approvals` columns an [`approval`](crate::rows::approval) row reads.
pub const APPROVAL_COLS: &str = "approval_id, session_id, run_id, tool_name, tool_input, \
    status, created_at, expires_at, on_timeout, resolution, decided_at, decided_by, message, \
    updated_input";

/// A tool call to put before a person; the coordinator filled in the policy.
#[derive(Debug, Clone, PartialEq)]
pub struct NewApproval {
    pub approval_id: String,
    pub session_id: String,
    pub run_id: String,
    pub tool_name: String,
    pub tool_input: JsonObject,
    /// The asker's id of the call: asking twice answers the first approval.
    pub request_key: Option<String>,
    pub timeout: chrono::Duration,
    pub on_timeout: Decision,
    pub created_at: DateTime<Utc>,
}

/// A decision and who made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub decision: Decision,
    pub resolution: Resolution,
    /// `None` for a timeout or the run's end.
    pub decided_by: Option<String>,
    pub message: Option<String>,
    pub updated_input: Option<JsonObject>,
    pub at: DateTime<Utc>,
}

impl Verdict {
    /// The timeout's verdict: the policy's `on_timeout`, by nobody.
    pub fn timeout(a: &Approval, at: DateTime<Utc>) -> Verdict {
        Verdict {
            decision: a.on_timeout,
            resolution: Resolution::Timeout,
            decided_by: None,
            message: Some(format!(
                "nobody decided before {}; on_timeout applied",
                a.expires_at
            )),
            updated_input: None,
            at,
        }
    }

    /// The run ended while the approval waited: denied, by nobody.
    pub fn run_ended(status: RunStatus, at: DateTime<Utc>) -> Verdict {
        Verdict {
            decision: Decision::Deny,
            resolution: Resolution::RunEnded,
            decided_by: None,
            message: Some(format!("the run is {status}; nothing is waiting any more")),
            updated_input: None,
            at,
        }
    }
}

/// Which approvals `list_approvals` returns, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApprovalQuery {
    pub session_id: Option<String>,
    pub status: Option<ApprovalStatus>,
    pub limit: i64,
}

/// The approval row's write in a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalWrite {
    Insert {
        approval: Approval,
        request_key: Option<String>,
        expires_ms: i64,
    },
    /// `UPDATE … WHERE approval_id = ? AND status = 'pending'`; no row refuses the plan.
    Resolve(Approval),
}

/// Asking. `who`: the runner writing (its lease token is checked); `None` for the
/// coordinator asking on the run's behalf (its MCP tool, behind the run's session
/// token). `existing`: the approval stored under `new.request_key` for this run.
pub fn on_request(
    new: NewApproval,
    who: Option<&Writer>,
    run: Option<&RunRecord>,
    existing: Option<Approval>,
) -> StoreResult<(Approval, Plan)> {
    let run = run
        .filter(|r| r.run.session_id == new.session_id)
        .ok_or(StoreError::RunNotFound)?;
    if let Some(a) = existing {
        return Ok((a, Plan::default()));
    }
    let held = match who.and_then(|w| w.lease_token.as_deref()) {
        Some(token) => run.lease_token.as_deref() == Some(token),
        None => who.is_none_or(|w| run.run.runner_id.as_deref() == Some(&w.runner_id)),
    };
    if run.status != RunStatus::Running || !held {
        return Err(lease_lost(&run.run.run_id, run.status));
    }
    let expires = new.created_at + new.timeout;
    let approval = Approval {
        approval_id: new.approval_id,
        session_id: new.session_id,
        run_id: new.run_id,
        tool_name: new.tool_name,
        tool_input: new.tool_input,
        status: ApprovalStatus::Pending,
        created_at: format_ts(new.created_at),
        expires_at: format_ts(expires),
        on_timeout: new.on_timeout,
        resolution: None,
        decided_at: None,
        decided_by: None,
        message: None,
        updated_input: None,
    };
    let plan = Plan {
        steps: vec![
            Step::Approval(Box::new(ApprovalWrite::Insert {
                approval: approval.clone(),
                request_key: new.request_key,
                expires_ms: expires.timestamp_millis(),
            })),
            event_step(&approval, requested_event(&approval)),
            Step::Session {
                session_id: approval.session_id.clone(),
                status: SessionStatus::WaitingApproval,
            },
        ],
    };
    Ok((approval, plan))
}

/// Deciding `current` (loaded in the transaction). `session`: its session's status;
/// `others_pending`: how many *other* approvals of the session are pending.
pub fn on_decide(
    current: Option<Approval>,
    verdict: Verdict,
    session: Option<SessionStatus>,
    others_pending: i64,
) -> StoreResult<(Approval, Plan)> {
    let mut a = current.ok_or(StoreError::ApprovalNotFound)?;
    if a.status != ApprovalStatus::Pending {
        return Err(decided(&a));
    }
    a.status = verdict.decision.into();
    a.resolution = Some(verdict.resolution);
    a.decided_at = Some(format_ts(verdict.at));
    a.decided_by = verdict.decided_by;
    a.message = verdict.message;
    a.updated_input = match verdict.decision {
        Decision::Approve => verdict.updated_input,
        Decision::Deny => None,
    };
    let mut steps = vec![
        Step::Approval(Box::new(ApprovalWrite::Resolve(a.clone()))),
        event_step(&a, resolved_event(&a)),
    ];
    if session == Some(SessionStatus::WaitingApproval) && others_pending == 0 {
        steps.push(Step::Session {
            session_id: a.session_id.clone(),
            status: SessionStatus::Running,
        });
    }
    Ok((a, Plan { steps }))
}

/// The refusal of a second decision.
pub fn decided(a: &Approval) -> StoreError {
    StoreError::ApprovalDecided {
        approval_id: a.approval_id.clone(),
        status: a.status,
    }
}

/// What ends a pending approval without a person, if anything: its run no longer
/// running (it can never use the answer), else its deadline passed.
pub fn closing(
    a: &Approval,
    expires_ms: i64,
    run: Option<RunStatus>,
    now: DateTime<Utc>,
) -> Option<Verdict> {
    match run {
        Some(RunStatus::Running) | Some(RunStatus::Stopping) => {
            (expires_ms <= now.timestamp_millis()).then(|| Verdict::timeout(a, now))
        }
        // Gone, requeued to another attempt, or ended.
        other => Some(Verdict::run_ended(other.unwrap_or(RunStatus::Failed), now)),
    }
}

fn event_step(a: &Approval, event: Event) -> Step {
    Step::Event {
        run_id: a.run_id.clone(),
        event: Box::new(event),
    }
}

/// `approval_requested`: the tool and its input, and which approval to decide.
pub fn requested_event(a: &Approval) -> Event {
    let data = serde_json::json!({
        "approval_id": a.approval_id,
        "expires_at": a.expires_at,
        "on_timeout": a.on_timeout,
    });
    Event {
        tool_name: Some(a.tool_name.clone()),
        tool_input: Some(a.tool_input.clone()),
        result_data: data.as_object().cloned(),
        ..Event::new(events::REQUESTED, &a.session_id)
    }
}

/// `approval_resolved`: the decision, who, when, and the message.
pub fn resolved_event(a: &Approval) -> Event {
    let data = serde_json::json!({
        "approval_id": a.approval_id,
        "status": a.status,
        "resolution": a.resolution,
        "decided_by": a.decided_by,
        "decided_at": a.decided_at,
        "message": a.message,
        "updated_input": a.updated_input,
    });
    Event {
        tool_name: Some(a.tool_name.clone()),
        reason: a.message.clone(),
        result_data: data.as_object().cloned(),
        ..Event::new(events::RESOLVED, &a.session_id)
    }
}

#[cfg(test)]
mod tests;
