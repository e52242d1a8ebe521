//! Runs: create, claim with a lease, runner reports (fenced), release, stops. Lease
//! renewal and expiry are in `leases`.

use aof_core::{new_lease_token, RunEvent, RunStatus, SessionStatus};
use aof_store::{
    matching::may_claim,
    stops::{self, IDLE_STOP_OWED},
    NewRun, RunRecord, RunReport, StopOutcome, StoreError, StoreResult, Writer,
};
use aof_wire::{auth::KeyScope, event::types, sse, Demands, Event, Run, RunType};
use chrono::{Duration, Utc};
use rusqlite::{Connection, OptionalExtension};

use crate::{
    events::append_in_tx,
    internal, ms,
    rows::{
        self, cas_status, feed_session, load_run, run_from_row, set_session_status, ts, RUN_COLS,
        SESSION_COLS,
    },
    SqliteStore, Tx,
};

pub(crate) const LEASED: &str = "('claimed','running','stopping')";
/// Pending runs read per step when looking for one a runner can take.
const CLAIM_PAGE: usize = 32;

/// The oldest pending run `runner` can take (and its key's `scope` allows), read a page
/// at a time: usually the first matches, and a long queue must not be parsed whole per
/// poll. Only the agent and the demands are read.
fn find_pending(
    conn: &Connection,
    runner: &aof_wire::runner::RunnerInfo,
    scope: &KeyScope,
) -> StoreResult<Option<String>> {
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT rowid, run_id, agent_name, demands FROM runs WHERE status = 'pending' \
             AND rowid > ? ORDER BY rowid LIMIT {CLAIM_PAGE}"
        ))
        .map_err(internal)?;
    let mut after: i64 = 0;
    loop {
        type Row = (i64, String, Option<String>, Option<String>);
        let page: Vec<Row> = st
            .query_map([after], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(internal)?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        after = last.0;
        let found = page.iter().find(|(_, _, agent, demands)| {
            // A row whose demands do not parse is skipped, as before.
            match demands.as_deref().map(serde_json::from_str::<Demands>) {
                None => may_claim(runner, scope, agent.as_deref(), None),
                Some(Ok(d)) => may_claim(runner, scope, agent.as_deref(), Some(&d)),
                Some(Err(_)) => false,
            }
        });
        if let Some((_, run_id, _, _)) = found {
            return Ok(Some(run_id.clone()));
        }
        if page.len() < CLAIM_PAGE {
            return Ok(None);
        }
    }
}

pub(crate) fn illegal(e: aof_core::IllegalTransition) -> StoreError {
    StoreError::Illegal(format!("Run cannot move from {} on {:?}", e.from, e.event))
}

impl SqliteStore {
    pub(crate) async fn create_run_impl(&self, new: NewRun) -> StoreResult<RunRecord> {
        self.write(move |w| create_run(w, new)).await
    }

    pub(crate) async fn get_run_impl(&self, run_id: &str) -> StoreResult<Option<RunRecord>> {
        let run_id = run_id.to_string();
        self.read(move |c| load_run(c, &run_id)).await
    }

