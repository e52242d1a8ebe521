//! Rows → store and wire values, written once for both backends. Both stores keep the
//! same tables and columns; each reads a row's values through [`Columns`] (a few lines
//! per backend), and the functions here build the values from them.

use std::{fmt::Display, str::FromStr};

use aof_core::RunStatus;
use aof_wire::{audit::AuditEntry, auth::KeyScope, sse::FeedItem, Run, Session, StoredEvent};
use chrono::DateTime;

use crate::{
    audit::rfc3339_ms, events, keys::at, lifecycle::RunnerPresence, runners::RunnerRow,
    BrowserSessionRecord, KeyRecord, PendingCallback, RunRecord, SessionTokenRecord,
};

/// The `sessions` columns a [`session`] reads.
pub const SESSION_COLS: &str = "session_id, status, created_at, project_dir, agent_name, \
    last_resumed_at, parent_session_id, executor_session_id, executor_profile, hostname";

/// The `runs` columns a [`run`] reads.
pub const RUN_COLS: &str = "run_id, run_type, session_id, agent_name, parameters, \
    project_dir, parent_session_id, execution_mode, demands, scope, status, runner_id, error, \
    created_at, claimed_at, started_at, completed_at, timeout_at, attempt, lease_token, lease_expires_ms, blueprint, traceparent";

/// The `runners` columns a [`runner`] reads.
pub const RUNNER_COLS: &str =
    "runner_id, instance_id, registered_at, last_heartbeat, last_heartbeat_ms, hostname, \
    project_dir, executor_profile, executor, tags, require_matching_tags, deregister";

/// One row as a backend read it, by column name. `Error` is the backend's own, so a
/// SQLite row maps inside `query_map`. `Backend` is a marker type of the backend's
/// crate, which lets it implement this for its driver's row type (the orphan rule).
pub trait Columns<Backend> {
    type Error;
    fn text(&self, col: &str) -> Result<Option<String>, Self::Error>;
    /// An integer of any width; a boolean (a PostgreSQL expression) as 0 or 1.
    fn int(&self, col: &str) -> Result<Option<i64>, Self::Error>;
    /// A list of strings: JSON text on SQLite, `text[]` on PostgreSQL.
    fn list(&self, col: &str) -> Result<Vec<String>, Self::Error>;
    /// A value that is there but does not read as what the column holds.
    fn bad(&self, col: &str, e: String) -> Self::Error;

    fn str(&self, col: &str) -> Result<String, Self::Error> {
        self.text(col)?.ok_or_else(|| self.bad(col, "NULL".into()))
    }
    fn i64(&self, col: &str) -> Result<i64, Self::Error> {
        self.int(col)?.ok_or_else(|| self.bad(col, "NULL".into()))
    }
    fn flag(&self, col: &str) -> Result<bool, Self::Error> {
        Ok(self.i64(col)? != 0)
    }
    /// A JSON column (stored as its text).
    fn json(&self, col: &str) -> Result<Option<serde_json::Value>, Self::Error> {
        self.text(col)?
            .map(|t| serde_json::from_str(&t).map_err(|e| self.bad(col, e.to_string())))
            .transpose()
    }
    fn parse<T: FromStr>(&self, col: &str) -> Result<T, Self::Error>
    where
        T::Err: Display,
    {
        self.str(col)?
            .parse()
            .map_err(|e: T::Err| self.bad(col, e.to_string()))
    }
}

pub fn session<B, R: Columns<B> + ?Sized>(r: &R) -> Result<Session, R::Error> {
    Ok(Session {
        session_id: r.str("session_id")?,
        status: r.parse("status")?,
        created_at: r.str("created_at")?,
        project_dir: r.text("project_dir")?,
        agent_name: r.text("agent_name")?,
        last_resumed_at: r.text("last_resumed_at")?,
        parent_session_id: r.text("parent_session_id")?,
        executor_session_id: r.text("executor_session_id")?,
        executor_profile: r.text("executor_profile")?,
        hostname: r.text("hostname")?,
    })
}

