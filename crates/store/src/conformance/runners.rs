//! Runners: registration (and the duplicate rule), listing with staleness, removal now
//! or at the next poll, reaping silent runners, and what a poll reads.

use aof_wire::runner::RunnerStatus;
use chrono::Duration;

use super::*;

fn ready(state: PollState) -> (String, bool) {
    match state {
        PollState::Ready { runner, has_stops } => (runner.runner_id, has_stops),
        other => panic!("not ready: {other:?}"),
    }
}

async fn failed_with(store: &dyn Store, run_id: &str, error: &str) {
    let rec = run(store, run_id).await;
    assert_eq!(wire(&rec.status), "failed", "{run_id}");
    assert_eq!(rec.run.error.as_deref(), Some(error), "{run_id}");
    assert_eq!(rec.lease_token, None, "{run_id}: the lease is revoked");
    let session = rec.run.session_id;
    assert_eq!(session_status(store, &session).await, "failed");
    let items = feed(store, Some(&session)).await;
    let failed: Vec<_> = items.iter().filter(|i| i.kind == "run_failed").collect();
    assert_eq!(failed.len(), 1, "{run_id}");
    assert_eq!(data(failed[0])["error"], error);
}

pub async fn runners_register_and_list_with_staleness(store: &dyn Store) {
    let mut executor = serde_json::Map::new();
    executor.insert("type".into(), "claude".into());
    let req = RegisterRequest {
        executor: Some(executor.clone()),
        require_matching_tags: Some(true),
        ..register_request("lnch_a", &["gpu", "eu"])
    };
    let info = store.register_runner("lnch_a", &req).await.unwrap();
    assert_eq!(info.runner_id, "lnch_a");
    assert_eq!(info.hostname, "host-lnch_a");
    assert_eq!(info.project_dir, "/p");
    assert_eq!(info.executor_profile, "default");
    assert_eq!(info.executor, executor);
    assert_eq!(info.tags, ["gpu", "eu"]);
    assert!(info.require_matching_tags);
    assert_eq!(wire(&info.status), "online");
    assert!(info.seconds_since_heartbeat >= 0.0);
    let b = runner(store, "lnch_b").await;
    assert!(b.tags.is_empty() && !b.require_matching_tags);
    assert!(b.executor.is_empty());

    let list = |stale_after| store.list_runners(stale_after);
    let mut online = list(Duration::hours(1)).await.unwrap();
    online.sort_by(|x, y| x.runner_id.cmp(&y.runner_id));
    let view: Vec<(String, String)> = online
        .iter()
        .map(|r| (r.runner_id.clone(), wire(&r.status)))
        .collect();
    let want = |status: &str| {
        let v = [("lnch_a", status), ("lnch_b", status)];
        v.map(|(r, s)| (r.to_string(), s.to_string())).to_vec()
    };
    assert_eq!(view, want("online"));
    assert_eq!(online[0].tags, ["gpu", "eu"]);
    let mut stale = list(Duration::zero()).await.unwrap();
    stale.sort_by(|x, y| x.runner_id.cmp(&y.runner_id));
    let view: Vec<(String, String)> = stale
        .iter()
        .map(|r| (r.runner_id.clone(), wire(&r.status)))
        .collect();
    assert_eq!(view, want("stale"), "silent for at least no time at all");
}

pub async fn runners_duplicate_registration_is_refused_unless_same_instance(store: &dyn Store) {
    runner(store, "lnch_a").await;
    let other = RegisterRequest {
        instance_id: Some("i-other".into()),
        ..register_request("lnch_a", &[])
    };
    let err = refused(store.register_runner("lnch_a", &other).await);
    assert!(matches!(err, StoreError::DuplicateRunner { .. }), "{err:?}");
    // The same process again (after a coordinator restart): accepted, updated.
    let again = register_request("lnch_a", &["gpu"]);
    let info = store.register_runner("lnch_a", &again).await.unwrap();
    assert_eq!(info.tags, ["gpu"]);
    // A reference runner has no instance id: a live one cannot be registered twice.
    reference_runner(store, "lnch_ref").await;
    let req = RegisterRequest {
        instance_id: None,
        ..register_request("lnch_ref", &[])
    };
    let err = refused(store.register_runner("lnch_ref", &req).await);
    assert!(matches!(err, StoreError::DuplicateRunner { .. }), "{err:?}");
    assert_eq!(
        store.list_runners(Duration::hours(1)).await.unwrap().len(),
        2
    );
}

