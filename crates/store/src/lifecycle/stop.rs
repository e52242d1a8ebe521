//! Stops: of one run, and of a session (its live run, or an idle session whose runner
//! may still hold a process). The wording of each answer is in `crate::stops`.

use aof_core::{RunEvent, RunStatus, SessionStatus};
use chrono::{DateTime, Utc};

use super::{illegal, Plan, RunWrite, Step};
use crate::{
    stops::{self, IDLE_STOP_OWED},
    Illegal, RunRecord, StopOutcome, StoreError, StoreResult,
};

/// The reference's stop rules for one run.
pub fn on_stop_run(rec: &RunRecord, now: DateTime<Utc>) -> StoreResult<(Plan, StopOutcome)> {
    let answer = |status: &str, message: Option<&str>| StopOutcome {
        ok: true,
        session_id: rec.run.session_id.clone(),
        run_id: Some(rec.run.run_id.clone()),
        status: status.to_string(),
        message: message.map(str::to_string),
    };
    let (write, session, answer) = match rec.status {
        RunStatus::Stopping => return Ok((Plan::default(), answer("stopping", None))),
        RunStatus::Pending => (
            RunWrite::Cancel,
            SessionStatus::Stopped,
            answer("stopped", Some("Run cancelled before execution")),
        ),
        RunStatus::Claimed | RunStatus::Running => {
            if rec.run.runner_id.is_none() {
                return Err(StoreError::Illegal(Illegal::NotClaimed));
            }
            (
                RunWrite::AskStop,
                SessionStatus::Stopping,
                answer("stopping", None),
            )
        }
        st => return Err(StoreError::Illegal(Illegal::NotStoppable(st))),
    };
    let next = rec.status.on(RunEvent::StopRequested).map_err(illegal)?;
    let plan = Plan::default()
        .run(rec, next, write, now)
        .session(rec, session);
    Ok((plan, answer))
}

/// What a runner's row says about it, for idle-session stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerPresence {
    pub last_heartbeat: DateTime<Utc>,
    /// Registered with an `instance_id` (an AOF runner; the reference's sends none).
    pub has_instance_id: bool,
    /// Marked for deregistration.
    pub deregister: bool,
}

/// What `stop_session` loads before deciding.
#[derive(Debug, Clone)]
pub struct SessionStopView {
    pub session_id: String,
    pub session_status: SessionStatus,
    /// The live run if there is one, else the latest run.
    pub latest: Option<RunRecord>,
    /// `runs.stop_delivered` of `latest`.
    pub latest_stop_delivered: i64,
    /// The row of `latest`'s runner, if it is still registered.
    pub runner: Option<RunnerPresence>,
    pub now: DateTime<Utc>,
    /// A runner silent this long is stale.
    pub stale_after: chrono::Duration,
}

impl SessionStopView {
    /// Whose row a backend loads as `runner`: the latest run's runner, once that run
    /// ended (an idle session may live on in its process). A live run's stop never
    /// reads it.
    pub fn runner_to_load(latest: Option<&RunRecord>) -> Option<&str> {
        latest
            .filter(|r| r.status.is_terminal())
            .and_then(|r| r.run.runner_id.as_deref())
    }

    /// Whether the latest run's runner may still hold a process for the idle session:
    /// registered, not being removed, heard from recently, and a reference runner. An
    /// AOF runner starts a process per turn and holds none between turns: its idle
    /// sessions stop at once.
    fn keeps_idle_process(&self) -> bool {
        self.runner.is_some_and(|r| {
            !r.has_instance_id && !r.deregister && self.now - r.last_heartbeat < self.stale_after
        })
    }
}

/// The reference's stop rules for a session.
pub fn on_stop_session(v: &SessionStopView) -> StoreResult<(Plan, StopOutcome)> {
    let sid = v.session_id.as_str();
    let ended = v.latest.as_ref().filter(|r| r.status.is_terminal());
    let session = |status| Step::Session {
        session_id: sid.to_string(),
        status,
    };
    let delivered = |rec: &RunRecord, value| Step::StopDelivered {
        run_id: rec.run.run_id.clone(),
        value,
    };
    // Stopping with no live run: an idle session's stop, which its runner ends. Asked
    // again once the runner has been told (or is gone), the stop ends it here: a runner
    // that lost the process (restarted) never reports, and the session must not stay
    // stopping for ever.
    if let Some(rec) = ended.filter(|_| v.session_status == SessionStatus::Stopping) {
        if v.latest_stop_delivered != IDLE_STOP_OWED || !v.keeps_idle_process() {
            let steps = vec![delivered(rec, 1), session(SessionStatus::Stopped)];
            return Ok((
                Plan { steps },
                stops::idle_stop_abandoned(sid, &rec.run.run_id),
            ));
        }
    }
    if let Some(done) = stops::settled(sid, v.session_status) {
        return Ok((Plan::default(), done));
    }
    // An idle session may still have a process on its runner (the reference's
    // persistent executors): the stop goes there, and the runner reports the end.
    if let Some(rec) = ended.filter(|_| v.session_status == SessionStatus::Idle) {
        if v.keeps_idle_process() {
            let steps = vec![
                delivered(rec, IDLE_STOP_OWED),
                session(SessionStatus::Stopping),
            ];
            return Ok((
                Plan { steps },
                stops::idle_stop_queued(sid, &rec.run.run_id),
            ));
        }
    }
    match &v.latest {
        Some(rec) if !rec.status.is_terminal() => on_stop_run(rec, v.now),
        latest => Ok((
            Plan {
                steps: vec![session(SessionStatus::Stopped)],
            },
            stops::no_live_run(
                sid,
                latest.as_ref().map(|r| (r.run.run_id.as_str(), r.status)),
            ),
        )),
    }
}
