//! The `approvals` table's statements, shared by both backends (see the parent module).

use aof_wire::approval::Approval;

use super::{Binds, Statement};
use crate::{approvals::ApprovalQuery, approvals::APPROVAL_COLS, import::Col};

fn json(v: &serde_json::Map<String, serde_json::Value>) -> Col {
    Col::Text(Some(serde_json::Value::Object(v.clone()).to_string()))
}

fn word<T: serde::Serialize>(v: &T) -> Option<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => Some(s),
        _ => None,
    }
}

/// Inserts a new (pending) approval.
pub fn insert(
    a: &Approval,
    request_key: &Option<String>,
    expires_ms: i64,
    mark: fn(usize) -> String,
) -> Statement {
    let mut b = Binds::new(mark);
    let vals = [
        b.text(&a.approval_id),
        b.text(&a.session_id),
        b.text(&a.run_id),
        b.opt(request_key),
        b.text(&a.tool_name),
        b.bind(json(&a.tool_input)),
        b.text(a.status.as_str()),
        b.text(&a.created_at),
        b.text(&a.expires_at),
        b.int(expires_ms),
        b.opt(&word(&a.on_timeout)),
    ];
    b.done(format!(
        "INSERT INTO approvals (approval_id, session_id, run_id, request_key, tool_name, \
         tool_input, status, created_at, expires_at, expires_ms, on_timeout) VALUES ({})",
        vals.join(", ")
    ))
}

/// The decision's write: a compare-and-set on `pending` (no row: decided meanwhile).
pub fn resolve(a: &Approval, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let sets = format!(
        "status = {}, resolution = {}, decided_at = {}, decided_by = {}, message = {}, \
         updated_input = {}",
        b.text(a.status.as_str()),
        b.opt(&a.resolution.as_ref().and_then(word)),
        b.opt(&a.decided_at),
        b.opt(&a.decided_by),
        b.opt(&a.message),
        b.bind(Col::Text(
            a.updated_input
                .as_ref()
                .map(|m| serde_json::Value::Object(m.clone()).to_string())
        )),
    );
    let id = b.text(&a.approval_id);
    b.done(format!(
        "UPDATE approvals SET {sets} WHERE approval_id = {id} AND status = 'pending' \
         RETURNING approval_id"
    ))
}

/// One approval by id (first placeholder).
pub fn by_id(mark: fn(usize) -> String) -> String {
    format!(
        "SELECT {APPROVAL_COLS} FROM approvals WHERE approval_id = {}",
        mark(1)
    )
}

/// The approval a run asked for under a key (run id, key).
pub fn by_request_key(mark: fn(usize) -> String) -> String {
    format!(
        "SELECT {APPROVAL_COLS} FROM approvals WHERE run_id = {} AND request_key = {}",
        mark(1),
        mark(2)
    )
}

/// How many approvals of a session (first) other than one (second) are pending.
pub fn others_pending(mark: fn(usize) -> String) -> String {
    format!(
        "SELECT COUNT(*) AS n FROM approvals WHERE session_id = {} AND approval_id <> {} \
         AND status = 'pending'",
        mark(1),
        mark(2)
    )
}

/// Pending approvals with their deadline and their run's status (NULL: no such run),
/// oldest first: the candidates `close_approvals` looks at.
pub const PENDING_WITH_RUN: &str = "SELECT a.approval_id, a.session_id, a.run_id, a.tool_name, \
    a.tool_input, a.status, a.created_at, a.expires_at, a.on_timeout, a.resolution, \
    a.decided_at, a.decided_by, a.message, a.updated_input, a.expires_ms, r.status AS run_status \
    FROM approvals a LEFT JOIN runs r ON r.run_id = a.run_id WHERE a.status = 'pending' \
    ORDER BY a.expires_ms LIMIT 500";

/// A listing, newest first.
pub fn list(q: &ApprovalQuery, mark: fn(usize) -> String) -> Statement {
    let mut b = Binds::new(mark);
    let mut sql = format!("SELECT {APPROVAL_COLS} FROM approvals WHERE 1 = 1");
    if let Some(s) = &q.session_id {
        sql.push_str(&format!(" AND session_id = {}", b.text(s)));
    }
    if let Some(st) = q.status {
        sql.push_str(&format!(" AND status = {}", b.text(st.as_str())));
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, approval_id DESC LIMIT {}",
        b.int(q.limit.max(1))
    ));
    b.done(sql)
}

/// `SELECT COUNT(*) AS n` of pending approvals (for `/metrics`).
pub const COUNT_PENDING: &str = "SELECT COUNT(*) AS n FROM approvals WHERE status = 'pending'";

#[cfg(test)]
mod tests {
    use super::*;
    use aof_wire::approval::ApprovalStatus;

    #[test]
    fn listing_binds_each_filter_once() {
        let q = ApprovalQuery {
            session_id: Some("s".into()),
            status: Some(ApprovalStatus::Pending),
            limit: 10,
        };
        let (sql, vals) = list(&q, |n| format!("${n}"));
        assert!(
            sql.contains("session_id = $1") && sql.contains("status = $2"),
            "{sql}"
        );
        assert!(sql.ends_with("LIMIT $3"), "{sql}");
        assert_eq!(vals.len(), 3);
    }
}
