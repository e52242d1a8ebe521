//! Runs: create (start and resume), get, latest, list; claims (oldest first, demands,
//! a key's scope, the lease each claim hands out).

use aof_wire::{auth::KeyScope, Demands, ExecutionMode, RunType};
use chrono::Utc;

use super::*;

pub async fn runs_start_creates_the_run_and_a_pending_session(store: &dyn Store) {
    let new = NewRun {
        agent_name: Some("coder".into()),
        project_dir: Some("/proj".into()),
        execution_mode: ExecutionMode::AsyncPoll,
        demands: Demands {
            executor_profile: Some("fast".into()),
            tags: vec!["gpu".into()],
            ..Demands::default()
        },
        scope: Some(serde_json::json!({"repo": "x"})),
        blueprint: Some(serde_json::json!({"name": "coder"})),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        ..start("r1", "s1")
    };
    let rec = store.create_run(new.clone()).await.unwrap();
    assert_eq!(wire(&rec.status), "pending");
    assert_eq!(rec.lease_token, None);
    assert_eq!(rec.lease_expires_at, None);
    let r = &rec.run;
    assert_eq!((r.run_id.as_str(), r.session_id.as_str()), ("r1", "s1"));
    assert_eq!(r.run_type, RunType::StartSession);
    assert_eq!(wire(&r.status), "pending");
    assert_eq!(r.agent_name.as_deref(), Some("coder"));
    assert_eq!(r.parameters, new.parameters);
    assert_eq!(r.project_dir.as_deref(), Some("/proj"));
    assert_eq!(r.execution_mode, ExecutionMode::AsyncPoll);
    assert_eq!(r.demands.as_ref(), Some(&new.demands));
    assert_eq!(r.scope, new.scope);
    assert_eq!(r.resolved_agent_blueprint, new.blueprint);
    assert_eq!(r.traceparent, new.traceparent);
    assert_eq!((r.runner_id.as_deref(), r.attempt), (None, 0));
    assert!(r.claimed_at.is_none() && r.started_at.is_none() && r.completed_at.is_none());
    assert_eq!(
        run(store, "r1").await.run,
        rec.run,
        "get_run reads what create returned"
    );

    let s = store
        .get_session("s1")
        .await
        .unwrap()
        .expect("session created");
    assert_eq!(wire(&s.status), "pending");
    assert_eq!(s.agent_name.as_deref(), Some("coder"));
    assert_eq!(s.project_dir.as_deref(), Some("/proj"));
    assert!(
        events(store, "s1").await.is_empty(),
        "no event before a runner starts"
    );
    let items = feed(store, Some("s1")).await;
    assert_eq!(feed_kinds(store, "s1").await, ["session_created"]);
    assert_eq!(data(&items[0])["session"]["session_id"], "s1");
}

pub async fn runs_start_of_a_taken_session_is_session_exists(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    let err = refused(store.create_run(start("r2", "s1")).await);
    assert!(matches!(err, StoreError::SessionExists { .. }), "{err:?}");
    assert!(err.to_string().contains("s1"), "{err}");
    assert!(
        store.get_run("r2").await.unwrap().is_none(),
        "nothing stored"
    );
    assert_eq!(store.list_runs(None, None).await.unwrap().len(), 1);
    assert_eq!(feed_kinds(store, "s1").await, ["session_created"]);
}

pub async fn runs_resume_of_a_missing_session_is_session_not_found(store: &dyn Store) {
    let err = refused(store.create_run(resume("r1", "nope")).await);
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(store.get_run("r1").await.unwrap().is_none());
    assert!(store.get_session("nope").await.unwrap().is_none());
}

pub async fn runs_resume_adds_the_latest_run_of_the_session(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let first = running(store, &a, "r1", "s1").await;
    report(store, &first, completed()).await;
    let rec = store.create_run(resume("r2", "s1")).await.unwrap();
    assert_eq!(rec.run.run_type, RunType::ResumeSession);
    assert_eq!(wire(&rec.status), "pending");
    let latest = store.latest_run("s1").await.unwrap().expect("a run");
    assert_eq!(latest.run.run_id, "r2");
    assert_eq!(run_status(store, "r1").await, "completed");
    let sessions = store.list_sessions().await.unwrap();
    assert_eq!(sessions.len(), 1, "a resume creates no session");
    assert!(store.latest_run("nope").await.unwrap().is_none());
}

