//! The run lifecycle's consequences, written once for every backend.
//!
//! `aof_core::RunStatus::on` says which status a run moves to; this module says
//! everything that move *causes*: who may cause it (fencing), what a retried report
//! answers, the run row's compare-and-set, the events appended, the session's status,
//! the `run_failed` feed item. Each `on_*` function takes the rows a backend loaded and
//! returns a [`Plan`]; the backend executes the plan's steps in order, in the same
//! transaction it loaded them in (see `execute` in each store crate). Nothing here
//! touches a database, so every rule is table-tested without one (`tests.rs`).

mod stop;
#[cfg(test)]
mod tests;

use aof_core::{RunEvent, RunStatus, SessionStatus};
use aof_wire::{event::types, Event};
use chrono::{DateTime, Utc};

use crate::{
    Conflict, Illegal, LeasePolicy, Resolved, RunRecord, RunReport, StoreError, StoreResult, Writer,
};
pub use stop::{on_stop_run, on_stop_session, RunnerPresence, SessionStopView};

/// How a run's row changes. Always a compare-and-set on the status the plan was made
/// from: a row that moved meanwhile refuses the whole plan (`LeaseConflict`).
#[derive(Debug, Clone, PartialEq)]
pub enum RunWrite {
    /// `status`; `started_at` set unless it was.
    Start,
    /// A terminal status: `completed_at`, `error` (if given; an earlier one stays
    /// otherwise), no lease expiry. `revoke`: the coordinator resolved the run without
    /// its runner, so the lease token is cleared too and later writes with it are stale.
    /// Otherwise the token stays, so the runner's retried report still matches.
    Finish { error: Option<String>, revoke: bool },
    /// Back to `pending` for another runner: runner, claim time and lease cleared.
    Requeue,
    /// A pending run cancelled by a stop: `completed_at`.
    Cancel,
    /// A held run asked to stop: the stop is owed to its runner (`stop_delivered = 0`).
    AskStop,
    /// Taken by `runner_id` with a new lease: `attempt + 1`, no stop owed.
    Claim {
        runner_id: String,
        lease_token: String,
        lease_expires_at: DateTime<Utc>,
    },
}

/// One write of a plan.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `UPDATE runs … WHERE run_id = ? AND status = from`, returning the new row.
    Run {
        run_id: String,
        from: RunStatus,
        to: RunStatus,
        write: RunWrite,
        at: DateTime<Utc>,
    },
    /// Appends `event` to its session's log, attributed to `run_id`.
    Event { run_id: String, event: Box<Event> },
    /// Sets the session's status (and feeds `session_updated` if it changed).
    Session {
        session_id: String,
        status: SessionStatus,
    },
    /// Records a child run's parent on its session.
    Parent { session_id: String, parent: String },
    /// The `run_failed` feed item (its data: [`run_failed_data`]).
    RunFailed {
        session_id: String,
        run_id: String,
        error: String,
    },
    /// `runs.stop_delivered` of an ended run (idle-session stops; see `stops`).
    StopDelivered { run_id: String, value: i64 },
    /// An approval row's insert or decision (`crate::approvals`).
    Approval(Box<crate::approvals::ApprovalWrite>),
}

/// The data of the `run_failed` feed item of [`Step::RunFailed`].
pub fn run_failed_data(session_id: &str, run_id: &str, error: &str) -> serde_json::Value {
    serde_json::json!({"run_id": run_id, "error": error, "session_id": session_id})
}

/// The writes one decision causes, in the order they must happen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    fn run(mut self, rec: &RunRecord, to: RunStatus, write: RunWrite, at: DateTime<Utc>) -> Plan {
        self.steps.push(Step::Run {
            run_id: rec.run.run_id.clone(),
            from: rec.status,
            to,
            write,
            at,
        });
        self
    }

    fn event(mut self, rec: &RunRecord, event: Event) -> Plan {
        self.steps.push(Step::Event {
            run_id: rec.run.run_id.clone(),
            event: Box::new(event),
        });
        self
    }

    /// Session status last in every plan that ends a run: a follower that stops at it
    /// has seen every event.
    fn session(mut self, rec: &RunRecord, status: SessionStatus) -> Plan {
        self.steps.push(Step::Session {
            session_id: rec.run.session_id.clone(),
            status,
        });
        self
    }

    fn run_failed(mut self, rec: &RunRecord, error: &str) -> Plan {
        self.steps.push(Step::RunFailed {
            session_id: rec.run.session_id.clone(),
            run_id: rec.run.run_id.clone(),
            error: error.to_string(),
        });
        self
    }
}

/// One page of the run list from up to `limit + 1` rows (each with its row number, in
/// list order): the extra row only says that another page follows.
pub fn run_page(mut rows: Vec<(aof_wire::Run, i64)>, limit: i64) -> crate::RunPage {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = match more {
        true => rows.last().map(|(_, row)| *row),
        false => None,
    };
    crate::RunPage {
        runs: rows.into_iter().map(|(r, _)| r).collect(),
        next,
    }
}

