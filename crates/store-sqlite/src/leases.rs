//! Leases: heartbeats (renew or revoke), expiry sweeps, failing unmatched runs and the
//! runs of a removed runner. Split from `runs`, whose transitions they share.

use aof_core::{RunEvent, RunStatus, SessionStatus};
use aof_store::{LeasePolicy, Resolved, RunRecord, StoreResult};
use chrono::{Duration, Utc};
use rusqlite::{Connection, ToSql};

use crate::{
    internal, ms,
    rows::{cas_status, run_from_row, set_session_status, ts, RUN_COLS},
    runs::{feed_run_failed, finish_with, illegal, LEASED},
    SqliteStore, Tx,
};

/// The runs `sql` selects (a `SELECT {RUN_COLS} …` with `params`).
fn runs_where(conn: &Connection, sql: &str, params: &[&dyn ToSql]) -> StoreResult<Vec<RunRecord>> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.query_map(params, run_from_row)?.collect())
        .map_err(internal)
}

impl SqliteStore {
    pub(crate) async fn heartbeat_impl(
        &self,
        runner_id: &str,
        leases: Option<&[aof_wire::runner::HeldLease]>,
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

    pub(crate) async fn expire_leases_impl(
        &self,
        policy: LeasePolicy,
    ) -> StoreResult<Vec<Resolved>> {
        self.write(move |w| {
            let now = ms(Utc::now());
            let expired = runs_where(
                w,
                &format!("SELECT {RUN_COLS} FROM runs WHERE status IN {LEASED} AND lease_expires_ms < ?"),
                &[&now],
            )?;
            let mut out = Vec::new();
            for rec in expired {
                let requeue = policy.recovery.requeue(rec.status);
                let next = rec
                    .status
                    .on(RunEvent::LeaseExpired { requeue })
                    .map_err(illegal)?;
                let sid = rec.run.session_id.clone();
                match next {
                    RunStatus::Pending => {
                        cas_status(
                            w,
                            &rec.run.run_id,
                            rec.status,
                            next,
                            ", runner_id = NULL, claimed_at = NULL, lease_token = NULL, lease_expires_ms = NULL",
                        )?;
                        set_session_status(w, &sid, SessionStatus::Pending)?;
                    }
                    RunStatus::Stopped => {
                        finish_with(w, &rec, next, None, true)?;
                        set_session_status(w, &sid, SessionStatus::Stopped)?;
                    }
                    _ => fail(
                        w,
                        &rec,
                        next,
                        "Lease expired: the runner stopped renewing it",
                        true,
                    )?,
                }
                out.push(Resolved {
                    run_id: rec.run.run_id.clone(),
                    session_id: sid,
                    from: rec.status,
                    to: next,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn fail_unmatched_impl(&self) -> StoreResult<Vec<Resolved>> {
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
            let mut out = Vec::new();
            let error = "No matching runner available within timeout";
            for rec in due {
                let next = rec.status.on(RunEvent::NoMatchTimeout).map_err(illegal)?;
                fail(w, &rec, next, error, false)?;
                out.push(Resolved {
                    run_id: rec.run.run_id,
                    session_id: rec.run.session_id,
                    from: rec.status,
                    to: next,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(crate) async fn grace_leases_impl(&self, ttl: Duration) -> StoreResult<u64> {
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

/// Ends `rec` as failed with `error`, its session too, and feeds `run_failed`.
/// `revoke`: resolved without its runner (see `finish_with`).
fn fail(
    w: &mut Tx<'_>,
    rec: &RunRecord,
    next: RunStatus,
    error: &str,
    revoke: bool,
) -> StoreResult<()> {
    finish_with(w, rec, next, Some(error), revoke)?;
    let sid = &rec.run.session_id;
    set_session_status(w, sid, SessionStatus::Failed)?;
    feed_run_failed(w, &rec.run.run_id, sid, error)
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
    let mut out = Vec::new();
    for rec in held {
        let next = rec.status.on(RunEvent::Failed).map_err(illegal)?;
        fail(w, &rec, next, error, true)?;
        out.push(Resolved {
            run_id: rec.run.run_id,
            session_id: rec.run.session_id,
            from: rec.status,
            to: next,
        });
    }
    Ok(out)
}
