//! SQL both backends run as is: built here with the backend's placeholder (`?N` on
//! SQLite, `$N` on PostgreSQL; numbered, so each value binds by its number), its values
//! in placeholder order as [`Col`]s. Approvals' statements: [`approvals`].

pub mod approvals;

use aof_core::RunStatus;
use aof_wire::Session;
use chrono::{DateTime, Utc};

use crate::{
    audit::AuditBind, import::Col, lifecycle::RunWrite, rows::RUN_COLS, rows::SESSION_COLS,
    runners::RunnerRow, stops::IDLE_STOP_OWED, AuditQuery, BrowserSessionRecord, NewAuditEntry,
    NewRun, SessionTokenRecord,
};

mod runners;
mod sessions;
pub use runners::runners_page;
pub use sessions::sessions_page;

/// A statement and its values, in placeholder order.
pub type Statement = (String, Vec<Col>);

/// The statuses in which a run holds a lease.
pub const LEASED: &str = "('claimed','running','stopping')";

/// The parent sessions still owed a callback, for the sweep that delivers them.
pub const CALLBACK_PARENTS: &str =
    "SELECT DISTINCT parent_session_id FROM callbacks WHERE delivered_run_id IS NULL";

/// Values bound so far; each `bind` answers its placeholder.
struct Binds {
    vals: Vec<Col>,
    mark: fn(usize) -> String,
}

impl Binds {
    fn bind(&mut self, v: Col) -> String {
        self.vals.push(v);
        (self.mark)(self.vals.len())
    }

    fn text(&mut self, v: &str) -> String {
        self.bind(Col::Text(Some(v.to_string())))
    }

    fn opt(&mut self, v: &Option<String>) -> String {
        self.bind(Col::Text(v.clone()))
    }

    fn int(&mut self, v: i64) -> String {
        self.bind(Col::Int(v))
    }

    fn new(mark: fn(usize) -> String) -> Self {
        Binds {
            vals: Vec::new(),
            mark,
        }
    }

    fn done(self, sql: String) -> Statement {
        (sql, self.vals)
    }
}

/// An audit query (`AuditQuery::sql_clauses`, each value after its clause).
pub fn audit_list(q: &AuditQuery, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let mut sql = String::from("SELECT * FROM audit_log WHERE 1 = 1");
    for (clause, bind) in q.sql_clauses() {
        sql.push_str(&clause);
        match bind {
            Some(AuditBind::Text(v)) => sql.push_str(&b.text(v)),
            Some(AuditBind::Int(v)) => sql.push_str(&b.int(v)),
            None => {}
        }
    }
    b.done(sql)
}

