//! `async_callback` bookkeeping: a child's callback is recorded in the transaction that
//! ends it, and marked delivered in the transaction that creates its parent's resume run.

use chrono::Utc;
use rusqlite::OptionalExtension;

use aof_core::SessionStatus;
use aof_store::{PendingCallback, StoreError, StoreResult};

use crate::{internal, ms, rows::bad_column, SqliteStore, Tx};

/// Called whenever a session's status changes. When it ends (finished, idle, failed,
/// stopped) and its latest run asked for `async_callback` under a parent, records one
/// callback for that run; a second end of the same run records nothing.
pub(crate) fn record_if_callback(
    w: &mut Tx<'_>,
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
    w.prepare_cached(
        "INSERT OR IGNORE INTO callbacks(parent_session_id, child_session_id, child_run_id, status, created_ms) \
         SELECT s.parent_session_id, r.session_id, r.run_id, ?, ? \
         FROM (SELECT session_id, run_id, execution_mode FROM runs WHERE session_id = ? ORDER BY rowid DESC LIMIT 1) r \
         JOIN sessions s ON s.session_id = r.session_id \
         WHERE r.execution_mode = 'async_callback' AND s.parent_session_id IS NOT NULL \
           AND s.parent_session_id <> s.session_id",
    )
    .and_then(|mut st| st.execute((status.as_str(), ms(Utc::now()), session_id)))
    .map_err(internal)?;
    Ok(())
}

/// Inside the resume run's transaction: the session must be idle (no live run) and every
/// callback still undelivered; then they are all marked as delivered by `run_id`.
pub(crate) fn mark_delivered(
    w: &mut Tx<'_>,
    session_id: &str,
    run_id: &str,
    ids: &[i64],
) -> StoreResult<()> {
    let live: Option<String> = w
        .prepare_cached(
            "SELECT run_id FROM runs WHERE session_id = ? \
             AND status IN ('pending','claimed','running','stopping') LIMIT 1",
        )
        .and_then(|mut st| st.query_row([session_id], |r| r.get("run_id")).optional())
        .map_err(internal)?;
    if let Some(live) = live {
        return Err(StoreError::Busy(format!(
            "Session '{session_id}' has run {live} in flight; callbacks wait until it ends"
        )));
    }
    for id in ids {
        let n = w
            .prepare_cached(
                "UPDATE callbacks SET delivered_run_id = ? \
                 WHERE id = ? AND parent_session_id = ? AND delivered_run_id IS NULL",
            )
            .and_then(|mut st| st.execute((run_id, id, session_id)))
            .map_err(internal)?;
        if n != 1 {
            return Err(StoreError::Busy(format!(
                "callback {id} for session '{session_id}' was delivered already"
            )));
        }
    }
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn pending_callbacks_impl(
        &self,
        parent: &str,
    ) -> StoreResult<Vec<PendingCallback>> {
        let parent = parent.to_string();
        // Asked after every session end: a hot read.
        self.read_hot(move |c| {
            c.prepare_cached(
                "SELECT id, parent_session_id, child_session_id, child_run_id, status, created_ms \
                 FROM callbacks WHERE parent_session_id = ? AND delivered_run_id IS NULL ORDER BY id",
            )
            .and_then(|mut st| {
                st.query_map([parent], |r| {
                    let status: String = r.get("status")?;
                    Ok(PendingCallback {
                        id: r.get("id")?,
                        parent_session_id: r.get("parent_session_id")?,
                        child_session_id: r.get("child_session_id")?,
                        child_run_id: r.get("child_run_id")?,
                        status: status.parse().map_err(|e: String| bad_column("status", e))?,
                        created_at: crate::keys::at(r.get("created_ms")?),
                    })
                })?
                .collect()
            })
            .map_err(internal)
        })
        .await
    }

    pub(crate) async fn callback_parents_impl(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(
                "SELECT DISTINCT parent_session_id FROM callbacks WHERE delivered_run_id IS NULL",
            )
            .and_then(|mut st| st.query_map([], |r| r.get("parent_session_id"))?.collect())
            .map_err(internal)
        })
        .await
    }
}
