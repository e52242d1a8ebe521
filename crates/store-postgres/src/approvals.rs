//! `ApprovalStore` on PostgreSQL: the SQL of approvals. The rules are
//! `aof_store::approvals`; the statements are `aof_store::statements::approvals`.
//!
//! Lock order (the store's: runner, runs, approvals, session): asking reads its run
//! `FOR SHARE` (the lease it checks stays), then inserts the row, then the event and the
//! session status lock the session. Deciding locks the approval row, then the session
//! row *before* counting the session's other pending approvals, so two decisions on one
//! session see each other and the last one puts the session back to `running`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use aof_core::RunStatus;
use aof_store::{
    approvals::{self, ApprovalQuery, ApprovalWrite, NewApproval, Verdict},
    rows,
    statements::approvals as sql,
    ApprovalStore, StoreResult, Writer,
};
use aof_wire::approval::Approval;

use crate::{
    execute::execute,
    internal,
    rows::{bind_all, load_run, load_session, mark, Lock},
    PgStore, WriteTx,
};

/// A plan's approval step.
pub(crate) async fn write(w: &mut WriteTx<'_>, step: &ApprovalWrite) -> StoreResult<()> {
    match step {
        ApprovalWrite::Insert {
            approval,
            request_key,
            expires_ms,
        } => {
            let (stmt, vals) = sql::insert(approval, request_key, *expires_ms, mark);
            let q = bind_all(sqlx::query(&stmt), vals);
            q.execute(&mut *w.tx).await.map_err(internal)?;
            Ok(())
        }
        ApprovalWrite::Resolve(a) => {
            let (stmt, vals) = sql::resolve(a, mark);
            let q = bind_all(sqlx::query(&stmt), vals);
            let row = q.fetch_optional(&mut *w.tx).await.map_err(internal)?;
            row.map(|_| ()).ok_or_else(|| approvals::decided(a))
        }
    }
}

/// Decides `id` in `w`'s transaction (not committed here).
async fn decide(w: &mut WriteTx<'_>, id: &str, verdict: Verdict) -> StoreResult<Approval> {
    let row = sqlx::query(&format!("{} FOR UPDATE", sql::by_id(mark)))
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
    let current = row.as_ref().map(rows::approval).transpose()?;
    let (session, others) = match &current {
        Some(a) => {
            let status = load_session(&mut w.tx, &a.session_id, Lock::Update)
                .await?
                .map(|s| s.status);
            let others: i64 = sqlx::query(&sql::others_pending(mark))
                .bind(&a.session_id)
                .bind(id)
                .fetch_one(&mut *w.tx)
                .await
                .map_err(internal)?
                .get("n");
            (status, others)
        }
        None => (None, 0),
    };
    let (a, plan) = approvals::on_decide(current, verdict, session, others)?;
    execute(w, plan).await?;
    Ok(a)
}

#[async_trait]
impl ApprovalStore for PgStore {
    async fn request_approval(
        &self,
        new: NewApproval,
        who: Option<&Writer>,
    ) -> StoreResult<(Approval, bool)> {
        let mut w = self.begin().await?;
        let run = load_run(&mut w.tx, &new.run_id, Lock::Share).await?;
        let existing = match &new.request_key {
            Some(key) => {
                let row = sqlx::query(&sql::by_request_key(mark))
                    .bind(&new.run_id)
                    .bind(key)
                    .fetch_optional(&mut *w.tx)
                    .await
                    .map_err(internal)?;
                row.as_ref().map(rows::approval).transpose()?
            }
            None => None,
        };
        let (a, plan) = approvals::on_request(new, who, run.as_ref(), existing)?;
        let created = !plan.steps.is_empty();
        execute(&mut w, plan).await?;
        w.commit().await?;
        Ok((a, created))
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<Approval>> {
        let row = sqlx::query(&sql::by_id(mark))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?;
        Ok(row.as_ref().map(rows::approval).transpose()?)
    }

    async fn list_approvals(&self, q: &ApprovalQuery) -> StoreResult<Vec<Approval>> {
        let (stmt, vals) = sql::list(q, mark);
        let found = bind_all(sqlx::query(&stmt), vals)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        Ok(found.iter().map(rows::approval).collect::<Result<_, _>>()?)
    }

    async fn decide_approval(&self, id: &str, verdict: Verdict) -> StoreResult<Approval> {
        let mut w = self.begin().await?;
        let a = decide(&mut w, id, verdict).await?;
        w.commit().await?;
        Ok(a)
    }

    async fn close_approvals(&self, now: DateTime<Utc>) -> StoreResult<Vec<Approval>> {
        // Read unlocked; each one is then decided in its own transaction, which
        // re-checks it is pending under its row lock (a person may have been faster).
        let candidates = sqlx::query(sql::PENDING_WITH_RUN)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        let mut closed = Vec::new();
        for row in &candidates {
            let a = rows::approval(row)?;
            let expires_ms: i64 = row.get("expires_ms");
            let run = row
                .get::<Option<String>, _>("run_status")
                .and_then(|s| s.parse::<RunStatus>().ok());
            let Some(v) = approvals::closing(&a, expires_ms, run, now) else {
                continue;
            };
            let mut w = self.begin().await?;
            match decide(&mut w, &a.approval_id, v).await {
                Ok(done) => {
                    w.commit().await?;
                    closed.push(done);
                }
                Err(aof_store::StoreError::ApprovalDecided { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(closed)
    }
}
