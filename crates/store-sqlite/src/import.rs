//! `Store::import_session`: a session from another system stored as it was, with its
//! runs (final statuses only, no lease) and its events (appended in order, one
//! idempotency key each), in one write job.

use aof_store::{ImportedSession, StoreResult};
use aof_wire::sse;
use rusqlite::OptionalExtension;

use crate::{
    events::append_in_tx,
    internal,
    rows::{self, feed_session},
    SqliteStore, Tx,
};

impl SqliteStore {
    pub(crate) async fn import_session_impl(&self, imp: ImportedSession) -> StoreResult<bool> {
        self.write(move |w| import(w, imp)).await
    }
}

fn import(w: &mut Tx<'_>, imp: ImportedSession) -> StoreResult<bool> {
    let s = &imp.session;
    let inserted = w
        .prepare_cached(
            "INSERT INTO sessions(session_id, status, created_at, project_dir, agent_name, \
             last_resumed_at, parent_session_id, executor_session_id, executor_profile, hostname) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(session_id) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(rusqlite::params![
                s.session_id,
                imp.status.as_str(),
                s.created_at,
                s.project_dir,
                s.agent_name,
                s.last_resumed_at,
                s.parent_session_id,
                s.executor_session_id,
                s.executor_profile,
                s.hostname,
            ])
        })
        .map_err(internal)?;
    if inserted == 0 {
        return Ok(false);
    }
    for r in &imp.runs {
        let run = &r.run;
        let demands = run
            .demands
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(internal)?;
        // A run id taken by another session is kept out rather than failing the session.
        w.prepare_cached(
            "INSERT INTO runs(run_id, run_type, session_id, agent_name, parameters, project_dir, \
             parent_session_id, execution_mode, demands, scope, status, runner_id, error, created_at, \
             claimed_at, started_at, completed_at, timeout_at, attempt, blueprint) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT(run_id) DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute(rusqlite::params![
                run.run_id,
                run.run_type.as_str(),
                s.session_id,
                run.agent_name,
                run.parameters.to_string(),
                run.project_dir,
                run.parent_session_id,
                run.execution_mode.as_str(),
                demands,
                run.scope.as_ref().map(|v| v.to_string()),
                r.status.as_str(),
                run.runner_id,
                run.error,
                run.created_at,
                run.claimed_at,
                run.started_at,
                run.completed_at,
                run.timeout_at,
                run.attempt,
                run.resolved_agent_blueprint.as_ref().map(|v| v.to_string()),
            ])
        })
        .map_err(internal)?;
    }
    for (i, event) in imp.events.iter().enumerate() {
        append_in_tx(
            w,
            &s.session_id,
            event.clone(),
            None,
            Some(&imp.event_key(i)),
        )?;
    }
    let stored = rows::load_session(w, &s.session_id)?;
    if let Some(stored) = stored {
        feed_session(w, sse::SESSION_CREATED, &stored)?;
    }
    Ok(true)
}

/// True when `conn` holds the AOF reference coordinator's schema (its `sessions` and
/// `events` tables) and not ours (no `feed`). An `_sqlx_migrations` table may be there:
/// an AOF before this check ran its first migration on such a file and failed.
pub(crate) fn has_reference_schema(conn: &rusqlite::Connection) -> rusqlite::Result<bool> {
    let table = |name: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
            [name],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    };
    let column = |t: &str, c: &str| -> rusqlite::Result<bool> {
        conn.query_row(
            &format!("SELECT 1 FROM pragma_table_info('{t}') WHERE name = ?"),
            [c],
            |_| Ok(()),
        )
        .optional()
        .map(|r| r.is_some())
    };
    Ok(
        table("sessions")?
            && table("events")?
            && column("events", "event_type")?
            && !table("feed")?,
    )
}
