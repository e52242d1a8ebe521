//! Sessions brought over from another system (the AOF reference's database, see
//! `aof import --from-reference`): stored as they were, with their runs and events, and
//! never dispatched again — an imported run is always in a final status.

use aof_core::{RunStatus, SessionStatus};
use aof_wire::{Event, Run, Session};

/// One session with its runs and events, in their original order.
#[derive(Debug, Clone)]
pub struct ImportedSession {
    pub session: Session,
    /// The session's status once imported (also written into `session.status`).
    pub status: SessionStatus,
    pub runs: Vec<ImportedRun>,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone)]
pub struct ImportedRun {
    pub run: Run,
    /// Final: `completed`, `failed` or `stopped` (a run in flight when the other system
    /// stopped is imported as failed, with the reason in `run.error`).
    pub status: RunStatus,
}

impl ImportedSession {
    /// The idempotency key of the session's `i`-th imported event: importing the same
    /// file twice stores each event once.
    pub fn event_key(&self, i: usize) -> String {
        format!("import:{}:{i}", self.session.session_id)
    }
}

/// A column value of an imported row; each store binds it as its driver's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Col {
    Text(Option<String>),
    Int(i64),
    /// A nullable integer (bound as one even when NULL: PostgreSQL checks the type).
    OptInt(Option<i64>),
}

