//! Row ↔ wire mapping, and the small queries every module needs inside a transaction.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{postgres::PgRow, PgConnection, Row};

use aof_core::{RunStatus, SessionStatus};
use aof_store::{RunRecord, StoreResult};
use aof_wire::{Run, Session};

use crate::{internal, WriteTx};

pub(crate) const SESSION_COLS: &str = "session_id, status, created_at, project_dir, agent_name, \
    last_resumed_at, parent_session_id, executor_session_id, executor_profile, hostname";

pub(crate) const RUN_COLS: &str = "run_id, run_type, session_id, agent_name, parameters, \
    project_dir, parent_session_id, execution_mode, demands, scope, status, runner_id, error, \
    created_at, claimed_at, started_at, completed_at, timeout_at, attempt, lease_token, lease_expires_ms, blueprint, traceparent";

pub(crate) fn session_from_row(r: &PgRow) -> StoreResult<Session> {
    Ok(Session {
        session_id: r.get("session_id"),
        status: parsed(r, "status")?,
        created_at: r.get("created_at"),
        project_dir: r.get("project_dir"),
        agent_name: r.get("agent_name"),
        last_resumed_at: r.get("last_resumed_at"),
        parent_session_id: r.get("parent_session_id"),
        executor_session_id: r.get("executor_session_id"),
        executor_profile: r.get("executor_profile"),
        hostname: r.get("hostname"),
    })
}

/// A text column holding an enum's wire name; an unknown name is an error, never a default.
fn parsed<T: FromStr<Err = String>>(r: &PgRow, col: &str) -> StoreResult<T> {
    let text: String = r.get(col);
    text.parse()
        .map_err(|e: String| internal(anyhow::anyhow!("column {col}: {e}")))
}

fn json_col(r: &PgRow, col: &str) -> StoreResult<Option<serde_json::Value>> {
    let text: Option<String> = r.get(col);
    text.map(|t| serde_json::from_str(&t).map_err(internal))
        .transpose()
}

pub(crate) fn run_from_row(r: &PgRow) -> StoreResult<RunRecord> {
    let status: RunStatus = parsed(r, "status")?;
    let demands = json_col(r, "demands")?
        .map(serde_json::from_value)
        .transpose()
        .map_err(internal)?;
    let lease_ms: Option<i64> = r.get("lease_expires_ms");
    Ok(RunRecord {
        run: Run {
            run_id: r.get("run_id"),
            run_type: parsed(r, "run_type")?,
            session_id: r.get("session_id"),
            agent_name: r.get("agent_name"),
            parameters: json_col(r, "parameters")?.unwrap_or(serde_json::Value::Null),
            project_dir: r.get("project_dir"),
            parent_session_id: r.get("parent_session_id"),
            execution_mode: parsed(r, "execution_mode")?,
            demands,
            status,
            runner_id: r.get("runner_id"),
            error: r.get("error"),
            created_at: r.get("created_at"),
            claimed_at: r.get("claimed_at"),
            started_at: r.get("started_at"),
            completed_at: r.get("completed_at"),
            timeout_at: r.get("timeout_at"),
            attempt: r.get("attempt"),
            scope: json_col(r, "scope")?,
            resolved_agent_blueprint: json_col(r, "blueprint")?,
            lease_token: None,
            session_token: None,
            traceparent: r.get("traceparent"),
        },
        status,
        lease_token: r.get("lease_token"),
        lease_expires_at: lease_ms.and_then(|m| Utc.timestamp_millis_opt(m).single()),
    })
}

pub(crate) async fn load_run(
    conn: &mut PgConnection,
    run_id: &str,
) -> StoreResult<Option<RunRecord>> {
    let row = sqlx::query(&format!("SELECT {RUN_COLS} FROM runs WHERE run_id = $1"))
        .bind(run_id)
        .fetch_optional(conn)
        .await
        .map_err(internal)?;
    row.as_ref().map(run_from_row).transpose()
}

pub(crate) async fn load_session(
    conn: &mut PgConnection,
    session_id: &str,
) -> StoreResult<Option<Session>> {
    let row = sqlx::query(&format!(
        "SELECT {SESSION_COLS} FROM sessions WHERE session_id = $1"
    ))
    .bind(session_id)
    .fetch_optional(conn)
    .await
    .map_err(internal)?;
    row.as_ref().map(session_from_row).transpose()
}

/// Sets a session's status and feeds `session_updated` with the new row.
pub(crate) async fn set_session_status(
    w: &mut WriteTx<'_>,
    session_id: &str,
    status: SessionStatus,
) -> StoreResult<Option<Session>> {
    // RETURNING gives the new row in the same statement; no row means unchanged or absent.
    let changed = sqlx::query(&format!(
        "UPDATE sessions SET status = $1 WHERE session_id = $2 AND status <> $3 RETURNING {SESSION_COLS}"
    ))
    .bind(status.as_str())
    .bind(session_id)
    .bind(status.as_str())
    .fetch_optional(&mut *w.tx)
    .await
    .map_err(internal)?;
    match changed {
        Some(row) => {
            let s = session_from_row(&row)?;
            crate::callbacks::record_if_callback(w, &s, status).await?;
            feed_session(w, aof_wire::sse::SESSION_UPDATED, &s).await?;
            Ok(Some(s))
        }
        None => load_session(&mut w.tx, session_id).await,
    }
}

pub(crate) async fn feed_session(w: &mut WriteTx<'_>, kind: &str, s: &Session) -> StoreResult<()> {
    let data = serde_json::json!({ "session": s });
    w.feed(kind, Some(&s.session_id), data).await?;
    Ok(())
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    aof_wire::format_ts(t)
}
