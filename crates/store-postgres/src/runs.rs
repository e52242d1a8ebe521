//! Runs: create, claim with a lease, runner reports (fenced), release, stops. Lease
//! renewal and expiry are in `leases`.

use aof_core::{new_lease_token, RunEvent, RunStatus, SessionStatus};
use aof_store::{NewRun, RunRecord, RunReport, StoreError, StoreResult, Writer};
use aof_wire::{auth::KeyScope, event::types, sse, Event, Run, RunType};
use chrono::{Duration, Utc};
use sqlx::Row;

use aof_store::matching::may_claim;

use crate::{
    events::append_in_tx,
    internal, ms,
    rows::{
        cas_status, feed_session, load_run, run_from_row, session_from_row, set_session_status, ts,
        RUN_COLS, SESSION_COLS,
    },
    PgStore, WriteTx,
};

pub(crate) const LEASED: &str = "('claimed','running','stopping')";
/// Pending runs read per step when looking for one a runner can take.
const CLAIM_PAGE: usize = 32;

/// The oldest pending run `runner` satisfies and its key's `scope` allows, read a page at
/// a time: usually the first matches, and a long queue must not be parsed whole per poll.
async fn pick_pending(
    conn: &mut sqlx::PgConnection,
    runner: &aof_wire::runner::RunnerInfo,
    scope: &KeyScope,
) -> StoreResult<Option<RunRecord>> {
    let mut after: i64 = 0;
    loop {
        let page = sqlx::query(&format!(
            "SELECT rid, {RUN_COLS} FROM runs WHERE status = 'pending' AND rid > $1 \
             ORDER BY rid LIMIT {CLAIM_PAGE}"
        ))
        .bind(after)
        .fetch_all(&mut *conn)
        .await
        .map_err(internal)?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        after = last.get("rid");
        if let Some(rec) = page
            .iter()
            .filter_map(|r| run_from_row(r).ok())
            .find(|rec| {
                may_claim(
                    runner,
                    scope,
                    rec.run.agent_name.as_deref(),
                    rec.run.demands.as_ref(),
                )
            })
        {
            return Ok(Some(rec));
        }
        if page.len() < CLAIM_PAGE {
            return Ok(None);
        }
    }
}

pub(crate) fn illegal(e: aof_core::IllegalTransition) -> StoreError {
    StoreError::Illegal(format!("Run cannot move from {} on {:?}", e.from, e.event))
}

impl PgStore {
    pub(crate) async fn create_run_impl(&self, new: NewRun) -> StoreResult<RunRecord> {
        let now = Utc::now();
        let mut w = self.begin().await?;
        // The new rows come back from their INSERTs (RETURNING): every round trip here
        // is made under the database-wide write lock.
        let session = match new.run_type {
            RunType::StartSession => {
                let row = sqlx::query(&format!(
                    "INSERT INTO sessions(session_id, status, created_at, project_dir, agent_name, parent_session_id) \
                     VALUES ($1, 'pending', $2, $3, $4, $5) ON CONFLICT (session_id) DO NOTHING \
                     RETURNING {SESSION_COLS}"
                ))
                .bind(&new.session_id)
                .bind(ts(now))
                .bind(&new.project_dir)
                .bind(&new.agent_name)
                .bind(&new.parent_session_id)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(internal)?;
                let Some(row) = row else {
                    return Err(StoreError::SessionExists(new.session_id));
                };
                Some(session_from_row(&row))
            }
            RunType::ResumeSession => {
                let known: Option<i64> =
                    sqlx::query_scalar("SELECT 1::bigint FROM sessions WHERE session_id = $1")
                        .bind(&new.session_id)
                        .fetch_optional(&mut *w.tx)
                        .await
                        .map_err(internal)?;
                if known.is_none() {
                    return Err(StoreError::SessionNotFound(new.session_id));
                }
                None
            }
        };
        if !new.deliver_callbacks.is_empty() {
            // Before the insert: the new run must not count as the session's live run.
            crate::callbacks::mark_delivered(
                &mut w,
                &new.session_id,
                &new.run_id,
                &new.deliver_callbacks,
            )
            .await?;
        }
        let demands = serde_json::to_string(&new.demands).map_err(internal)?;
        let row = sqlx::query(&format!(
            "INSERT INTO runs(run_id, run_type, session_id, agent_name, parameters, project_dir, \
             parent_session_id, execution_mode, demands, scope, status, created_at, timeout_at, timeout_ms, \
             blueprint, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $13, $14, $15) \
             RETURNING {RUN_COLS}"
        ))
        .bind(&new.run_id)
        .bind(new.run_type.as_str())
        .bind(&new.session_id)
        .bind(&new.agent_name)
        .bind(new.parameters.to_string())
        .bind(&new.project_dir)
        .bind(&new.parent_session_id)
        .bind(new.execution_mode.as_str())
        .bind(demands)
        .bind(new.scope.as_ref().map(|s| s.to_string()))
        .bind(ts(now))
        .bind(new.timeout_at.map(ts))
        .bind(new.timeout_at.map(ms))
        .bind(new.blueprint.as_ref().map(|b| b.to_string()))
        .bind(&new.traceparent)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(internal)?;
        let rec = run_from_row(&row)?;
        if let Some(s) = &session {
            feed_session(&mut w, sse::SESSION_CREATED, s).await?;
        }
        w.commit().await?;
        Ok(rec)
    }

