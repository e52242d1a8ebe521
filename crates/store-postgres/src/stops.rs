//! Stops: of one run, of a session's live run, and the runner's pickup of the stops
//! meant for it.

use aof_core::{RunEvent, RunStatus, SessionStatus};
use aof_store::{
    stops::{self, IDLE_STOP_OWED},
    RunRecord, StopOutcome, StoreError, StoreResult,
};
use chrono::Utc;

use crate::{
    internal,
    rows::{self, cas_status, load_run, run_from_row, set_session_status, ts, RUN_COLS},
    runs::illegal,
    PgStore, WriteTx,
};

impl PgStore {
    pub(crate) async fn stop_run_impl(&self, run_id: &str) -> StoreResult<StopOutcome> {
        let mut w = self.begin().await?;
        let rec = load_run(&mut w.tx, run_id)
            .await?
            .ok_or(StoreError::RunNotFound)?;
        let out = stop_in_tx(&mut w, &rec).await?;
        w.commit().await?;
        Ok(out)
    }

    pub(crate) async fn stop_session_impl(&self, session_id: &str) -> StoreResult<StopOutcome> {
        let mut w = self.begin().await?;
        let session = rows::load_session(&mut w.tx, session_id)
            .await?
            .ok_or_else(|| StoreError::SessionNotFound(session_id.to_string()))?;
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE session_id = $1 \
             ORDER BY (status IN ('pending','claimed','running','stopping')) DESC, rid DESC LIMIT 1"
        ))
        .bind(session_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
        let latest = row.as_ref().map(run_from_row).transpose()?;
        let ended = latest.as_ref().filter(|r| r.status.is_terminal());
        let stale_after = self.opts.stale_after;
        // Stopping with no live run: an idle session's stop, which its runner ends. Asked
        // again once the runner has been told (or is gone), the stop ends it here: a
        // runner that lost the process (restarted) never reports, and the session must
        // not stay stopping for ever.
        if let Some(rec) = ended.filter(|_| session.status == SessionStatus::Stopping.as_str()) {
            let owed: i64 = sqlx::query_scalar("SELECT stop_delivered FROM runs WHERE run_id = $1")
                .bind(&rec.run.run_id)
                .fetch_one(&mut *w.tx)
                .await
                .map_err(internal)?;
            if owed != IDLE_STOP_OWED
                || !keeps_idle_process(&mut w, rec.run.runner_id.as_deref(), stale_after).await?
            {
                sqlx::query("UPDATE runs SET stop_delivered = 1 WHERE run_id = $1")
                    .bind(&rec.run.run_id)
                    .execute(&mut *w.tx)
                    .await
                    .map_err(internal)?;
                set_session_status(&mut w, session_id, SessionStatus::Stopped).await?;
                w.commit().await?;
                return Ok(stops::idle_stop_abandoned(session_id, &rec.run.run_id));
            }
        }
        if let Some(done) = stops::settled(session_id, &session.status) {
            return Ok(done);
        }
        // An idle session may still have a process on its runner (the reference's
        // persistent executors): the stop goes there, and the runner reports the end.
        if let Some(rec) = ended.filter(|_| session.status == SessionStatus::Idle.as_str()) {
            if keeps_idle_process(&mut w, rec.run.runner_id.as_deref(), stale_after).await? {
                sqlx::query(&format!(
                    "UPDATE runs SET stop_delivered = {IDLE_STOP_OWED} WHERE run_id = $1"
                ))
                .bind(&rec.run.run_id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?;
                set_session_status(&mut w, session_id, SessionStatus::Stopping).await?;
                w.commit().await?;
                return Ok(stops::idle_stop_queued(session_id, &rec.run.run_id));
            }
        }
        let out = match latest {
            Some(rec) if !rec.status.is_terminal() => stop_in_tx(&mut w, &rec).await?,
            latest => {
                set_session_status(&mut w, session_id, SessionStatus::Stopped).await?;
                stops::no_live_run(
                    session_id,
                    latest.as_ref().map(|r| (r.run.run_id.as_str(), r.status)),
                )
            }
        };
        w.commit().await?;
        Ok(out)
    }

    pub(crate) async fn take_stops_impl(&self, runner_id: &str) -> StoreResult<Vec<String>> {
        // Read first so the common case (nothing to stop) takes no write lock.
        let any: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS(SELECT 1 FROM runs WHERE runner_id = $1 AND status = 'stopping' \
             AND stop_delivered = 0) OR EXISTS(SELECT 1 FROM runs WHERE runner_id = $1 \
             AND stop_delivered = {IDLE_STOP_OWED})"
        ))
        .bind(runner_id)
        .fetch_one(&self.pool)
        .await
        .map_err(internal)?;
        if !any {
            return Ok(Vec::new());
        }
        let mut w = self.begin().await?;
        let mut sessions: Vec<String> = sqlx::query_scalar(&format!(
            "UPDATE runs SET stop_delivered = 1 WHERE runner_id = $1 AND \
             ((status = 'stopping' AND stop_delivered = 0) OR stop_delivered = {IDLE_STOP_OWED}) \
             RETURNING session_id"
        ))
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

