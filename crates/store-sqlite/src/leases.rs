//! Leases: heartbeats (renew or revoke), expiry sweeps, failing unmatched runs and the
//! runs of a removed runner. Split from `runs`, whose transitions they share.

use aof_core::{RunEvent, RunStatus, SessionStatus};
use aof_store::{LeasePolicy, Resolved, StoreError, StoreResult};
use chrono::{Duration, Utc};

use crate::{
    internal, ms,
    rows::{cas_status, run_from_row, set_session_status, ts, RUN_COLS},
    runs::{feed_run_failed, illegal, LEASED},
    SqliteStore, WriteTx,
};

impl SqliteStore {
    pub(crate) async fn heartbeat_impl(
        &self,
        runner_id: &str,
        leases: Option<&[aof_wire::runner::HeldLease]>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>> {
        let now = Utc::now();
        let mut w = self.begin().await?;
        let n = sqlx::query(
            "UPDATE runners SET last_heartbeat = ?, last_heartbeat_ms = ? WHERE runner_id = ?",
        )
        .bind(ts(now))
        .bind(ms(now))
        .bind(runner_id)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::RunnerNotRegistered);
        }
        let until = ms(now + ttl);
        let mut revoked = Vec::new();
        match leases {
            None => {
                sqlx::query(&format!(
                    "UPDATE runs SET lease_expires_ms = ? WHERE runner_id = ? AND status IN {LEASED}"
                ))
                .bind(until)
                .bind(runner_id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?;
            }
            Some(leases) => {
                for l in leases {
                    let n = sqlx::query(&format!(
                        "UPDATE runs SET lease_expires_ms = ? WHERE run_id = ? AND runner_id = ? \
                         AND lease_token = ? AND status IN {LEASED}"
                    ))
                    .bind(until)
                    .bind(&l.run_id)
                    .bind(runner_id)
                    .bind(&l.lease_token)
                    .execute(&mut *w.tx)
                    .await
                    .map_err(internal)?
                    .rows_affected();
                    if n == 0 {
                        revoked.push(l.run_id.clone());
                    }
                }
            }
        }
        w.commit().await?;
        Ok(revoked)
    }

    pub(crate) async fn expire_leases_impl(
        &self,
        policy: LeasePolicy,
    ) -> StoreResult<Vec<Resolved>> {
        let now = ms(Utc::now());
        let mut w = self.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE status IN {LEASED} AND lease_expires_ms < ?"
        ))
        .bind(now)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(internal)?;
        let mut out = Vec::new();
        for row in &rows {
            let rec = run_from_row(row)?;
            let requeue = policy.recovery.requeue(rec.status);
            let next = rec
                .status
                .on(RunEvent::LeaseExpired { requeue })
                .map_err(illegal)?;
            let sid = rec.run.session_id.clone();
            match next {
                RunStatus::Pending => {
                    cas_status(
                        &mut w,
                        &rec.run.run_id,
                        rec.status,
                        next,
                        ", runner_id = NULL, claimed_at = NULL, lease_token = NULL, lease_expires_ms = NULL",
                    )
                    .await?;
                    set_session_status(&mut w, &sid, SessionStatus::Pending).await?;
                }
                RunStatus::Stopped => {
                    self.finish_with(&mut w, &rec, next, None, true).await?;
                    set_session_status(&mut w, &sid, SessionStatus::Stopped).await?;
                }
                _ => {
                    let error = "Lease expired: the runner stopped renewing it";
                    self.finish_with(&mut w, &rec, next, Some(error), true)
                        .await?;
                    set_session_status(&mut w, &sid, SessionStatus::Failed).await?;
                    feed_run_failed(&mut w, &rec.run.run_id, &sid, error).await?;
                }
            }
            out.push(Resolved {
                run_id: rec.run.run_id.clone(),
                session_id: sid,
                from: rec.status,
                to: next,
            });
        }
        w.commit().await?;
        Ok(out)
    }

    pub(crate) async fn fail_unmatched_impl(&self) -> StoreResult<Vec<Resolved>> {
        let now = ms(Utc::now());
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM runs WHERE status = 'pending' AND timeout_ms < ? LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.readers)
        .await
        .map_err(internal)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut w = self.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE status = 'pending' AND timeout_ms < ?"
        ))
        .bind(now)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(internal)?;
        let mut out = Vec::new();
        let error = "No matching runner available within timeout";
        for row in &rows {
            let rec = run_from_row(row)?;
            let next = rec.status.on(RunEvent::NoMatchTimeout).map_err(illegal)?;
            self.finish(&mut w, &rec, next, Some(error)).await?;
            let sid = rec.run.session_id.clone();
            set_session_status(&mut w, &sid, SessionStatus::Failed).await?;
            feed_run_failed(&mut w, &rec.run.run_id, &sid, error).await?;
            out.push(Resolved {
                run_id: rec.run.run_id,
                session_id: sid,
                from: rec.status,
                to: next,
            });
        }
        w.commit().await?;
        Ok(out)
    }

    pub(crate) async fn grace_leases_impl(&self, ttl: Duration) -> StoreResult<u64> {
        let until = ms(Utc::now() + ttl);
        let mut w = self.begin().await?;
        let n = sqlx::query(&format!(
            "UPDATE runs SET lease_expires_ms = MAX(COALESCE(lease_expires_ms, 0), ?), \
             stop_delivered = 0 WHERE status IN {LEASED}"
        ))
        .bind(until)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?
        .rows_affected();
        w.commit().await?;
        Ok(n)
    }

    /// Runs held by `runner_id` become failed (runner removed), with their sessions.
    pub(crate) async fn fail_runs_of(
        &self,
        w: &mut WriteTx<'_>,
        runner_id: &str,
        error: &str,
    ) -> StoreResult<Vec<Resolved>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE runner_id = ? AND status IN {LEASED}"
        ))
        .bind(runner_id)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(internal)?;
        let mut out = Vec::new();
        for row in &rows {
            let rec = run_from_row(row)?;
            let next = rec.status.on(RunEvent::Failed).map_err(illegal)?;
            self.finish_with(w, &rec, next, Some(error), true).await?;
            let sid = rec.run.session_id.clone();
            set_session_status(w, &sid, SessionStatus::Failed).await?;
            feed_run_failed(w, &rec.run.run_id, &sid, error).await?;
            out.push(Resolved {
                run_id: rec.run.run_id,
                session_id: sid,
                from: rec.status,
                to: next,
            });
        }
        Ok(out)
    }
}
