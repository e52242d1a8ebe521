//! The AOF reference coordinator's database (`observability.db`: `sessions`, `runs`,
//! `events`): recognised so that our coordinator never migrates it in place, and read
//! (read-only) for `aof import --from-reference`.

use std::path::Path;

use anyhow::Context;
use aof_core::{RunStatus, SessionStatus};
use aof_store::{ImportedRun, ImportedSession};
use aof_wire::{Event, Run, Session};
use rusqlite::{Connection, OpenFlags, Row};
use serde_json::{json, Value};

/// What a reference database holds, ready for `Store::import_session`.
#[derive(Debug, Default)]
pub struct ReferenceData {
    pub sessions: Vec<ImportedSession>,
    /// Runs that were not final in the file (pending, claimed, running, stopping): they
    /// are imported as failed, never dispatched again.
    pub runs_in_flight: usize,
    /// Sessions that were pending, running or stopping: imported as failed.
    pub sessions_in_flight: usize,
}

fn open_read_only(path: &Path) -> anyhow::Result<Connection> {
    // Open the file ourselves first: a root-owned volume then fails with the OS's own
    // "permission denied" rather than SQLite's vaguer "unable to open database file".
    std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} read-only", path.display()))
}

/// True when `path` exists and holds the reference coordinator's schema and not ours.
/// Errors when the file exists but cannot be read (e.g. a root-owned reference volume).
pub fn is_reference_db(path: &Path) -> anyhow::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let conn = open_read_only(path)?;
    crate::import::has_reference_schema(&conn)
        .with_context(|| format!("cannot read the schema of {}", path.display()))
}

/// Every session of the reference database at `path`, with its runs and events.
pub fn read_reference(path: &Path) -> anyhow::Result<ReferenceData> {
    let conn = open_read_only(path)?;
    if !crate::import::has_reference_schema(&conn)? {
        anyhow::bail!(
            "{} is not a database of the AOF reference coordinator (no sessions/events tables, or it is already an AOF database)",
            path.display()
        );
    }
    let mut data = ReferenceData::default();
    let mut st = conn.prepare("SELECT * FROM sessions ORDER BY created_at, session_id")?;
    let sessions: Vec<Session> = st
        .query_map([], |r| Ok(session_json(r)))?
        .map(|r| -> anyhow::Result<Session> {
            let v = r?;
            serde_json::from_value(v.clone()).with_context(|| format!("session row {v}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let has_runs = conn
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'")?
        .exists([])?;
    for mut session in sessions {
        let final_status = match session.status {
            SessionStatus::Pending | SessionStatus::Running | SessionStatus::Stopping => {
                data.sessions_in_flight += 1;
                SessionStatus::Failed
            }
            other => other,
        };
        session.status = final_status;
        let runs = if has_runs {
            read_runs(&conn, &session.session_id, &mut data.runs_in_flight)?
        } else {
            Vec::new()
        };
        let events = read_events(&conn, &session.session_id)?;
        data.sessions.push(ImportedSession {
            session,
            status: final_status,
            runs,
            events,
        });
    }
    Ok(data)
}

fn text(r: &Row, col: &str) -> Option<String> {
    r.get::<_, Option<String>>(col).ok().flatten()
}

/// A JSON column as the reference wrote it (`json.dumps`); text that is not JSON is kept
/// as a JSON string rather than dropped.
fn json_col(r: &Row, col: &str) -> Option<Value> {
    text(r, col).map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
}

fn session_json(r: &Row) -> Value {
    let cols = [
        "session_id",
        "status",
        "created_at",
        "project_dir",
        "agent_name",
        "last_resumed_at",
        "parent_session_id",
        "executor_session_id",
        "executor_profile",
        "hostname",
    ];
    Value::Object(
        cols.iter()
            .map(|c| (c.to_string(), json!(text(r, c))))
            .collect(),
    )
}

fn read_runs(
    conn: &Connection,
    session_id: &str,
    in_flight: &mut usize,
) -> anyhow::Result<Vec<ImportedRun>> {
    let mut st = conn.prepare("SELECT * FROM runs WHERE session_id = ? ORDER BY created_at")?;
    let rows: Vec<Value> = st
        .query_map([session_id], |r| {
            let mut v = json!({
                "type": text(r, "type"),
                "parameters": json_col(r, "parameters").unwrap_or_else(|| json!({})),
                "demands": json_col(r, "demands"),
                "attempt": 1,
            });
            for c in [
                "run_id",
                "session_id",
                "agent_name",
                "project_dir",
                "parent_session_id",
                "execution_mode",
                "status",
                "runner_id",
                "error",
                "created_at",
                "claimed_at",
                "started_at",
                "completed_at",
                "timeout_at",
            ] {
                v[c] = json!(text(r, c));
            }
            v["scope"] = json_col(r, "scope").unwrap_or(Value::Null);
            v["resolved_agent_blueprint"] =
                json_col(r, "resolved_agent_blueprint").unwrap_or(Value::Null);
            Ok(v)
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|v| {
            let mut run: Run =
                serde_json::from_value(v.clone()).with_context(|| format!("run row {v}"))?;
            let status = if run.status.is_terminal() {
                run.status
            } else {
                *in_flight += 1;
                let was = run.status;
                run.error = Some(format!(
                    "imported from the AOF reference while {was}: not run again"
                ));
                RunStatus::Failed
            };
            run.status = status;
            Ok(ImportedRun { run, status })
        })
        .collect()
}

fn read_events(conn: &Connection, session_id: &str) -> anyhow::Result<Vec<Event>> {
    let mut st = conn.prepare("SELECT * FROM events WHERE session_id = ? ORDER BY id")?;
    let rows: Vec<Value> = st
        .query_map([session_id], |r| {
            let mut v = json!({
                "exit_code": r.get::<_, Option<i64>>("exit_code").ok().flatten(),
                "tool_input": object_or_wrapped(json_col(r, "tool_input")),
                "tool_output": json_col(r, "tool_output"),
                "content": array_or_wrapped(json_col(r, "content")),
                "result_data": object_or_wrapped(json_col(r, "result_data")),
            });
            for c in [
                "session_id",
                "event_type",
                "timestamp",
                "tool_name",
                "error",
                "reason",
                "role",
                "result_text",
            ] {
                v[c] = json!(text(r, c));
            }
            Ok(v)
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|v| serde_json::from_value(v.clone()).with_context(|| format!("event row {v}")))
        .collect()
}

/// Our `tool_input`/`result_data` are JSON objects; the reference's column may hold any
/// JSON: anything else is kept under `"value"`.
fn object_or_wrapped(v: Option<Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Object(m)) => Value::Object(m),
        Some(other) => json!({ "value": other }),
    }
}

/// Our `content` is a JSON array of blocks; a single value becomes a one-block array.
fn array_or_wrapped(v: Option<Value>) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Array(a)) => Value::Array(a),
        Some(other) => json!([other]),
    }
}
