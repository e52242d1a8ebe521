//! Stops: of one run, of a session (settled, no live run, a live run, an idle session
//! whose runner may or may not hold a process), and their delivery to runners.

use aof_core::SessionStatus;

use super::*;

/// (status, run_id, message) of a stop's answer, after checking `ok` and the session.
fn answer(out: &StopOutcome, session_id: &str) -> (String, Option<String>, Option<String>) {
    assert!(out.ok, "{out:?}");
    assert_eq!(out.session_id, session_id, "{out:?}");
    (wire(&out.status), out.run_id.clone(), out.message.clone())
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

async fn has_stops(store: &dyn Store, runner_id: &str) -> bool {
    match store.poll_state(runner_id).await.unwrap() {
        PollState::Ready { has_stops, .. } => has_stops,
        other => panic!("{runner_id} is not ready: {other:?}"),
    }
}

/// A session whose run `runner` completed, leaving the session idle.
async fn idle(store: &dyn Store, runner: &aof_wire::runner::RunnerInfo, r: &str, s: &str) {
    let rec = running(store, runner, r, s).await;
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    report(store, &rec, idle).await;
    assert_eq!(session_status(store, s).await, "idle");
}

pub async fn stop_run_of_a_pending_run_cancels_it(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    let out = store.stop_run("r1").await.unwrap();
    assert_eq!(
        answer(&out, "s1"),
        (
            "stopped".into(),
            some("r1"),
            some("Run cancelled before execution")
        )
    );
    let rec = run(store, "r1").await;
    assert_eq!(wire(&rec.status), "stopped");
    assert!(rec.run.completed_at.is_some());
    assert_eq!(session_status(store, "s1").await, "stopped");
    assert!(events(store, "s1").await.is_empty());
    let a = runner(store, "lnch_a").await;
    assert!(store.claim_run(&a, ttl()).await.unwrap().is_none());
    assert!(store.take_stops("lnch_a").await.unwrap().is_empty());
}

pub async fn stop_run_of_a_running_run_is_delivered_to_its_runner_once(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    runner(store, "lnch_b").await;
    let rec = running(store, &a, "r1", "s1").await;
    assert!(!has_stops(store, "lnch_a").await);
    let out = store.stop_run("r1").await.unwrap();
    assert_eq!(answer(&out, "s1"), ("stopping".into(), some("r1"), None));
    assert_eq!(run_status(store, "r1").await, "stopping");
    assert_eq!(session_status(store, "s1").await, "stopping");
    assert!(has_stops(store, "lnch_a").await);
    assert!(!has_stops(store, "lnch_b").await);
    assert!(store.take_stops("lnch_b").await.unwrap().is_empty());
    assert_eq!(store.take_stops("lnch_a").await.unwrap(), ["s1"]);
    assert!(
        store.take_stops("lnch_a").await.unwrap().is_empty(),
        "told once"
    );
    assert!(!has_stops(store, "lnch_a").await);
    // Asked again: still stopping, not delivered again.
    let out = store.stop_run("r1").await.unwrap();
    assert_eq!(answer(&out, "s1"), ("stopping".into(), some("r1"), None));
    assert!(store.take_stops("lnch_a").await.unwrap().is_empty());
    let stopped = RunReport::Stopped {
        signal: "SIGTERM".into(),
    };
    report(store, &rec, stopped).await;
    assert_eq!(session_status(store, "s1").await, "stopped");
}

pub async fn stop_run_of_an_ended_or_missing_run_is_refused(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    report(store, &rec, completed()).await;
    let before = snapshot(store, "s1", "r1").await;
    let err = refused(store.stop_run("r1").await);
    assert!(matches!(err, StoreError::Illegal { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
    let err = refused(store.stop_run("nope").await);
    assert!(matches!(err, StoreError::RunNotFound), "{err:?}");
}

pub async fn stop_session_of_an_ended_session_is_settled(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    report(store, &rec, completed()).await;
    let rec = running(store, &a, "r2", "s2").await;
    let failed = RunReport::Failed {
        error: "boom".into(),
    };
    report(store, &rec, failed).await;
    store.create_run(start("r3", "s3")).await.unwrap();
    store.stop_run("r3").await.unwrap();
    for (s, status) in [("s1", "finished"), ("s2", "failed"), ("s3", "stopped")] {
        let before = store.get_session(s).await.unwrap();
        let out = store.stop_session(s).await.unwrap();
        let message = format!("Session already {status}");
        assert_eq!(answer(&out, s), (status.into(), None, Some(message)));
        assert_eq!(store.get_session(s).await.unwrap(), before, "{s} unchanged");
    }
    // Being stopped already.
    running(store, &a, "r4", "s4").await;
    store.stop_run("r4").await.unwrap();
    let out = store.stop_session("s4").await.unwrap();
    assert_eq!(
        answer(&out, "s4"),
        (
            "stopping".into(),
            None,
            some("Session is already being stopped")
        )
    );
    let err = refused(store.stop_session("nope").await);
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
}

pub async fn stop_session_without_any_run_marks_it_stopped(store: &dyn Store) {
    // Only an import makes a session without runs.
    let mut imp = super::import::imported("s1", SessionStatus::Idle);
    imp.runs.clear();
    assert!(store.import_session(imp).await.unwrap());
    let out = store.stop_session("s1").await.unwrap();
    assert_eq!(
        answer(&out, "s1"),
        (
            "stopped".into(),
            None,
            some("No active run found - session marked as stopped")
        )
    );
    assert_eq!(session_status(store, "s1").await, "stopped");
}

pub async fn stop_session_of_a_live_run_stops_the_run(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    running(store, &a, "r1", "s1").await;
    let out = store.stop_session("s1").await.unwrap();
    assert_eq!(answer(&out, "s1"), ("stopping".into(), some("r1"), None));
    assert_eq!(run_status(store, "r1").await, "stopping");
    assert_eq!(session_status(store, "s1").await, "stopping");
    assert_eq!(store.take_stops("lnch_a").await.unwrap(), ["s1"]);

    store.create_run(start("r2", "s2")).await.unwrap();
    let out = store.stop_session("s2").await.unwrap();
    assert_eq!(
        answer(&out, "s2"),
        (
            "stopped".into(),
            some("r2"),
            some("Run cancelled before execution")
        )
    );
    assert_eq!(run_status(store, "r2").await, "stopped");
    assert_eq!(session_status(store, "s2").await, "stopped");
}

/// An AOF runner (registered with an instance id) holds no process between turns: its
/// idle session stops at once, and nothing is sent to it.
pub async fn stop_session_of_an_idle_aof_runner_session_stops_at_once(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    idle(store, &a, "r1", "s1").await;
    let out = store.stop_session("s1").await.unwrap();
    assert_eq!(
        answer(&out, "s1"),
        (
            "stopped".into(),
            some("r1"),
            some("Run already in completed state - session marked as stopped")
        )
    );
    assert_eq!(session_status(store, "s1").await, "stopped");
    assert_eq!(run_status(store, "r1").await, "completed");
    assert!(!has_stops(store, "lnch_a").await);
    assert!(store.take_stops("lnch_a").await.unwrap().is_empty());
}

/// A reference runner (no instance id) may keep the idle session's process: the stop is
/// queued for it. Asked again before it was told: already being stopped. Asked again
/// after it was told and it never confirmed: the session is marked stopped.
pub async fn stop_session_of_an_idle_reference_runner_session_is_queued_then_abandoned(
    store: &dyn Store,
) {
    let r = reference_runner(store, "lnch_ref").await;
    idle(store, &r, "r1", "s1").await;
    let out = store.stop_session("s1").await.unwrap();
    assert_eq!(
        answer(&out, "s1"),
        (
            "stopping".into(),
            some("r1"),
            some("Stop command queued for idle session")
        )
    );
    assert_eq!(session_status(store, "s1").await, "stopping");
    assert_eq!(run_status(store, "r1").await, "completed");
    assert!(has_stops(store, "lnch_ref").await);
    let out = store.stop_session("s1").await.unwrap();
    assert_eq!(
        answer(&out, "s1"),
        (
            "stopping".into(),
            None,
            some("Session is already being stopped")
        )
    );
    assert_eq!(store.take_stops("lnch_ref").await.unwrap(), ["s1"]);
    assert!(
        store.take_stops("lnch_ref").await.unwrap().is_empty(),
        "told once"
    );
    assert!(!has_stops(store, "lnch_ref").await);
    assert_eq!(session_status(store, "s1").await, "stopping");
    let out = store.stop_session("s1").await.unwrap();
    assert_eq!(
        answer(&out, "s1"),
        (
            "stopped".into(),
            some("r1"),
            some("No runner confirmed the stop - idle session marked as stopped")
        )
    );
    assert_eq!(session_status(store, "s1").await, "stopped");
    assert!(store.take_stops("lnch_ref").await.unwrap().is_empty());
}

pub async fn stop_session_of_an_idle_reference_runner_session_is_confirmed_by_the_runner(
    store: &dyn Store,
) {
    let r = reference_runner(store, "lnch_ref").await;
    idle(store, &r, "r1", "s1").await;
    store.stop_session("s1").await.unwrap();
    assert_eq!(store.take_stops("lnch_ref").await.unwrap(), ["s1"]);
    let s = store
        .set_session_status("s1", "lnch_ref", SessionStatus::Stopped)
        .await
        .unwrap();
    assert_eq!(wire(&s.status), "stopped");
    let out = store.stop_session("s1").await.unwrap();
    assert_eq!(
        answer(&out, "s1"),
        ("stopped".into(), None, some("Session already stopped"))
    );
}
