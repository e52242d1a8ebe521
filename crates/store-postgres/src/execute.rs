//! Executes a lifecycle `Plan` (`aof_store::lifecycle`) in a write transaction: one
//! statement per step, in the plan's order. The rules are in the plan; this module only
//! knows the SQL.

use aof_core::RunStatus;
use aof_store::{
    lifecycle::{changed_concurrently, run_failed_data, Plan, RunWrite, Step},
    Conflict, RunRecord, StoreError, StoreResult,
};
use aof_wire::sse;
use chrono::{DateTime, Utc};

use crate::{
    events::append_in_tx,
    internal, ms,
    rows::{run_from_row, set_session_status, ts, RUN_COLS},
    WriteTx,
};

/// Runs `plan`'s steps; returns the run's new row (its `Step::Run`'s RETURNING), if the
/// plan changes the run. A run that moved since the plan was made refuses the whole plan
/// (the caller's transaction is dropped, so nothing of it commits).
pub(crate) async fn execute(w: &mut WriteTx<'_>, plan: Plan) -> StoreResult<Option<RunRecord>> {
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
                let new = write_run(w, &run_id, from, to, &write, at).await?;
                row = Some(new.ok_or_else(|| changed_concurrently(&run_id, from))?);
            }
            Step::Event { run_id, event } => {
                let sid = event.session_id.clone();
                append_in_tx(w, &sid, *event, Some(&run_id), None).await?;
            }
            Step::Session { session_id, status } => {
                set_session_status(w, &session_id, status).await?;
            }
            Step::Parent { session_id, parent } => {
                sqlx::query("UPDATE sessions SET parent_session_id = $1 WHERE session_id = $2")
                    .bind(parent)
                    .bind(session_id)
                    .execute(&mut *w.tx)
                    .await
                    .map_err(internal)?;
            }
            Step::RunFailed {
                session_id,
                run_id,
                error,
            } => {
                let data = run_failed_data(&session_id, &run_id, &error);
                w.feed(sse::RUN_FAILED, Some(&session_id), data).await?;
            }
            Step::StopDelivered { run_id, value } => {
                sqlx::query("UPDATE runs SET stop_delivered = $1 WHERE run_id = $2")
                    .bind(value)
                    .bind(run_id)
                    .execute(&mut *w.tx)
                    .await
                    .map_err(internal)?;
            }
        }
    }
    Ok(row)
}

/// Executes `on_claim`'s plan (one run write): the claimed row with its lease token, or
/// `None` when the run was taken meanwhile (no error: the runner polls again).
pub(crate) async fn execute_claim(
    w: &mut WriteTx<'_>,
    plan: Plan,
) -> StoreResult<Option<RunRecord>> {
    match execute(w, plan).await {
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
async fn write_run(
    w: &mut WriteTx<'_>,
    run_id: &str,
    from: RunStatus,
    to: RunStatus,
    write: &RunWrite,
    at: DateTime<Utc>,
) -> StoreResult<Option<RunRecord>> {
    // $1 the new status, $2 the run, $3 the status it must have; then each write's own.
    let sql = |set: &str| {
        format!(
            "UPDATE runs SET status = $1, {set} WHERE run_id = $2 AND status = $3 \
             RETURNING {RUN_COLS}"
        )
    };
    let (sql, at) = (
        match write {
            RunWrite::Start => sql("started_at = COALESCE(started_at, $4)"),
            RunWrite::Finish { .. } => sql(
                "completed_at = $4, error = COALESCE($5, error), lease_expires_ms = NULL, \
                 lease_token = CASE WHEN $6 THEN NULL ELSE lease_token END",
            ),
            RunWrite::Requeue => sql(
                "runner_id = NULL, claimed_at = NULL, lease_token = NULL, lease_expires_ms = NULL",
            ),
            RunWrite::Cancel => sql("completed_at = $4"),
            RunWrite::AskStop => sql("stop_delivered = 0"),
            RunWrite::Claim { .. } => sql(
                "runner_id = $5, claimed_at = $4, attempt = attempt + 1, lease_token = $6, \
                 lease_expires_ms = $7, stop_delivered = 0",
            ),
        },
        ts(at),
    );
    let q = sqlx::query(&sql)
        .bind(to.as_str())
        .bind(run_id)
        .bind(from.as_str());
    let q = match write {
        RunWrite::Start | RunWrite::Cancel => q.bind(at),
        RunWrite::Finish { error, revoke } => q.bind(at).bind(error).bind(revoke),
        RunWrite::Requeue | RunWrite::AskStop => q,
        RunWrite::Claim {
            runner_id,
            lease_token,
            lease_expires_at,
        } => q
            .bind(at)
            .bind(runner_id)
            .bind(lease_token)
            .bind(ms(*lease_expires_at)),
    };
    let row = q.fetch_optional(&mut *w.tx).await.map_err(internal)?;
    row.as_ref().map(run_from_row).transpose()
}
