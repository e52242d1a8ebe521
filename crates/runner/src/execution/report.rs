//! What a run tells the coordinator about itself: `started`, then how it ended
//! (`completed`, `failed`, `stopped`, or `release` to hand it back). Each report is a
//! `Report`, which names its route and builds its body, so the two cannot disagree.

use aof_executors::Outcome;
use aof_wire::{CompletedBody, FailedBody, RunnerIdBody, StoppedBody};
use serde::Serialize;

use crate::{
    active::{RunControl, StopReason},
    backoff::{retry, Attempt},
    client::{ClientError, RunRef},
    Shared,
};

/// One report on a run: `POST /runner/runs/{id}/{path}` with its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    Started,
    Completed,
    Failed {
        error: String,
    },
    Stopped {
        signal: StopSignal,
    },
    /// AOF-RS: the run is handed back unfinished (drain deadline) for another runner.
    Release,
}

/// How our runner stopped an execution, sent as `StoppedBody::signal`. The wire field
/// stays a string: reference runners send other signal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// Stopped because the coordinator asked (a user stopped the session).
    Sigterm,
    /// Stopped because this runner shut down.
    Shutdown,
}

impl StopSignal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            StopSignal::Sigterm => "SIGTERM",
            StopSignal::Shutdown => "shutdown",
        }
    }
}

/// The body of one report, serialized exactly as the wire type of its route.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ReportBody {
    RunnerId(RunnerIdBody),
    Completed(CompletedBody),
    Failed(FailedBody),
    Stopped(StoppedBody),
}

impl Report {
    /// The last segment of the report's route, also its name in logs.
    pub(crate) fn path(&self) -> &'static str {
        match self {
            Report::Started => "started",
            Report::Completed => "completed",
            Report::Failed { .. } => "failed",
            Report::Stopped { .. } => "stopped",
            Report::Release => "release",
        }
    }

    pub(crate) fn body(&self, runner_id: &str) -> ReportBody {
        let runner_id = runner_id.to_string();
        match self {
            Report::Started | Report::Release => ReportBody::RunnerId(RunnerIdBody { runner_id }),
            Report::Completed => ReportBody::Completed(CompletedBody {
                runner_id,
                status: "success".into(),
                session_status: None,
            }),
            Report::Failed { error } => ReportBody::Failed(FailedBody {
                runner_id,
                error: error.clone(),
            }),
            Report::Stopped { signal } => ReportBody::Stopped(StoppedBody {
                runner_id,
                signal: signal.as_str().into(),
            }),
        }
    }

    /// The report for a run that ended with `outcome` after a stop for `reason` (if
    /// any). At the drain deadline whatever did not complete goes back to the
    /// coordinator for another runner (an executor killed by that stop may also end as
    /// `failed`).
    pub(crate) fn of_outcome(outcome: Outcome, reason: Option<StopReason>) -> Report {
        match outcome {
            Outcome::Completed { .. } => Report::Completed,
            _ if reason == Some(StopReason::Handback) => Report::Release,
            Outcome::Failed { error } => Report::Failed { error },
            Outcome::Stopped => Report::Stopped {
                signal: StopSignal::Sigterm,
            },
        }
    }
}

/// Send the final report, retrying while the coordinator is unreachable.
pub(super) async fn report_end(
    shared: &Shared,
    run: &RunRef,
    runner_id: &str,
    outcome: Outcome,
    control: &RunControl,
) {
    match Report::of_outcome(outcome, control.reason()) {
        Report::Release => hand_back(shared, run, runner_id, control).await,
        report => send(shared, run, runner_id, &report, control).await,
    }
}

/// Send `report`, retrying while the coordinator is unreachable, and log how it went.
async fn send(
    shared: &Shared,
    run: &RunRef,
    runner_id: &str,
    report: &Report,
    control: &RunControl,
) {
    let what = report.path();
    let res = retry(what, &control.interrupt, || {
        shared.client.report(run, report, runner_id)
    })
    .await;
    match res {
        Attempt::Done(()) => tracing::info!(outcome = what, "run reported"),
        Attempt::Interrupted => tracing::warn!(outcome = what, "gave up reporting run"),
        Attempt::Rejected(e) => log_rejected(what, &e),
    }
}

