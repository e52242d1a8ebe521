//! A runner's reports: started, completed, failed, stopped, released; what each one
//! appends (events, feed items) and does to the session; retries and late reports.

use aof_core::{RecoveryMode, SessionStatus};

use super::*;

pub async fn report_started_marks_run_and_session_running(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    let rec = claim(store, &a, ttl()).await;
    let out = report(store, &rec, RunReport::Started).await;
    assert_eq!(wire(&out.status), "running");
    assert_eq!(wire(&out.run.status), "running");
    assert!(out.run.started_at.is_some());
    assert_eq!(out.lease_token, rec.lease_token, "the lease stays");
    assert_eq!(session_status(store, "s1").await, "running");
    let list = events(store, "s1").await;
    assert_eq!(event_types(store, "s1").await, ["run_start"]);
    assert_eq!(list[0].run_id.as_deref(), Some("r1"));
    assert_eq!(list[0].event.session_id, "s1");
    // A repeated start changes nothing.
    let again = report(store, &rec, RunReport::Started).await;
    assert_eq!(wire(&again.status), "running");
    assert_eq!(again.run.started_at, out.run.started_at);
    assert_eq!(event_types(store, "s1").await, ["run_start"]);
    assert_eq!(
        feed_kinds(store, "s1").await,
        ["session_created", "event", "session_updated"]
    );
}

pub async fn report_completed_appends_run_completed_and_finishes_the_session(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let out = report(store, &rec, completed()).await;
    assert_eq!(wire(&out.status), "completed");
    assert!(out.run.completed_at.is_some());
    assert_eq!(out.run.error, None);
    assert_eq!(out.lease_expires_at, None, "no lease left to renew");
    let list = events(store, "s1").await;
    assert_eq!(
        event_types(store, "s1").await,
        ["run_start", "run_completed"]
    );
    let end = &list[1];
    assert_eq!(end.run_id.as_deref(), Some("r1"));
    assert_eq!(end.event.exit_code, Some(0));
    assert_eq!(end.event.reason.as_deref(), Some("completed"));
    assert_eq!(session_status(store, "s1").await, "finished");
    // The session's status is the last thing a follower sees.
    let items = feed(store, Some("s1")).await;
    let last = items.last().unwrap();
    assert_eq!(last.kind, "session_updated");
    assert_eq!(data(last)["session"]["status"], "finished");
}

pub async fn report_completed_with_a_session_status_leaves_the_session_there(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    assert_eq!(wire(&report(store, &rec, idle).await.status), "completed");
    assert_eq!(session_status(store, "s1").await, "idle");
    assert_eq!(
        event_types(store, "s1").await,
        ["run_start", "run_completed"]
    );
}

/// A reference runner's fast turn may end before its start is reported: the history
/// still shows the turn's start.
pub async fn report_completed_before_started_records_the_start(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    let rec = claim(store, &a, ttl()).await;
    assert_eq!(
        wire(&report(store, &rec, completed()).await.status),
        "completed"
    );
    assert_eq!(
        event_types(store, "s1").await,
        ["run_start", "run_completed"]
    );
    let list = events(store, "s1").await;
    assert!(list.iter().all(|e| e.run_id.as_deref() == Some("r1")));
    assert_eq!(session_status(store, "s1").await, "finished");
}

pub async fn report_failed_appends_run_failed_and_feeds_run_failed(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let failed = RunReport::Failed {
        error: "boom".into(),
    };
    let out = report(store, &rec, failed).await;
    assert_eq!(wire(&out.status), "failed");
    assert_eq!(out.run.error.as_deref(), Some("boom"));
    assert!(out.run.completed_at.is_some());
    assert_eq!(event_types(store, "s1").await, ["run_start", "run_failed"]);
    let end = events(store, "s1").await.pop().unwrap();
    assert_eq!(end.run_id.as_deref(), Some("r1"));
    assert_eq!(end.event.error.as_deref(), Some("boom"));
    assert_eq!(end.event.reason.as_deref(), Some("failed"));
    assert_eq!(session_status(store, "s1").await, "failed");
    let items = feed(store, Some("s1")).await;
    let kinds: Vec<&str> = items.iter().map(|i| i.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "session_created",
            "event",
            "session_updated",
            "event",
            "run_failed",
            "session_updated"
        ]
    );
    let item = &items[4];
    assert_eq!(item.session_id.as_deref(), Some("s1"));
    assert_eq!(
        data(item),
        serde_json::json!({"run_id": "r1", "error": "boom", "session_id": "s1"})
    );
}

