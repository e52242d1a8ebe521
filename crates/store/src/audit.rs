//! The audit log's store types and a conformance check both backends run in their
//! tests. The coordinator decides what is audited; a store only appends, lists and
//! purges entries.

use chrono::{DateTime, Utc};

use aof_wire::{
    audit::{ActorKind, AuditEntry},
    auth::Role,
};

use crate::Store;

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

fn entry(
    at: DateTime<Utc>,
    who: (&str, &str),
    action: &str,
    target: &str,
    status: u16,
) -> NewAuditEntry {
    NewAuditEntry {
        at,
        actor_kind: ActorKind::Key,
        actor_id: Some(who.0.into()),
        actor_name: Some(who.1.into()),
        role: Some(Role::Operator),
        action: action.into(),
        target: Some(target.into()),
        status,
        request_id: format!("req-{action}-{target}"),
        remote_addr: Some("127.0.0.1:1".into()),
    }
}

/// The behaviour every store must show; called from each backend's tests on an empty
/// store. Panics (it is test code) on the first difference.
pub async fn conformance(s: &dyn Store) {
    let t0 = DateTime::<Utc>::from_timestamp_millis(1_700_000_000_000).unwrap();
    let min = chrono::Duration::minutes(1);
    let mut batch = [
        entry(t0, ("k1", "alice"), "run.create", "run_1", 201),
        entry(t0 + min, ("k1", "alice"), "key.create", "k9", 403),
        entry(t0 + min * 2, ("k2", "bob"), "key.revoke", "k9", 200),
        entry(t0 + min * 3, ("k2", "bob"), "run.stop", "run_1", 401),
    ];
    batch[3].actor_kind = ActorKind::Anonymous;
    batch[3].actor_id = None;
    batch[3].actor_name = None;
    batch[3].role = None;
    batch[3].remote_addr = None;
    s.append_audit(&batch[..2]).await.unwrap();
    s.append_audit(&batch[2..]).await.unwrap();
    s.append_audit(&[]).await.unwrap();

    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        f(&mut q);
        q
    };
    let actions = |v: Vec<AuditEntry>| v.into_iter().map(|e| e.action).collect::<Vec<_>>();

    let all = s.list_audit(&q(|_| {})).await.unwrap();
    assert_eq!(
        actions(all.clone()),
        ["run.stop", "key.revoke", "key.create", "run.create"],
        "newest first"
    );
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "ids increase");
    let first = all.last().unwrap();
    assert_eq!(first.at, "2023-11-14T22:13:20.000Z");
    assert_eq!(
        (
            first.actor_kind,
            first.actor_id.as_deref(),
            first.actor_name.as_deref(),
            first.role,
            first.target.as_deref(),
            first.status,
            first.request_id.as_str(),
            first.remote_addr.as_deref()
        ),
        (
            ActorKind::Key,
            Some("k1"),
            Some("alice"),
            Some(Role::Operator),
            Some("run_1"),
            201,
            "req-run.create-run_1",
            Some("127.0.0.1:1")
        )
    );
    let anon = &all[0];
    assert_eq!(
        (anon.actor_kind, anon.actor_id.as_deref(), anon.role),
        (ActorKind::Anonymous, None, None)
    );

    // Filters, alone and together.
    let by = |v| async move { actions(s.list_audit(&v).await.unwrap()) };
    assert_eq!(
        by(q(|q| q.actor = Some("bob".into()))).await,
        ["key.revoke"]
    );
    assert_eq!(
        by(q(|q| q.actor = Some("k1".into()))).await,
        ["key.create", "run.create"]
    );
    assert_eq!(
        by(q(|q| q.action = Some("key.*".into()))).await,
        ["key.revoke", "key.create"]
    );
    assert_eq!(
        by(q(|q| q.action = Some("key.".into()))).await,
        Vec::<String>::new()
    );
    assert_eq!(
        by(q(|q| q.action = Some("run.create".into()))).await,
        ["run.create"]
    );
    assert_eq!(
        by(q(|q| q.target = Some("k9".into()))).await,
        ["key.revoke", "key.create"]
    );
    assert_eq!(
        by(q(|q| q.outcome = Some(OutcomeFilter::Denied))).await,
        ["run.stop", "key.create"]
    );
    assert_eq!(
        by(q(|q| q.outcome = Some(OutcomeFilter::Ok))).await,
        ["key.revoke", "run.create"]
    );
    assert_eq!(
        by(q(|q| q.outcome = Some(OutcomeFilter::Error))).await,
        ["run.stop", "key.create"]
    );
    assert_eq!(
        by(q(|q| q.outcome = Some(OutcomeFilter::Status(201)))).await,
        ["run.create"]
    );
    let mut w = q(|_| {});
    w.since = Some(t0 + min);
    w.until = Some(t0 + min * 2);
    assert_eq!(
        by(w.clone()).await,
        ["key.revoke", "key.create"],
        "bounds inclusive"
    );
    w.actor = Some("alice".into());
    assert_eq!(by(w).await, ["key.create"]);

    // Pages: newest first, then older than the last id seen.
    let mut page = q(|q| q.limit = 3);
    let p1 = s.list_audit(&page).await.unwrap();
    assert_eq!(p1.len(), 3);
    page.before = Some(p1[2].id);
    assert_eq!(by(page).await, ["run.create"]);

    // Purge drops what is older than the cutoff, nothing else.
    assert_eq!(s.purge_audit(t0 + min * 2).await.unwrap(), 2);
    assert_eq!(
        actions(s.list_audit(&q(|_| {})).await.unwrap()),
        ["run.stop", "key.revoke"]
    );
    // New ids keep increasing after a purge (cursors stay valid).
    s.append_audit(&batch[..1]).await.unwrap();
    let after = s.list_audit(&q(|_| {})).await.unwrap();
    assert!(after[0].id > all[0].id, "ids are never reused");
}
