//! The audit log table: batched appends (one transaction per batch), filtered reads,
//! purge by age.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use aof_store::{audit::AuditBind, rows, AuditQuery, AuditStore, NewAuditEntry, StoreResult};
use aof_wire::audit::AuditEntry;

use crate::{internal, ms, rows::all, PgStore};

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut w = self.begin().await?;
        // 10 binds per row; PostgreSQL allows 65535 per statement.
        for chunk in entries.chunks(1000) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO audit_log(at_ms, actor_kind, actor_id, actor_name, role, action, \
                 target, status, request_id, remote_addr) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(ms(e.at))
                    .push_bind(e.actor_kind.as_str())
                    .push_bind(&e.actor_id)
                    .push_bind(&e.actor_name)
                    .push_bind(e.role.map(|r| r.as_str()))
                    .push_bind(&e.action)
                    .push_bind(&e.target)
                    .push_bind(i32::from(e.status))
                    .push_bind(&e.request_id)
                    .push_bind(&e.remote_addr);
            });
            qb.build().execute(&mut *w.tx).await.map_err(internal)?;
        }
        w.commit().await
    }

    async fn list_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT * FROM audit_log WHERE 1 = 1");
        for (sql, bind) in q.sql_clauses() {
            qb.push(sql);
            match bind {
                Some(AuditBind::Text(v)) => qb.push_bind(v),
                Some(AuditBind::Int(v)) => qb.push_bind(v),
                None => &mut qb,
            };
        }
        let rows = qb.build().fetch_all(&self.pool).await.map_err(internal)?;
        all(rows, rows::audit_entry)
    }

    async fn purge_audit(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let q = sqlx::query("DELETE FROM audit_log WHERE at_ms < $1").bind(ms(before));
        self.exec([q]).await
    }
}