pub async fn report_stopped_appends_run_stopped(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    store.stop_run("r1").await.unwrap();
    let stopped = RunReport::Stopped {
        signal: "SIGTERM".into(),
    };
    let out = report(store, &rec, stopped).await;
    assert_eq!(wire(&out.status), "stopped");
    assert!(out.run.completed_at.is_some());
    assert_eq!(event_types(store, "s1").await, ["run_start", "run_stopped"]);
    let end = events(store, "s1").await.pop().unwrap();
    assert_eq!(end.event.reason.as_deref(), Some("SIGTERM"));
    assert_eq!(end.run_id.as_deref(), Some("r1"));
    assert_eq!(session_status(store, "s1").await, "stopped");
    // A runner may also stop unasked (its executor was killed).
    let rec = running(store, &a, "r2", "s2").await;
    let killed = RunReport::Stopped {
        signal: "SIGKILL".into(),
    };
    assert_eq!(wire(&report(store, &rec, killed).await.status), "stopped");
    assert_eq!(session_status(store, "s2").await, "stopped");
}

/// A retried report whose first copy was applied answers the same and changes nothing.
pub async fn report_retried_terminal_report_returns_the_same_record_and_appends_nothing(
    store: &dyn Store,
) {
    let a = runner(store, "lnch_a").await;
    let ends = [
        completed(),
        RunReport::Failed {
            error: "boom".into(),
        },
        RunReport::Stopped {
            signal: "SIGTERM".into(),
        },
    ];
    for (i, end) in ends.into_iter().enumerate() {
        let (r, s) = (format!("r{i}"), format!("s{i}"));
        let rec = running(store, &a, &r, &s).await;
        let first = report(store, &rec, end.clone()).await;
        let before = snapshot(store, &s, &r).await;
        let again = report(store, &rec, end).await;
        assert_eq!(again.run, first.run, "{r}: the same record");
        assert_eq!(wire(&again.status), wire(&first.status));
        assert_eq!(
            snapshot(store, &s, &r).await,
            before,
            "{r}: nothing appended"
        );
    }
}

/// The holder's lease ended the run one way; it cannot now end it another.
pub async fn report_a_different_end_of_an_ended_run_is_illegal(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    report(store, &rec, completed()).await;
    let before = snapshot(store, "s1", "r1").await;
    let other_ends = [
        RunReport::Failed {
            error: "late".into(),
        },
        RunReport::Stopped {
            signal: "SIGTERM".into(),
        },
    ];
    for end in other_ends {
        let err = refused(store.report("r1", &holder(&rec), end).await);
        assert!(matches!(err, StoreError::Illegal { .. }), "{err:?}");
    }
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
}

