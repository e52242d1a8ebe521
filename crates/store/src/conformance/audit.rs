//! The audit log: a store appends, lists (filtered, newest first, paged) and purges.

use aof_wire::{
    audit::{ActorKind, AuditEntry},
    auth::Role,
};
use chrono::{DateTime, Utc};

use super::*;

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

/// Append in batches, list newest first with every filter alone and together, page by
/// id, purge by time; ids are never reused.
pub async fn audit_append_list_filter_page_and_purge(s: &dyn Store) {
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
