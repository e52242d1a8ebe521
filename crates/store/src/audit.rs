//! The audit log's store types (the conformance suite checks the backends against
//! them). The coordinator decides what is audited; a store only appends, lists and
//! purges entries.

use chrono::{DateTime, Utc};

use aof_wire::{audit::ActorKind, auth::Role};

/// One audited request, before the store gives it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEntry {
    pub at: DateTime<Utc>,
    pub actor_kind: ActorKind,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub role: Option<Role>,
    pub action: String,
    pub target: Option<String>,
    pub status: u16,
    pub request_id: String,
    pub remote_addr: Option<String>,
}

/// Which answers an audit query keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeFilter {
    /// Exactly this HTTP status.
    Status(u16),
    /// Below 400.
    Ok,
    /// 401 or 403: refused by auth or policy.
    Denied,
    /// 400 and above.
    Error,
}

/// Filters for listing the audit log; results come newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Matches the actor's id (key id, subject, session) or its key name.
    pub actor: Option<String>,
    /// Exact action, or a prefix when it ends in `*` (`key.*`).
    pub action: Option<String>,
    pub target: Option<String>,
    /// Inclusive bounds on the entry time.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub outcome: Option<OutcomeFilter>,
    /// Only entries with a smaller id (the cursor of the previous page).
    pub before: Option<i64>,
    pub limit: i64,
}

impl AuditQuery {
    /// `action` split into (value, is_prefix).
    pub fn action_match(&self) -> Option<(&str, bool)> {
        self.action.as_deref().map(|a| match a.strip_suffix('*') {
            Some(p) => (p, true),
            None => (a, false),
        })
    }
}

/// A value bound into an audit query's SQL.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditBind<'a> {
    Text(&'a str),
    Int(i64),
}

impl AuditQuery {
    /// The query's WHERE and ORDER/LIMIT clauses as (SQL text, value bound after it),
    /// in order, for `SELECT * FROM audit_log WHERE 1 = 1` — the one definition of the
    /// filters both SQL stores push into their query builders. `substr` and the
    /// comparisons mean the same in SQLite and PostgreSQL.
    pub fn sql_clauses(&self) -> Vec<(String, Option<AuditBind<'_>>)> {
        use AuditBind::{Int, Text};
        let ms = |t: DateTime<Utc>| Int(t.timestamp_millis());
        let mut out: Vec<(String, Option<AuditBind<'_>>)> = Vec::new();
        let mut add = |sql: String, bind| out.push((sql, bind));
        if let Some(a) = &self.actor {
            add(" AND (actor_id = ".into(), Some(Text(a)));
            add(" OR actor_name = ".into(), Some(Text(a)));
            add(")".into(), None);
        }
        match self.action_match() {
            Some((p, true)) => add(
                format!(" AND substr(action, 1, {}) = ", p.chars().count()),
                Some(Text(p)),
            ),
            Some((a, false)) => add(" AND action = ".into(), Some(Text(a))),
            None => {}
        }
        if let Some(t) = &self.target {
            add(" AND target = ".into(), Some(Text(t)));
        }
        if let Some(t) = self.since {
            add(" AND at_ms >= ".into(), Some(ms(t)));
        }
        if let Some(t) = self.until {
            add(" AND at_ms <= ".into(), Some(ms(t)));
        }
        match self.outcome {
            Some(OutcomeFilter::Status(s)) => add(" AND status = ".into(), Some(Int(i64::from(s)))),
            Some(OutcomeFilter::Ok) => add(" AND status < 400".into(), None),
            Some(OutcomeFilter::Denied) => add(" AND status IN (401, 403)".into(), None),
            Some(OutcomeFilter::Error) => add(" AND status >= 400".into(), None),
            None => {}
        }
        if let Some(b) = self.before {
            add(" AND id < ".into(), Some(Int(b)));
        }
        add(" ORDER BY id DESC LIMIT ".into(), Some(Int(self.limit)));
        out
    }
}

/// Milliseconds to the wire's RFC 3339 text (UTC, milliseconds).
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
