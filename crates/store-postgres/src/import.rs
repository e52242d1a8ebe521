//! `ImportStore`: a session from another system stored as it was, with its runs (final
//! statuses only, no lease) and its events (appended in order, one idempotency key
//! each), in one write transaction. The rows are `aof_store::import`'s.

use async_trait::async_trait;

use aof_store::{
    import::{insert_sql, Row},
    ImportStore, ImportedSession, StoreResult,
};
use aof_wire::sse;

use crate::{events::append_in_tx, internal, rows, PgStore, WriteTx};

/// Inserts `row` unless `key` is taken; the rows inserted (0 or 1).
async fn insert(w: &mut WriteTx<'_>, table: &str, key: &str, row: Row) -> StoreResult<u64> {
    let sql = insert_sql(table, key, &row, |i| format!("${i}"));
    let q = rows::bind_all(sqlx::query(&sql), row.into_iter().map(|(_, v)| v).collect());
    let done = q.execute(&mut *w.tx).await.map_err(internal)?;
    Ok(done.rows_affected())
}

#[async_trait]
impl ImportStore for PgStore {
    async fn import_session(&self, imp: ImportedSession) -> StoreResult<bool> {
        let mut w = self.begin().await?;
        let sid = &imp.session.session_id;
        if insert(&mut w, "sessions", "session_id", imp.session_row()).await? == 0 {
            return Ok(false);
        }
        for row in imp.run_rows().map_err(internal)? {
            insert(&mut w, "runs", "run_id", row).await?;
        }
        for (i, event) in imp.events.iter().enumerate() {
            let key = imp.event_key(i);
            append_in_tx(&mut w, sid, event.clone(), None, Some(&key)).await?;
        }
        if let Some(stored) = rows::load_session(&mut w.tx, sid, rows::Lock::None).await? {
            rows::feed_session(&mut w, sse::SESSION_CREATED, &stored).await?;
        }
        w.commit().await?;
        Ok(true)
    }
}