    pub(crate) async fn latest_run_impl(&self, session_id: &str) -> StoreResult<Option<RunRecord>> {
        let sid = session_id.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE session_id = ? ORDER BY rowid DESC LIMIT 1"
            ))
            .and_then(|mut st| st.query_row([sid], run_from_row).optional())
            .map_err(internal)
        })
        .await
    }

    pub(crate) async fn list_runs_impl(&self, status: Option<&str>) -> StoreResult<Vec<Run>> {
        let status = status.map(str::to_string);
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE (?1 IS NULL OR status = ?1) ORDER BY rowid DESC"
            ))
            .and_then(|mut st| {
                st.query_map([status], |r| run_from_row(r).map(|rec| rec.run))?
                    .collect()
            })
            .map_err(internal)
        })
        .await
    }

    pub(crate) async fn claim_run_impl(
        &self,
        runner: &aof_wire::runner::RunnerInfo,
        ttl: Duration,
        scope: &KeyScope,
    ) -> StoreResult<Option<RunRecord>> {
        // One job on the writer: it finds the run and takes it with a warm cache, and an
        // idle poll costs one short read there.
        let (runner, scope) = (runner.clone(), scope.clone());
        self.write(move |w| match find_pending(w, &runner, &scope)? {
            Some(run_id) => claim(w, &runner, run_id, ttl),
            None => Ok(None),
        })
        .await
    }

    pub(crate) async fn report_impl(
        &self,
        run_id: &str,
        who: &Writer,
        report: RunReport,
    ) -> StoreResult<RunRecord> {
        let (run_id, who) = (run_id.to_string(), who.clone());
        self.write(move |w| report_run(w, &run_id, &who, report))
            .await
    }

    pub(crate) async fn stop_run_impl(&self, run_id: &str) -> StoreResult<StopOutcome> {
        let run_id = run_id.to_string();
        self.write(move |w| {
            let rec = load_run(w, &run_id)?.ok_or(StoreError::RunNotFound)?;
            stop_in_tx(w, &rec)
        })
        .await
    }

    pub(crate) async fn stop_session_impl(&self, session_id: &str) -> StoreResult<StopOutcome> {
        let (sid, stale_after) = (session_id.to_string(), self.opts.stale_after);
        self.write(move |w| stop_session(w, &sid, stale_after))
            .await
    }

    pub(crate) async fn take_stops_impl(&self, runner_id: &str) -> StoreResult<Vec<String>> {
        // Read first so the common case (nothing to stop) takes no write slot.
        let rid = runner_id.to_string();
        let any = self
            .read(move |c| {
                c.prepare_cached(&format!(
                    "SELECT EXISTS(SELECT 1 FROM runs WHERE runner_id = ?1 AND status = 'stopping' \
                     AND stop_delivered = 0) OR EXISTS(SELECT 1 FROM runs WHERE runner_id = ?1 \
                     AND stop_delivered = {IDLE_STOP_OWED})"
                ))
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
                w.prepare_cached(&format!(
                    "UPDATE runs SET stop_delivered = 1 WHERE runner_id = ? AND \
                     ((status = 'stopping' AND stop_delivered = 0) OR stop_delivered = {IDLE_STOP_OWED}) \
                     RETURNING session_id"
                ))
                .and_then(|mut st| st.query_map([rid], |r| r.get(0))?.collect())
                .map_err(internal)
            })
            .await?;
        sessions.sort();
        sessions.dedup();
        Ok(sessions)
    }
}

fn create_run(w: &mut Tx<'_>, new: NewRun) -> StoreResult<RunRecord> {
    let now = Utc::now();
    let created = match new.run_type {
        RunType::StartSession => {
            // RETURNING gives the new row; no row means the id is taken.
            let row = w
                .prepare_cached(&format!(
                    "INSERT INTO sessions(session_id, status, created_at, project_dir, agent_name, parent_session_id) \
                     VALUES (?, 'pending', ?, ?, ?, ?) ON CONFLICT(session_id) DO NOTHING \
                     RETURNING {SESSION_COLS}"
                ))
                .and_then(|mut st| {
                    st.query_row(
                        (
                            &new.session_id,
                            ts(now),
                            &new.project_dir,
                            &new.agent_name,
                            &new.parent_session_id,
                        ),
                        rows::session_from_row,
                    )
                    .optional()
                })
                .map_err(internal)?;
            let Some(session) = row else {
                return Err(StoreError::SessionExists(new.session_id));
            };
            Some(session)
        }
        RunType::ResumeSession => {
            if rows::load_session(w, &new.session_id)?.is_none() {
                return Err(StoreError::SessionNotFound(new.session_id));
            }
            None
        }
    };
    if !new.deliver_callbacks.is_empty() {
        // Before the insert: the new run must not count as the session's live run.
        crate::callbacks::mark_delivered(w, &new.session_id, &new.run_id, &new.deliver_callbacks)?;
    }
    let demands = serde_json::to_string(&new.demands).map_err(internal)?;
    let rec = w
        .prepare_cached(&format!(
            "INSERT INTO runs(run_id, run_type, session_id, agent_name, parameters, project_dir, \
             parent_session_id, execution_mode, demands, scope, status, created_at, timeout_at, timeout_ms, \
             blueprint, traceparent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?) RETURNING {RUN_COLS}"
        ))
        .and_then(|mut st| {
            st.query_row(
                rusqlite::params![
                    new.run_id,
                    new.run_type.as_str(),
                    new.session_id,
                    new.agent_name,
                    new.parameters.to_string(),
                    new.project_dir,
                    new.parent_session_id,
                    new.execution_mode.as_str(),
                    demands,
                    new.scope.as_ref().map(|s| s.to_string()),
                    ts(now),
                    new.timeout_at.map(ts),
                    new.timeout_at.map(ms),
                    new.blueprint.as_ref().map(|b| b.to_string()),
                    new.traceparent,
                ],
                run_from_row,
            )
        })
        .map_err(internal)?;
    if let Some(s) = created {
        feed_session(w, sse::SESSION_CREATED, &s)?;
    }
    Ok(rec)
}

