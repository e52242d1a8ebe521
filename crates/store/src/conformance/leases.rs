//! Leases: heartbeats renew or revoke, expiry by recovery policy, the boot-time grace,
//! and pending runs no runner matched in time.

use aof_core::RecoveryMode;
use aof_wire::runner::HeldLease;
use chrono::{Duration, Utc};

use super::*;

fn policy(recovery: RecoveryMode) -> LeasePolicy {
    LeasePolicy {
        ttl: ttl(),
        recovery,
    }
}

fn held(rec: &RunRecord) -> HeldLease {
    HeldLease {
        run_id: rec.run.run_id.clone(),
        lease_token: rec.lease_token.clone().expect("leased"),
    }
}

/// (run, from, to) of each resolved run, by run id.
fn moves(mut resolved: Vec<Resolved>) -> Vec<(String, String, String)> {
    resolved.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let out = resolved.into_iter().map(|r| {
        let session = r.run_id.replace('r', "s");
        assert_eq!(r.session_id, session, "{}", r.run_id);
        (r.run_id, wire(&r.from), wire(&r.to))
    });
    out.collect()
}

fn mv(run: &str, from: &str, to: &str) -> (String, String, String) {
    (run.into(), from.into(), to.into())
}

/// `r1` claimed and `r2` running, both by `lnch_a` with leases that have run out.
async fn two_expired(store: &dyn Store) -> (RunRecord, RunRecord) {
    let a = runner(store, "lnch_a").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    store.create_run(start("r2", "s2")).await.unwrap();
    let r1 = claim(store, &a, expired()).await;
    let r2 = claim(store, &a, expired()).await;
    report(store, &r2, RunReport::Started).await;
    (r1, r2)
}

async fn requeued(store: &dyn Store, run_id: &str) {
    let rec = run(store, run_id).await;
    assert_eq!(wire(&rec.status), "pending", "{run_id}");
    assert_eq!(
        (rec.run.runner_id, rec.lease_token),
        (None, None),
        "{run_id}"
    );
    assert_eq!(
        session_status(store, &run_id.replace('r', "s")).await,
        "pending"
    );
}

async fn failed_by_expiry(store: &dyn Store, run_id: &str) {
    let error = "Lease expired: the runner stopped renewing it";
    let rec = run(store, run_id).await;
    assert_eq!(wire(&rec.status), "failed", "{run_id}");
    assert_eq!(rec.run.error.as_deref(), Some(error), "{run_id}");
    assert_eq!(rec.lease_token, None, "{run_id}: the lease is revoked");
    let session = run_id.replace('r', "s");
    assert_eq!(session_status(store, &session).await, "failed");
    let items = feed(store, Some(&session)).await;
    let failed: Vec<_> = items.iter().filter(|i| i.kind == "run_failed").collect();
    assert_eq!(failed.len(), 1, "{run_id}");
    assert_eq!(
        data(failed[0]),
        serde_json::json!({"run_id": run_id, "error": error, "session_id": session})
    );
}

pub async fn lease_heartbeat_renews_held_leases(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    store.create_run(start("r2", "s2")).await.unwrap();
    let r1 = claim(store, &a, expired()).await;
    assert!(r1.lease_expires_at.unwrap() < Utc::now());
    let revoked = store
        .heartbeat("lnch_a", Some(&[held(&r1)]), ttl())
        .await
        .unwrap();
    assert!(revoked.is_empty(), "{revoked:?}");
    assert!(run(store, "r1").await.lease_expires_at.unwrap() > Utc::now());
    // Without a list (a reference runner): every lease of the runner is renewed.
    claim(store, &a, expired()).await;
    let revoked = store.heartbeat("lnch_a", None, ttl()).await.unwrap();
    assert!(revoked.is_empty(), "{revoked:?}");
    assert!(run(store, "r2").await.lease_expires_at.unwrap() > Utc::now());
    let resolved = store.expire_leases(policy(RecoveryMode::None)).await;
    assert!(resolved.unwrap().is_empty(), "renewed leases do not expire");
    assert_eq!(run_status(store, "r1").await, "claimed");
    assert_eq!(run_status(store, "r2").await, "claimed");
}