pub fn run<B, R: Columns<B> + ?Sized>(r: &R) -> Result<RunRecord, R::Error> {
    // Enum columns parse strictly: an unknown name is an error naming its column.
    let status: RunStatus = r.parse("status")?;
    let demands = r.json("demands")?.map(serde_json::from_value).transpose();
    Ok(RunRecord {
        run: Run {
            run_id: r.str("run_id")?,
            run_type: r.parse("run_type")?,
            session_id: r.str("session_id")?,
            agent_name: r.text("agent_name")?,
            parameters: r.json("parameters")?.unwrap_or_default(),
            project_dir: r.text("project_dir")?,
            parent_session_id: r.text("parent_session_id")?,
            execution_mode: r.parse("execution_mode")?,
            demands: demands.map_err(|e| r.bad("demands", e.to_string()))?,
            status,
            runner_id: r.text("runner_id")?,
            error: r.text("error")?,
            created_at: r.str("created_at")?,
            claimed_at: r.text("claimed_at")?,
            started_at: r.text("started_at")?,
            completed_at: r.text("completed_at")?,
            timeout_at: r.text("timeout_at")?,
            attempt: r.i64("attempt")?,
            scope: r.json("scope")?,
            resolved_agent_blueprint: r.json("blueprint")?,
            lease_token: None,
            session_token: None,
            traceparent: r.text("traceparent")?,
        },
        status,
        lease_token: r.text("lease_token")?,
        lease_expires_at: r
            .int("lease_expires_ms")?
            .and_then(DateTime::from_timestamp_millis),
    })
}

pub fn runner<B, R: Columns<B> + ?Sized>(r: &R) -> Result<RunnerRow, R::Error> {
    Ok(RunnerRow {
        runner_id: r.str("runner_id")?,
        instance_id: r.text("instance_id")?,
        registered_at: r.str("registered_at")?,
        last_heartbeat: r.str("last_heartbeat")?,
        last_heartbeat_ms: r.i64("last_heartbeat_ms")?,
        hostname: r.str("hostname")?,
        project_dir: r.str("project_dir")?,
        executor_profile: r.str("executor_profile")?,
        executor: r.str("executor")?,
        tags: r.str("tags")?,
        require_matching_tags: r.flag("require_matching_tags")?,
        deregister: r.flag("deregister")?,
    })
}

/// The `runners` columns a [`presence`] reads.
pub const PRESENCE_COLS: &str =
    "last_heartbeat_ms, instance_id IS NOT NULL AS has_instance_id, deregister";

pub fn presence<B, R: Columns<B> + ?Sized>(r: &R) -> Result<RunnerPresence, R::Error> {
    Ok(RunnerPresence {
        last_heartbeat: at(r.i64("last_heartbeat_ms")?),
        has_instance_id: r.flag("has_instance_id")?,
        deregister: r.flag("deregister")?,
    })
}

pub fn key<B, R: Columns<B> + ?Sized>(r: &R) -> Result<KeyRecord, R::Error> {
    Ok(KeyRecord {
        id: r.str("id")?,
        name: r.text("name")?,
        role: r.parse("role")?,
        hash: r.str("hash")?,
        created_at: at(r.i64("created_ms")?),
        revoked_at: r.int("revoked_ms")?.map(at),
        scope: KeyScope {
            tags: r.list("scope_tags")?,
            agents: r.list("scope_agents")?,
        },
    })
}

pub fn session_token<B, R: Columns<B> + ?Sized>(r: &R) -> Result<SessionTokenRecord, R::Error> {
    Ok(SessionTokenRecord {
        id: r.str("id")?,
        hash: r.str("hash")?,
        run_id: r.str("run_id")?,
        session_id: r.str("session_id")?,
        expires_at: at(r.i64("expires_ms")?),
    })
}

pub fn browser_session<B, R: Columns<B> + ?Sized>(r: &R) -> Result<BrowserSessionRecord, R::Error> {
    Ok(BrowserSessionRecord {
        hash: r.str("hash")?,
        key_id: r.str("key_id")?,
        created_at: at(r.i64("created_ms")?),
        expires_at: at(r.i64("expires_ms")?),
    })
}

pub fn audit_entry<B, R: Columns<B> + ?Sized>(r: &R) -> Result<AuditEntry, R::Error> {
    let role = r.text("role")?.map(|t| t.parse());
    Ok(AuditEntry {
        id: r.i64("id")?,
        at: rfc3339_ms(r.i64("at_ms")?),
        actor_kind: r.parse("actor_kind")?,
        actor_id: r.text("actor_id")?,
        actor_name: r.text("actor_name")?,
        role: role.transpose().map_err(|e: String| r.bad("role", e))?,
        action: r.str("action")?,
        target: r.text("target")?,
        status: u16::try_from(r.i64("status")?).unwrap_or(0),
        request_id: r.str("request_id")?,
        remote_addr: r.text("remote_addr")?,
    })
}