/// A row to insert: (column, value), in order.
pub type Row = Vec<(&'static str, Col)>;

fn text(v: impl Into<String>) -> Col {
    Col::Text(Some(v.into()))
}

fn opt(v: &Option<String>) -> Col {
    Col::Text(v.clone())
}

fn json(v: &Option<serde_json::Value>) -> Col {
    Col::Text(v.as_ref().map(|v| v.to_string()))
}

impl ImportedSession {
    /// The `sessions` row, with the imported status. Inserted only if the id is free:
    /// otherwise nothing of this session is written (importing again is a no-op).
    pub fn session_row(&self) -> Row {
        let s = &self.session;
        vec![
            ("session_id", text(&s.session_id)),
            ("status", text(self.status.as_str())),
            ("created_at", text(&s.created_at)),
            ("project_dir", opt(&s.project_dir)),
            ("agent_name", opt(&s.agent_name)),
            ("last_resumed_at", opt(&s.last_resumed_at)),
            ("parent_session_id", opt(&s.parent_session_id)),
            ("executor_session_id", opt(&s.executor_session_id)),
            ("executor_profile", opt(&s.executor_profile)),
            ("hostname", opt(&s.hostname)),
        ]
    }

    /// The `runs` rows: in this session, in their final status, without a lease (so
    /// never dispatched). A run id another session holds is kept out, not an error.
    pub fn run_rows(&self) -> serde_json::Result<Vec<Row>> {
        self.runs
            .iter()
            .map(|r| {
                let run = &r.run;
                let demands = run.demands.as_ref().map(serde_json::to_string);
                Ok(vec![
                    ("run_id", text(&run.run_id)),
                    ("run_type", text(run.run_type.as_str())),
                    ("session_id", text(&self.session.session_id)),
                    ("agent_name", opt(&run.agent_name)),
                    ("parameters", text(run.parameters.to_string())),
                    ("project_dir", opt(&run.project_dir)),
                    ("parent_session_id", opt(&run.parent_session_id)),
                    ("execution_mode", text(run.execution_mode.as_str())),
                    ("demands", Col::Text(demands.transpose()?)),
                    ("scope", json(&run.scope)),
                    ("status", text(r.status.as_str())),
                    ("runner_id", opt(&run.runner_id)),
                    ("error", opt(&run.error)),
                    ("created_at", text(&run.created_at)),
                    ("claimed_at", opt(&run.claimed_at)),
                    ("started_at", opt(&run.started_at)),
                    ("completed_at", opt(&run.completed_at)),
                    ("timeout_at", opt(&run.timeout_at)),
                    ("attempt", Col::Int(run.attempt)),
                    ("blueprint", json(&run.resolved_agent_blueprint)),
                ])
            })
            .collect()
    }
}

/// `INSERT INTO table(cols) VALUES (placeholders) ON CONFLICT (key) DO NOTHING` for
/// `row`, with the store's placeholder for the i-th value (1-based).
pub fn insert_sql(table: &str, key: &str, row: &Row, placeholder: fn(usize) -> String) -> String {
    let cols: Vec<&str> = row.iter().map(|(c, _)| *c).collect();
    let marks: Vec<String> = (1..=row.len()).map(placeholder).collect();
    format!(
        "INSERT INTO {table}({}) VALUES ({}) ON CONFLICT ({key}) DO NOTHING",
        cols.join(", "),
        marks.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use aof_core::{RunStatus, SessionStatus};
    use aof_wire::{Event, Session};

    use super::*;
    use crate::events::tests::run;

    fn imported() -> ImportedSession {
        let mut failed = run("ses_x", RunStatus::Failed, Some("lease-gone")).run;
        failed.error = Some("coordinator stopped".into());
        failed.demands =
            Some(serde_json::from_value(serde_json::json!({"tags": ["gpu"]})).unwrap());
        failed.scope = Some(serde_json::json!({"repo": "a"}));
        failed.resolved_agent_blueprint = Some(serde_json::json!({"name": "bp"}));
        let done = run("ses_x", RunStatus::Completed, None).run;
        ImportedSession {
            session: Session {
                session_id: "ses_1".into(),
                status: SessionStatus::Failed,
                created_at: "2027-01-15T08:00:00Z".into(),
                project_dir: Some("/p".into()),
                agent_name: None,
                last_resumed_at: None,
                parent_session_id: Some("ses_0".into()),
                executor_session_id: None,
                executor_profile: None,
                hostname: Some("h".into()),
            },
            status: SessionStatus::Failed,
            runs: vec![
                ImportedRun {
                    run: failed,
                    status: RunStatus::Failed,
                },
                ImportedRun {
                    run: done,
                    status: RunStatus::Completed,
                },
            ],
            events: vec![Event::new("message", "ses_1")],
        }
    }

    fn get<'a>(row: &'a Row, col: &str) -> &'a Col {
        &row.iter()
            .find(|(c, _)| *c == col)
            .unwrap_or_else(|| panic!("{col}"))
            .1
    }

    fn t(v: &str) -> Col {
        Col::Text(Some(v.into()))
    }

    #[test]
    fn session_row_has_the_imported_status() {
        let row = imported().session_row();
        assert_eq!(row.len(), 10);
        for (col, want) in [
            ("session_id", t("ses_1")),
            ("status", t("failed")),
            ("created_at", t("2027-01-15T08:00:00Z")),
            ("project_dir", t("/p")),
            ("agent_name", Col::Text(None)),
            ("parent_session_id", t("ses_0")),
            ("hostname", t("h")),
        ] {
            assert_eq!(get(&row, col), &want, "{col}");
        }
    }

    #[test]
    fn run_rows_are_final_in_this_session_without_a_lease() {
        let rows = imported().run_rows().unwrap();
        assert_eq!(rows.len(), 2);
        for (col, want) in [
            ("run_id", t("run_1")),
            ("run_type", t("start_session")),
            ("session_id", t("ses_1")),
            ("parameters", t(r#"{"prompt":"hi"}"#)),
            ("execution_mode", t("sync")),
            ("demands", t(r#"{"tags":["gpu"]}"#)),
            ("scope", t(r#"{"repo":"a"}"#)),
            ("status", t("failed")),
            ("runner_id", t("r1")),
            ("error", t("coordinator stopped")),
            ("attempt", Col::Int(1)),
            ("blueprint", t(r#"{"name":"bp"}"#)),
        ] {
            assert_eq!(get(&rows[0], col), &want, "{col}");
        }
        assert_eq!(get(&rows[1], "status"), &t("completed"));
        for col in ["demands", "scope", "blueprint", "error"] {
            assert_eq!(get(&rows[1], col), &Col::Text(None), "{col}");
        }
        assert!(
            rows[0].iter().all(|(c, _)| !c.starts_with("lease")),
            "no lease column: never dispatched"
        );
    }

    #[test]
    fn insert_sql_in_both_placeholder_styles() {
        let row: Row = vec![("a", Col::Int(1)), ("b", Col::Text(None))];
        assert_eq!(
            insert_sql("t", "a", &row, |_| "?".into()),
            "INSERT INTO t(a, b) VALUES (?, ?) ON CONFLICT (a) DO NOTHING"
        );
        assert_eq!(
            insert_sql("t", "a", &row, |i| format!("${i}")),
            "INSERT INTO t(a, b) VALUES ($1, $2) ON CONFLICT (a) DO NOTHING"
        );
        assert_eq!(imported().event_key(3), "import:ses_1:3");
    }
}
