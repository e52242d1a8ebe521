//! Stops: of one run, of a session, and the runner's pickup of the stops meant for it.
//! The rules are `aof_store::lifecycle::on_stop_*`; this module loads what they read.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::Row;

use aof_store::{
    lifecycle::{self, RunnerPresence, SessionStopView},
    rows::{self, PRESENCE_COLS, RUN_COLS},
    statements, StopOutcome, StopStore, StoreError, StoreResult,
};

use crate::{
    execute::execute,
    internal,
    rows::{load_run, load_session, mark, Lock},
    PgStore, WriteTx,
};

#[async_trait]
impl StopStore for PgStore {
    async fn stop_run(&self, run_id: &str) -> StoreResult<StopOutcome> {
        let mut w = self.begin().await?;
        let rec = load_run(&mut w.tx, run_id, Lock::Update)
            .await?
            .ok_or(StoreError::RunNotFound)?;
        let (plan, out) = lifecycle::on_stop_run(&rec, Utc::now())?;
        execute(&mut w, plan).await?;
        w.commit().await?;
        Ok(out)
    }

    async fn stop_session(&self, session_id: &str) -> StoreResult<StopOutcome> {
        let mut w = self.begin().await?;
        let view = stop_view(&mut w, session_id, self.opts.stale_after).await?;
        let (plan, out) = lifecycle::on_stop_session(&view)?;
        execute(&mut w, plan).await?;
        w.commit().await?;
        Ok(out)
    }

    async fn take_stops(&self, runner_id: &str) -> StoreResult<Vec<String>> {
        // Read first so the common case (nothing to stop) takes no write lock.
        let any: bool = sqlx::query_scalar(&statements::stops_owed(mark))
            .bind(runner_id)
            .fetch_one(&self.pool)
            .await
            .map_err(internal)?;
        if !any {
            return Ok(Vec::new());
        }
        let mut w = self.begin().await?;
        let mut sessions: Vec<String> = sqlx::query_scalar(&statements::take_stops(mark))
            .bind(runner_id)
            .fetch_all(&mut *w.tx)
            .await
            .map_err(internal)?;
        w.commit().await?;
        sessions.sort();
        sessions.dedup();
        Ok(sessions)
    }
}

/// What `on_stop_session` decides on: the session, its live run (else its latest), that
/// run's `stop_delivered`, and, when the run ended, its runner's row.
async fn stop_view(
    w: &mut WriteTx<'_>,
    session_id: &str,
    stale_after: chrono::Duration,
) -> StoreResult<SessionStopView> {
    let row = sqlx::query(&format!(
        "SELECT {RUN_COLS}, stop_delivered FROM runs WHERE session_id = $1 \
         ORDER BY (status IN ('pending','claimed','running','stopping')) DESC, rid DESC LIMIT 1 \
         FOR UPDATE"
    ))
    .bind(session_id)
    .fetch_optional(&mut *w.tx)
    .await
    .map_err(internal)?;
    // The session after its run (the lock order), so a report that held the run has
    // committed and its session status is read here.
    let session = load_session(&mut w.tx, session_id, Lock::None)
        .await?
        .ok_or_else(|| StoreError::SessionNotFound(session_id.to_string()))?;
    let (latest, latest_stop_delivered) = match &row {
        Some(r) => (Some(rows::run(r)?), r.get::<i64, _>("stop_delivered")),
        None => (None, 0),
    };
    let runner = match SessionStopView::runner_to_load(latest.as_ref()) {
        Some(id) => presence(w, id).await?,
        None => None,
    };
    Ok(SessionStopView {
        session_id: session_id.to_string(),
        session_status: session.status,
        latest,
        latest_stop_delivered,
        runner,
        now: Utc::now(),
        stale_after,
    })
}

async fn presence(w: &mut WriteTx<'_>, runner_id: &str) -> StoreResult<Option<RunnerPresence>> {
    let sql = format!("SELECT {PRESENCE_COLS} FROM runners WHERE runner_id = $1");
    let q = sqlx::query(&sql).bind(runner_id);
    let row = q.fetch_optional(&mut *w.tx).await.map_err(internal)?;
    row.as_ref().map(rows::presence).transpose()
}
