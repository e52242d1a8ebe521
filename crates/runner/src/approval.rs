//! The runner's `Approver` (issue #25): a listed tool call becomes an approval on the
//! coordinator (`POST /sessions/{id}/approvals`), then the runner long-polls it
//! (`GET …/approvals/{id}?wait=30`) until a person decided or the coordinator's
//! sweeper applied the policy's `on_timeout`. The coordinator writes the approval
//! events; this only asks and waits.
//!
//! Connection errors, 5xx and a coordinator restart are retried with the usual backoff:
//! the request carries a `request_key` (the run's attempt and the executor's key), so
//! asking again finds the approval already made, never a second one. A stopped run
//! (its cancel token) or a lost lease (409) ends the wait with a denial: the tool must
//! not run for a run that is ending.

use std::time::Duration;

use aof_executors::approval::{denial_text, ApprovalAnswer, ApprovalPolicy, Approver, JsonObject};
use aof_wire::approval::{Approval, ApprovalRequest, ApprovalStatus, Resolution};
use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::{
    backoff::{retry, Attempt},
    client::{Client, ClientError, RunRef},
};

/// What the agent is told when its run stops while it waits.
pub(crate) const RUN_STOPPED: &str = "Denied: the run was stopped";
/// … and when the coordinator says the run's lease is gone.
pub(crate) const RUN_ENDING: &str = "Denied: the run is ending";

/// How long one read waits on the coordinator.
const WAIT: Duration = crate::client::MAX_WAIT;

pub(crate) struct HttpApprover {
    pub client: Client,
    pub run: RunRef,
    /// The run's effective policy (blueprint with the runner's floor): its timeout and
    /// `on_timeout` go with each request, so the floor holds on the coordinator too.
    pub policy: ApprovalPolicy,
    /// The execution's cancel token: a stop, a lost lease or a run limit.
    pub cancel: CancellationToken,
}

impl HttpApprover {
    fn request(&self, tool_name: &str, input: &JsonObject, request_key: &str) -> ApprovalRequest {
        ApprovalRequest {
            run_id: self.run.run_id.clone(),
            tool_name: tool_name.to_string(),
            tool_input: input.clone(),
            // A requeued run (a new attempt) asks anew, never finds the last one's answer.
            request_key: Some(format!("{}:{request_key}", self.run.attempt)),
            timeout_seconds: self.policy.timeout_seconds,
            on_timeout: self.policy.on_timeout,
        }
    }
}

#[async_trait]
impl Approver for HttpApprover {
    async fn ask(&self, tool_name: &str, input: &JsonObject, request_key: &str) -> ApprovalAnswer {
        let req = self.request(tool_name, input, request_key);
        let asked = retry("approval", &self.cancel, || {
            self.client.request_approval(&self.run, &req)
        })
        .await;
        let mut approval = match settled(asked) {
            Ok(a) => a,
            Err(answer) => return answer,
        };
        tracing::info!(approval_id = %approval.approval_id, tool = tool_name, "waiting for approval");
        while approval.status == ApprovalStatus::Pending {
            let read = retry("approval wait", &self.cancel, || {
                self.client.approval(&self.run, &approval.approval_id, WAIT)
            })
            .await;
            approval = match settled(read) {
                Ok(a) => a,
                Err(answer) => return answer,
            };
        }
        tracing::info!(approval_id = %approval.approval_id, status = approval.status.as_str(), "approval decided");
        answer(approval)
    }
}

/// A request's end: the approval, or the denial the agent gets instead.
fn settled(attempt: Attempt<Approval>) -> Result<Approval, ApprovalAnswer> {
    match attempt {
        Attempt::Done(a) => Ok(a),
        Attempt::Interrupted => Err(ApprovalAnswer::deny(RUN_STOPPED)),
        Attempt::Rejected(e) => Err(refused(&e)),
    }
}

fn refused(e: &ClientError) -> ApprovalAnswer {
    let lease_gone =
        e.code() == Some("lease_conflict") || (e.status_code() == Some(409) && e.code().is_none());
    if lease_gone {
        return ApprovalAnswer::deny(RUN_ENDING);
    }
    tracing::warn!(error = %e, code = e.code(), "the coordinator refused the approval request");
    ApprovalAnswer::deny(format!("Denied: the approval could not be asked for ({e})"))
}

/// A decided approval as the agent's answer.
fn answer(a: Approval) -> ApprovalAnswer {
    match (a.status, a.resolution) {
        (ApprovalStatus::Approved, _) => ApprovalAnswer::Allow {
            updated_input: a.updated_input,
        },
        (_, Some(Resolution::Timeout)) => ApprovalAnswer::deny(
            "Denied: nobody approved this call in time (the approval timed out)",
        ),
        (_, Some(Resolution::RunEnded)) => ApprovalAnswer::deny(RUN_ENDING),
        _ => ApprovalAnswer::deny(denial_text(a.message.as_deref().unwrap_or(""))),
    }
}

#[cfg(test)]
mod tests {
    use aof_wire::approval::Decision;
    use serde_json::json;

    use super::*;

    fn approval(status: ApprovalStatus, resolution: Option<Resolution>) -> Approval {
        Approval {
            approval_id: "apr_1".into(),
            session_id: "ses_1".into(),
            run_id: "run_1".into(),
            tool_name: "add".into(),
            tool_input: JsonObject::new(),
            status,
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-01T00:15:00Z".into(),
            on_timeout: Decision::Deny,
            resolution,
            decided_at: None,
            decided_by: None,
            message: None,
            updated_input: None,
        }
    }

    #[test]
    fn decisions_become_answers() {
        let mut ok = approval(ApprovalStatus::Approved, Some(Resolution::Reviewer));
        ok.updated_input = json!({"a": 1}).as_object().cloned();
        assert_eq!(
            answer(ok),
            ApprovalAnswer::Allow {
                updated_input: json!({"a": 1}).as_object().cloned()
            }
        );
        // A timeout whose policy said approve runs the tool.
        assert_eq!(
            answer(approval(
                ApprovalStatus::Approved,
                Some(Resolution::Timeout)
            )),
            ApprovalAnswer::Allow {
                updated_input: None
            }
        );
        let mut no = approval(ApprovalStatus::Denied, Some(Resolution::Reviewer));
        no.message = Some("use the staging db".into());
        assert_eq!(
            answer(no),
            ApprovalAnswer::deny("Denied by reviewer: use the staging db")
        );
        assert!(matches!(
            answer(approval(ApprovalStatus::Denied, Some(Resolution::Timeout))),
            ApprovalAnswer::Deny { message } if message.contains("timed out")
        ));
        assert_eq!(
            answer(approval(ApprovalStatus::Denied, Some(Resolution::RunEnded))),
            ApprovalAnswer::deny(RUN_ENDING)
        );
    }

    #[test]
    fn refusals_deny() {
        assert_eq!(
            refused(&ClientError::status(409, None)),
            ApprovalAnswer::deny(RUN_ENDING)
        );
        assert!(matches!(
            refused(&ClientError::status(422, None)),
            ApprovalAnswer::Deny { message } if message.contains("could not be asked")
        ));
        assert_eq!(
            settled(Attempt::Interrupted),
            Err(ApprovalAnswer::deny(RUN_STOPPED))
        );
    }
}
