//! Executes a lifecycle `Plan` (`aof_store::lifecycle`) in the writer's transaction:
//! one statement per step, in the plan's order. The rules are in the plan; this module
//! only knows the SQL.

use aof_core::RunStatus;
use aof_store::{
    lifecycle::{changed_concurrently, run_failed_data, Plan, RunWrite, Step},
    Conflict, RunRecord, StoreError, StoreResult,
};
use aof_wire::sse;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, ToSql};

use crate::{
    events::append_in_tx,
    internal, ms,
    rows::{run_from_row, set_session_status, ts, RUN_COLS},
    Tx,
};

/// Runs `plan`'s steps; returns the run's new row (its `Step::Run`'s RETURNING), if the
/// plan changes the run. A run that moved since the plan was made refuses the whole plan
/// (the job's error rolls its statements back).
pub(crate) fn execute(w: &mut Tx<'_>, plan: Plan) -> StoreResult<Option<RunRecord>> {
    let mut row = None;
    for step in plan.steps {
        match step {
            Step::Run {
                run_id,
                from,
                to,
                write,
                at,
            } => {
                let new = write_run(w, &run_id, from, to, &write, at)?;
                row = Some(new.ok_or_else(|| changed_concurrently(&run_id, from))?);
            }
            Step::Event { run_id, event } => {
                let sid = event.session_id.clone();
                append_in_tx(w, &sid, *event, Some(&run_id), None)?;
            }
            Step::Session { session_id, status } => {
                set_session_status(w, &session_id, status)?;
            }
            Step::Parent { session_id, parent } => {
                w.prepare_cached("UPDATE sessions SET parent_session_id = ? WHERE session_id = ?")
                    .and_then(|mut st| st.execute((parent, session_id)))
                    .map_err(internal)?;
            }
            Step::RunFailed {
                session_id,
                run_id,
                error,
            } => {
                let data = run_failed_data(&session_id, &run_id, &error);
                w.feed(sse::RUN_FAILED, Some(&session_id), data)?;
            }
            Step::StopDelivered { run_id, value } => {
                w.prepare_cached("UPDATE runs SET stop_delivered = ? WHERE run_id = ?")
                    .and_then(|mut st| st.execute((value, run_id)))
                    .map_err(internal)?;
            }
        }
    }
    Ok(row)
}

/// Executes `on_claim`'s plan (one run write): the claimed row with its lease token, or
/// `None` when the run was taken meanwhile (no error: the runner polls again).
pub(crate) fn execute_claim(w: &mut Tx<'_>, plan: Plan) -> StoreResult<Option<RunRecord>> {
    match execute(w, plan) {
        Ok(rec) => Ok(rec.map(|mut rec| {
            rec.run.lease_token = rec.lease_token.clone();
            rec
        })),
        // The claim plan's only conflict is its compare-and-set.
        Err(StoreError::LeaseConflict(Conflict::Moved { .. })) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The run row's compare-and-set on `from`: one statement per kind of write. `None`: no
/// row had that status.
fn write_run(
    w: &Tx<'_>,
    run_id: &str,
    from: RunStatus,
    to: RunStatus,
    write: &RunWrite,
    at: DateTime<Utc>,
) -> StoreResult<Option<RunRecord>> {
    let (to, from, at) = (to.as_str(), from.as_str(), ts(at));
    // ?1 the new status, ?2 the run, ?3 the status it must have; then each write's own.
    let cas = |set: &str, params: &[&dyn ToSql]| {
        w.prepare_cached(&format!(
            "UPDATE runs SET status = ?1, {set} WHERE run_id = ?2 AND status = ?3 \
             RETURNING {RUN_COLS}"
        ))
        .and_then(|mut st| st.query_row(params, run_from_row).optional())
        .map_err(internal)
    };
    match write {
        RunWrite::Start => cas(
            "started_at = COALESCE(started_at, ?4)",
            params![to, run_id, from, at],
        ),
        RunWrite::Finish { error, revoke } => cas(
            "completed_at = ?4, error = COALESCE(?5, error), lease_expires_ms = NULL, \
             lease_token = CASE WHEN ?6 THEN NULL ELSE lease_token END",
            params![to, run_id, from, at, error, revoke],
        ),
        RunWrite::Requeue => cas(
            "runner_id = NULL, claimed_at = NULL, lease_token = NULL, lease_expires_ms = NULL",
            params![to, run_id, from],
        ),
        RunWrite::Cancel => cas("completed_at = ?4", params![to, run_id, from, at]),
        RunWrite::AskStop => cas("stop_delivered = 0", params![to, run_id, from]),
        RunWrite::Claim {
            runner_id,
            lease_token,
            lease_expires_at,
        } => cas(
            "runner_id = ?5, claimed_at = ?4, attempt = attempt + 1, lease_token = ?6, \
             lease_expires_ms = ?7, stop_delivered = 0",
            params![
                to,
                run_id,
                from,
                at,
                runner_id,
                lease_token,
                ms(*lease_expires_at)
            ],
        ),
    }
}