/// `SELECT cursor, seq, run_id, data` of an event.
pub fn stored_event<B, R: Columns<B> + ?Sized>(r: &R) -> Result<StoredEvent, R::Error> {
    let data = r.str("data")?;
    Ok(StoredEvent {
        id: r.i64("cursor")?,
        seq: r.i64("seq")?,
        run_id: r.text("run_id")?,
        event: events::from_payload(&data).map_err(|e| r.bad("data", e.to_string()))?,
    })
}

/// `SELECT cursor, kind, session_id, data` of any feed item.
pub fn feed_item<B, R: Columns<B> + ?Sized>(r: &R) -> Result<FeedItem, R::Error> {
    Ok(FeedItem {
        cursor: r.i64("cursor")?,
        kind: r.str("kind")?,
        session_id: r.text("session_id")?,
        data: r.str("data")?.into(),
    })
}

pub fn callback<B, R: Columns<B> + ?Sized>(r: &R) -> Result<PendingCallback, R::Error> {
    Ok(PendingCallback {
        id: r.i64("id")?,
        parent_session_id: r.str("parent_session_id")?,
        child_session_id: r.str("child_session_id")?,
        child_run_id: r.str("child_run_id")?,
        status: r.parse("status")?,
        created_at: at(r.i64("created_ms")?),
    })
}

/// `SELECT status, COUNT(*) AS n … GROUP BY status`: statuses this build does not know
/// are skipped (`None`).
pub fn status_count<S: FromStr, B, R: Columns<B> + ?Sized>(
    r: &R,
) -> Result<Option<(S, i64)>, R::Error> {
    let n = r.i64("n")?;
    Ok(r.str("status")?.parse().ok().map(|s| (s, n)))
}

/// `SELECT APPROVAL_COLS` of an approval (`crate::approvals::APPROVAL_COLS`).
pub fn approval<B, R: Columns<B> + ?Sized>(
    r: &R,
) -> Result<aof_wire::approval::Approval, R::Error> {
    Ok(aof_wire::approval::Approval {
        approval_id: r.str("approval_id")?,
        session_id: r.str("session_id")?,
        run_id: r.str("run_id")?,
        tool_name: r.str("tool_name")?,
        tool_input: object(r, "tool_input")?.unwrap_or_default(),
        status: word(r, "status")?.ok_or_else(|| r.bad("status", "NULL".into()))?,
        created_at: r.str("created_at")?,
        expires_at: r.str("expires_at")?,
        on_timeout: word(r, "on_timeout")?.ok_or_else(|| r.bad("on_timeout", "NULL".into()))?,
        resolution: word(r, "resolution")?,
        decided_at: r.text("decided_at")?,
        decided_by: r.text("decided_by")?,
        message: r.text("message")?,
        updated_input: object(r, "updated_input")?,
    })
}

/// A JSON object column; NULL is `None`.
fn object<B, R: Columns<B> + ?Sized>(
    r: &R,
    col: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, R::Error> {
    match r.json(col)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(r.bad(col, "not a JSON object".into())),
    }
}

