//! Leases: heartbeats (renew or revoke), expiry sweeps, failing unmatched runs and the
//! runs of a removed runner. What each resolution causes is `aof_store::lifecycle`'s.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use aof_store::{
    lifecycle::{self, Plan},
    rows::{run, RUN_COLS},
    statements::LEASED,
    LeasePolicy, LeaseStore, Resolved, RunRecord, StoreError, StoreResult,
};
use aof_wire::{format_ts as ts, runner::HeldLease};

use crate::{execute::execute, internal, ms, PgStore, WriteTx};

/// The runs `sql` selects and locks (a `SELECT {RUN_COLS} … FOR UPDATE` whose one
/// parameter is `param`), each resolved as `decide` plans it.
async fn resolve<P>(
    w: &mut WriteTx<'_>,
    sql: &str,
    param: P,
    decide: impl Fn(&RunRecord, DateTime<Utc>) -> StoreResult<(Plan, Resolved)>,
) -> StoreResult<Vec<Resolved>>
where
    P: for<'q> sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send,
{
    let rows = sqlx::query(sql)
        .bind(param)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(internal)?;
    let now = Utc::now();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (plan, resolved) = decide(&run(row)?, now)?;
        execute(w, plan).await?;
        out.push(resolved);
    }
    Ok(out)
}

#[async_trait]
impl LeaseStore for PgStore {
    async fn heartbeat(
        &self,
        runner_id: &str,
        leases: Option<&[HeldLease]>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>> {
        let now = Utc::now();
        let mut w = self.begin().await?;
        let n = sqlx::query(
            "UPDATE runners SET last_heartbeat = $1, last_heartbeat_ms = $2 WHERE runner_id = $3",
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
                // Locked in run_id order, as every multi-run write (no lock cycle with a sweep).
                sqlx::query(&format!(
                    "UPDATE runs SET lease_expires_ms = $1 WHERE run_id IN (SELECT run_id FROM runs \
                     WHERE runner_id = $2 AND status IN {LEASED} ORDER BY run_id FOR UPDATE)"
                ))
                .bind(until)
                .bind(runner_id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?;
            }
            Some(leases) => {
                // In run_id order, as every multi-run write.
                let mut leases: Vec<&HeldLease> = leases.iter().collect();
                leases.sort_by(|a, b| a.run_id.cmp(&b.run_id));
                for l in leases {
                    let n = sqlx::query(&format!(
                        "UPDATE runs SET lease_expires_ms = $1 WHERE run_id = $2 AND runner_id = $3 \
                         AND lease_token = $4 AND status IN {LEASED}"
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

    async fn expire_leases(&self, policy: LeasePolicy) -> StoreResult<Vec<Resolved>> {
        let now = ms(Utc::now());
        let mut w = self.begin().await?;
        // Locked in run_id order (as every multi-run write): another coordinator's sweep
        // of the same runs waits, then finds them resolved. Not SKIP LOCKED: a run held
        // by a write that was refused and is rolling back must not be skipped.
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs WHERE status IN {LEASED} AND lease_expires_ms < $1 \
             ORDER BY run_id FOR UPDATE"
        );
        let out = resolve(&mut w, &sql, now, |rec, now| {
            lifecycle::on_lease_expired(rec, &policy, now)
        })
        .await?;
        w.commit().await?;
        Ok(out)
    }

    async fn fail_unmatched(&self) -> StoreResult<Vec<Resolved>> {
        let now = ms(Utc::now());
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT 1::bigint FROM runs WHERE status = 'pending' AND timeout_ms < $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut w = self.begin().await?;
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs WHERE status = 'pending' AND timeout_ms < $1 \
             ORDER BY run_id FOR UPDATE"
        );
        let out = resolve(&mut w, &sql, now, lifecycle::on_unmatched).await?;
        w.commit().await?;
        Ok(out)
    }

    async fn grace_leases(&self, ttl: Duration) -> StoreResult<u64> {
        let until = ms(Utc::now() + ttl);
        let mut w = self.begin().await?;
        let n = sqlx::query(&format!(
            "UPDATE runs SET lease_expires_ms = GREATEST(COALESCE(lease_expires_ms, 0), $1), \
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
}

impl PgStore {
    /// Runs held by `runner_id` become failed (runner removed), with their sessions.
    pub(crate) async fn fail_runs_of(
        &self,
        w: &mut WriteTx<'_>,
        runner_id: &str,
        error: &str,
    ) -> StoreResult<Vec<Resolved>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs WHERE runner_id = $1 AND status IN {LEASED} \
             ORDER BY run_id FOR UPDATE"
        );
        resolve(w, &sql, runner_id, |rec, now| {
            lifecycle::on_runner_removed(rec, error, now)
        })
        .await
    }
}