/// `release` the run. A coordinator without that route (the AOF reference) gets the
/// base protocol's `stopped` report instead.
async fn hand_back(shared: &Shared, run: &RunRef, runner_id: &str, control: &RunControl) {
    let res = retry("release", &control.interrupt, || {
        shared.client.report(run, &Report::Release, runner_id)
    })
    .await;
    match res {
        Attempt::Done(()) => tracing::info!("run handed back to the coordinator"),
        Attempt::Interrupted => tracing::warn!("gave up handing the run back"),
        Attempt::Rejected(e)
            if matches!(e.status_code(), Some(404 | 405))
                && matches!(e.code(), None | Some("route_not_found")) =>
        {
            tracing::info!("coordinator cannot take runs back; reporting stopped");
            let stopped = Report::Stopped {
                signal: StopSignal::Shutdown,
            };
            send(shared, run, runner_id, &stopped, control).await;
        }
        Attempt::Rejected(e) => log_rejected("release", &e),
    }
}

/// 404/409/400 mean the lease is gone or the run was already resolved: expected
/// after a revocation race, so not an error.
fn log_rejected(what: &'static str, e: &ClientError) {
    tracing::warn!(outcome = what, error = %e, code = e.code(), "coordinator refused report; giving up");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stopped(signal: StopSignal) -> Report {
        Report::Stopped { signal }
    }

    /// The route and the exact body of each report: what the coordinator and the AOF
    /// reference coordinator read, byte for byte.
    #[test]
    fn each_report_has_its_route_and_body() {
        let failed = Report::Failed {
            error: "boom".into(),
        };
        let table = [
            (Report::Started, "started", r#"{"runner_id":"r1"}"#),
            (
                Report::Completed,
                "completed",
                r#"{"runner_id":"r1","status":"success","session_status":null}"#,
            ),
            (failed, "failed", r#"{"runner_id":"r1","error":"boom"}"#),
            (
                stopped(StopSignal::Sigterm),
                "stopped",
                r#"{"runner_id":"r1","signal":"SIGTERM"}"#,
            ),
            (
                stopped(StopSignal::Shutdown),
                "stopped",
                r#"{"runner_id":"r1","signal":"shutdown"}"#,
            ),
            (Report::Release, "release", r#"{"runner_id":"r1"}"#),
        ];
        for (report, path, body) in table {
            assert_eq!(report.path(), path, "{report:?}");
            let json = serde_json::to_string(&report.body("r1")).unwrap();
            assert_eq!(json, body, "{report:?}");
        }
    }

    /// Each body reads back as the wire type of its route, unchanged.
    #[test]
    fn bodies_read_back_as_their_wire_types() {
        let json = |r: &Report| serde_json::to_value(r.body("r1")).unwrap();
        let completed: CompletedBody = serde_json::from_value(json(&Report::Completed)).unwrap();
        assert_eq!(completed.status, "success");
        assert_eq!(completed.session_status, None);
        let failed: FailedBody = serde_json::from_value(json(&Report::Failed {
            error: "boom".into(),
        }))
        .unwrap();
        assert_eq!(failed.error, "boom");
        let s: StoppedBody = serde_json::from_value(json(&stopped(StopSignal::Shutdown))).unwrap();
        assert_eq!(s.signal, "shutdown");
        let r: RunnerIdBody = serde_json::from_value(json(&Report::Release)).unwrap();
        assert_eq!(r.runner_id, "r1");
    }

    /// Which report follows each outcome, with and without a stop and its reason.
    #[test]
    fn the_outcome_and_stop_reason_choose_the_report() {
        use StopReason::{Handback, LeaseLost, Requested};
        let completed = || Outcome::Completed {
            result_text: Some("done".into()),
            result_data: None,
        };
        let failed = || Outcome::Failed {
            error: "boom".into(),
        };
        let reported_failed = Report::Failed {
            error: "boom".into(),
        };
        let sigterm = stopped(StopSignal::Sigterm);
        let table = [
            (completed(), None, Report::Completed),
            (completed(), Some(Requested), Report::Completed),
            // Finished before the drain deadline took it: still completed.
            (completed(), Some(Handback), Report::Completed),
            (failed(), None, reported_failed.clone()),
            (failed(), Some(Requested), reported_failed.clone()),
            (failed(), Some(Handback), Report::Release),
            (Outcome::Stopped, None, sigterm.clone()),
            (Outcome::Stopped, Some(Requested), sigterm.clone()),
            (Outcome::Stopped, Some(Handback), Report::Release),
            // Never sent (a lost lease reports nothing), but still a stop by signal.
            (Outcome::Stopped, Some(LeaseLost), sigterm),
            (failed(), Some(LeaseLost), reported_failed),
        ];
        for (outcome, reason, want) in table {
            let what = format!("{outcome:?} after {reason:?}");
            assert_eq!(Report::of_outcome(outcome, reason), want, "{what}");
        }
    }
}
