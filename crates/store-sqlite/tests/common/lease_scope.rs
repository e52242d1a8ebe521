//! Store cases for issue #20, run on every backend (SQLite here; PostgreSQL includes this
//! file): a scoped claim passes over runs outside the key's scope and leaves them pending
//! for another runner; a lease of another session's run writes nothing.

use aof_core::RunStatus;
use aof_store::{prelude::*, EventWrite, NewRun, RunReport, StoreError, Writer};
use aof_wire::{
    auth::KeyScope, runner::RegisterRequest, session::BindRequest, Demands, Event, ExecutionMode,
    RunType,
};

fn new_run(run_id: &str, session_id: &str, agent: Option<&str>, tags: &[&str]) -> NewRun {
    NewRun {
        run_id: run_id.into(),
        run_type: RunType::StartSession,
        session_id: session_id.into(),
        agent_name: agent.map(str::to_string),
        parameters: serde_json::json!({"prompt": "hi"}),
        project_dir: None,
        parent_session_id: None,
        execution_mode: ExecutionMode::Sync,
        demands: Demands {
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Demands::default()
        },
        scope: None,
        blueprint: None,
        timeout_at: None,
        deliver_callbacks: Vec::new(),
        traceparent: None,
    }
}

async fn runner(store: &dyn Store, id: &str, tags: &[&str]) -> aof_wire::runner::RunnerInfo {
    let req = RegisterRequest {
        hostname: format!("host-{id}"),
        project_dir: "/p".into(),
        executor_profile: "default".into(),
        executor: None,
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        require_matching_tags: None,
        instance_id: Some(format!("i-{id}")),
    };
    store.register_runner(id, &req).await.unwrap()
}

fn ttl() -> chrono::Duration {
    chrono::Duration::seconds(60)
}

async fn pending_unclaimed(store: &dyn Store, run_id: &str) {
    let rec = store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(rec.status, RunStatus::Pending, "{run_id}");
    assert_eq!(rec.run.runner_id, None, "{run_id}");
    assert_eq!(rec.lease_token, None, "{run_id}");
}

pub async fn a_scoped_claim_leaves_runs_outside_the_scope_pending(store: &dyn Store) {
    // Oldest first: three runs the scope excludes, then the one it allows.
    store
        .create_run(new_run("r_c", "s_c", Some("c"), &[]))
        .await
        .unwrap();
    store
        .create_run(new_run("r_none", "s_none", None, &[]))
        .await
        .unwrap();
    store
        .create_run(new_run("r_eu", "s_eu", Some("a"), &["gpu", "eu"]))
        .await
        .unwrap();
    store
        .create_run(new_run("r_a", "s_a", Some("a"), &["gpu"]))
        .await
        .unwrap();
    let scope = KeyScope {
        tags: vec!["gpu".into()],
        agents: vec!["a".into(), "b".into()],
    };
    // The runner itself could take every one of them (it carries both tags).
    let scoped = runner(store, "lnch_scoped", &["gpu", "eu"]).await;
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
    let other = runner(store, "lnch_other", &["gpu", "eu"]).await;
    for want in ["r_c", "r_none", "r_eu"] {
        let got = store.claim_run(&other, ttl()).await.unwrap();
        assert_eq!(got.map(|r| r.run.run_id).as_deref(), Some(want));
    }
}

pub async fn a_lease_of_another_sessions_run_writes_nothing(store: &dyn Store) {
    store
        .create_run(new_run("r1", "s1", None, &[]))
        .await
        .unwrap();
    store
        .create_run(new_run("r2", "s2", None, &[]))
        .await
        .unwrap();
    let a = runner(store, "lnch_a", &[]).await;
    let b = runner(store, "lnch_b", &[]).await;
    let lease1 = store
        .claim_run(&a, ttl())
        .await
        .unwrap()
        .unwrap()
        .lease_token;
    let lease2 = store
        .claim_run(&b, ttl())
        .await
        .unwrap()
        .unwrap()
        .lease_token;
    let before = (
        store.list_events("s1", None, None).await.unwrap(),
        store.get_session("s1").await.unwrap(),
        store
            .get_run("r1")
            .await
            .unwrap()
            .map(|r| (r.status, r.lease_token)),
    );
    let write = |run: &str, token: &Option<String>| EventWrite {
        event: Event::message("s1", "assistant", "forged"),
        run_id: Some(run.into()),
        idempotency_key: None,
        lease_token: token.clone(),
    };
    // Run 2's own lease on session 1, and run 1 named with run 2's token.
    for (run, token) in [("r2", &lease2), ("r1", &lease2)] {
        let err = store
            .append_event("s1", write(run, token))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LeaseConflict(_)), "{err:?}");
        let err = store
            .append_events("s1", vec![write(run, token), write(run, token)])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LeaseConflict(_)), "{err:?}");
    }
    let bind = BindRequest {
        executor_session_id: "forged".into(),
        hostname: "evil".into(),
        executor_profile: "evil".into(),
        project_dir: None,
    };
    let err = store
        .bind("s1", &bind, lease2.as_deref())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseConflict(_)), "{err:?}");
    let who = Writer {
        runner_id: "lnch_a".into(),
        lease_token: lease2.clone(),
    };
    let err = store
        .report(
            "r1",
            &who,
            RunReport::Failed {
                error: "forged".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseConflict(_)), "{err:?}");
    let after = (
        store.list_events("s1", None, None).await.unwrap(),
        store.get_session("s1").await.unwrap(),
        store
            .get_run("r1")
            .await
            .unwrap()
            .map(|r| (r.status, r.lease_token)),
    );
    assert_eq!(after, before);
    // Its own lease writes.
    assert!(store
        .append_event("s1", write("r1", &lease1))
        .await
        .unwrap()
        .is_some());
}