pub fn illegal(e: aof_core::IllegalTransition) -> StoreError {
    StoreError::Illegal(Illegal::Transition(e))
}

/// The refusal when a plan's compare-and-set finds the run moved on.
pub fn changed_concurrently(run_id: &str, expected: RunStatus) -> StoreError {
    StoreError::LeaseConflict(Conflict::Moved {
        run_id: run_id.to_string(),
        expected,
    })
}

/// Whether a report must look the runner up: a live run held by this runner proves it
/// is registered (removing a runner fails its runs in the same transaction).
pub fn must_check_runner(rec: Option<&RunRecord>, who: &Writer) -> bool {
    !rec.is_some_and(|r| {
        r.run.runner_id.as_deref() == Some(who.runner_id.as_str()) && !r.status.is_terminal()
    })
}

/// A runner's report on run `rec` (loaded in the transaction; the runner is known to be
/// registered, see [`must_check_runner`]). `Ok(None)`: a repeat or old news, answered
/// with `rec` unchanged.
pub fn on_report(
    rec: &RunRecord,
    who: &Writer,
    report: &RunReport,
    now: DateTime<Utc>,
) -> StoreResult<Option<Plan>> {
    let run_id = &rec.run.run_id;
    if rec.run.runner_id.as_deref() != Some(who.runner_id.as_str()) {
        return Err(StoreError::LeaseConflict(Conflict::NotHeld {
            run_id: run_id.clone(),
            runner_id: who.runner_id.clone(),
        }));
    }
    if let Some(token) = &who.lease_token {
        if rec.lease_token.as_deref() != Some(token.as_str()) {
            return Err(StoreError::LeaseConflict(Conflict::StaleToken {
                run_id: run_id.clone(),
            }));
        }
    }
    let (event, target) = match report {
        RunReport::Started => (RunEvent::Started, RunStatus::Running),
        RunReport::Completed { .. } => (RunEvent::Completed, RunStatus::Completed),
        RunReport::Failed { .. } => (RunEvent::Failed, RunStatus::Failed),
        RunReport::Stopped { .. } => (RunEvent::Stopped, RunStatus::Stopped),
        // Not terminal when requeued, so a retried release is refused (the run is no
        // longer held) rather than answered as a repeat.
        RunReport::Released { requeue } => {
            let event = RunEvent::Released { requeue: *requeue };
            (event, rec.status.on(event).unwrap_or(RunStatus::Pending))
        }
    };
    // A retried report whose first copy was applied: answer the same, change nothing.
    if rec.status == target && target.is_terminal() {
        return Ok(None);
    }
    // Resolved without this runner (lease expired, runner removed — which clears the
    // token): its word is late. Resolved by this very lease: an illegal move.
    let own_lease = who.lease_token.is_none() || rec.lease_token == who.lease_token;
    if rec.status.is_terminal() && (rec.lease_token.is_none() || !own_lease) {
        return Err(StoreError::LeaseConflict(Conflict::Ended {
            run_id: run_id.clone(),
            status: rec.status,
        }));
    }
    // A reference runner (no lease token) may report a fast turn's end before its start
    // (its poller and supervisor race): the late start is old news, not an error.
    if who.lease_token.is_none() && matches!(report, RunReport::Started) && rec.status.is_terminal()
    {
        return Ok(None);
    }
    let next = rec.status.on(event).map_err(illegal)?;
    let sid = rec.run.session_id.as_str();
    let plan = Plan::default();
    Ok(Some(match report {
        RunReport::Started => {
            let mut plan = plan.run(rec, next, RunWrite::Start, now);
            if let Some(parent) = &rec.run.parent_session_id {
                plan.steps.push(Step::Parent {
                    session_id: sid.to_string(),
                    parent: parent.clone(),
                });
            }
            if rec.status == RunStatus::Running {
                plan
            } else {
                plan.event(rec, Event::new(types::RUN_START, sid))
                    .session(rec, SessionStatus::Running)
            }
        }
        RunReport::Completed { session_status } => {
            // Ended before its start was reported (a reference runner's fast turn): the
            // turn did start, and the history says so.
            let plan = match rec.status {
                RunStatus::Claimed => plan.event(rec, Event::new(types::RUN_START, sid)),
                _ => plan,
            };
            let done = Event {
                exit_code: Some(0),
                reason: Some("completed".into()),
                ..Event::new(types::RUN_COMPLETED, sid)
            };
            plan.run(rec, next, finish(None, false), now)
                .event(rec, done)
                .session(rec, session_status.unwrap_or(SessionStatus::Finished))
        }
        RunReport::Failed { error } => failed(plan, rec, next, error, false, true, now),
        RunReport::Stopped { signal } => stopped(plan, rec, next, signal, false, now),
        RunReport::Released { .. } => match next {
            RunStatus::Pending => requeue(plan, rec, now),
            RunStatus::Stopped => stopped(plan, rec, next, "released", true, now),
            _ => {
                let error = format!(
                    "Handed back unfinished by runner {} (shutting down); \
                     RUN_RECOVERY_MODE=none does not retry it",
                    who.runner_id
                );
                failed(plan, rec, next, &error, true, true, now)
            }
        },
    }))
}