    pub(crate) async fn get_run_impl(&self, run_id: &str) -> StoreResult<Option<RunRecord>> {
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        load_run(&mut conn, run_id).await
    }

    pub(crate) async fn latest_run_impl(&self, session_id: &str) -> StoreResult<Option<RunRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE session_id = $1 ORDER BY rid DESC LIMIT 1"
        ))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        row.as_ref().map(run_from_row).transpose()
    }

    pub(crate) async fn list_runs_impl(&self, status: Option<&str>) -> StoreResult<Vec<Run>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs WHERE ($1 IS NULL OR status = $1) ORDER BY rid DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(status)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        rows.iter()
            .map(|r| run_from_row(r).map(|rec| rec.run))
            .collect()
    }

    pub(crate) async fn claim_run_impl(
        &self,
        runner: &aof_wire::runner::RunnerInfo,
        ttl: Duration,
        scope: &KeyScope,
    ) -> StoreResult<Option<RunRecord>> {
        let runner_id = runner.runner_id.as_str();
        // A cheap look without the write lock first: most polls find nothing to take and
        // must not queue behind writers for that.
        {
            let mut conn = self.pool.acquire().await.map_err(internal)?;
            if pick_pending(&mut conn, runner, scope).await?.is_none() {
                return Ok(None);
            }
        }
        let now = Utc::now();
        let token = new_lease_token();
        let mut w = self.begin().await?;
        // Picked again under the write lock, which every claim takes: a run seen above may
        // have gone to another runner, and losing that race must not send this poll to
        // sleep while other runs wait (it parks until the next wake-up).
        let Some(pick) = pick_pending(&mut w.tx, runner, scope).await? else {
            return Ok(None);
        };
        let next = RunStatus::Pending.on(RunEvent::Claim).map_err(illegal)?;
        // Under the lock the run is still pending; the status condition stays as the
        // compare-and-set all run writes use.
        let row = sqlx::query(&format!(
            "UPDATE runs SET status = $1, runner_id = $2, claimed_at = $3, attempt = attempt + 1, \
             lease_token = $4, lease_expires_ms = $5, stop_delivered = 0 WHERE run_id = $6 AND status = 'pending' \
             RETURNING {RUN_COLS}"
        ))
        .bind(next.as_str())
        .bind(runner_id)
        .bind(ts(now))
        .bind(&token)
        .bind(ms(now + ttl))
        .bind(&pick.run.run_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
        let Some(row) = row else {
            // Another runner won it between our read and our write; the caller polls again.
            return Ok(None);
        };
        let mut rec = run_from_row(&row)?;
        w.commit().await?;
        rec.run.lease_token = rec.lease_token.clone();
        Ok(Some(rec))
    }

    pub(crate) async fn report_impl(
        &self,
        run_id: &str,
        who: &Writer,
        report: RunReport,
    ) -> StoreResult<RunRecord> {
        let mut w = self.begin().await?;
        let rec = load_run(&mut w.tx, run_id).await?;
        // A live run held by this runner proves the runner is registered (removing a
        // runner fails its runs in the same transaction); only otherwise look it up.
        let held = rec.as_ref().is_some_and(|r| {
            r.run.runner_id.as_deref() == Some(who.runner_id.as_str()) && !r.status.is_terminal()
        });
        if !held {
            let known: Option<i64> =
                sqlx::query_scalar("SELECT 1::bigint FROM runners WHERE runner_id = $1")
                    .bind(&who.runner_id)
                    .fetch_optional(&mut *w.tx)
                    .await
                    .map_err(internal)?;
            if known.is_none() {
                return Err(StoreError::RunnerNotRegistered);
            }
        }
        let rec = rec.ok_or(StoreError::RunNotFound)?;
        if rec.run.runner_id.as_deref() != Some(who.runner_id.as_str()) {
            return Err(StoreError::LeaseConflict(format!(
                "Run {run_id} is not held by runner {}",
                who.runner_id
            )));
        }
        if let Some(token) = &who.lease_token {
            if rec.lease_token.as_deref() != Some(token.as_str()) {
                return Err(StoreError::LeaseConflict(format!(
                    "Lease token for run {run_id} is stale"
                )));
            }
        }
        let (event, target) = match &report {
            RunReport::Started => (RunEvent::Started, RunStatus::Running),
            RunReport::Completed { .. } => (RunEvent::Completed, RunStatus::Completed),
            RunReport::Failed { .. } => (RunEvent::Failed, RunStatus::Failed),
            RunReport::Stopped { .. } => (RunEvent::Stopped, RunStatus::Stopped),
            // Not terminal when requeued, so a retried release is refused (the run is
            // no longer held) rather than answered as a repeat.
            RunReport::Released { requeue } => {
                let event = RunEvent::Released { requeue: *requeue };
                let to = rec.status.on(event).unwrap_or(RunStatus::Pending);
                (event, to)
            }
        };
        // A retried report whose first copy was applied: answer the same, change nothing.
        if rec.status == target && target.is_terminal() {
            return Ok(rec);
        }
        // Resolved without this runner (lease expired, runner removed — which clears the
        // token): its word is late. Resolved by this very lease: an illegal move.
        let own_lease = who.lease_token.is_none() || rec.lease_token == who.lease_token;
        if rec.status.is_terminal() && (rec.lease_token.is_none() || !own_lease) {
            return Err(StoreError::LeaseConflict(format!(
                "Run {run_id} is already {}; the lease is no longer held",
                rec.status
            )));
        }
        // A reference runner (no lease token) may report a fast turn's end before its start
        // (its poller and supervisor race): the late start is old news, not an error.
        if who.lease_token.is_none()
            && matches!(report, RunReport::Started)
            && rec.status.is_terminal()
        {
            return Ok(rec);
        }
        let next = rec.status.on(event).map_err(illegal)?;
        let now = ts(Utc::now());
        let sid = rec.run.session_id.clone();
        // The run's new row, from the statement that changed it (RETURNING).
        let out = match &report {
            RunReport::Started => {
                let row = sqlx::query(&format!(
                    "UPDATE runs SET status = $1, started_at = COALESCE(started_at, $2) \
                     WHERE run_id = $3 AND status = $4 RETURNING {RUN_COLS}"
                ))
                .bind(next.as_str())
                .bind(&now)
                .bind(run_id)
                .bind(rec.status.as_str())
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(internal)?;
                let Some(row) = row else {
                    return Err(StoreError::LeaseConflict(format!(
                        "run {run_id} changed concurrently (expected {})",
                        rec.status
                    )));
                };
                if let Some(parent) = &rec.run.parent_session_id {
                    sqlx::query("UPDATE sessions SET parent_session_id = $1 WHERE session_id = $2")
                        .bind(parent)
                        .bind(&sid)
                        .execute(&mut *w.tx)
                        .await
                        .map_err(internal)?;
                }
                if rec.status != RunStatus::Running {
                    append_in_tx(
                        &mut w,
                        &sid,
                        Event::new(types::RUN_START, &sid),
                        Some(run_id),
                        None,
                    )
                    .await?;
                    set_session_status(&mut w, &sid, SessionStatus::Running).await?;
                }
                Some(run_from_row(&row)?)
            }
            RunReport::Completed { session_status } => {
                // Ended before its start was reported (a reference runner's fast turn):
                // the turn did start, and the history says so.
                if rec.status == RunStatus::Claimed {
                    let start = Event::new(types::RUN_START, &sid);
                    append_in_tx(&mut w, &sid, start, Some(run_id), None).await?;
                }
                let out = self.finish(&mut w, &rec, next, None).await?;
                let ev = Event {
                    exit_code: Some(0),
                    reason: Some("completed".into()),
                    ..Event::new(types::RUN_COMPLETED, &sid)
                };
                append_in_tx(&mut w, &sid, ev, Some(run_id), None).await?;
                // Session status last: a follower that stops at it has seen every event.
                let st = session_status.unwrap_or(SessionStatus::Finished);
                set_session_status(&mut w, &sid, st).await?;
                Some(out)
            }
            RunReport::Failed { error } => {
                let out = self.finish(&mut w, &rec, next, Some(error)).await?;
                let ev = Event {
                    error: Some(error.clone()),
                    reason: Some("failed".into()),
                    ..Event::new(types::RUN_FAILED, &sid)
                };
                append_in_tx(&mut w, &sid, ev, Some(run_id), None).await?;
                feed_run_failed(&mut w, run_id, &sid, error).await?;
                set_session_status(&mut w, &sid, SessionStatus::Failed).await?;
                Some(out)
            }
            RunReport::Stopped { signal } => {
                let out = self.finish(&mut w, &rec, next, None).await?;
                let ev = Event {
                    reason: Some(signal.clone()),
                    ..Event::new(types::RUN_STOPPED, &sid)
                };
                append_in_tx(&mut w, &sid, ev, Some(run_id), None).await?;
                set_session_status(&mut w, &sid, SessionStatus::Stopped).await?;
                Some(out)
            }
            RunReport::Released { .. } => {
                self.release(&mut w, &rec, next, &who.runner_id).await?;
                None
            }
        };
        let out = match out {
            Some(out) => out,
            None => load_run(&mut w.tx, run_id)
                .await?
                .ok_or(StoreError::RunNotFound)?,
        };
        w.commit().await?;
        Ok(out)
    }

    /// A run handed back by its draining runner: requeued like an expired lease (the
    /// next claim is attempt n+1), or failed when policy forbids a retry, or stopped
    /// when a stop was already asked for.
    async fn release(
        &self,
        w: &mut WriteTx<'_>,
        rec: &RunRecord,
        next: RunStatus,
        runner_id: &str,
    ) -> StoreResult<()> {
        let run_id = rec.run.run_id.as_str();
        let sid = rec.run.session_id.as_str();
        match next {
            RunStatus::Pending => {
                cas_status(
                    w,
                    run_id,
                    rec.status,
                    next,
                    ", runner_id = NULL, claimed_at = NULL, lease_token = NULL, lease_expires_ms = NULL",
                )
                .await?;
                set_session_status(w, sid, SessionStatus::Pending).await?;
            }
            RunStatus::Stopped => {
                self.finish_with(w, rec, next, None, true).await?;
                let ev = Event {
                    reason: Some("released".into()),
                    ..Event::new(types::RUN_STOPPED, sid)
                };
                append_in_tx(w, sid, ev, Some(run_id), None).await?;
                set_session_status(w, sid, SessionStatus::Stopped).await?;
            }
            _ => {
                let error = format!(
                    "Handed back unfinished by runner {runner_id} (shutting down); \
                     RUN_RECOVERY_MODE=none does not retry it"
                );
                self.finish_with(w, rec, next, Some(&error), true).await?;
                let ev = Event {
                    error: Some(error.clone()),
                    reason: Some("failed".into()),
                    ..Event::new(types::RUN_FAILED, sid)
                };
                append_in_tx(w, sid, ev, Some(run_id), None).await?;
                feed_run_failed(w, run_id, sid, &error).await?;
                set_session_status(w, sid, SessionStatus::Failed).await?;
            }
        }
        Ok(())
    }

    /// Moves a run to a terminal state and returns its new row. The lease token stays so
    /// retried reports match.
    pub(crate) async fn finish(
        &self,
        w: &mut WriteTx<'_>,
        rec: &RunRecord,
        next: RunStatus,
        error: Option<&str>,
    ) -> StoreResult<RunRecord> {
        self.finish_with(w, rec, next, error, false).await
    }

    /// `revoke`: the coordinator resolved the run without its runner, so the lease
    /// token is cleared and later writes with it are refused as stale.
    pub(crate) async fn finish_with(
        &self,
        w: &mut WriteTx<'_>,
        rec: &RunRecord,
        next: RunStatus,
        error: Option<&str>,
        revoke: bool,
    ) -> StoreResult<RunRecord> {
        let row = sqlx::query(&format!(
            "UPDATE runs SET status = $1, completed_at = $2, error = COALESCE($3, error), \
             lease_expires_ms = NULL, lease_token = CASE WHEN $4 THEN NULL ELSE lease_token END \
             WHERE run_id = $5 AND status = $6 RETURNING {RUN_COLS}"
        ))
        .bind(next.as_str())
        .bind(ts(Utc::now()))
        .bind(error)
        .bind(revoke)
        .bind(&rec.run.run_id)
        .bind(rec.status.as_str())
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
        let row =
            row.ok_or_else(|| StoreError::LeaseConflict("run changed concurrently".into()))?;
        run_from_row(&row)
    }
}

pub(crate) async fn feed_run_failed(
    w: &mut WriteTx<'_>,
    run_id: &str,
    session_id: &str,
    error: &str,
) -> StoreResult<()> {
    let data = serde_json::json!({"run_id": run_id, "error": error, "session_id": session_id});
    w.feed(sse::RUN_FAILED, Some(session_id), data).await?;
    Ok(())
}
