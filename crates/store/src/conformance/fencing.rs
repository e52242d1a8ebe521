//! Fencing: only the runner holding a run's lease writes to it, with its current token.

use aof_core::RecoveryMode;
use aof_wire::session::BindRequest;

use super::*;

pub async fn fencing_report_by_another_runner_is_lease_conflict(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    runner(store, "lnch_b").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    let rec = claim(store, &a, ttl()).await;
    let before = snapshot(store, "s1", "r1").await;
    for token in [rec.lease_token.clone(), None] {
        let who = Writer {
            runner_id: "lnch_b".into(),
            lease_token: token,
        };
        for r in [RunReport::Started, completed()] {
            let err = refused(store.report("r1", &who, r).await);
            assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
        }
    }
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
}

pub async fn fencing_stale_lease_token_is_lease_conflict(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    let first = claim(store, &a, expired()).await;
    let bogus = Writer {
        runner_id: "lnch_a".into(),
        lease_token: Some("lease_bogus".into()),
    };
    let err = refused(store.report("r1", &bogus, RunReport::Started).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    // The lease runs out, the run is requeued and the same runner claims it again: the
    // first claim's token is stale now.
    let policy = LeasePolicy {
        ttl: ttl(),
        recovery: RecoveryMode::Stale,
    };
    assert_eq!(store.expire_leases(policy).await.unwrap().len(), 1);
    let second = claim(store, &a, ttl()).await;
    assert_eq!(second.run.attempt, 2);
    assert_ne!(second.lease_token, first.lease_token);
    let before = snapshot(store, "s1", "r1").await;
    let err = refused(
        store
            .report("r1", &holder(&first), RunReport::Started)
            .await,
    );
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
    let rec = report(store, &second, RunReport::Started).await;
    assert_eq!(wire(&rec.status), "running");
}

pub async fn fencing_unregistered_runner_is_runner_not_registered(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    let rec = claim(store, &a, ttl()).await;
    let ghost = Writer {
        runner_id: "lnch_ghost".into(),
        lease_token: rec.lease_token.clone(),
    };
    let err = refused(store.report("r1", &ghost, RunReport::Started).await);
    assert!(matches!(err, StoreError::RunnerNotRegistered), "{err:?}");
    // Checked before the run: an unknown runner learns nothing about runs.
    let err = refused(store.report("nope", &ghost, RunReport::Started).await);
    assert!(matches!(err, StoreError::RunnerNotRegistered), "{err:?}");
    let err = refused(
        store
            .report("nope", &holder(&rec), RunReport::Started)
            .await,
    );
    assert!(matches!(err, StoreError::RunNotFound), "{err:?}");
    assert_eq!(run_status(store, "r1").await, "claimed");
}

/// A reference runner sends no lease token: its reports are accepted from the runner
/// holding the run, and only from it.
pub async fn fencing_tokenless_writer_is_accepted_only_from_the_holder(store: &dyn Store) {
    let r = reference_runner(store, "lnch_ref").await;
    reference_runner(store, "lnch_other").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    claim(store, &r, ttl()).await;
    let tokenless = |id: &str| Writer {
        runner_id: id.into(),
        lease_token: None,
    };
    let rec = store
        .report("r1", &tokenless("lnch_ref"), RunReport::Started)
        .await
        .unwrap();
    assert_eq!(wire(&rec.status), "running");
    let before = snapshot(store, "s1", "r1").await;
    let err = refused(
        store
            .report("r1", &tokenless("lnch_other"), completed())
            .await,
    );
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
    let rec = store
        .report("r1", &tokenless("lnch_ref"), completed())
        .await
        .unwrap();
    assert_eq!(wire(&rec.status), "completed");
    assert_eq!(session_status(store, "s1").await, "finished");
}

/// Issue #20: a lease of one session's run writes nothing to another session, through
/// any door (events, batches, bind, reports).
pub async fn fencing_lease_of_another_sessions_run_writes_nothing(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    store.create_run(start("r2", "s2")).await.unwrap();
    let a = runner(store, "lnch_a").await;
    let b = runner(store, "lnch_b").await;
    let lease1 = claim(store, &a, ttl()).await.lease_token;
    let lease2 = claim(store, &b, ttl()).await.lease_token;
    let before = snapshot(store, "s1", "r1").await;
    let write = |run: &str, token: &Option<String>| EventWrite {
        event: Event::message("s1", "assistant", "forged"),
        run_id: Some(run.into()),
        idempotency_key: None,
        lease_token: token.clone(),
    };
    // Run 2's own lease on session 1, and run 1 named with run 2's token.
    for (run, token) in [("r2", &lease2), ("r1", &lease2)] {
        let err = refused(store.append_event("s1", write(run, token)).await);
        assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
        let batch = vec![write(run, token), write(run, token)];
        let err = refused(store.append_events("s1", batch).await);
        assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    }
    let bind = BindRequest {
        executor_session_id: "forged".into(),
        hostname: "evil".into(),
        executor_profile: "evil".into(),
        project_dir: None,
    };
    let err = refused(store.bind("s1", &bind, lease2.as_deref()).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    let who = Writer {
        runner_id: "lnch_a".into(),
        lease_token: lease2.clone(),
    };
    let failed = RunReport::Failed {
        error: "forged".into(),
    };
    let err = refused(store.report("r1", &who, failed).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
    // Its own lease writes.
    assert!(store
        .append_event("s1", write("r1", &lease1))
        .await
        .unwrap()
        .is_some());
}