/// Claims pending run `run_id` for `runner` (found pending in this same job).
fn claim(
    w: &mut Tx<'_>,
    runner: &aof_wire::runner::RunnerInfo,
    run_id: String,
    ttl: Duration,
) -> StoreResult<Option<RunRecord>> {
    let now = Utc::now();
    let token = new_lease_token();
    let next = RunStatus::Pending.on(RunEvent::Claim).map_err(illegal)?;
    let claimed = w
        .prepare_cached(&format!(
            "UPDATE runs SET status = ?, runner_id = ?, claimed_at = ?, attempt = attempt + 1, \
             lease_token = ?, lease_expires_ms = ?, stop_delivered = 0 \
             WHERE run_id = ? AND status = 'pending' RETURNING {RUN_COLS}"
        ))
        .and_then(|mut st| {
            st.query_row(
                (
                    next.as_str(),
                    &runner.runner_id,
                    ts(now),
                    &token,
                    ms(now + ttl),
                    &run_id,
                ),
                run_from_row,
            )
            .optional()
        })
        .map_err(internal)?;
    Ok(claimed.map(|mut rec| {
        rec.run.lease_token = rec.lease_token.clone();
        rec
    }))
}

fn report_run(
    w: &mut Tx<'_>,
    run_id: &str,
    who: &Writer,
    report: RunReport,
) -> StoreResult<RunRecord> {
    let rec = load_run(w, run_id)?;
    // A live run held by this runner proves the runner is registered (removing a
    // runner fails its runs in the same transaction); only otherwise look it up.
    let held = rec.as_ref().is_some_and(|r| {
        r.run.runner_id.as_deref() == Some(who.runner_id.as_str()) && !r.status.is_terminal()
    });
    if !held {
        let known = w
            .prepare_cached("SELECT 1 FROM runners WHERE runner_id = ?")
            .and_then(|mut st| st.exists([&who.runner_id]))
            .map_err(internal)?;
        if !known {
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
    if who.lease_token.is_none() && matches!(report, RunReport::Started) && rec.status.is_terminal()
    {
        return Ok(rec);
    }
    let next = rec.status.on(event).map_err(illegal)?;
    let now = ts(Utc::now());
    let sid = rec.run.session_id.clone();
    // The run row as this report leaves it (each arm's UPDATE returns it).
    let out: RunRecord;
    match &report {
        RunReport::Started => {
            let row = w
                .prepare_cached(&format!(
                    "UPDATE runs SET status = ?, started_at = COALESCE(started_at, ?) \
                     WHERE run_id = ? AND status = ? RETURNING {RUN_COLS}"
                ))
                .and_then(|mut st| {
                    st.query_row(
                        (next.as_str(), &now, run_id, rec.status.as_str()),
                        run_from_row,
                    )
                    .optional()
                })
                .map_err(internal)?;
            let Some(row) = row else {
                return Err(StoreError::LeaseConflict(format!(
                    "run {run_id} changed concurrently (expected {})",
                    rec.status
                )));
            };
            out = row;
            if let Some(parent) = &rec.run.parent_session_id {
                w.prepare_cached("UPDATE sessions SET parent_session_id = ? WHERE session_id = ?")
                    .and_then(|mut st| st.execute((parent, &sid)))
                    .map_err(internal)?;
            }
            if rec.status != RunStatus::Running {
                append_in_tx(
                    w,
                    &sid,
                    Event::new(types::RUN_START, &sid),
                    Some(run_id),
                    None,
                )?;
                set_session_status(w, &sid, SessionStatus::Running)?;
            }
        }
        RunReport::Completed { session_status } => {
            // Ended before its start was reported (a reference runner's fast turn): the
            // turn did start, and the history says so.
            if rec.status == RunStatus::Claimed {
                let start = Event::new(types::RUN_START, &sid);
                append_in_tx(w, &sid, start, Some(run_id), None)?;
            }
            out = finish(w, &rec, next, None)?;
            let ev = Event {
                exit_code: Some(0),
                reason: Some("completed".into()),
                ..Event::new(types::RUN_COMPLETED, &sid)
            };
            append_in_tx(w, &sid, ev, Some(run_id), None)?;
            // Session status last: a follower that stops at it has seen every event.
            let st = session_status.unwrap_or(SessionStatus::Finished);
            set_session_status(w, &sid, st)?;
        }
        RunReport::Failed { error } => {
            out = finish(w, &rec, next, Some(error))?;
            let ev = Event {
                error: Some(error.clone()),
                reason: Some("failed".into()),
                ..Event::new(types::RUN_FAILED, &sid)
            };
            append_in_tx(w, &sid, ev, Some(run_id), None)?;
            feed_run_failed(w, run_id, &sid, error)?;
            set_session_status(w, &sid, SessionStatus::Failed)?;
        }
        RunReport::Stopped { signal } => {
            out = finish(w, &rec, next, None)?;
            let ev = Event {
                reason: Some(signal.clone()),
                ..Event::new(types::RUN_STOPPED, &sid)
            };
            append_in_tx(w, &sid, ev, Some(run_id), None)?;
            set_session_status(w, &sid, SessionStatus::Stopped)?;
        }
        RunReport::Released { .. } => {
            out = release(w, &rec, next, &who.runner_id)?;
        }
    }
    Ok(out)
}

/// A run handed back by its draining runner: requeued like an expired lease (the
/// next claim is attempt n+1), or failed when policy forbids a retry, or stopped
/// when a stop was already asked for.
fn release(
    w: &mut Tx<'_>,
    rec: &RunRecord,
    next: RunStatus,
    runner_id: &str,
) -> StoreResult<RunRecord> {
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
            )?;
            set_session_status(w, sid, SessionStatus::Pending)?;
            load_run(w, run_id)?.ok_or(StoreError::RunNotFound)
        }
        RunStatus::Stopped => {
            let out = finish_with(w, rec, next, None, true)?;
            let ev = Event {
                reason: Some("released".into()),
                ..Event::new(types::RUN_STOPPED, sid)
            };
            append_in_tx(w, sid, ev, Some(run_id), None)?;
            set_session_status(w, sid, SessionStatus::Stopped)?;
            Ok(out)
        }
        _ => {
            let error = format!(
                "Handed back unfinished by runner {runner_id} (shutting down); \
                 RUN_RECOVERY_MODE=none does not retry it"
            );
            let out = finish_with(w, rec, next, Some(&error), true)?;
            let ev = Event {
                error: Some(error.clone()),
                reason: Some("failed".into()),
                ..Event::new(types::RUN_FAILED, sid)
            };
            append_in_tx(w, sid, ev, Some(run_id), None)?;
            feed_run_failed(w, run_id, sid, &error)?;
            set_session_status(w, sid, SessionStatus::Failed)?;
            Ok(out)
        }
    }
}

