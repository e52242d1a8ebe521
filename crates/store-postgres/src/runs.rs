//! Runs: create, claim with a lease, runner reports (fenced). What a claim or a report
//! causes is decided by `aof_store::lifecycle` and written by `execute`; stops are in
//! `stops`, lease renewal and expiry in `leases`.

use aof_core::RunStatus;
use async_trait::async_trait;
use chrono::{Duration, Utc};
use sqlx::Row;

use aof_store::{
    lifecycle,
    matching::may_claim,
    rows::{run, session, RUN_COLS},
    statements, NewRun, RunPage, RunRecord, RunReport, RunStore, StoreError, StoreResult, Writer,
};
use aof_wire::{auth::KeyScope, runner::RunnerInfo, sse, Run, RunType};

use crate::{
    execute::{claim, execute},
    internal,
    rows::{all, bind_all, feed_session, load_run, mark, Lock},
    PgStore,
};

/// Pending runs read per step when looking for one a runner can take.
const CLAIM_PAGE: usize = 32;

/// The pending runs `runner` satisfies and its key's `scope` allows, oldest first, read
/// a page at a time without locks: usually the first matches, and a long queue must not
/// be parsed whole per poll. `after`: the last `rid` already tried.
async fn pending_page(
    pool: &sqlx::PgPool,
    runner: &RunnerInfo,
    scope: &KeyScope,
    after: &mut i64,
) -> StoreResult<Option<Vec<String>>> {
    let page = sqlx::query(&format!(
        "SELECT rid, {RUN_COLS} FROM runs WHERE status = 'pending' AND rid > $1 \
         ORDER BY rid LIMIT {CLAIM_PAGE}"
    ))
    .bind(*after)
    .fetch_all(pool)
    .await
    .map_err(internal)?;
    let Some(last) = page.last() else {
        return Ok(None);
    };
    *after = last.get("rid");
    let fits = page.iter().filter_map(|r| run(r).ok()).filter(|rec| {
        may_claim(
            runner,
            scope,
            rec.run.agent_name.as_deref(),
            rec.run.demands.as_ref(),
        )
    });
    let ids: Vec<String> = fits.map(|rec| rec.run.run_id).collect();
    if ids.is_empty() && page.len() < CLAIM_PAGE {
        return Ok(None);
    }
    Ok(Some(ids))
}

#[async_trait]
impl RunStore for PgStore {
    async fn create_run(&self, new: NewRun) -> StoreResult<RunRecord> {
        let now = Utc::now();
        let mut w = self.begin().await?;
        // The new rows come back from their INSERTs (RETURNING): every round trip here
        // is made under the database-wide write lock.
        let session = match new.run_type {
            RunType::StartSession => {
                let (sql, vals) = statements::session_insert(&new, now, mark);
                let q = bind_all(sqlx::query(&sql), vals);
                let row = q.fetch_optional(&mut *w.tx).await.map_err(internal)?;
                let Some(row) = row else {
                    return Err(StoreError::SessionExists(new.session_id));
                };
                Some(session(&row)?)
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
        let (sql, vals) = statements::run_insert(&new, now, mark).map_err(internal)?;
        let q = bind_all(sqlx::query(&sql), vals);
        let row = q.fetch_one(&mut *w.tx).await.map_err(internal)?;
        let rec = run(&row)?;
        if let Some(s) = &session {
            feed_session(&mut w, sse::SESSION_CREATED, s).await?;
        }
        w.commit().await?;
        Ok(rec)
    }

    async fn get_run(&self, run_id: &str) -> StoreResult<Option<RunRecord>> {
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        load_run(&mut conn, run_id, Lock::None).await
    }

    async fn latest_run(&self, session_id: &str) -> StoreResult<Option<RunRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE session_id = $1 ORDER BY rid DESC LIMIT 1"
        ))
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        row.as_ref().map(run).transpose()
    }

    async fn list_runs(
        &self,
        status: Option<&str>,
        session_id: Option<&str>,
    ) -> StoreResult<Vec<Run>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM runs WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR session_id = $2) ORDER BY rid DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(status)
            .bind(session_id)
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        Ok(all(rows, run)?.into_iter().map(|rec| rec.run).collect())
    }

    async fn list_runs_page(
        &self,
        status: Option<RunStatus>,
        session_id: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<RunPage> {
        let sql = format!(
            "SELECT {RUN_COLS}, rid FROM runs WHERE ($1::text IS NULL OR status = $1) \
             AND ($2::text IS NULL OR session_id = $2) AND ($3::bigint IS NULL OR rid < $3) \
             ORDER BY rid DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(status.map(RunStatus::as_str))
            .bind(session_id)
            .bind(before)
            // One row more than the page: whether another page follows.
            .bind(limit.saturating_add(1))
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        let rows = rows.iter().map(|r| Ok((run(r)?.run, r.get("rid"))));
        Ok(lifecycle::run_page(
            rows.collect::<StoreResult<_>>()?,
            limit,
        ))
    }

    async fn claim_run_scoped(
        &self,
        runner: &RunnerInfo,
        ttl: Duration,
        scope: &KeyScope,
    ) -> StoreResult<Option<RunRecord>> {
        // Candidates are read without locks; each is then taken by one autocommit
        // compare-and-set that skips a row another transaction holds (`SKIP LOCKED`), so
        // claimers on every coordinator take different runs without waiting, and losing
        // a run to another runner moves on to the next one (a poll that parks while runs
        // wait would leave them until the next wake-up). Two round trips per claim.
        let mut after = 0;
        let mut missed = Vec::new();
        while let Some(ids) = pending_page(&self.pool, runner, scope, &mut after).await? {
            for run_id in ids {
                let plan = lifecycle::on_claim(&run_id, &runner.runner_id, ttl, Utc::now())?;
                match claim(&self.pool, plan, true).await? {
                    Some(rec) => return Ok(Some(rec)),
                    None => missed.push(run_id),
                }
            }
        }
        // Nothing taken: a run skipped above may only have been held for a moment (a
        // stop that was refused and is rolling back). Waiting on those once makes an
        // empty answer mean nothing is left.
        for run_id in missed {
            let plan = lifecycle::on_claim(&run_id, &runner.runner_id, ttl, Utc::now())?;
            if let Some(rec) = claim(&self.pool, plan, false).await? {
                return Ok(Some(rec));
            }
        }
        Ok(None)
    }

    async fn report(
        &self,
        run_id: &str,
        who: &Writer,
        report: RunReport,
    ) -> StoreResult<RunRecord> {
        let mut w = self.begin().await?;
        // Locked: a claim, a stop or an expiry on another coordinator waits for this
        // report, and this one decides on the row as it is now.
        let rec = load_run(&mut w.tx, run_id, Lock::Update).await?;
        if lifecycle::must_check_runner(rec.as_ref(), who) {
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
        let Some(plan) = lifecycle::on_report(&rec, who, &report, Utc::now())? else {
            // A repeat or old news: answered with the run as it is.
            return Ok(rec);
        };
        let out = execute(&mut w, plan)
            .await?
            .ok_or(StoreError::RunNotFound)?;
        w.commit().await?;
        Ok(out)
    }
}
