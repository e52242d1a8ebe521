//! SQL both backends run as is: built here with the backend's placeholder (`?N` on
//! SQLite, `$N` on PostgreSQL; numbered, so each value binds by its number), its values
//! in placeholder order as [`Col`]s.

use aof_core::RunStatus;
use chrono::{DateTime, Utc};

use crate::{import::Col, lifecycle::RunWrite, rows::RUN_COLS};

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
    let mut b = Binds {
        vals: Vec::new(),
        mark,
    };
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
}
