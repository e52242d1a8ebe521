//! The audit log table: batched appends through the group-commit writer (one job per
//! batch), filtered reads on the reader pool, purge by age.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params_from_iter, types::Value};

use aof_store::{audit::AuditBind, rows, AuditQuery, AuditStore, NewAuditEntry, StoreResult};
use aof_wire::audit::AuditEntry;

use crate::{internal, ms, SqliteStore};

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = entries.to_vec();
        // One job for the whole batch; one prepared row insert per entry (no statement
        // to build and parse per batch, no bind limit to chunk around).
        self.write(move |w| {
            let mut st = w
                .prepare_cached(
                    "INSERT INTO audit_log(at_ms, actor_kind, actor_id, actor_name, role, action, \
                     target, status, request_id, remote_addr) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .map_err(internal)?;
            for e in &entries {
                st.execute(rusqlite::params![
                    ms(e.at),
                    e.actor_kind.as_str(),
                    e.actor_id,
                    e.actor_name,
                    e.role.map(|r| r.as_str()),
                    e.action,
                    e.target,
                    i64::from(e.status),
                    e.request_id,
                    e.remote_addr,
                ])
                .map_err(internal)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut sql = String::from("SELECT * FROM audit_log WHERE 1 = 1");
        let mut binds: Vec<Value> = Vec::new();
        for (clause, bind) in q.sql_clauses() {
            sql.push_str(&clause);
            match bind {
                Some(AuditBind::Text(v)) => binds.push(Value::Text(v.to_string())),
                Some(AuditBind::Int(v)) => binds.push(Value::Integer(v)),
                None => continue,
            }
            sql.push('?');
        }
        self.read(move |c| {
            // Built per query (the filters vary): not worth a slot in the statement cache.
            c.prepare(&sql)
                .and_then(|mut st| {
                    st.query_map(params_from_iter(binds), |r| rows::audit_entry(r))?
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
