//! The audit log table: batched appends through the group-commit writer (one job per
//! batch), filtered reads on the reader pool, purge by age.

use aof_store::{rows, statements, AuditQuery, AuditStore, NewAuditEntry, StoreResult};
use aof_wire::audit::AuditEntry;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    internal, ms,
    rows::{mark, values},
    SqliteStore,
};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = entries.to_vec();
        // One job for the whole batch; one cached single-row insert per entry (no
        // statement to parse per batch size, no bind limit to chunk around).
        self.write(move |w| {
            for e in &entries {
                let (sql, vals) = statements::audit_insert(std::slice::from_ref(e), mark);
                w.prepare_cached(&sql)
                    .and_then(|mut st| st.execute(values(vals)))
                    .map_err(internal)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let (sql, vals) = statements::audit_list(q, mark);
        self.read(move |c| {
            // Built per query (the filters vary): not worth a slot in the statement cache.
            c.prepare(&sql)
                .and_then(|mut st| {
                    st.query_map(values(vals), |r| rows::audit_entry(r))?
                        .collect()
                })
                .map_err(internal)
        })
        .await
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let sql = "DELETE FROM audit_log WHERE at_ms < ?";
        Ok(self.exec(sql, [ms(before)]).await? as u64)
    }
}
