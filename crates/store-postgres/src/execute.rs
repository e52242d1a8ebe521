//! Executes a lifecycle `Plan` (`aof_store::lifecycle`) in a write transaction: one
//! statement per step, in the plan's order. The rules are in the plan; this module only
//! knows the SQL.

use aof_store::{
    lifecycle::{changed_concurrently, run_failed_data, Plan, Step},
    rows::run,
    statements, RunRecord, StoreResult,
};
use aof_wire::sse;
use sqlx::PgPool;

use crate::{
    events::append_in_tx,
    internal,
    rows::{bind_all, mark, set_session_status},
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
                // The compare-and-set (`aof_store::statements`): no row, no such status.
                let (sql, vals) = statements::run_write(&run_id, from, to, &write, at, mark);
                let q = bind_all(sqlx::query(&sql), vals);
                let new = q.fetch_optional(&mut *w.tx).await.map_err(internal)?;
                let new = new.ok_or_else(|| changed_concurrently(&run_id, from))?;
                row = Some(run(&new)?);
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
            Step::Approval(write) => crate::approvals::write(w, &write).await?,
        }
    }
    Ok(row)
}

/// Executes `on_claim`'s plan (one run write) as one autocommit statement: the claimed
/// row with its lease token, or `None` when the run was taken by someone else (no
/// error: the caller tries the next one). `skip_locked`: a run another transaction holds
/// counts as taken instead of being waited for. A claim appends no feed item, so it
/// needs no transaction of its own.
pub(crate) async fn claim(
    pool: &PgPool,
    plan: Plan,
    skip_locked: bool,
) -> StoreResult<Option<RunRecord>> {
    let mut steps = plan.steps.into_iter();
    let (
        Some(Step::Run {
            run_id,
            from,
            to,
            write,
            at,
        }),
        None,
    ) = (steps.next(), steps.next())
    else {
        return Err(internal(anyhow::anyhow!("a claim plan is one run write")));
    };
    let cas = match skip_locked {
        true => statements::run_write_skip_locked,
        false => statements::run_write,
    };
    let (sql, vals) = cas(&run_id, from, to, &write, at, mark);
    let row = bind_all(sqlx::query(&sql), vals).fetch_optional(pool).await;
    let Some(row) = row.map_err(internal)? else {
        return Ok(None);
    };
    let mut rec = run(&row)?;
    rec.run.lease_token = rec.lease_token.clone();
    Ok(Some(rec))
}
