//! Stops: of one run, of a session's live run, and the runner's pickup of the stops
//! meant for it.

use aof_core::{RunEvent, RunStatus, SessionStatus};
use aof_store::{stops, RunRecord, StopOutcome, StoreError, StoreResult};
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
        if let Some(done) = stops::settled(session_id, &session.status) {
            return Ok(done);
        }
        let row = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE session_id = $1 \
             ORDER BY (status IN ('pending','claimed','running','stopping')) DESC, rid DESC LIMIT 1"
        ))
        .bind(session_id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
        let out = match row.as_ref().map(run_from_row).transpose()? {
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
        let any: Option<i64> = sqlx::query_scalar(
            "SELECT 1::bigint FROM runs WHERE runner_id = $1 AND status = 'stopping' AND stop_delivered = 0 LIMIT 1",
        )
        .bind(runner_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut w = self.begin().await?;
        let sessions: Vec<String> = sqlx::query_scalar(
            "UPDATE runs SET stop_delivered = 1 WHERE runner_id = $1 AND status = 'stopping' \
             AND stop_delivered = 0 RETURNING session_id",
        )
        .bind(runner_id)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(internal)?;
        w.commit().await?;
        Ok(sessions)
    }
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