fn finish(error: Option<&str>, revoke: bool) -> RunWrite {
    RunWrite::Finish {
        error: error.map(str::to_string),
        revoke,
    }
}

/// Ends the run failed with `error`, its session too, and feeds `run_failed`; with
/// `event`, a `run_failed` event in the session's log first.
fn failed(
    plan: Plan,
    rec: &RunRecord,
    next: RunStatus,
    error: &str,
    revoke: bool,
    event: bool,
    now: DateTime<Utc>,
) -> Plan {
    let plan = plan.run(rec, next, finish(Some(error), revoke), now);
    if event {
        let ev = Event {
            error: Some(error.to_string()),
            reason: Some("failed".into()),
            ..Event::new(types::RUN_FAILED, &rec.run.session_id)
        };
        plan.event(rec, ev)
            .run_failed(rec, error)
            .session(rec, SessionStatus::Failed)
    } else {
        // The sweeps' order (no event): session first, then the feed item.
        plan.session(rec, SessionStatus::Failed)
            .run_failed(rec, error)
    }
}

fn stopped(
    plan: Plan,
    rec: &RunRecord,
    next: RunStatus,
    reason: &str,
    revoke: bool,
    now: DateTime<Utc>,
) -> Plan {
    let ev = Event {
        reason: Some(reason.to_string()),
        ..Event::new(types::RUN_STOPPED, &rec.run.session_id)
    };
    plan.run(rec, next, finish(None, revoke), now)
        .event(rec, ev)
        .session(rec, SessionStatus::Stopped)
}

fn requeue(plan: Plan, rec: &RunRecord, now: DateTime<Utc>) -> Plan {
    plan.run(rec, RunStatus::Pending, RunWrite::Requeue, now)
        .session(rec, SessionStatus::Pending)
}

fn resolved(rec: &RunRecord, to: RunStatus) -> Resolved {
    Resolved {
        run_id: rec.run.run_id.clone(),
        session_id: rec.run.session_id.clone(),
        from: rec.status,
        to,
    }
}

/// A held run whose lease ran out: requeued, stopped (a stop was asked) or failed, as
/// `policy` says. No event: nobody reported anything.
pub fn on_lease_expired(
    rec: &RunRecord,
    policy: &LeasePolicy,
    now: DateTime<Utc>,
) -> StoreResult<(Plan, Resolved)> {
    let requeue_it = policy.recovery.requeue(rec.status);
    let next = rec
        .status
        .on(RunEvent::LeaseExpired {
            requeue: requeue_it,
        })
        .map_err(illegal)?;
    let plan = match next {
        RunStatus::Pending => requeue(Plan::default(), rec, now),
        RunStatus::Stopped => Plan::default()
            .run(rec, next, finish(None, true), now)
            .session(rec, SessionStatus::Stopped),
        _ => failed(Plan::default(), rec, next, LEASE_EXPIRED, true, false, now),
    };
    Ok((plan, resolved(rec, next)))
}

pub const LEASE_EXPIRED: &str = "Lease expired: the runner stopped renewing it";
pub const NO_MATCH: &str = "No matching runner available within timeout";

/// A pending run no runner took before its `timeout_at`.
pub fn on_unmatched(rec: &RunRecord, now: DateTime<Utc>) -> StoreResult<(Plan, Resolved)> {
    let next = rec.status.on(RunEvent::NoMatchTimeout).map_err(illegal)?;
    let plan = failed(Plan::default(), rec, next, NO_MATCH, false, false, now);
    Ok((plan, resolved(rec, next)))
}

/// A run held by a runner that was removed (reaped or deregistered): failed with `error`.
pub fn on_runner_removed(
    rec: &RunRecord,
    error: &str,
    now: DateTime<Utc>,
) -> StoreResult<(Plan, Resolved)> {
    let next = rec.status.on(RunEvent::Failed).map_err(illegal)?;
    let plan = failed(Plan::default(), rec, next, error, true, false, now);
    Ok((plan, resolved(rec, next)))
}

/// Pending run `run_id` taken by `runner_id` with a lease until `now + ttl`.
pub fn on_claim(
    run_id: &str,
    runner_id: &str,
    ttl: chrono::Duration,
    now: DateTime<Utc>,
) -> StoreResult<Plan> {
    let to = RunStatus::Pending.on(RunEvent::Claim).map_err(illegal)?;
    let write = RunWrite::Claim {
        runner_id: runner_id.to_string(),
        lease_token: aof_core::new_lease_token(),
        lease_expires_at: now + ttl,
    };
    Ok(Plan {
        steps: vec![Step::Run {
            run_id: run_id.to_string(),
            from: RunStatus::Pending,
            to,
            write,
            at: now,
        }],
    })
}
