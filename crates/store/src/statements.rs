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
    let sql = format!(
        "UPDATE runs SET status = {to}, {set} WHERE run_id = {run_id} AND status = {from} \
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
}
