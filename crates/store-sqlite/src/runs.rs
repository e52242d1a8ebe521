//! Runs: create, claim with a lease, runner reports (fenced). What a claim or a report
//! causes is decided by `aof_store::lifecycle` and written by `execute`; stops are in
//! `stops`, lease renewal and expiry in `leases`.

use aof_core::RunStatus;
use async_trait::async_trait;
use chrono::{Duration, Utc};
use rusqlite::{Connection, OptionalExtension};

use aof_store::{
    lifecycle,
    matching::may_claim,
    rows::{run, session, RUN_COLS},
    statements, NewRun, RunPage, RunRecord, RunReport, RunStore, StoreError, StoreResult, Writer,
};
use aof_wire::{auth::KeyScope, runner::RunnerInfo, sse, Demands, Run, RunType};

use crate::{
    execute::{execute, execute_claim},
    internal,
    rows::{self, feed_session, load_run, mark, values},
    SqliteStore, Tx,
};

/// Pending runs read per step when looking for one a runner can take.
const CLAIM_PAGE: usize = 32;

/// The oldest pending run `runner` can take (and its key's `scope` allows), read a page
/// at a time: usually the first matches, and a long queue must not be parsed whole per
/// poll. Only the agent and the demands are read.
fn find_pending(
    conn: &Connection,
    runner: &RunnerInfo,
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

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_run(&self, new: NewRun) -> StoreResult<RunRecord> {
        self.write(move |w| create_run(w, new)).await
    }

    async fn get_run(&self, run_id: &str) -> StoreResult<Option<RunRecord>> {
        let run_id = run_id.to_string();
        self.read(move |c| load_run(c, &run_id)).await
    }

    async fn latest_run(&self, session_id: &str) -> StoreResult<Option<RunRecord>> {
        let sid = session_id.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE session_id = ? ORDER BY rowid DESC LIMIT 1"
            ))
            .and_then(|mut st| st.query_row([sid], |r| run(r)).optional())
            .map_err(internal)
        })
        .await
    }

    async fn list_runs(
        &self,
        status: Option<&str>,
        session_id: Option<&str>,
    ) -> StoreResult<Vec<Run>> {
        let status = status.map(str::to_string);
        let session_id = session_id.map(str::to_string);
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLS} FROM runs WHERE (?1 IS NULL OR status = ?1) \
                 AND (?2 IS NULL OR session_id = ?2) ORDER BY rowid DESC"
            ))
            .and_then(|mut st| {
                st.query_map([status, session_id], |r| run(r).map(|rec| rec.run))?
                    .collect()
            })
            .map_err(internal)
        })
        .await
    }

    async fn list_runs_page(
        &self,
        status: Option<RunStatus>,
        session_id: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<RunPage> {
        let status = status.map(RunStatus::as_str);
        let session_id = session_id.map(str::to_string);
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {RUN_COLS}, rowid FROM runs WHERE (?1 IS NULL OR status = ?1) \
                 AND (?2 IS NULL OR session_id = ?2) AND (?3 IS NULL OR rowid < ?3) \
                 ORDER BY rowid DESC LIMIT ?4"
            ))
            .and_then(|mut st| {
                let row = |r: &rusqlite::Row| Ok((run(r)?.run, r.get("rowid")?));
                // One row more than the page: whether another page follows.
                let params = rusqlite::params![status, session_id, before, limit.saturating_add(1)];
                st.query_map(params, row)?.collect()
            })
            .map(|rows| lifecycle::run_page(rows, limit))
            .map_err(internal)
        })
        .await
    }

    async fn claim_run_scoped(
        &self,
        runner: &RunnerInfo,
        ttl: Duration,
        scope: &KeyScope,
    ) -> StoreResult<Option<RunRecord>> {
        // One job on the writer: it finds the run and takes it with a warm cache, and an
        // idle poll costs one short read there.
        let (runner, scope) = (runner.clone(), scope.clone());
        self.write(move |w| match find_pending(w, &runner, &scope)? {
            Some(run_id) => {
                let plan = lifecycle::on_claim(&run_id, &runner.runner_id, ttl, Utc::now())?;
                execute_claim(w, plan)
            }
            None => Ok(None),
        })
        .await
    }

    async fn report(
        &self,
        run_id: &str,
        who: &Writer,
        report: RunReport,
    ) -> StoreResult<RunRecord> {
        let (run_id, who) = (run_id.to_string(), who.clone());
        self.write(move |w| report_run(w, &run_id, &who, &report))
            .await
    }
}

fn create_run(w: &mut Tx<'_>, new: NewRun) -> StoreResult<RunRecord> {
    let now = Utc::now();
    let created = match new.run_type {
        RunType::StartSession => {
            // RETURNING gives the new row; no row means the id is taken.
            let (sql, vals) = statements::session_insert(&new, now, mark);
            let row = w
                .prepare_cached(&sql)
                .and_then(|mut st| st.query_row(values(vals), |r| session(r)).optional())
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
    let (sql, vals) = statements::run_insert(&new, now, mark).map_err(internal)?;
    let rec = w
        .prepare_cached(&sql)
        .and_then(|mut st| st.query_row(values(vals), |r| run(r)))
        .map_err(internal)?;
    if let Some(s) = created {
        feed_session(w, sse::SESSION_CREATED, &s)?;
    }
    Ok(rec)
}

fn report_run(
    w: &mut Tx<'_>,
    run_id: &str,
    who: &Writer,
    report: &RunReport,
) -> StoreResult<RunRecord> {
    let rec = load_run(w, run_id)?;
    if lifecycle::must_check_runner(rec.as_ref(), who) {
        let known = w
            .prepare_cached("SELECT 1 FROM runners WHERE runner_id = ?")
            .and_then(|mut st| st.exists([&who.runner_id]))
            .map_err(internal)?;
        if !known {
            return Err(StoreError::RunnerNotRegistered);
        }
    }
    let rec = rec.ok_or(StoreError::RunNotFound)?;
    match lifecycle::on_report(&rec, who, report, Utc::now())? {
        // A repeat or old news: answered with the run as it is.
        None => Ok(rec),
        Some(plan) => execute(w, plan)?.ok_or(StoreError::RunNotFound),
    }
}
