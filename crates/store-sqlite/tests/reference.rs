//! Reading the AOF reference coordinator's SQLite database (`aof import
//! --from-reference`): what is imported, and which files count as one.

use aof_core::{RunStatus, SessionStatus};
use aof_store_sqlite::reference::{is_reference_db, read_reference};
use rusqlite::Connection;
use serde_json::Value;

/// The reference's tables as its coordinator creates them (columns that matter here).
const SCHEMA: &str = "
    CREATE TABLE sessions (session_id TEXT PRIMARY KEY, status TEXT NOT NULL,
        created_at TEXT NOT NULL, project_dir TEXT, agent_name TEXT, last_resumed_at TEXT,
        parent_session_id TEXT, executor_session_id TEXT, executor_profile TEXT, hostname TEXT);
    CREATE TABLE runs (run_id TEXT PRIMARY KEY, session_id TEXT NOT NULL, type TEXT NOT NULL,
        agent_name TEXT, parameters TEXT NOT NULL, project_dir TEXT, parent_session_id TEXT,
        execution_mode TEXT NOT NULL DEFAULT 'sync', demands TEXT,
        status TEXT NOT NULL DEFAULT 'pending', runner_id TEXT, error TEXT,
        created_at TEXT NOT NULL, claimed_at TEXT, started_at TEXT, completed_at TEXT,
        timeout_at TEXT, scope TEXT, resolved_agent_blueprint TEXT);
    CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL,
        event_type TEXT NOT NULL, timestamp TEXT NOT NULL, tool_name TEXT, tool_input TEXT,
        tool_output TEXT, error TEXT, exit_code INTEGER, reason TEXT, role TEXT,
        content TEXT, result_text TEXT, result_data TEXT);";

fn reference_file(extra: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("observability.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(extra).unwrap();
    (dir, path)
}

#[test]
fn in_flight_work_is_imported_as_failed_and_odd_columns_are_kept() {
    let (_d, path) = reference_file(
        "INSERT INTO sessions VALUES ('ses_a','running','2026-01-01T00:00:00Z',NULL,'x',NULL,NULL,NULL,NULL,'h');
         INSERT INTO runs(run_id, session_id, type, parameters, status, created_at)
           VALUES ('run_a','ses_a','start_session','{\"prompt\":\"p\"}','running','2026-01-01T00:00:01Z');
         INSERT INTO events(session_id, event_type, timestamp, tool_name, tool_input, tool_output, content)
           VALUES ('ses_a','post_tool','2026-01-01T00:00:02Z','Bash','\"ls\"','plain text','{\"type\":\"text\"}');",
    );
    assert!(is_reference_db(&path).unwrap());
    let data = read_reference(&path).unwrap();
    assert_eq!((data.sessions_in_flight, data.runs_in_flight), (1, 1));
    let s = &data.sessions[0];
    assert_eq!(s.status, SessionStatus::Failed);
    assert_eq!(s.session.status.as_str(), "failed");
    assert_eq!(s.runs[0].status, RunStatus::Failed);
    assert!(s.runs[0]
        .run
        .error
        .as_deref()
        .unwrap()
        .contains("while running"));
    let e = &s.events[0];
    assert_eq!(e.tool_input.as_ref().unwrap()["value"], "ls");
    assert_eq!(e.tool_output, Some(Value::String("plain text".into())));
    assert_eq!(e.content.as_ref().unwrap().len(), 1);
}

#[test]
fn unknown_statuses_are_errors_not_defaults() {
    let (_d, path) = reference_file(
        "INSERT INTO sessions VALUES ('ses_b','sleeping','2026-01-01T00:00:00Z',NULL,NULL,NULL,NULL,NULL,NULL,NULL);",
    );
    let err = read_reference(&path).unwrap_err().to_string();
    assert!(err.contains("sleeping"), "{err}");
}

#[test]
fn our_own_database_and_missing_files_are_not_reference_ones() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!is_reference_db(&dir.path().join("none.db")).unwrap());
    let path = dir.path().join("ours.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!("{SCHEMA} CREATE TABLE feed (cursor INTEGER);"))
        .unwrap();
    assert!(!is_reference_db(&path).unwrap());
    assert!(read_reference(&path).is_err());
}
