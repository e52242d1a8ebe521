//! Approvals of tool calls (issue #25): asking (once per request key, only under a held
//! lease of a running run), deciding exactly once, the session's `waiting_approval`,
//! timeouts and a run's end closing what waits, and listing.

use aof_wire::approval::{Approval, ApprovalStatus, Decision, Resolution};

use super::*;
use crate::approvals::{ApprovalQuery, NewApproval, Verdict};

fn ask(id: &str, session_id: &str, run_id: &str, key: &str) -> NewApproval {
    NewApproval {
        approval_id: id.into(),
        session_id: session_id.into(),
        run_id: run_id.into(),
        tool_name: "Bash".into(),
        tool_input: serde_json::json!({"command": "touch /tmp/x"})
            .as_object()
            .cloned()
            .unwrap(),
        request_key: Some(key.into()),
        timeout: Duration::minutes(15),
        on_timeout: Decision::Deny,
        created_at: Utc::now(),
    }
}

fn by_operator(decision: Decision, message: &str) -> Verdict {
    Verdict {
        decision,
        resolution: Resolution::Reviewer,
        decided_by: Some("key:op".into()),
        message: Some(message.into()),
        updated_input: None,
        at: Utc::now(),
    }
}

async fn requested(store: &dyn Store, new: NewApproval, rec: &RunRecord) -> Approval {
    let (a, created) = store
        .request_approval(new, Some(&holder(rec)))
        .await
        .unwrap();
    assert!(created, "a new request key stores a new approval");
    a
}

async fn approvals_of(store: &dyn Store, session_id: &str) -> Vec<Approval> {
    let q = ApprovalQuery {
        session_id: Some(session_id.into()),
        status: None,
        limit: 100,
    };
    store.list_approvals(&q).await.unwrap()
}

pub async fn approvals_request_stores_row_event_and_waiting_session_once(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let first = requested(store, ask("apr_1", "s1", "r1", "toolu_1"), &rec).await;
    assert_eq!(first.status, ApprovalStatus::Pending);
    assert_eq!(
        (first.session_id.as_str(), first.run_id.as_str()),
        ("s1", "r1")
    );
    assert_eq!(first.tool_input["command"], "touch /tmp/x");
    assert_eq!(session_status(store, "s1").await, "waiting_approval");
    let evs = events(store, "s1").await;
    let asked = evs.last().expect("an event");
    assert_eq!(asked.event.event_type, "approval_requested");
    assert_eq!(asked.event.tool_name.as_deref(), Some("Bash"));
    assert_eq!(
        asked.event.result_data.as_ref().unwrap()["approval_id"],
        "apr_1"
    );
    assert_eq!(
        store.get_approval("apr_1").await.unwrap(),
        Some(first.clone())
    );
    // Asked again with the same key (a retry): the stored approval, nothing written.
    let before = snapshot(store, "s1", "r1").await;
    let (again, created) = store
        .request_approval(ask("apr_2", "s1", "r1", "toolu_1"), Some(&holder(&rec)))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    assert_eq!(snapshot(store, "s1", "r1").await, before);
    assert!(store.get_approval("apr_2").await.unwrap().is_none());
    assert_eq!(store.counts().await.unwrap().approvals_pending, 1);
}

