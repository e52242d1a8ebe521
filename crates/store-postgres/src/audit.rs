//! The audit log table: batched appends (one transaction per batch), filtered reads,
//! purge by age.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use aof_store::{rows, statements, AuditQuery, AuditStore, NewAuditEntry, StoreResult};
use aof_wire::audit::AuditEntry;

use crate::{
    internal, ms,
    rows::{all, bind_all, mark},
    PgStore,
};

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut w = self.begin().await?;
        // 10 binds per row; PostgreSQL allows 65535 per statement.
        for chunk in entries.chunks(1000) {
            let (sql, vals) = statements::audit_insert(chunk, mark);
            let q = bind_all(sqlx::query(&sql), vals);
            q.execute(&mut *w.tx).await.map_err(internal)?;
        }
        w.commit().await
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let (sql, vals) = statements::audit_list(q, mark);
        let q = bind_all(sqlx::query(&sql), vals);
        let rows = q.fetch_all(&self.pool).await.map_err(internal)?;
        all(rows, rows::audit_entry)
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let q = sqlx::query("DELETE FROM audit_log WHERE at_ms < $1").bind(ms(before));
        self.exec([q]).await
    }
}