pub async fn runners_remove_self_fails_held_runs(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    store.create_run(start("r2", "s2")).await.unwrap();
    claim(store, &a, ttl()).await;
    store.create_run(start("r3", "s3")).await.unwrap();
    store.remove_runner("lnch_a", true).await.unwrap();
    let error = "Runner deregistered during execution";
    failed_with(store, "r1", error).await;
    failed_with(store, "r2", error).await;
    assert_eq!(run_status(store, "r3").await, "pending");
    assert!(matches!(
        store.poll_state("lnch_a").await.unwrap(),
        PollState::Unknown
    ));
    assert!(store
        .list_runners(Duration::hours(1))
        .await
        .unwrap()
        .is_empty());
    let err = refused(store.remove_runner("lnch_a", true).await);
    assert!(matches!(err, StoreError::RunnerNotFound), "{err:?}");
    let err = refused(store.report("r1", &holder(&rec), completed()).await);
    assert!(matches!(err, StoreError::RunnerNotRegistered), "{err:?}");
}

pub async fn runners_mark_for_deregistration_then_take_it(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    runner(store, "lnch_b").await;
    running(store, &a, "r1", "s1").await;
    store.remove_runner("lnch_a", false).await.unwrap();
    assert!(matches!(
        store.poll_state("lnch_a").await.unwrap(),
        PollState::Deregister
    ));
    assert_eq!(
        run_status(store, "r1").await,
        "running",
        "told at its next poll"
    );
    // Registering again (the same process) clears the mark.
    store
        .register_runner("lnch_a", &register_request("lnch_a", &[]))
        .await
        .unwrap();
    assert_eq!(ready(store.poll_state("lnch_a").await.unwrap()).0, "lnch_a");
    assert!(!store.take_deregistration("lnch_a").await.unwrap());

    store.remove_runner("lnch_a", false).await.unwrap();
    assert!(
        !store.take_deregistration("lnch_b").await.unwrap(),
        "not marked"
    );
    assert!(store.take_deregistration("lnch_a").await.unwrap());
    assert!(matches!(
        store.poll_state("lnch_a").await.unwrap(),
        PollState::Unknown
    ));
    failed_with(store, "r1", "Runner deregistered during execution").await;
    assert!(!store.take_deregistration("lnch_a").await.unwrap(), "once");
    assert_eq!(ready(store.poll_state("lnch_b").await.unwrap()).0, "lnch_b");
    let err = refused(store.remove_runner("lnch_ghost", false).await);
    assert!(matches!(err, StoreError::RunnerNotFound), "{err:?}");
}

pub async fn runners_reap_removes_silent_runners_and_fails_their_runs(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    runner(store, "lnch_b").await;
    running(store, &a, "r1", "s1").await;
    assert!(store
        .reap_runners(Duration::hours(1))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.list_runners(Duration::hours(1)).await.unwrap().len(),
        2
    );
    // Silent for longer than "a second from now": every runner.
    let resolved = store.reap_runners(Duration::seconds(-1)).await.unwrap();
    let moved: Vec<_> = resolved
        .iter()
        .map(|r| {
            (
                r.run_id.as_str(),
                r.session_id.as_str(),
                wire(&r.from),
                wire(&r.to),
            )
        })
        .collect();
    assert_eq!(moved, [("r1", "s1", "running".into(), "failed".into())]);
    failed_with(store, "r1", "Runner disconnected during execution").await;
    assert!(store
        .list_runners(Duration::hours(1))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store.poll_state("lnch_b").await.unwrap(),
        PollState::Unknown
    ));
}

