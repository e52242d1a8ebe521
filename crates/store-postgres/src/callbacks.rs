//! `async_callback` bookkeeping: a child's callback is recorded in the transaction that
//! ends it, and marked delivered in the transaction that creates its parent's resume run.

use chrono::Utc;
use sqlx::Row;

use aof_core::SessionStatus;
use aof_store::{PendingCallback, StoreError, StoreResult};

use crate::{internal, ms, PgStore, WriteTx};

/// Called whenever a session's status changes. When it ends (finished, idle, failed,
/// stopped) and its latest run asked for `async_callback` under a parent, records one
/// callback for that run; a second end of the same run records nothing.
pub(crate) async fn record_if_callback(
    w: &mut WriteTx<'_>,
    session_id: &str,
    status: SessionStatus,
) -> StoreResult<()> {
    if !matches!(
        status,
        SessionStatus::Finished
            | SessionStatus::Idle
            | SessionStatus::Failed
            | SessionStatus::Stopped
    ) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO callbacks(parent_session_id, child_session_id, child_run_id, status, created_ms) \
         SELECT s.parent_session_id, r.session_id, r.run_id, $1, $2 \
         FROM (SELECT session_id, run_id, execution_mode FROM runs WHERE session_id = $3 ORDER BY rid DESC LIMIT 1) r \
         JOIN sessions s ON s.session_id = r.session_id \
         WHERE r.execution_mode = 'async_callback' AND s.parent_session_id IS NOT NULL \
           AND s.parent_session_id <> s.session_id \
         ON CONFLICT (child_run_id) DO NOTHING",
    )
    .bind(status.as_str())
    .bind(ms(Utc::now()))
    .bind(session_id)
    .execute(&mut *w.tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Inside the resume run's transaction: the session must be idle (no live run) and every
/// callback still undelivered; then they are all marked as delivered by `run_id`.
pub(crate) async fn mark_delivered(
    w: &mut WriteTx<'_>,
    session_id: &str,
    run_id: &str,
    ids: &[i64],
) -> StoreResult<()> {
    let live: Option<String> = sqlx::query(
        "SELECT run_id FROM runs WHERE session_id = $1 \
         AND status IN ('pending','claimed','running','stopping') LIMIT 1",
    )
    .bind(session_id)
    .fetch_optional(&mut *w.tx)
    .await
    .map_err(internal)?
    .map(|r| r.get("run_id"));
    if let Some(live) = live {
        return Err(StoreError::Busy(format!(
            "Session '{session_id}' has run {live} in flight; callbacks wait until it ends"
        )));
    }
    for id in ids {
        let n = sqlx::query(
            "UPDATE callbacks SET delivered_run_id = $1 \
             WHERE id = $2 AND parent_session_id = $3 AND delivered_run_id IS NULL",
        )
        .bind(run_id)
        .bind(id)
        .bind(session_id)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?
        .rows_affected();
        if n != 1 {
            return Err(StoreError::Busy(format!(
                "callback {id} for session '{session_id}' was delivered already"
            )));
        }
    }
    Ok(())
}

impl PgStore {
    pub(crate) async fn pending_callbacks_impl(
        &self,
        parent: &str,
    ) -> StoreResult<Vec<PendingCallback>> {
        let rows = sqlx::query(
            "SELECT id, parent_session_id, child_session_id, child_run_id, status, created_ms \
             FROM callbacks WHERE parent_session_id = $1 AND delivered_run_id IS NULL ORDER BY id",
        )
        .bind(parent)
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        rows.iter()
            .map(|r| {
                let status: String = r.get("status");
                Ok(PendingCallback {
                    id: r.get("id"),
                    parent_session_id: r.get("parent_session_id"),
                    child_session_id: r.get("child_session_id"),
                    child_run_id: r.get("child_run_id"),
                    status: status
                        .parse()
                        .map_err(|e: String| internal(anyhow::anyhow!(e)))?,
                    created_at: crate::keys::at(r.get("created_ms")),
                })
            })
            .collect()
    }

    pub(crate) async fn callback_parents_impl(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT parent_session_id FROM callbacks WHERE delivered_run_id IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        Ok(rows.iter().map(|r| r.get("parent_session_id")).collect())
    }
}