/// Whether `runner_id` may still hold a process for an idle session: registered, not
/// being removed, heard from recently, and a reference runner (no `instance_id`). An AOF
/// runner starts a process per turn and holds none between turns: its idle sessions stop
/// at once.
async fn keeps_idle_process(
    w: &mut WriteTx<'_>,
    runner_id: Option<&str>,
    stale_after: chrono::Duration,
) -> StoreResult<bool> {
    let Some(id) = runner_id else {
        return Ok(false);
    };
    let heartbeat: Option<i64> = sqlx::query_scalar(
        "SELECT last_heartbeat_ms FROM runners WHERE runner_id = $1 AND deregister = 0 \
         AND instance_id IS NULL",
    )
    .bind(id)
    .fetch_optional(&mut *w.tx)
    .await
    .map_err(internal)?;
    Ok(heartbeat.is_some_and(|hb| crate::ms(Utc::now()) - hb < stale_after.num_milliseconds()))
}

/// The reference's stop rules for one run.
pub(crate) async fn stop_in_tx(w: &mut WriteTx<'_>, rec: &RunRecord) -> StoreResult<StopOutcome> {
    let run_id = rec.run.run_id.clone();
    let sid = rec.run.session_id.clone();
    let base = |status: &str, message: Option<&str>| StopOutcome {
        ok: true,
        session_id: sid.clone(),
        run_id: Some(run_id.clone()),
        status: status.to_string(),
        message: message.map(str::to_string),
    };
    match rec.status {
        RunStatus::Pending => {
            let next = rec.status.on(RunEvent::StopRequested).map_err(illegal)?;
            cas_status(w, &run_id, rec.status, next, "").await?;
            sqlx::query("UPDATE runs SET completed_at = $1 WHERE run_id = $2")
                .bind(ts(Utc::now()))
                .bind(&run_id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?;
            set_session_status(w, &sid, SessionStatus::Stopped).await?;
            Ok(base("stopped", Some("Run cancelled before execution")))
        }
        RunStatus::Stopping => Ok(base("stopping", None)),
        RunStatus::Claimed | RunStatus::Running => {
            if rec.run.runner_id.is_none() {
                return Err(StoreError::Illegal("Run not claimed by any runner".into()));
            }
            let next = rec.status.on(RunEvent::StopRequested).map_err(illegal)?;
            cas_status(w, &run_id, rec.status, next, ", stop_delivered = 0").await?;
            set_session_status(w, &sid, SessionStatus::Stopping).await?;
            Ok(base("stopping", None))
        }
        st => Err(StoreError::Illegal(format!(
            "Run cannot be stopped (status: {st})"
        ))),
    }
}