/// A report arriving after the coordinator resolved the run without its runner (lease
/// expired) is refused, and writes nothing.
pub async fn report_late_after_lease_expiry_is_refused(store: &dyn Store) {
    let a = reference_runner(store, "lnch_a").await;
    let policy = |recovery| LeasePolicy {
        ttl: ttl(),
        recovery,
    };
    // Failed by expiry: neither its token nor a token-less word is taken.
    store.create_run(start("r1", "s1")).await.unwrap();
    let rec = claim(store, &a, expired()).await;
    report(store, &rec, RunReport::Started).await;
    assert_eq!(
        store
            .expire_leases(policy(RecoveryMode::None))
            .await
            .unwrap()
            .len(),
        1
    );
    let before = snapshot(store, "s1", "r1").await;
    let tokenless = Writer {
        runner_id: "lnch_a".into(),
        lease_token: None,
    };
    for who in [holder(&rec), tokenless] {
        for r in [completed(), RunReport::Started] {
            let err = refused(store.report("r1", &who, r).await);
            assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
        }
    }
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
    assert_eq!(run_status(store, "r1").await, "failed");

    // Requeued by expiry, then claimed by another runner: the old holder is refused.
    store.create_run(start("r2", "s2")).await.unwrap();
    let rec = claim(store, &a, expired()).await;
    assert_eq!(rec.run.run_id, "r2");
    assert_eq!(
        store
            .expire_leases(policy(RecoveryMode::All))
            .await
            .unwrap()
            .len(),
        1
    );
    let err = refused(store.report("r2", &holder(&rec), RunReport::Started).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    let b = runner(store, "lnch_b").await;
    claim(store, &b, ttl()).await;
    let before = snapshot(store, "s2", "r2").await;
    let err = refused(store.report("r2", &holder(&rec), completed()).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s2", "r2").await, before, "nothing written");
}

/// A reference runner's start reported after the end is old news: accepted, ignored.
pub async fn report_tokenless_start_after_the_end_is_ignored(store: &dyn Store) {
    let r = reference_runner(store, "lnch_ref").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    claim(store, &r, ttl()).await;
    let who = Writer {
        runner_id: "lnch_ref".into(),
        lease_token: None,
    };
    store.report("r1", &who, completed()).await.unwrap();
    let before = snapshot(store, "s1", "r1").await;
    let late = store.report("r1", &who, RunReport::Started).await.unwrap();
    assert_eq!(wire(&late.status), "completed");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
}

pub async fn release_requeue_returns_the_run_to_pending_for_attempt_two(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let out = report(store, &rec, RunReport::Released { requeue: true }).await;
    assert_eq!(wire(&out.status), "pending");
    assert_eq!((out.run.runner_id, out.lease_token), (None, None));
    assert_eq!(session_status(store, "s1").await, "pending");
    assert_eq!(
        event_types(store, "s1").await,
        ["run_start"],
        "no end appended"
    );
    let b = runner(store, "lnch_b").await;
    let again = claim(store, &b, ttl()).await;
    assert_eq!(again.run.run_id, "r1");
    assert_eq!(again.run.attempt, 2);
    assert_ne!(again.lease_token, rec.lease_token);
    // A retried release is refused: the run is no longer the old holder's.
    let released = RunReport::Released { requeue: true };
    let err = refused(store.report("r1", &holder(&rec), released).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(run_status(store, "r1").await, "claimed");
}

pub async fn release_without_requeue_fails_with_the_handed_back_error(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let out = report(store, &rec, RunReport::Released { requeue: false }).await;
    let error = "Handed back unfinished by runner lnch_a (shutting down); \
                 RUN_RECOVERY_MODE=none does not retry it";
    assert_eq!(wire(&out.status), "failed");
    assert_eq!(out.run.error.as_deref(), Some(error));
    assert_eq!(event_types(store, "s1").await, ["run_start", "run_failed"]);
    let end = events(store, "s1").await.pop().unwrap();
    assert_eq!(end.event.error.as_deref(), Some(error));
    assert_eq!(end.event.reason.as_deref(), Some("failed"));
    assert_eq!(session_status(store, "s1").await, "failed");
    let failed: Vec<_> = feed(store, Some("s1"))
        .await
        .into_iter()
        .filter(|i| i.kind == "run_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(data(&failed[0])["error"], error);
    // The lease was revoked with the release: the runner's word is late now.
    let before = snapshot(store, "s1", "r1").await;
    let err = refused(store.report("r1", &holder(&rec), completed()).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
}

pub async fn release_of_a_stopping_run_stops_it(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    store.stop_run("r1").await.unwrap();
    let out = report(store, &rec, RunReport::Released { requeue: true }).await;
    assert_eq!(wire(&out.status), "stopped");
    assert_eq!(event_types(store, "s1").await, ["run_start", "run_stopped"]);
    let end = events(store, "s1").await.pop().unwrap();
    assert_eq!(end.event.reason.as_deref(), Some("released"));
    assert_eq!(session_status(store, "s1").await, "stopped");
    assert!(store.claim_run(&a, ttl()).await.unwrap().is_none());
}
