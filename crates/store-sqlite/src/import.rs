//! `ImportStore`: a session from another system stored as it was, with its runs (final
//! statuses only, no lease) and its events (appended in order, one idempotency key
//! each), in one write job. The rows are `aof_store::import`'s.

use async_trait::async_trait;
use rusqlite::OptionalExtension;

use aof_store::{
    import::{insert_sql, Row},
    ImportStore, ImportedSession, StoreResult,
};
use aof_wire::sse;

use crate::{
    events::append_in_tx,
    internal,
    rows::{self, values},
    SqliteStore, Tx,
};

/// Inserts `row` unless `key` is taken; the rows inserted (0 or 1).
fn insert(w: &Tx<'_>, table: &str, key: &str, row: Row) -> StoreResult<usize> {
    let sql = insert_sql(table, key, &row, |_| "?".into());
    let vals = row.into_iter().map(|(_, v)| v).collect();
    w.prepare_cached(&sql)
        .and_then(|mut st| st.execute(values(vals)))
        .map_err(internal)
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_session(&self, imp: ImportedSession) -> StoreResult<bool> {
        self.write(move |w| {
            let sid = &imp.session.session_id;
            if insert(w, "sessions", "session_id", imp.session_row())? == 0 {
                return Ok(false);
            }
            for row in imp.run_rows().map_err(internal)? {
                insert(w, "runs", "run_id", row)?;
            }
            for (i, event) in imp.events.iter().enumerate() {
                append_in_tx(w, sid, event.clone(), None, Some(&imp.event_key(i)))?;
            }
            if let Some(stored) = rows::load_session(w, sid)? {
                rows::feed_session(w, sse::SESSION_CREATED, &stored)?;
            }
            Ok(true)
        })
        .await
    }
}

/// True when `conn` holds the AOF reference coordinator's schema (its `sessions` and
/// `events` tables) and not ours (no `feed`). An `_sqlx_migrations` table may be there:
/// an AOF before this check ran its first migration on such a file and failed.
pub(crate) fn has_reference_schema(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    let table = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            [name],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    };
    let column = |t: &str, c: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT 1 FROM pragma_table_info('{t}') WHERE name = ?"),
            [c],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    };
    Ok(
        table("sessions")?
            && table("events")?
            && column("events", "event_type")?
            && !table("feed")?,
    )
}