/// Appends `entries` to the audit log, one row each (10 values a row: a PostgreSQL
/// statement takes at most 65535, so a large batch is split by the caller).
pub fn audit_insert(entries: &[NewAuditEntry], mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let rows: Vec<String> = entries
        .iter()
        .map(|e| {
            let role = Col::Text(e.role.map(|r| r.as_str().to_string()));
            let vals = [
                b.int(e.at.timestamp_millis()),
                b.text(e.actor_kind.as_str()),
                b.opt(&e.actor_id),
                b.opt(&e.actor_name),
                b.bind(role),
                b.text(&e.action),
                b.opt(&e.target),
                b.int(i64::from(e.status)),
                b.text(&e.request_id),
                b.opt(&e.remote_addr),
            ];
            format!("({})", vals.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO audit_log(at_ms, actor_kind, actor_id, actor_name, role, action, target, \
         status, request_id, remote_addr) VALUES {}",
        rows.join(", ")
    );
    b.done(sql)
}

/// The callbacks owed to the parent session (first placeholder), oldest first.
pub fn pending_callbacks(mark: fn(usize) -> String) -> String {
    format!(
        "SELECT * FROM callbacks WHERE parent_session_id = {} AND delivered_run_id IS NULL \
         ORDER BY id",
        mark(1)
    )
}

/// A live run of the session (first placeholder), if any: callbacks are delivered only
/// to an idle session.
pub fn live_run(mark: fn(usize) -> String) -> String {
    format!(
        "SELECT run_id FROM runs WHERE session_id = {} \
         AND status IN ('pending','claimed','running','stopping') LIMIT 1",
        mark(1)
    )
}

/// Marks callback (2) of parent session (3) delivered by run (1), unless it was already.
pub fn callback_delivered(mark: fn(usize) -> String) -> String {
    format!(
        "UPDATE callbacks SET delivered_run_id = {} \
         WHERE id = {} AND parent_session_id = {} AND delivered_run_id IS NULL",
        mark(1),
        mark(2),
        mark(3)
    )
}

/// A new session (pending), returning its `SESSION_COLS`; no row when the id is taken.
pub fn session_insert(new: &NewRun, at: DateTime<Utc>, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let sql = format!(
        "INSERT INTO sessions(session_id, status, created_at, project_dir, agent_name, \
         parent_session_id) VALUES ({}, 'pending', {}, {}, {}, {}) \
         ON CONFLICT (session_id) DO NOTHING RETURNING {SESSION_COLS}",
        b.text(&new.session_id),
        b.text(&aof_wire::format_ts(at)),
        b.opt(&new.project_dir),
        b.opt(&new.agent_name),
        b.opt(&new.parent_session_id),
    );
    b.done(sql)
}

/// A new run (pending), returning its `RUN_COLS`.
pub fn run_insert(
    new: &NewRun,
    at: DateTime<Utc>,
    mark: fn(usize) -> String,
) -> serde_json::Result<Statement> {
    let mut b = Binds::new(mark);
    let json = |v: &Option<serde_json::Value>| Col::Text(v.as_ref().map(|v| v.to_string()));
    let sql = format!(
        "INSERT INTO runs(run_id, run_type, session_id, agent_name, parameters, project_dir, \
         parent_session_id, execution_mode, demands, scope, status, created_at, timeout_at, \
         timeout_ms, blueprint, traceparent) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 'pending', {}, {}, {}, {}, {}) \
         RETURNING {RUN_COLS}",
        b.text(&new.run_id),
        b.text(new.run_type.as_str()),
        b.text(&new.session_id),
        b.opt(&new.agent_name),
        b.text(&new.parameters.to_string()),
        b.opt(&new.project_dir),
        b.opt(&new.parent_session_id),
        b.text(new.execution_mode.as_str()),
        b.text(&serde_json::to_string(&new.demands)?),
        b.bind(json(&new.scope)),
        b.text(&aof_wire::format_ts(at)),
        b.opt(&new.timeout_at.map(aof_wire::format_ts)),
        b.bind(Col::OptInt(new.timeout_at.map(|t| t.timestamp_millis()))),
        b.bind(json(&new.blueprint)),
        b.opt(&new.traceparent),
    );
    Ok(b.done(sql))
}

/// Writes every field a session rule may change (`aof_store::sessions`) over its row.
pub fn session_write(s: &Session, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let sql = format!(
        "UPDATE sessions SET status = {}, project_dir = {}, agent_name = {}, \
         last_resumed_at = {}, executor_session_id = {}, executor_profile = {}, hostname = {} \
         WHERE session_id = {}",
        b.text(s.status.as_str()),
        b.opt(&s.project_dir),
        b.opt(&s.agent_name),
        b.opt(&s.last_resumed_at),
        b.opt(&s.executor_session_id),
        b.opt(&s.executor_profile),
        b.opt(&s.hostname),
        b.text(&s.session_id),
    );
    b.done(sql)
}

/// A session's delete, in order, each binding only the session id (the first
/// placeholder): its events, its runs (these two counts are the answer), the session,
/// its children's link to it, and the callbacks it is owed or owes.
pub fn session_delete(mark: fn(usize) -> String) -> [String; 6] {
    let id = mark(1);
    [
        format!("DELETE FROM feed WHERE session_id = {id} AND kind = 'event'"),
        format!("DELETE FROM runs WHERE session_id = {id}"),
        format!("DELETE FROM sessions WHERE session_id = {id}"),
        format!("UPDATE sessions SET parent_session_id = NULL WHERE parent_session_id = {id}"),
        // A deleted parent can no longer be told anything; its children's callbacks go too.
        format!("DELETE FROM callbacks WHERE parent_session_id = {id} OR child_session_id = {id}"),
        format!("DELETE FROM approvals WHERE session_id = {id}"),
    ]
}

/// The stops owed to a runner: a run asked to stop and not yet told, or an idle session's
/// stop (`IDLE_STOP_OWED`). `runner`: the runner id's SQL (a placeholder or a column).
fn owed(runner: &str) -> String {
    format!(
        "EXISTS(SELECT 1 FROM runs r WHERE r.runner_id = {runner} AND r.status = 'stopping' \
         AND r.stop_delivered = 0) OR EXISTS(SELECT 1 FROM runs r WHERE r.runner_id = {runner} \
         AND r.stop_delivered = {IDLE_STOP_OWED})"
    )
}

/// Whether stops are owed to the runner whose id is the first placeholder.
pub fn stops_owed(mark: fn(usize) -> String) -> String {
    format!("SELECT {}", owed(&mark(1)))
}

/// Marks the stops owed to the runner (first placeholder) delivered, returning their
/// sessions.
pub fn take_stops(mark: fn(usize) -> String) -> String {
    format!(
        "UPDATE runs SET stop_delivered = 1 WHERE runner_id = {} AND \
         ((status = 'stopping' AND stop_delivered = 0) OR stop_delivered = {IDLE_STOP_OWED}) \
         RETURNING session_id",
        mark(1)
    )
}

/// The runner row (first placeholder: its id) and whether stops are owed to it
/// (`has_stops`), for its poll.
pub fn runner_poll(mark: fn(usize) -> String) -> String {
    format!(
        "SELECT {}, ({}) AS has_stops FROM runners WHERE runner_id = {}",
        crate::rows::RUNNER_COLS,
        owed("runners.runner_id"),
        mark(1)
    )
}

/// What an insert of a runner row does when the id is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Writes over the row (its id stays).
    Update,
    /// Inserts nothing (0 rows).
    Nothing,
}

/// Writes runner row `r`, as `conflict` says when its id is taken.
pub fn runner_upsert(r: &RunnerRow, conflict: OnConflict, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let vals = [
        b.text(&r.runner_id),
        b.opt(&r.instance_id),
        b.text(&r.registered_at),
        b.text(&r.last_heartbeat),
        b.int(r.last_heartbeat_ms),
        b.text(&r.hostname),
        b.text(&r.project_dir),
        b.text(&r.executor_profile),
        b.text(&r.executor),
        b.text(&r.tags),
        b.int(i64::from(r.require_matching_tags)),
        b.int(i64::from(r.deregister)),
    ];
    let conflict = match conflict {
        OnConflict::Nothing => "DO NOTHING".to_string(),
        OnConflict::Update => format!(
            "DO UPDATE SET (instance_id, registered_at, last_heartbeat, last_heartbeat_ms, \
             hostname, project_dir, executor_profile, executor, tags, require_matching_tags, \
             deregister) = ({})",
            vals[1..].join(", ")
        ),
    };
    let sql = format!(
        "INSERT INTO runners({}) VALUES ({}) ON CONFLICT (runner_id) {conflict}",
        crate::rows::RUNNER_COLS,
        vals.join(", ")
    );
    b.done(sql)
}

/// A run's session token (after expired ones are purged: the caller's first statement).
pub fn session_token_insert(t: &SessionTokenRecord, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let sql = format!(
        "INSERT INTO session_tokens(id, hash, run_id, session_id, expires_ms) \
         VALUES ({}, {}, {}, {}, {})",
        b.text(&t.id),
        b.text(&t.hash),
        b.text(&t.run_id),
        b.text(&t.session_id),
        b.int(t.expires_at.timestamp_millis()),
    );
    b.done(sql)
}

/// A browser session's row.
pub fn browser_session_insert(s: &BrowserSessionRecord, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let sql = format!(
        "INSERT INTO browser_sessions(hash, key_id, created_ms, expires_ms) \
         VALUES ({}, {}, {}, {})",
        b.text(&s.hash),
        b.text(&s.key_id),
        b.int(s.created_at.timestamp_millis()),
        b.int(s.expires_at.timestamp_millis()),
    );
    b.done(sql)
}

/// The run row's compare-and-set of a `lifecycle::Step::Run`: one statement per kind of
/// write, refused (no row) unless the run still has status `from`, returning the new
/// row's `RUN_COLS`. `at`: the step's time.
pub fn run_write(
    run_id: &str,
    from: RunStatus,
    to: RunStatus,
    write: &RunWrite,
    at: DateTime<Utc>,
    mark: fn(usize) -> String,
) -> (String, Vec<Col>) {
    build(run_id, from, to, write, at, mark, "")
}

/// `run_write` that skips a row another transaction holds instead of waiting for it
/// (PostgreSQL `FOR UPDATE SKIP LOCKED`): a claim as one autocommit statement, so
/// claimers on every coordinator take different runs and never queue on one.
pub fn run_write_skip_locked(
    run_id: &str,
    from: RunStatus,
    to: RunStatus,
    write: &RunWrite,
    at: DateTime<Utc>,
    mark: fn(usize) -> String,
) -> (String, Vec<Col>) {
    build(run_id, from, to, write, at, mark, " FOR UPDATE SKIP LOCKED")
}

fn build(
    run_id: &str,
    from: RunStatus,
    to: RunStatus,
    write: &RunWrite,
    at: DateTime<Utc>,
    mark: fn(usize) -> String,
    lock: &str,
) -> (String, Vec<Col>) {
    let at = &aof_wire::format_ts(at);
    let mut b = Binds::new(mark);
    let (to, run_id, from) = (b.text(to.as_str()), b.text(run_id), b.text(from.as_str()));
    let set = match write {
        RunWrite::Start => format!("started_at = COALESCE(started_at, {})", b.text(at)),
        RunWrite::Finish { error, revoke } => format!(
            "completed_at = {}, error = COALESCE({}, error), lease_expires_ms = NULL, \
             lease_token = CASE WHEN {} = 1 THEN NULL ELSE lease_token END",
            b.text(at),
            b.bind(Col::Text(error.clone())),
            b.bind(Col::Int(i64::from(*revoke)))
        ),
        RunWrite::Requeue => {
            "runner_id = NULL, claimed_at = NULL, lease_token = NULL, lease_expires_ms = NULL"
                .into()
        }
        RunWrite::Cancel => format!("completed_at = {}", b.text(at)),
        RunWrite::AskStop => "stop_delivered = 0".into(),
        RunWrite::Claim {
            runner_id,
            lease_token,
            lease_expires_at,
        } => format!(
            "runner_id = {}, claimed_at = {}, attempt = attempt + 1, lease_token = {}, \
             lease_expires_ms = {}, stop_delivered = 0",
            b.text(runner_id),
            b.text(at),
            b.text(lease_token),
            b.bind(Col::Int(lease_expires_at.timestamp_millis()))
        ),
    };
    let guard = if lock.is_empty() {
        String::new()
    } else {
        format!(" AND run_id IN (SELECT run_id FROM runs WHERE run_id = {run_id}{lock})")
    };
    let sql = format!(
        "UPDATE runs SET status = {to}, {set} WHERE run_id = {run_id} AND status = {from}{guard} \
         RETURNING {RUN_COLS}"
    );
    (sql, b.vals)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn values_follow_their_numbered_placeholders() {
        let at = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
        let claim = RunWrite::Claim {
            runner_id: "r1".into(),
            lease_token: "t".into(),
            lease_expires_at: Utc.timestamp_millis_opt(5).unwrap(),
        };
        let (sql, vals) = run_write(
            "run_1",
            RunStatus::Pending,
            RunStatus::Claimed,
            &claim,
            at,
            |i| format!("${i}"),
        );
        assert!(
            sql.starts_with(
                "UPDATE runs SET status = $1, runner_id = $4, claimed_at = $5, \
                 attempt = attempt + 1, lease_token = $6, lease_expires_ms = $7, \
                 stop_delivered = 0 WHERE run_id = $2 AND status = $3 RETURNING run_id,"
            ),
            "{sql}"
        );
        let text = |s: &str| Col::Text(Some(s.into()));
        let want = vec![
            text("claimed"),
            text("run_1"),
            text("pending"),
            text("r1"),
            text(&aof_wire::format_ts(at)),
            text("t"),
            Col::Int(5),
        ];
        assert_eq!(vals, want);
        let finish = RunWrite::Finish {
            error: None,
            revoke: true,
        };
        let (sql, vals) = run_write(
            "run_1",
            RunStatus::Running,
            RunStatus::Failed,
            &finish,
            at,
            |i| format!("?{i}"),
        );
        assert!(sql.contains("error = COALESCE(?5, error)"), "{sql}");
        assert!(sql.contains("CASE WHEN ?6 = 1 THEN NULL"), "{sql}");
        assert_eq!(
            vals[3..],
            [text(&aof_wire::format_ts(at)), Col::Text(None), Col::Int(1)]
        );
        let (sql, vals) = run_write(
            "run_1",
            RunStatus::Running,
            RunStatus::Stopping,
            &RunWrite::AskStop,
            at,
            |i| format!("?{i}"),
        );
        assert!(
            sql.contains("SET status = ?1, stop_delivered = 0 WHERE"),
            "{sql}"
        );
        assert_eq!(vals.len(), 3, "no value of its own");
    }

    #[test]
    fn skip_locked_guards_the_same_row_with_its_own_placeholder() {
        let at = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
        let claim = RunWrite::Claim {
            runner_id: "r1".into(),
            lease_token: "t".into(),
            lease_expires_at: at,
        };
        let args = ("run_1", RunStatus::Pending, RunStatus::Claimed);
        let mark = |i| format!("${i}");
        let (plain, plain_vals) = run_write(args.0, args.1, args.2, &claim, at, mark);
        let (sql, vals) = run_write_skip_locked(args.0, args.1, args.2, &claim, at, mark);
        assert!(
            sql.contains(
                "WHERE run_id = $2 AND status = $3 AND run_id IN \
                 (SELECT run_id FROM runs WHERE run_id = $2 FOR UPDATE SKIP LOCKED) RETURNING"
            ),
            "{sql}"
        );
        assert!(!plain.contains("SKIP LOCKED"), "{plain}");
        assert_eq!(vals, plain_vals, "no value of its own");
    }

    #[test]
    fn audit_rows_number_on_and_a_runner_update_keeps_its_id() {
        let e = NewAuditEntry {
            at: Utc.timestamp_millis_opt(5).unwrap(),
            actor_kind: aof_wire::audit::ActorKind::Key,
            actor_id: None,
            actor_name: None,
            role: None,
            action: "a".into(),
            target: None,
            status: 200,
            request_id: "r".into(),
            remote_addr: None,
        };
        let (sql, vals) = audit_insert(&[e.clone(), e], |i| format!("${i}"));
        assert!(
            sql.ends_with("($11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"),
            "{sql}"
        );
        assert_eq!((vals.len(), &vals[7]), (20, &Col::Int(200)));
        let r = RunnerRow {
            runner_id: "r1".into(),
            instance_id: None,
            registered_at: "t".into(),
            last_heartbeat: "t".into(),
            last_heartbeat_ms: 1,
            hostname: "h".into(),
            project_dir: "p".into(),
            executor_profile: "e".into(),
            executor: "{}".into(),
            tags: "[]".into(),
            require_matching_tags: true,
            deregister: false,
        };
        let (sql, vals) = runner_upsert(&r, OnConflict::Update, |i| format!("?{i}"));
        assert!(sql.contains("deregister) = (?2, ?3,"), "{sql}");
        assert!(sql.ends_with("?11, ?12)"), "{sql}");
        assert_eq!(vals[10..], [Col::Int(1), Col::Int(0)]);
        let (sql, _) = runner_upsert(&r, OnConflict::Nothing, |i| format!("?{i}"));
        assert!(sql.ends_with("ON CONFLICT (runner_id) DO NOTHING"), "{sql}");
    }
}