pub async fn lease_heartbeat_with_a_wrong_token_lists_the_run_as_revoked(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let b = runner(store, "lnch_b").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    store.create_run(start("r2", "s2")).await.unwrap();
    claim(store, &a, expired()).await;
    let r2 = claim(store, &b, ttl()).await;
    let leases = [
        HeldLease {
            run_id: "r1".into(),
            lease_token: "lease_bogus".into(),
        },
        held(&r2),
        HeldLease {
            run_id: "nope".into(),
            lease_token: "lease_x".into(),
        },
    ];
    let mut revoked = store
        .heartbeat("lnch_a", Some(&leases), ttl())
        .await
        .unwrap();
    revoked.sort();
    assert_eq!(revoked, ["nope", "r1", "r2"]);
    // Nothing was renewed: r1's lease still runs out.
    let resolved = store.expire_leases(policy(RecoveryMode::None)).await;
    assert_eq!(moves(resolved.unwrap()), [mv("r1", "claimed", "failed")]);
    assert_eq!(run_status(store, "r2").await, "claimed");
    let err = refused(store.heartbeat("lnch_ghost", None, ttl()).await);
    assert!(matches!(err, StoreError::RunnerNotRegistered), "{err:?}");
}

/// `stale` (the default): a run that never started goes back to pending; a started one
/// fails (its work may be half done).
pub async fn lease_expiry_under_stale_recovery_requeues_claimed_and_fails_running(
    store: &dyn Store,
) {
    let (r1, _) = two_expired(store).await;
    let resolved = store.expire_leases(policy(RecoveryMode::Stale)).await;
    assert_eq!(
        moves(resolved.unwrap()),
        [
            mv("r1", "claimed", "pending"),
            mv("r2", "running", "failed")
        ]
    );
    requeued(store, "r1").await;
    failed_by_expiry(store, "r2").await;
    // Expiry appends no event: the history ends with the start.
    assert_eq!(event_types(store, "s2").await, ["run_start"]);
    assert!(store
        .expire_leases(policy(RecoveryMode::Stale))
        .await
        .unwrap()
        .is_empty());
    let b = runner(store, "lnch_b").await;
    let again = claim(store, &b, ttl()).await;
    assert_eq!((again.run.run_id.as_str(), again.run.attempt), ("r1", 2));
    assert_ne!(again.lease_token, r1.lease_token);
}

pub async fn lease_expiry_under_all_recovery_requeues_every_run(store: &dyn Store) {
    two_expired(store).await;
    let resolved = store.expire_leases(policy(RecoveryMode::All)).await;
    assert_eq!(
        moves(resolved.unwrap()),
        [
            mv("r1", "claimed", "pending"),
            mv("r2", "running", "pending")
        ]
    );
    requeued(store, "r1").await;
    requeued(store, "r2").await;
    let b = runner(store, "lnch_b").await;
    for want in ["r1", "r2"] {
        let again = claim(store, &b, ttl()).await;
        assert_eq!((again.run.run_id.as_str(), again.run.attempt), (want, 2));
    }
}

pub async fn lease_expiry_under_none_recovery_fails_every_run(store: &dyn Store) {
    two_expired(store).await;
    let resolved = store.expire_leases(policy(RecoveryMode::None)).await;
    assert_eq!(
        moves(resolved.unwrap()),
        [mv("r1", "claimed", "failed"), mv("r2", "running", "failed")]
    );
    failed_by_expiry(store, "r1").await;
    failed_by_expiry(store, "r2").await;
    let b = runner(store, "lnch_b").await;
    assert!(store.claim_run(&b, ttl()).await.unwrap().is_none());
}