/// Moves a run to a terminal state. The lease token stays so retried reports match.
pub(crate) fn finish(
    w: &mut Tx<'_>,
    rec: &RunRecord,
    next: RunStatus,
    error: Option<&str>,
) -> StoreResult<RunRecord> {
    finish_with(w, rec, next, error, false)
}

/// `revoke`: the coordinator resolved the run without its runner, so the lease
/// token is cleared and later writes with it are refused as stale.
pub(crate) fn finish_with(
    w: &mut Tx<'_>,
    rec: &RunRecord,
    next: RunStatus,
    error: Option<&str>,
    revoke: bool,
) -> StoreResult<RunRecord> {
    w.prepare_cached(&format!(
        "UPDATE runs SET status = ?, completed_at = ?, error = COALESCE(?, error), \
         lease_expires_ms = NULL, lease_token = CASE WHEN ? THEN NULL ELSE lease_token END \
         WHERE run_id = ? AND status = ? RETURNING {RUN_COLS}"
    ))
    .and_then(|mut st| {
        st.query_row(
            (
                next.as_str(),
                ts(Utc::now()),
                error,
                revoke,
                &rec.run.run_id,
                rec.status.as_str(),
            ),
            run_from_row,
        )
        .optional()
    })
    .map_err(internal)?
    .ok_or_else(|| StoreError::LeaseConflict("run changed concurrently".into()))
}

