//! Leases: heartbeats (renew or revoke), expiry sweeps, failing unmatched runs and the
//! runs of a removed runner. What each resolution causes is `aof_store::lifecycle`'s.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, ToSql};

use aof_store::{
    lifecycle::{self, Plan},
    rows::{run, RUN_COLS},
    statements::LEASED,
    LeasePolicy, LeaseStore, Resolved, RunRecord, StoreResult,
};
use aof_wire::{format_ts as ts, runner::HeldLease};

use crate::{execute::execute, internal, ms, SqliteStore, Tx};

/// The runs `sql` selects (a `SELECT {RUN_COLS} …` with `params`).
fn runs_where(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> StoreResult<Vec<RunRecord>> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.query_map(params, |r| run(r))?.collect())
        .map_err(internal)
}

/// Resolves each of `runs` as `decide` plans it, in one transaction.
fn resolve(
    w: &mut Tx<'_>,
    runs: &[RunRecord],
    decide: impl Fn(&RunRecord, DateTime<Utc>) -> StoreResult<(Plan, Resolved)>,
) -> StoreResult<Vec<Resolved>> {
    let now = Utc::now();
    let mut out = Vec::with_capacity(runs.len());
    for rec in runs {
        let (plan, resolved) = decide(rec, now)?;
        execute(w, plan)?;
        out.push(resolved);
    }
    Ok(out)
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn heartbeat(
        &self,
        runner_id: &str,
        leases: Option<&[HeldLease]>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>> {
        let runner_id = runner_id.to_string();
        let leases = leases.map(<[_]>::to_vec);
        self.write(move |w| {
            let now = Utc::now();
            let n = w
                .prepare_cached(
                    "UPDATE runners SET last_heartbeat = ?, last_heartbeat_ms = ? WHERE runner_id = ?",
                )
                .and_then(|mut st| st.execute((ts(now), ms(now), &runner_id)))
                .map_err(internal)?;
            if n == 0 {
                return Err(aof_store::StoreError::RunnerNotRegistered);
            }
            let until = ms(now + ttl);
            let mut revoked = Vec::new();
            match leases {
                None => {
                    w.prepare_cached(&format!(
                        "UPDATE runs SET lease_expires_ms = ? WHERE runner_id = ? AND status IN {LEASED}"
                    ))
                    .and_then(|mut st| st.execute((until, &runner_id)))
                    .map_err(internal)?;
                }
                Some(leases) => {
                    let mut st = w
                        .prepare_cached(&format!(
                            "UPDATE runs SET lease_expires_ms = ? WHERE run_id = ? AND runner_id = ? \
                             AND lease_token = ? AND status IN {LEASED}"
                        ))
                        .map_err(internal)?;
                    for l in leases {
                        let n = st
                            .execute((until, &l.run_id, &runner_id, &l.lease_token))
                            .map_err(internal)?;
                        if n == 0 {
                            revoked.push(l.run_id);
                        }
                    }
                }
            }
            Ok(revoked)
        })
        .await
    }

    async fn expire_leases(&self, policy: LeasePolicy) -> StoreResult<Vec<Resolved>> {
        self.write(move |w| {
            let now = ms(Utc::now());
            let expired = runs_where(
                w,
                &format!(
                    "SELECT {RUN_COLS} FROM runs WHERE status IN {LEASED} AND lease_expires_ms < ?"
                ),
                &[&now],
            )?;
            resolve(w, &expired, |rec, now| {
                lifecycle::on_lease_expired(rec, &policy, now)
            })
        })
        .await
    }

    async fn fail_unmatched(&self) -> StoreResult<Vec<Resolved>> {
        // Read first so the common case (nothing due) takes no write slot.
        let due = self
            .read(|c| {
                c.prepare_cached(
                    "SELECT 1 FROM runs WHERE status = 'pending' AND timeout_ms < ? LIMIT 1",
                )
                .and_then(|mut st| st.exists([ms(Utc::now())]))
                .map_err(internal)
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.write(|w| {
            let now = ms(Utc::now());
            let due = runs_where(
                w,
                &format!("SELECT {RUN_COLS} FROM runs WHERE status = 'pending' AND timeout_ms < ?"),
                &[&now],
            )?;
            resolve(w, &due, lifecycle::on_unmatched)
        })
        .await
    }

    async fn grace_leases(&self, ttl: Duration) -> StoreResult<u64> {
        self.write(move |w| {
            let until = ms(Utc::now() + ttl);
            let n = w
                .prepare_cached(&format!(
                    "UPDATE runs SET lease_expires_ms = MAX(COALESCE(lease_expires_ms, 0), ?), \
                     stop_delivered = 0 WHERE status IN {LEASED}"
                ))
                .and_then(|mut st| st.execute([until]))
                .map_err(internal)?;
            Ok(n as u64)
        })
        .await
    }
}

/// Runs held by `runner_id` become failed (runner removed), with their sessions.
pub(crate) fn fail_runs_of(
    w: &mut Tx<'_>,
    runner_id: &str,
    error: &str,
) -> StoreResult<Vec<Resolved>> {
    let held = runs_where(
        w,
        &format!("SELECT {RUN_COLS} FROM runs WHERE runner_id = ? AND status IN {LEASED}"),
        &[&runner_id],
    )?;
    resolve(w, &held, |rec, now| {
        lifecycle::on_runner_removed(rec, error, now)
    })
}