pub async fn runners_poll_state_tells_unknown_deregister_and_stops(store: &dyn Store) {
    assert!(matches!(
        store.poll_state("lnch_a").await.unwrap(),
        PollState::Unknown
    ));
    let a = runner(store, "lnch_a").await;
    assert_eq!(
        ready(store.poll_state("lnch_a").await.unwrap()),
        ("lnch_a".into(), false)
    );
    running(store, &a, "r1", "s1").await;
    store.stop_run("r1").await.unwrap();
    assert_eq!(
        ready(store.poll_state("lnch_a").await.unwrap()),
        ("lnch_a".into(), true)
    );
    assert_eq!(store.take_stops("lnch_a").await.unwrap(), ["s1"]);
    assert_eq!(
        ready(store.poll_state("lnch_a").await.unwrap()),
        ("lnch_a".into(), false)
    );
    store.remove_runner("lnch_a", false).await.unwrap();
    assert!(matches!(
        store.poll_state("lnch_a").await.unwrap(),
        PollState::Deregister
    ));
}

/// Every page of `filter` at `limit` per page (stale after `stale_after`), as ids.
async fn runner_pages(
    store: &dyn Store,
    stale_after: Duration,
    filter: &RunnerFilter,
    limit: i64,
) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_runners_page(stale_after, filter, after, limit)
            .await
            .unwrap();
        out.push(page.runners.iter().map(|r| r.runner_id.clone()).collect());
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

pub async fn runners_page_through_and_filter_by_status_and_text(store: &dyn Store) {
    // Registered within the same instant or not: the id breaks ties in both orders.
    for i in 0..7 {
        let id = format!("lnch_{i}");
        let tag = if i % 2 == 0 { "gpu_x" } else { "cpu" };
        let req = register_request(&id, &[tag]);
        store.register_runner(&id, &req).await.unwrap();
    }
    let hour = Duration::hours(1);
    let all: Vec<String> = store
        .list_runners(hour)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.runner_id)
        .collect();
    assert_eq!(all.len(), 7);
    let every = RunnerFilter::default();
    let pages = runner_pages(store, hour, &every, 3).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), all, "every runner once, in list order");
    let exact = runner_pages(store, hour, &every, 7).await;
    assert_eq!(
        exact,
        vec![all.clone()],
        "a page ending at the last runner is the last"
    );

    // Text: case-insensitive, LIKE's `_` and `%` taken literally, tags included.
    let text = |t: &str| RunnerFilter {
        text: Some(t.into()),
        ..RunnerFilter::default()
    };
    let gpu = runner_pages(store, hour, &text("GPU_X"), 3).await;
    assert_eq!(gpu, [vec!["lnch_0", "lnch_2", "lnch_4"], vec!["lnch_6"]]);
    assert_eq!(
        runner_pages(store, hour, &text("gpu%"), 3).await,
        [Vec::<String>::new()]
    );
    assert_eq!(
        runner_pages(store, hour, &text("gpuxx"), 3).await,
        [Vec::<String>::new()]
    );
    assert_eq!(
        runner_pages(store, hour, &text("HOST-LNCH_5"), 3).await,
        [vec!["lnch_5"]]
    );

    // Status, decided as `list_runners` decides it: all online within the hour, all
    // stale when silent for no time at all is too long.
    let status = |s| RunnerFilter {
        status: Some(s),
        ..RunnerFilter::default()
    };
    let (online, stale) = (status(RunnerStatus::Online), status(RunnerStatus::Stale));
    assert_eq!(
        runner_pages(store, hour, &online, 10).await,
        vec![all.clone()]
    );
    assert_eq!(
        runner_pages(store, hour, &stale, 10).await,
        [Vec::<String>::new()]
    );
    let zero = Duration::zero();
    assert_eq!(
        runner_pages(store, zero, &online, 10).await,
        [Vec::<String>::new()]
    );
    let page = store
        .list_runners_page(zero, &stale, None, 10)
        .await
        .unwrap();
    assert_eq!(page.runners.len(), 7);
    assert!(page.runners.iter().all(|r| wire(&r.status) == "stale"));
    // Both filters at once.
    let both = RunnerFilter {
        status: Some(RunnerStatus::Online),
        text: Some("cpu".into()),
    };
    assert_eq!(
        runner_pages(store, hour, &both, 2).await,
        [vec!["lnch_1", "lnch_3"], vec!["lnch_5"]]
    );
}
