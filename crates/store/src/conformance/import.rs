//! `import_session`: a session from another system, stored once, as it was.

use aof_core::{RunStatus, SessionStatus};
use aof_wire::{ExecutionMode, Run, RunType, Session};

use super::*;

/// A session as another system had it: one completed run, two messages.
pub(crate) fn imported(session_id: &str, status: SessionStatus) -> ImportedSession {
    let created = "2024-05-01T10:00:00.000Z".to_string();
    let session = Session {
        session_id: session_id.into(),
        status,
        created_at: created.clone(),
        project_dir: Some("/old".into()),
        agent_name: Some("coder".into()),
        last_resumed_at: None,
        parent_session_id: None,
        executor_session_id: Some("exec-1".into()),
        executor_profile: Some("default".into()),
        hostname: Some("old-host".into()),
    };
    let run = Run {
        run_id: format!("{session_id}_run"),
        run_type: RunType::StartSession,
        session_id: session_id.into(),
        agent_name: Some("coder".into()),
        parameters: serde_json::json!({"prompt": "hi"}),
        project_dir: Some("/old".into()),
        parent_session_id: None,
        execution_mode: ExecutionMode::Sync,
        demands: None,
        status: aof_core::RunStatus::Completed,
        runner_id: Some("old-runner".into()),
        error: None,
        created_at: created.clone(),
        claimed_at: Some(created.clone()),
        started_at: Some(created.clone()),
        completed_at: Some("2024-05-01T10:01:00.000Z".into()),
        timeout_at: None,
        attempt: 1,
        scope: None,
        resolved_agent_blueprint: None,
        lease_token: None,
        session_token: None,
        traceparent: None,
    };
    ImportedSession {
        session,
        status,
        runs: vec![ImportedRun {
            run,
            status: RunStatus::Completed,
        }],
        events: vec![
            Event::message(session_id, "user", "question"),
            Event::message(session_id, "assistant", "answer"),
        ],
    }
}

/// Stored with its run and events; a second import of the same session is a no-op that
/// answers `false`; an imported run is never dispatched.
pub async fn import_stores_the_session_once(store: &dyn Store) {
    let imp = imported("s1", SessionStatus::Finished);
    assert!(store.import_session(imp.clone()).await.unwrap());
    let s = store.get_session("s1").await.unwrap().expect("imported");
    assert_eq!(wire(&s.status), "finished");
    assert_eq!(s.created_at, imp.session.created_at);
    assert_eq!(s.hostname.as_deref(), Some("old-host"));
    assert_eq!(s.executor_session_id.as_deref(), Some("exec-1"));
    let rec = run(store, "s1_run").await;
    assert_eq!(wire(&rec.status), "completed");
    assert_eq!(rec.run.attempt, 1);
    assert_eq!(rec.run.runner_id.as_deref(), Some("old-runner"));
    assert_eq!(rec.lease_token, None);
    let list = events(store, "s1").await;
    assert_eq!(texts(&list), ["question", "answer"]);
    assert_eq!(list.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        feed_kinds(store, "s1").await,
        ["event", "event", "session_created"]
    );

    let before = snapshot(store, "s1", "s1_run").await;
    let mut again = imported("s1", SessionStatus::Failed);
    again.events.push(Event::message("s1", "user", "more"));
    assert!(!store.import_session(again).await.unwrap());
    assert_eq!(
        snapshot(store, "s1", "s1_run").await,
        before,
        "nothing written"
    );

    let a = runner(store, "lnch_a").await;
    assert!(store.claim_run(&a, ttl()).await.unwrap().is_none());
}