/// A text column holding an enum's serde name; NULL is `None`.
fn word<T: serde::de::DeserializeOwned, B, R: Columns<B> + ?Sized>(
    r: &R,
    col: &str,
) -> Result<Option<T>, R::Error> {
    r.text(col)?
        .map(|t| serde_json::from_value(serde_json::Value::String(t)))
        .transpose()
        .map_err(|e| r.bad(col, e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aof_core::SessionStatus;
    use aof_wire::{ExecutionMode, RunType};

    use super::*;

    /// A row as a map, the way a backend hands over its columns.
    #[derive(Default)]
    struct Map(HashMap<&'static str, Option<String>>);

    impl Map {
        fn with(mut self, col: &'static str, v: Option<&str>) -> Map {
            self.0.insert(col, v.map(str::to_string));
            self
        }
    }

    impl Columns<()> for Map {
        type Error = String;
        fn text(&self, col: &str) -> Result<Option<String>, String> {
            self.0.get(col).cloned().ok_or(format!("no column {col}"))
        }
        fn int(&self, col: &str) -> Result<Option<i64>, String> {
            let v = self.text(col)?;
            v.map(|t| t.parse().map_err(|e| self.bad(col, format!("{e}"))))
                .transpose()
        }
        fn list(&self, col: &str) -> Result<Vec<String>, String> {
            serde_json::from_str(&self.str(col)?).map_err(|e| self.bad(col, e.to_string()))
        }
        fn bad(&self, col: &str, e: String) -> String {
            format!("column {col}: {e}")
        }
    }

    fn run_row(status: &str) -> Map {
        let cols = RUN_COLS.split(',').map(str::trim);
        let row = cols.fold(Map::default(), |m, c| m.with(c, None));
        row.with("run_id", Some("run_1"))
            .with("run_type", Some("resume_session"))
            .with("session_id", Some("s1"))
            .with("parameters", Some(r#"{"prompt":"p"}"#))
            .with("execution_mode", Some("async_callback"))
            .with("demands", Some(r#"{"tags":["gpu"]}"#))
            .with("status", Some(status))
            .with("created_at", Some("2027-01-15T08:00:00Z"))
            .with("attempt", Some("2"))
            .with("lease_token", Some("t"))
            .with("lease_expires_ms", Some("1800000000123"))
    }

    #[test]
    fn a_run_row_reads_back_and_a_bad_value_names_its_column() {
        let rec = run(&run_row("running")).unwrap();
        assert_eq!(
            (rec.status, rec.run.status.as_str(), rec.run.attempt),
            (RunStatus::Running, "running", 2)
        );
        assert_eq!(rec.run.run_type, RunType::ResumeSession);
        assert_eq!(rec.run.execution_mode, ExecutionMode::AsyncCallback);
        assert_eq!(rec.run.parameters["prompt"], "p");
        assert_eq!(rec.run.demands.unwrap().tags, vec!["gpu".to_string()]);
        assert_eq!((rec.run.scope, rec.run.lease_token), (None, None));
        assert_eq!(rec.lease_token.as_deref(), Some("t"));
        let expires = rec.lease_expires_at.unwrap().timestamp_millis();
        assert_eq!(expires, 1_800_000_000_123);
        let e = run(&run_row("asleep")).unwrap_err();
        assert!(e.starts_with("column status:"), "{e}");
        let e = run(&run_row("running").with("demands", Some("[1"))).unwrap_err();
        assert!(e.starts_with("column demands:"), "{e}");
        let e = run(&run_row("running").with("session_id", None)).unwrap_err();
        assert_eq!(e, "column session_id: NULL");
    }

    #[test]
    fn callback_key_and_counts_rows_read_back() {
        let cb = Map::default()
            .with("id", Some("4"))
            .with("parent_session_id", Some("p"))
            .with("child_session_id", Some("c"))
            .with("child_run_id", Some("run_1"))
            .with("status", Some("idle"))
            .with("created_ms", Some("1800000000123"));
        let got = callback(&cb).unwrap();
        assert_eq!((got.id, got.status), (4, SessionStatus::Idle));
        assert_eq!(
            (
                got.parent_session_id,
                got.child_session_id,
                got.child_run_id
            ),
            ("p".into(), "c".into(), "run_1".into())
        );
        assert_eq!(got.created_at.timestamp_millis(), 1_800_000_000_123);
        let e = callback(&cb.with("status", Some("done"))).unwrap_err();
        assert!(e.contains("unknown session status 'done'"), "{e}");

        let key_row = Map::default()
            .with("id", Some("k1"))
            .with("name", None)
            .with("role", Some("runner"))
            .with("hash", Some("h"))
            .with("created_ms", Some("0"))
            .with("revoked_ms", None)
            .with("scope_tags", Some(r#"["gpu"]"#))
            .with("scope_agents", Some("[]"));
        let k = key(&key_row).unwrap();
        assert_eq!(
            (k.scope.tags, k.revoked_at),
            (vec!["gpu".to_string()], None)
        );

        let count = |status| {
            Map::default()
                .with("status", Some(status))
                .with("n", Some("3"))
        };
        let known: Option<(RunStatus, i64)> = status_count(&count("failed")).unwrap();
        assert_eq!(known, Some((RunStatus::Failed, 3)));
        let unknown: Option<(RunStatus, i64)> = status_count(&count("mystery")).unwrap();
        assert_eq!(unknown, None, "skipped, not an error");
    }
}