fn stop_session(
    w: &mut Tx<'_>,
    session_id: &str,
    stale_after: Duration,
) -> StoreResult<StopOutcome> {
    let session = rows::load_session(w, session_id)?
        .ok_or_else(|| StoreError::SessionNotFound(session_id.to_string()))?;
    let latest = w
        .prepare_cached(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE session_id = ? \
             ORDER BY (status IN ('pending','claimed','running','stopping')) DESC, rowid DESC LIMIT 1"
        ))
        .and_then(|mut st| st.query_row([session_id], run_from_row).optional())
        .map_err(internal)?;
    let ended = latest.as_ref().filter(|r| r.status.is_terminal());
    // Stopping with no live run: an idle session's stop, which its runner ends. Asked
    // again once the runner has been told (or is gone), the stop ends it here: a runner
    // that lost the process (restarted) never reports, and the session must not stay
    // stopping for ever.
    if let Some(rec) = ended.filter(|_| session.status == SessionStatus::Stopping.as_str()) {
        let owed: i64 = w
            .prepare_cached("SELECT stop_delivered FROM runs WHERE run_id = ?")
            .and_then(|mut st| st.query_row([&rec.run.run_id], |r| r.get(0)))
            .map_err(internal)?;
        if owed != IDLE_STOP_OWED
            || !keeps_idle_process(w, rec.run.runner_id.as_deref(), stale_after)?
        {
            w.prepare_cached("UPDATE runs SET stop_delivered = 1 WHERE run_id = ?")
                .and_then(|mut st| st.execute([&rec.run.run_id]))
                .map_err(internal)?;
            set_session_status(w, session_id, SessionStatus::Stopped)?;
            return Ok(stops::idle_stop_abandoned(session_id, &rec.run.run_id));
        }
    }
    if let Some(done) = stops::settled(session_id, &session.status) {
        return Ok(done);
    }
    // An idle session may still have a process on its runner (the reference's persistent
    // executors): the stop goes there, and the runner reports how the session ended.
    if let Some(rec) = ended.filter(|_| session.status == SessionStatus::Idle.as_str()) {
        if keeps_idle_process(w, rec.run.runner_id.as_deref(), stale_after)? {
            w.prepare_cached(&format!(
                "UPDATE runs SET stop_delivered = {IDLE_STOP_OWED} WHERE run_id = ?"
            ))
            .and_then(|mut st| st.execute([&rec.run.run_id]))
            .map_err(internal)?;
            set_session_status(w, session_id, SessionStatus::Stopping)?;
            return Ok(stops::idle_stop_queued(session_id, &rec.run.run_id));
        }
    }
    match latest {
        Some(rec) if !rec.status.is_terminal() => stop_in_tx(w, &rec),
        latest => {
            set_session_status(w, session_id, SessionStatus::Stopped)?;
            Ok(stops::no_live_run(
                session_id,
                latest.as_ref().map(|r| (r.run.run_id.as_str(), r.status)),
            ))
        }
    }
}

/// Whether `runner_id` may still hold a process for an idle session: registered, not
/// being removed, heard from recently, and a reference runner (no `instance_id`). An AOF
/// runner starts a process per turn and holds none between turns: its idle sessions stop
/// at once.
fn keeps_idle_process(
    w: &Tx<'_>,
    runner_id: Option<&str>,
    stale_after: Duration,
) -> StoreResult<bool> {
    let Some(id) = runner_id else {
        return Ok(false);
    };
    let heartbeat: Option<i64> = w
        .prepare_cached(
            "SELECT last_heartbeat_ms FROM runners WHERE runner_id = ? AND deregister = 0 \
             AND instance_id IS NULL",
        )
        .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
        .map_err(internal)?;
    Ok(heartbeat.is_some_and(|hb| ms(Utc::now()) - hb < stale_after.num_milliseconds()))
}

pub(crate) fn feed_run_failed(
    w: &mut Tx<'_>,
    run_id: &str,
    session_id: &str,
    error: &str,
) -> StoreResult<()> {
    let data = serde_json::json!({"run_id": run_id, "error": error, "session_id": session_id});
    w.feed(sse::RUN_FAILED, Some(session_id), data)?;
    Ok(())
}

/// The reference's stop rules for one run.
pub(crate) fn stop_in_tx(w: &mut Tx<'_>, rec: &RunRecord) -> StoreResult<StopOutcome> {
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
            cas_status(w, &run_id, rec.status, next, "")?;
            w.prepare_cached("UPDATE runs SET completed_at = ? WHERE run_id = ?")
                .and_then(|mut st| st.execute((ts(Utc::now()), &run_id)))
                .map_err(internal)?;
            set_session_status(w, &sid, SessionStatus::Stopped)?;
            Ok(base("stopped", Some("Run cancelled before execution")))
        }
        RunStatus::Stopping => Ok(base("stopping", None)),
        RunStatus::Claimed | RunStatus::Running => {
            if rec.run.runner_id.is_none() {
                return Err(StoreError::Illegal("Run not claimed by any runner".into()));
            }
            let next = rec.status.on(RunEvent::StopRequested).map_err(illegal)?;
            cas_status(w, &run_id, rec.status, next, ", stop_delivered = 0")?;
            set_session_status(w, &sid, SessionStatus::Stopping)?;
            Ok(base("stopping", None))
        }
        st => Err(StoreError::Illegal(format!(
            "Run cannot be stopped (status: {st})"
        ))),
    }
}