pub async fn approvals_request_needs_a_held_lease_of_a_running_run(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let before = snapshot(store, "s1", "r1").await;
    let forged = Writer {
        runner_id: "lnch_a".into(),
        lease_token: Some("not-the-lease".into()),
    };
    let e = refused(
        store
            .request_approval(ask("apr_1", "s1", "r1", "k"), Some(&forged))
            .await,
    );
    assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
    // Another session's run: as if there were no such run.
    let e = refused(
        store
            .request_approval(ask("apr_1", "s2", "r1", "k"), Some(&holder(&rec)))
            .await,
    );
    assert!(matches!(e, StoreError::RunNotFound), "{e:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before);
    // A run that is not running (pending, never claimed) cannot ask.
    store.create_run(start("r2", "s2")).await.unwrap();
    let e = refused(
        store
            .request_approval(ask("apr_2", "s2", "r2", "k"), None)
            .await,
    );
    assert!(matches!(e, StoreError::LeaseConflict(_)), "{e:?}");
    assert!(approvals_of(store, "s1").await.is_empty());
    assert!(approvals_of(store, "s2").await.is_empty());
    assert_eq!(session_status(store, "s2").await, "pending");
}

pub async fn approvals_decide_exactly_once_and_resume_the_session(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    requested(store, ask("apr_1", "s1", "r1", "k1"), &rec).await;
    requested(store, ask("apr_2", "s1", "r1", "k2"), &rec).await;
    let e = refused(
        store
            .decide_approval("apr_nope", by_operator(Decision::Approve, "ok"))
            .await,
    );
    assert!(matches!(e, StoreError::ApprovalNotFound), "{e:?}");
    let one = store
        .decide_approval("apr_1", by_operator(Decision::Approve, "ok"))
        .await
        .unwrap();
    assert_eq!(one.status, ApprovalStatus::Approved);
    assert_eq!(one.resolution, Some(Resolution::Reviewer));
    assert_eq!(one.decided_by.as_deref(), Some("key:op"));
    assert!(one.decided_at.is_some());
    // Another approval still waits: the session keeps waiting.
    assert_eq!(session_status(store, "s1").await, "waiting_approval");
    let before = snapshot(store, "s1", "r1").await;
    let e = refused(
        store
            .decide_approval("apr_1", by_operator(Decision::Deny, "no"))
            .await,
    );
    assert!(
        matches!(
            &e,
            StoreError::ApprovalDecided {
                status: ApprovalStatus::Approved,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(snapshot(store, "s1", "r1").await, before);
    let two = store
        .decide_approval("apr_2", by_operator(Decision::Deny, "too risky"))
        .await
        .unwrap();
    assert_eq!(two.status, ApprovalStatus::Denied);
    assert_eq!(two.message.as_deref(), Some("too risky"));
    assert_eq!(session_status(store, "s1").await, "running");
    let resolved: Vec<_> = events(store, "s1")
        .await
        .into_iter()
        .filter(|e| e.event.event_type == "approval_resolved")
        .collect();
    assert_eq!(resolved.len(), 2, "one event per decision");
    let last = &resolved[1].event;
    assert_eq!(last.reason.as_deref(), Some("too risky"));
    assert_eq!(last.result_data.as_ref().unwrap()["status"], "denied");
    assert_eq!(store.get_approval("apr_1").await.unwrap(), Some(one));
    assert_eq!(store.counts().await.unwrap().approvals_pending, 0);
}

pub async fn approvals_close_applies_on_timeout_and_the_runs_end(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let r1 = running(store, &a, "r1", "s1").await;
    let late = NewApproval {
        timeout: Duration::milliseconds(-1),
        on_timeout: Decision::Approve,
        ..ask("apr_1", "s1", "r1", "k1")
    };
    requested(store, late, &r1).await;
    let r2 = running(store, &a, "r2", "s2").await;
    requested(store, ask("apr_2", "s2", "r2", "k1"), &r2).await;
    let r3 = running(store, &a, "r3", "s3").await;
    requested(store, ask("apr_3", "s3", "r3", "k1"), &r3).await;
    report(store, &r2, completed()).await;
    let mut closed = store.close_approvals(Utc::now()).await.unwrap();
    closed.sort_by(|x, y| x.approval_id.cmp(&y.approval_id));
    let ids: Vec<_> = closed.iter().map(|c| c.approval_id.as_str()).collect();
    assert_eq!(
        ids,
        ["apr_1", "apr_2"],
        "apr_3 waits: its run runs, its time is not up"
    );
    assert_eq!(
        closed[0].status,
        ApprovalStatus::Approved,
        "on_timeout: approve"
    );
    assert_eq!(closed[0].resolution, Some(Resolution::Timeout));
    assert_eq!(closed[0].decided_by, None, "nobody decided");
    assert_eq!(closed[1].status, ApprovalStatus::Denied);
    assert_eq!(closed[1].resolution, Some(Resolution::RunEnded));
    assert_eq!(session_status(store, "s1").await, "running");
    assert_eq!(
        session_status(store, "s2").await,
        "finished",
        "the run's end stands"
    );
    assert_eq!(session_status(store, "s3").await, "waiting_approval");
    assert!(
        store.close_approvals(Utc::now()).await.unwrap().is_empty(),
        "once"
    );
    let types = event_types(store, "s1").await;
    assert_eq!(
        types.iter().filter(|t| *t == "approval_resolved").count(),
        1
    );
}

pub async fn approvals_list_filters_and_session_delete_removes_them(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let r1 = running(store, &a, "r1", "s1").await;
    requested(store, ask("apr_1", "s1", "r1", "k1"), &r1).await;
    requested(store, ask("apr_2", "s1", "r1", "k2"), &r1).await;
    let r2 = running(store, &a, "r2", "s2").await;
    requested(store, ask("apr_3", "s2", "r2", "k1"), &r2).await;
    store
        .decide_approval("apr_1", by_operator(Decision::Approve, "ok"))
        .await
        .unwrap();
    let ids =
        |list: Vec<Approval>| -> Vec<String> { list.into_iter().map(|a| a.approval_id).collect() };
    assert_eq!(
        ids(approvals_of(store, "s1").await),
        ["apr_2", "apr_1"],
        "newest first"
    );
    let pending = ApprovalQuery {
        session_id: None,
        status: Some(ApprovalStatus::Pending),
        limit: 100,
    };
    let mut all_pending = ids(store.list_approvals(&pending).await.unwrap());
    all_pending.sort();
    assert_eq!(all_pending, ["apr_2", "apr_3"]);
    let one = ApprovalQuery {
        limit: 1,
        ..pending
    };
    assert_eq!(store.list_approvals(&one).await.unwrap().len(), 1);
    report(store, &r1, completed()).await;
    store.delete_session("s1").await.unwrap();
    assert!(store.get_approval("apr_1").await.unwrap().is_none());
    assert!(approvals_of(store, "s1").await.is_empty());
    assert_eq!(ids(approvals_of(store, "s2").await), ["apr_3"]);
}
