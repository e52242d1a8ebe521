//! Executes a lifecycle `Plan` (`aof_store::lifecycle`) in the writer's transaction:
//! one statement per step, in the plan's order. The rules are in the plan; this module
//! only knows the SQL.

use aof_store::{
    lifecycle::{changed_concurrently, run_failed_data, Plan, Step},
    rows::run,
    statements, Conflict, RunRecord, StoreError, StoreResult,
};
use aof_wire::sse;
use rusqlite::OptionalExtension;

use crate::{
    events::append_in_tx,
    internal,
    rows::{mark, set_session_status, values},
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
                // The compare-and-set (`aof_store::statements`): no row, no such status.
                let (sql, vals) = statements::run_write(&run_id, from, to, &write, at, mark);
                let new = w
                    .prepare_cached(&sql)
                    .and_then(|mut st| st.query_row(values(vals), |r| run(r)).optional())
                    .map_err(internal)?;
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
            Step::Approval(write) => crate::approvals::write(w, &write)?,
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
