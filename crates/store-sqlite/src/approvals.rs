//! `ApprovalStore` on SQLite: the SQL of approvals. The rules are `aof_store::approvals`;
//! the statements are `aof_store::statements::approvals`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Row};

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
    rows::{load_run, load_session, mark, values},
    SqliteStore, Tx,
};

/// A plan's approval step.
pub(crate) fn write(w: &mut Tx<'_>, step: &ApprovalWrite) -> StoreResult<()> {
    match step {
        ApprovalWrite::Insert {
            approval,
            request_key,
            expires_ms,
        } => {
            let (stmt, vals) = sql::insert(approval, request_key, *expires_ms, mark);
            w.prepare_cached(&stmt)
                .and_then(|mut st| st.execute(values(vals)))
                .map_err(internal)?;
            Ok(())
        }
        ApprovalWrite::Resolve(a) => {
            let (stmt, vals) = sql::resolve(a, mark);
            let row: Option<String> = w
                .prepare_cached(&stmt)
                .and_then(|mut st| st.query_row(values(vals), |r| r.get(0)).optional())
                .map_err(internal)?;
            row.map(|_| ()).ok_or_else(|| approvals::decided(a))
        }
    }
}

fn load(c: &Connection, id: &str) -> StoreResult<Option<Approval>> {
    c.prepare_cached(&sql::by_id(mark))
        .and_then(|mut st| st.query_row([id], |r| rows::approval(r)).optional())
        .map_err(internal)
}

/// Decides `id` in `w`'s transaction.
fn decide(w: &mut Tx<'_>, id: &str, verdict: Verdict) -> StoreResult<Approval> {
    let current = load(w, id)?;
    let (session, others) = match &current {
        Some(a) => {
            let status = load_session(w, &a.session_id)?.map(|s| s.status);
            let others: i64 = w
                .prepare_cached(&sql::others_pending(mark))
                .and_then(|mut st| st.query_row([&a.session_id, id], |r| r.get("n")))
                .map_err(internal)?;
            (status, others)
        }
        None => (None, 0),
    };
    let (a, plan) = approvals::on_decide(current, verdict, session, others)?;
    execute(w, plan)?;
    Ok(a)
}

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn request_approval(
        &self,
        new: NewApproval,
        who: Option<&Writer>,
    ) -> StoreResult<(Approval, bool)> {
        let who = who.cloned();
        self.write(move |w| {
            let existing = match &new.request_key {
                Some(key) => w
                    .prepare_cached(&sql::by_request_key(mark))
                    .and_then(|mut st| {
                        st.query_row([&new.run_id, key], |r| rows::approval(r))
                            .optional()
                    })
                    .map_err(internal)?,
                None => None,
            };
            let run = load_run(w, &new.run_id)?;
            let (a, plan) = approvals::on_request(new, who.as_ref(), run.as_ref(), existing)?;
            let created = !plan.steps.is_empty();
            execute(w, plan)?;
            Ok((a, created))
        })
        .await
    }

    async fn get_approval(&self, id: &str) -> StoreResult<Option<Approval>> {
        let id = id.to_string();
        self.read(move |c| load(c, &id)).await
    }

    async fn list_approvals(&self, q: &ApprovalQuery) -> StoreResult<Vec<Approval>> {
        let (stmt, vals) = sql::list(q, mark);
        self.read(move |c| {
            c.prepare_cached(&stmt)
                .and_then(|mut st| st.query_map(values(vals), |r| rows::approval(r))?.collect())
                .map_err(internal)
        })
        .await
    }

    async fn decide_approval(&self, id: &str, verdict: Verdict) -> StoreResult<Approval> {
        let id = id.to_string();
        self.write(move |w| decide(w, &id, verdict)).await
    }

    async fn close_approvals(&self, now: DateTime<Utc>) -> StoreResult<Vec<Approval>> {
        self.write(move |w| {
            let candidates: Vec<(Approval, i64, Option<String>)> = w
                .prepare_cached(sql::PENDING_WITH_RUN)
                .and_then(|mut st| {
                    let row = |r: &Row| {
                        Ok((
                            rows::approval(r)?,
                            r.get("expires_ms")?,
                            r.get("run_status")?,
                        ))
                    };
                    st.query_map([], row)?.collect()
                })
                .map_err(internal)?;
            let mut closed = Vec::new();
            for (a, expires_ms, run) in candidates {
                let run = run.and_then(|s| s.parse::<RunStatus>().ok());
                if let Some(v) = approvals::closing(&a, expires_ms, run, now) {
                    closed.push(decide(w, &a.approval_id, v)?);
                }
            }
            Ok(closed)
        })
        .await
    }
}
