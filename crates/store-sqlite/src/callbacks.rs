//! `async_callback` bookkeeping on SQLite: a child's callback is recorded in the
//! transaction that ends it, and marked delivered in the transaction that creates its
//! parent's resume run. The rules are `aof_store::callbacks`.

use async_trait::async_trait;
use chrono::Utc;
use rusqlite::OptionalExtension;

use aof_core::SessionStatus;
use aof_store::{callbacks, rows, statements, CallbackStore, PendingCallback, StoreResult};
use aof_wire::Session;

use crate::{internal, ms, rows::mark, SqliteStore, Tx};

/// Called whenever session `s` changes status (`s` is the new row): records the
/// callback its parent is owed, if any, for its latest run if that asked for it.
pub(crate) fn record_if_callback(
    w: &mut Tx<'_>,
    s: &Session,
    status: SessionStatus,
) -> StoreResult<()> {
    let Some(parent) = callbacks::owed_to(s, status) else {
        return Ok(());
    };
    w.prepare_cached(
        "INSERT OR IGNORE INTO callbacks(parent_session_id, child_session_id, child_run_id, status, created_ms) \
         SELECT ?1, session_id, run_id, ?2, ?3 \
         FROM (SELECT session_id, run_id, execution_mode FROM runs WHERE session_id = ?4 ORDER BY rowid DESC LIMIT 1) \
         WHERE execution_mode = 'async_callback'",
    )
    .and_then(|mut st| st.execute((parent, status.as_str(), ms(Utc::now()), &s.session_id)))
    .map_err(internal)?;
    Ok(())
}

/// Inside the resume run's transaction: marks callbacks `ids` of `session_id` delivered
/// by `run_id`, if `aof_store::callbacks` allows.
pub(crate) fn mark_delivered(
    w: &mut Tx<'_>,
    session_id: &str,
    run_id: &str,
    ids: &[i64],
) -> StoreResult<()> {
    let live: Option<String> = w
        .prepare_cached(&statements::live_run(mark))
        .and_then(|mut st| st.query_row([session_id], |r| r.get("run_id")).optional())
        .map_err(internal)?;
    callbacks::check_deliverable(session_id, live.as_deref())?;
    for id in ids {
        let n = w
            .prepare_cached(&statements::callback_delivered(mark))
            .and_then(|mut st| st.execute((run_id, id, session_id)))
            .map_err(internal)?;
        callbacks::check_marked(*id, session_id, n as u64)?;
    }
    Ok(())
}

#[async_trait]
impl CallbackStore for SqliteStore {
    async fn pending_callbacks(&self, parent: &str) -> StoreResult<Vec<PendingCallback>> {
        let parent = parent.to_string();
        // Asked after every session end: a hot read.
        self.read_hot(move |c| {
            c.prepare_cached(&statements::pending_callbacks(mark))
                .and_then(|mut st| st.query_map([parent], |r| rows::callback(r))?.collect())
                .map_err(internal)
        })
        .await
    }

    async fn callback_parents(&self) -> StoreResult<Vec<String>> {
        self.read(|c| {
            c.prepare_cached(statements::CALLBACK_PARENTS)
                .and_then(|mut st| st.query_map([], |r| r.get("parent_session_id"))?.collect())
                .map_err(internal)
        })
        .await
    }
}