pub async fn runs_get_latest_and_list_filter_by_status(store: &dyn Store) {
    for (r, s) in [("r1", "s1"), ("r2", "s2"), ("r3", "s3")] {
        store.create_run(start(r, s)).await.unwrap();
    }
    let a = runner(store, "lnch_a").await;
    assert_eq!(claim(store, &a, ttl()).await.run.run_id, "r1");
    store.stop_run("r2").await.unwrap();
    let ids = |runs: Vec<aof_wire::Run>| runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_runs(None, None).await.unwrap()),
        ["r3", "r2", "r1"],
        "newest first"
    );
    assert_eq!(
        ids(store.list_runs(Some("pending"), None).await.unwrap()),
        ["r3"]
    );
    assert_eq!(
        ids(store.list_runs(Some("claimed"), None).await.unwrap()),
        ["r1"]
    );
    assert_eq!(
        ids(store.list_runs(Some("stopped"), None).await.unwrap()),
        ["r2"]
    );
    assert!(store
        .list_runs(Some("running"), None)
        .await
        .unwrap()
        .is_empty());
    for (r, status) in [("r1", "claimed"), ("r2", "stopped"), ("r3", "pending")] {
        assert_eq!(run_status(store, r).await, status, "{r}");
        let latest = store.latest_run(&r.replace('r', "s")).await.unwrap();
        assert_eq!(latest.map(|l| l.run.run_id).as_deref(), Some(r));
    }
    // By session, alone and with a status: s3 gets a second run once its first ended.
    store.stop_run("r3").await.unwrap();
    store.create_run(resume("r4", "s3")).await.unwrap();
    assert_eq!(
        ids(store.list_runs(None, Some("s3")).await.unwrap()),
        ["r4", "r3"]
    );
    assert_eq!(
        ids(store.list_runs(Some("stopped"), Some("s3")).await.unwrap()),
        ["r3"]
    );
    assert_eq!(
        ids(store.list_runs(None, Some("s1")).await.unwrap()),
        ["r1"]
    );
    assert!(store
        .list_runs(None, Some("ses_none"))
        .await
        .unwrap()
        .is_empty());
    assert!(store.get_run("nope").await.unwrap().is_none());
}

pub async fn claim_takes_the_oldest_pending_run_with_a_new_lease(store: &dyn Store) {
    for (r, s) in [("r1", "s1"), ("r2", "s2"), ("r3", "s3")] {
        store.create_run(start(r, s)).await.unwrap();
    }
    let a = runner(store, "lnch_a").await;
    let before = Utc::now();
    let mut tokens = Vec::new();
    for want in ["r1", "r2", "r3"] {
        let rec = claim(store, &a, ttl()).await;
        assert_eq!(rec.run.run_id, want, "oldest first");
        assert_eq!(wire(&rec.status), "claimed");
        assert_eq!(rec.run.runner_id.as_deref(), Some("lnch_a"));
        assert_eq!(rec.run.attempt, 1);
        assert!(rec.run.claimed_at.is_some());
        let token = rec.lease_token.clone().expect("a lease token");
        assert_eq!(
            rec.run.lease_token.as_ref(),
            Some(&token),
            "handed to the runner"
        );
        assert!(rec.lease_expires_at.expect("a lease expiry") > before);
        tokens.push(token);
        // The claim is stored; the session waits for the runner's start.
        assert_eq!(run_status(store, want).await, "claimed");
        assert_eq!(
            session_status(store, &want.replace('r', "s")).await,
            "pending"
        );
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "every lease token is new");
    assert!(store.claim_run(&a, ttl()).await.unwrap().is_none());
}

pub async fn claim_takes_only_runs_whose_demands_the_runner_meets(store: &dyn Store) {
    store
        .create_run(with_tags(start("r_tpu", "s_tpu"), &["tpu"]))
        .await
        .unwrap();
    let mut elsewhere = start("r_host", "s_host");
    elsewhere.demands.hostname = Some("elsewhere".into());
    store.create_run(elsewhere).await.unwrap();
    store
        .create_run(with_tags(start("r_gpu", "s_gpu"), &["gpu"]))
        .await
        .unwrap();
    store.create_run(start("r_plain", "s_plain")).await.unwrap();

    // Takes only runs demanding one of its tags.
    let picky = RegisterRequest {
        require_matching_tags: Some(true),
        ..register_request("lnch_picky", &["gpu", "cpu"])
    };
    let picky = store.register_runner("lnch_picky", &picky).await.unwrap();
    assert_eq!(claim(store, &picky, ttl()).await.run.run_id, "r_gpu");
    assert!(store.claim_run(&picky, ttl()).await.unwrap().is_none());

    // No tags: only runs demanding none, on any host.
    let plain = runner(store, "lnch_plain").await;
    assert_eq!(claim(store, &plain, ttl()).await.run.run_id, "r_plain");
    assert!(store.claim_run(&plain, ttl()).await.unwrap().is_none());

    let tpu = RegisterRequest {
        hostname: "elsewhere".into(),
        ..register_request("lnch_tpu", &["tpu"])
    };
    let tpu = store.register_runner("lnch_tpu", &tpu).await.unwrap();
    assert_eq!(claim(store, &tpu, ttl()).await.run.run_id, "r_tpu");
    assert_eq!(claim(store, &tpu, ttl()).await.run.run_id, "r_host");
    assert!(store
        .list_runs(Some("pending"), None)
        .await
        .unwrap()
        .is_empty());
}

