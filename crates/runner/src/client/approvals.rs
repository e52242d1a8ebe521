//! The approval routes a runner uses (issue #25), fenced like event posts: the run's
//! lease and run id headers on every request.

use std::time::Duration;

use aof_wire::approval::{Approval, ApprovalRequest};
use reqwest::Method;

use super::{json, Client, ClientError, RunRef, REQUEST_TIMEOUT};

/// The longest `wait` the coordinator accepts on a read.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(30);

impl Client {
    /// `POST /sessions/{id}/approvals`: a new approval (201), or the one already stored
    /// for the request's `request_key` (200).
    pub(crate) async fn request_approval(
        &self,
        run: &RunRef,
        req: &ApprovalRequest,
    ) -> Result<Approval, ClientError> {
        let r = self
            .run_request(run, &["sessions", &run.session_id, "approvals"])
            .with(|rb| rb.json(req));
        json(self.send(r).await?).await
    }

    /// `GET /sessions/{id}/approvals/{approval_id}?wait=N`: answers once it is decided,
    /// or after `wait` still pending.
    pub(crate) async fn approval(
        &self,
        run: &RunRef,
        approval_id: &str,
        wait: Duration,
    ) -> Result<Approval, ClientError> {
        let wait = wait.min(MAX_WAIT);
        let r = self
            .run_request_as(
                Method::GET,
                run,
                &["sessions", &run.session_id, "approvals", approval_id],
            )
            .with(|rb| {
                rb.query(&[("wait", wait.as_secs())])
                    .timeout(wait + REQUEST_TIMEOUT)
            });
        json(self.send(r).await?).await
    }
}