pub async fn lease_expiry_of_a_stopping_run_stops_it(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    store.create_run(start("r1", "s1")).await.unwrap();
    let rec = claim(store, &a, expired()).await;
    report(store, &rec, RunReport::Started).await;
    store.stop_run("r1").await.unwrap();
    let resolved = store.expire_leases(policy(RecoveryMode::All)).await;
    assert_eq!(moves(resolved.unwrap()), [mv("r1", "stopping", "stopped")]);
    let after = run(store, "r1").await;
    assert_eq!(wire(&after.status), "stopped");
    assert_eq!(after.lease_token, None, "the lease is revoked");
    assert_eq!(session_status(store, "s1").await, "stopped");
    let stopped = RunReport::Stopped {
        signal: "SIGTERM".into(),
    };
    let err = refused(store.report("r1", &holder(&rec), stopped).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
}

/// At boot every live lease gets one more ttl, and stops are told again (the runner
/// may have missed them while the coordinator was down).
pub async fn lease_grace_extends_live_leases_and_redelivers_stops(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    for (r, s) in [("r1", "s1"), ("r2", "s2"), ("r3", "s3")] {
        store.create_run(start(r, s)).await.unwrap();
    }
    let r1 = claim(store, &a, expired()).await;
    report(store, &r1, RunReport::Started).await;
    claim(store, &a, expired()).await;
    store.stop_run("r1").await.unwrap();
    assert_eq!(store.take_stops("lnch_a").await.unwrap(), ["s1"]);
    assert!(store.take_stops("lnch_a").await.unwrap().is_empty());
    assert_eq!(store.grace_leases(ttl()).await.unwrap(), 2, "r3 is pending");
    assert!(run(store, "r2").await.lease_expires_at.unwrap() > Utc::now());
    let resolved = store.expire_leases(policy(RecoveryMode::None)).await;
    assert!(resolved.unwrap().is_empty());
    assert_eq!(store.take_stops("lnch_a").await.unwrap(), ["s1"]);
    assert_eq!(run_status(store, "r1").await, "stopping");
    assert_eq!(run_status(store, "r2").await, "claimed");
    assert_eq!(run_status(store, "r3").await, "pending");
}

pub async fn lease_fail_unmatched_fails_pending_runs_past_their_timeout(store: &dyn Store) {
    let past = Utc::now() - Duration::minutes(1);
    let timeout = |new: NewRun, at| NewRun {
        timeout_at: Some(at),
        ..new
    };
    // Claimed before its timeout passed: a runner has it, it stays.
    let a = runner(store, "lnch_a").await;
    store
        .create_run(timeout(start("r0", "s0"), past))
        .await
        .unwrap();
    claim(store, &a, ttl()).await;
    store
        .create_run(timeout(start("r1", "s1"), past))
        .await
        .unwrap();
    let future = Utc::now() + Duration::hours(1);
    store
        .create_run(timeout(start("r2", "s2"), future))
        .await
        .unwrap();
    store.create_run(start("r3", "s3")).await.unwrap();
    let resolved = store.fail_unmatched().await.unwrap();
    assert_eq!(moves(resolved), [mv("r1", "pending", "failed")]);
    let error = "No matching runner available within timeout";
    let rec = run(store, "r1").await;
    assert_eq!(wire(&rec.status), "failed");
    assert_eq!(rec.run.error.as_deref(), Some(error));
    assert_eq!(session_status(store, "s1").await, "failed");
    let items = feed(store, Some("s1")).await;
    let failed: Vec<_> = items.iter().filter(|i| i.kind == "run_failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(data(failed[0])["error"], error);
    assert!(store.fail_unmatched().await.unwrap().is_empty());
    for (r, status) in [("r0", "claimed"), ("r2", "pending"), ("r3", "pending")] {
        assert_eq!(run_status(store, r).await, status, "{r}");
    }
}