async fn pending_unclaimed(store: &dyn Store, run_id: &str) {
    let rec = run(store, run_id).await;
    assert_eq!(wire(&rec.status), "pending", "{run_id}");
    assert_eq!(rec.run.runner_id, None, "{run_id}");
    assert_eq!(rec.lease_token, None, "{run_id}");
}

/// Issue #20: a runner key limited to a scope passes over runs outside it, which stay
/// pending for another runner.
pub async fn claim_scoped_leaves_runs_outside_the_scope_pending(store: &dyn Store) {
    let agent = |new: NewRun, a: Option<&str>| NewRun {
        agent_name: a.map(str::to_string),
        ..new
    };
    // Oldest first: three runs the scope excludes, then the one it allows.
    for new in [
        agent(start("r_c", "s_c"), Some("c")),
        agent(start("r_none", "s_none"), None),
        agent(with_tags(start("r_eu", "s_eu"), &["gpu", "eu"]), Some("a")),
        agent(with_tags(start("r_a", "s_a"), &["gpu"]), Some("a")),
    ] {
        store.create_run(new).await.unwrap();
    }
    let scope = KeyScope {
        tags: vec!["gpu".into()],
        agents: vec!["a".into(), "b".into()],
    };
    // The runner itself could take every one of them (it carries both tags).
    let req = register_request("lnch_scoped", &["gpu", "eu"]);
    let scoped = store.register_runner("lnch_scoped", &req).await.unwrap();
    let got = store
        .claim_run_scoped(&scoped, ttl(), &scope)
        .await
        .unwrap();
    assert_eq!(got.map(|r| r.run.run_id).as_deref(), Some("r_a"));
    assert!(store
        .claim_run_scoped(&scoped, ttl(), &scope)
        .await
        .unwrap()
        .is_none());
    for id in ["r_c", "r_none", "r_eu"] {
        pending_unclaimed(store, id).await;
    }
    // An unscoped runner takes them, oldest first.
    let req = register_request("lnch_other", &["gpu", "eu"]);
    let other = store.register_runner("lnch_other", &req).await.unwrap();
    for want in ["r_c", "r_none", "r_eu"] {
        let got = store.claim_run(&other, ttl()).await.unwrap();
        assert_eq!(got.map(|r| r.run.run_id).as_deref(), Some(want));
    }
}

pub async fn runs_page_through_by_status_and_session(store: &dyn Store) {
    for i in 0..5 {
        store
            .create_run(start(&format!("r{i}"), &format!("s{i}")))
            .await
            .unwrap();
    }
    store.stop_run("r1").await.unwrap();
    store.create_run(resume("r5", "s1")).await.unwrap();
    let pages = |status: Option<aof_core::RunStatus>, session: Option<&'static str>, limit| async move {
        let mut out = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .list_runs_page(status, session, before, limit)
                .await
                .unwrap();
            out.push(page.runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>());
            match page.next {
                Some(n) => before = Some(n),
                None => return out,
            }
        }
    };
    let all = pages(None, None, 2).await;
    assert_eq!(
        all,
        [["r5", "r4"], ["r3", "r2"], ["r1", "r0"]],
        "no empty page after the last"
    );
    let flat: Vec<String> = all.concat();
    let listed = store.list_runs(None, None).await.unwrap();
    assert_eq!(
        flat,
        listed.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
    );
    let pending = pages(Some(aof_core::RunStatus::Pending), None, 3).await;
    assert_eq!(pending, [vec!["r5", "r4", "r3"], vec!["r2", "r0"]]);
    let stopped = pages(Some(aof_core::RunStatus::Stopped), None, 3).await;
    assert_eq!(stopped, [vec!["r1"]]);
    assert_eq!(pages(None, Some("s1"), 1).await, [["r5"], ["r1"]]);
}
