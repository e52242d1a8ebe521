//! Stops: of one run, of a session, and the runner's pickup of the stops meant for it.
//! The rules are `aof_store::lifecycle::on_stop_*`; this module loads what they read.

use async_trait::async_trait;
use chrono::{Duration, Utc};
use rusqlite::OptionalExtension;

use aof_store::{
    lifecycle::{self, RunnerPresence, SessionStopView},
    rows::{self, RUN_COLS},
    statements, StopOutcome, StopStore, StoreError, StoreResult,
};

use crate::{
    execute::execute,
    internal,
    rows::{load_run, load_session, mark},
    SqliteStore, Tx,
};

#[async_trait]
impl StopStore for SqliteStore {
    async fn stop_run(&self, run_id: &str) -> StoreResult<StopOutcome> {
        let run_id = run_id.to_string();
        self.write(move |w| {
            let rec = load_run(w, &run_id)?.ok_or(StoreError::RunNotFound)?;
            let (plan, out) = lifecycle::on_stop_run(&rec, Utc::now())?;
            execute(w, plan)?;
            Ok(out)
        })
        .await
    }

    async fn stop_session(&self, session_id: &str) -> StoreResult<StopOutcome> {
        let (sid, stale_after) = (session_id.to_string(), self.opts.stale_after);
        self.write(move |w| {
            let view = stop_view(w, &sid, stale_after)?;
            let (plan, out) = lifecycle::on_stop_session(&view)?;
            execute(w, plan)?;
            Ok(out)
        })
        .await
    }

    async fn take_stops(&self, runner_id: &str) -> StoreResult<Vec<String>> {
        // Read first so the common case (nothing to stop) takes no write slot.
        let rid = runner_id.to_string();
        let any = self
            .read(move |c| {
                c.prepare_cached(&statements::stops_owed(mark))
                    .and_then(|mut st| st.query_row([rid], |r| r.get::<_, bool>(0)))
                    .map_err(internal)
            })
            .await?;
        if !any {
            return Ok(Vec::new());
        }
        let rid = runner_id.to_string();
        let mut sessions: Vec<String> = self
            .write(move |w| {
                w.prepare_cached(&statements::take_stops(mark))
                    .and_then(|mut st| st.query_map([rid], |r| r.get(0))?.collect())
                    .map_err(internal)
            })
            .await?;
        sessions.sort();
        sessions.dedup();
        Ok(sessions)
    }
}

/// What `on_stop_session` decides on: the session, its live run (else its latest), that
/// run's `stop_delivered`, and, when the run ended, its runner's row.
fn stop_view(w: &Tx<'_>, session_id: &str, stale_after: Duration) -> StoreResult<SessionStopView> {
    let session = load_session(w, session_id)?
        .ok_or_else(|| StoreError::SessionNotFound(session_id.to_string()))?;
    let latest = w
        .prepare_cached(&format!(
            "SELECT {RUN_COLS}, stop_delivered FROM runs WHERE session_id = ? \
             ORDER BY (status IN ('pending','claimed','running','stopping')) DESC, rowid DESC LIMIT 1"
        ))
        .and_then(|mut st| {
            st.query_row([session_id], |r| {
                Ok((rows::run(r)?, r.get::<_, i64>("stop_delivered")?))
            })
            .optional()
        })
        .map_err(internal)?;
    let runner = match SessionStopView::runner_to_load(latest.as_ref().map(|(rec, _)| rec)) {
        Some(id) => presence(w, id)?,
        None => None,
    };
    let (latest, latest_stop_delivered) = match latest {
        Some((rec, delivered)) => (Some(rec), delivered),
        None => (None, 0),
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

fn presence(w: &Tx<'_>, runner_id: &str) -> StoreResult<Option<RunnerPresence>> {
    w.prepare_cached(&format!(
        "SELECT {} FROM runners WHERE runner_id = ?",
        rows::PRESENCE_COLS
    ))
    .and_then(|mut st| st.query_row([runner_id], |r| rows::presence(r)).optional())
    .map_err(internal)
}
