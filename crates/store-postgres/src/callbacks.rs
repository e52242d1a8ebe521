//! `async_callback` bookkeeping on PostgreSQL: a child's callback is recorded in the
//! transaction that ends it, and marked delivered in the transaction that creates its
//! parent's resume run. The rules are `aof_store::callbacks`.

use async_trait::async_trait;
use chrono::Utc;

use aof_core::SessionStatus;
use aof_store::{callbacks, rows, statements, CallbackStore, PendingCallback, StoreResult};
use aof_wire::Session;

use crate::{
    internal, ms,
    rows::{all, mark},
    PgStore, WriteTx,
};

/// Called whenever session `s` changes status (`s` is the new row): records the
/// callback its parent is owed, if any, for its latest run if that asked for it.
pub(crate) async fn record_if_callback(
    w: &mut WriteTx<'_>,
    s: &Session,
    status: SessionStatus,
) -> StoreResult<()> {
    let Some(parent) = callbacks::owed_to(s, status) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO callbacks(parent_session_id, child_session_id, child_run_id, status, created_ms) \
         SELECT $1, session_id, run_id, $2, $3 \
         FROM (SELECT session_id, run_id, execution_mode FROM runs WHERE session_id = $4 ORDER BY rid DESC LIMIT 1) r \
         WHERE execution_mode = 'async_callback' \
         ON CONFLICT (child_run_id) DO NOTHING",
    )
    .bind(parent)
    .bind(status.as_str())
    .bind(ms(Utc::now()))
    .bind(&s.session_id)
    .execute(&mut *w.tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Inside the resume run's transaction: marks callbacks `ids` of `session_id` delivered
/// by `run_id`, if `aof_store::callbacks` allows.
pub(crate) async fn mark_delivered(
    w: &mut WriteTx<'_>,
    session_id: &str,
    run_id: &str,
    ids: &[i64],
) -> StoreResult<()> {
    let live: Option<String> = sqlx::query_scalar(&statements::live_run(mark))
        .bind(session_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
    callbacks::check_deliverable(session_id, live.as_deref())?;
    for id in ids {
        let n = sqlx::query(&statements::callback_delivered(mark))
            .bind(run_id)
            .bind(id)
            .bind(session_id)
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        callbacks::check_marked(*id, session_id, n.rows_affected())?;
    }
    Ok(())
}

#[async_trait]
impl CallbackStore for PgStore {
    async fn pending_callbacks(&self, parent: &str) -> StoreResult<Vec<PendingCallback>> {
        let rows = sqlx::query(&statements::pending_callbacks(mark))
            .bind(parent)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        all(rows, rows::callback)
    }

    async fn callback_parents(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar(statements::CALLBACK_PARENTS)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)
    }
}
