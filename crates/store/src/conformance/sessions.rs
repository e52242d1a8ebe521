//! Sessions: listing and paging, bind, metadata, runner-set status, delete (and the
//! retention purge built on it), results, counts.

use aof_core::SessionStatus;
use aof_wire::session::{Affinity, BindRequest, MetadataPatch};

use super::*;

fn ids(sessions: &[aof_wire::Session]) -> Vec<String> {
    sessions.iter().map(|s| s.session_id.clone()).collect()
}

fn bind_request(project_dir: Option<&str>) -> BindRequest {
    BindRequest {
        executor_session_id: "exec-1".into(),
        hostname: "host-1".into(),
        executor_profile: "fast".into(),
        project_dir: project_dir.map(str::to_string),
    }
}

pub async fn sessions_list_newest_first(store: &dyn Store) {
    assert!(store.list_sessions().await.unwrap().is_empty());
    for (r, s) in [("r1", "s1"), ("r2", "s2"), ("r3", "s3")] {
        store.create_run(start(r, s)).await.unwrap();
    }
    let list = store.list_sessions().await.unwrap();
    assert_eq!(ids(&list), ["s3", "s2", "s1"]);
    assert_eq!(wire(&list[0].status), "pending");
}

pub async fn sessions_page_through_without_duplicates_or_gaps(store: &dyn Store) {
    for i in 0..7 {
        store
            .create_run(start(&format!("r{i}"), &format!("s{i}")))
            .await
            .unwrap();
    }
    let all = ids(&store.list_sessions().await.unwrap());
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_sessions_page(&all_of(), after, 3).await.unwrap();
        sizes.push(page.sessions.len());
        seen.extend(ids(&page.sessions));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen, all, "every session once, in list order");
    // A page that ends exactly at the last session is the last one.
    let full = store.list_sessions_page(&all_of(), None, 7).await.unwrap();
    assert_eq!(ids(&full.sessions), all);
    assert!(full.next.is_none());
    let short = store.list_sessions_page(&all_of(), None, 6).await.unwrap();
    let rest = store
        .list_sessions_page(&all_of(), short.next, 6)
        .await
        .unwrap();
    assert_eq!(ids(&rest.sessions), [all[6].clone()]);
    assert!(rest.next.is_none());
}

fn all_of() -> SessionFilter {
    SessionFilter::default()
}

/// Every page of `filter` at `limit` per page, in order.
async fn pages(store: &dyn Store, filter: &SessionFilter, limit: i64) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_sessions_page(filter, after, limit)
            .await
            .unwrap();
        out.push(ids(&page.sessions));
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

pub async fn sessions_filter_by_status_agent_parent_and_text(store: &dyn Store) {
    // s0 is the parent of s1..s5; agents alternate; s1 and s3 are bound (running).
    for i in 0..6 {
        let new = NewRun {
            agent_name: Some(["alpha", "beta"][i % 2].into()),
            parent_session_id: (i > 0).then(|| "s0".into()),
            project_dir: match i {
                2 => Some("/srv/bigXone".into()),
                4 => Some("/srv/Big_One".into()),
                _ => None,
            },
            ..start(&format!("r{i}"), &format!("s{i}"))
        };
        store.create_run(new).await.unwrap();
    }
    for id in ["s1", "s3"] {
        store.bind(id, &bind_request(None), None).await.unwrap();
    }
    let f = |status, agent: Option<&str>, parent: Option<&str>, text: Option<&str>| SessionFilter {
        status,
        agent: agent.map(str::to_string),
        parent: parent.map(str::to_string),
        text: text.map(str::to_string),
    };
    let running = f(Some(SessionStatus::Running), None, None, None);
    assert_eq!(pages(store, &running, 10).await, [["s3", "s1"]]);
    let beta = f(None, Some("beta"), None, None);
    assert_eq!(pages(store, &beta, 2).await, [vec!["s5", "s3"], vec!["s1"]]);
    let alpha_pending = f(Some(SessionStatus::Pending), Some("alpha"), None, None);
    assert_eq!(
        pages(store, &alpha_pending, 2).await,
        [vec!["s4", "s2"], vec!["s0"]]
    );
    let children = f(None, None, Some("s0"), None);
    assert_eq!(pages(store, &children, 10).await[0].len(), 5);
    // Case-insensitive, and LIKE's `_` is a plain character: "/srv/bigXone" is not a hit.
    let text = f(None, None, None, Some("G_O"));
    assert_eq!(pages(store, &text, 10).await, [["s4"]]);
    // The host a bind wrote, the agent name and the id are searched too.
    let host = f(None, None, None, Some("HOST-1"));
    assert_eq!(pages(store, &host, 10).await, [["s3", "s1"]]);
    let agent = f(None, None, None, Some("lph"));
    assert_eq!(pages(store, &agent, 10).await, [["s4", "s2", "s0"]]);
    let id = f(None, None, None, Some("S5"));
    assert_eq!(pages(store, &id, 10).await, [["s5"]]);
    let none = f(Some(SessionStatus::Stopped), None, None, Some("%"));
    assert_eq!(pages(store, &none, 10).await, [Vec::<String>::new()]);
}

pub async fn sessions_bind_sets_executor_fields_and_running(store: &dyn Store) {
    let new = NewRun {
        project_dir: Some("/proj".into()),
        ..start("r1", "s1")
    };
    store.create_run(new).await.unwrap();
    let s = store.bind("s1", &bind_request(None), None).await.unwrap();
    assert_eq!(wire(&s.status), "running");
    assert_eq!(s.executor_session_id.as_deref(), Some("exec-1"));
    assert_eq!(s.hostname.as_deref(), Some("host-1"));
    assert_eq!(s.executor_profile.as_deref(), Some("fast"));
    assert_eq!(
        s.project_dir.as_deref(),
        Some("/proj"),
        "kept when not given"
    );
    assert_eq!(store.get_session("s1").await.unwrap(), Some(s));
    let items = feed(store, Some("s1")).await;
    let last = items.last().unwrap();
    assert_eq!(last.kind, "session_updated");
    assert_eq!(data(last)["session"]["executor_session_id"], "exec-1");
    assert_eq!(
        store.affinity("s1").await.unwrap(),
        Some(Affinity {
            session_id: "s1".into(),
            hostname: Some("host-1".into()),
            project_dir: Some("/proj".into()),
            executor_profile: Some("fast".into()),
        })
    );
    assert_eq!(store.affinity("nope").await.unwrap(), None);
    let err = refused(store.bind("nope", &bind_request(None), None).await);
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");

    // With a lease token: only the lease of the session's live run binds.
    let a = runner(store, "lnch_a").await;
    let rec = claim(store, &a, ttl()).await;
    let s = store
        .bind(
            "s1",
            &bind_request(Some("/new")),
            rec.lease_token.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(s.project_dir.as_deref(), Some("/new"));
    let before = snapshot(store, "s1", "r1").await;
    let err = refused(
        store
            .bind("s1", &bind_request(None), Some("lease_bogus"))
            .await,
    );
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(snapshot(store, "s1", "r1").await, before, "nothing written");
}

pub async fn sessions_patch_metadata_writes_only_given_fields(store: &dyn Store) {
    let new = NewRun {
        agent_name: Some("a".into()),
        project_dir: Some("/proj".into()),
        ..start("r1", "s1")
    };
    store.create_run(new).await.unwrap();
    let patch = MetadataPatch {
        agent_name: Some("b".into()),
        last_resumed_at: Some("2024-05-01T10:00:00.000Z".into()),
        hostname: Some("host-2".into()),
        ..MetadataPatch::default()
    };
    let s = store.patch_metadata("s1", &patch).await.unwrap();
    assert_eq!(s.agent_name.as_deref(), Some("b"));
    assert_eq!(
        s.last_resumed_at.as_deref(),
        Some("2024-05-01T10:00:00.000Z")
    );
    assert_eq!(s.hostname.as_deref(), Some("host-2"));
    assert_eq!(s.project_dir.as_deref(), Some("/proj"), "not given: kept");
    assert_eq!(s.executor_session_id, None);
    assert_eq!(wire(&s.status), "pending", "metadata is not status");
    assert_eq!(store.get_session("s1").await.unwrap(), Some(s));
    let items = feed(store, Some("s1")).await;
    let last = items.last().unwrap();
    assert_eq!(last.kind, "session_updated");
    assert_eq!(data(last)["session"]["agent_name"], "b");
    let err = refused(store.patch_metadata("nope", &patch).await);
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
}

/// Only the runner that served the session's latest run sets its status, and only once
/// that run ended.
pub async fn sessions_set_status_only_by_the_serving_runner(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    runner(store, "lnch_b").await;
    let rec = running(store, &a, "r1", "s1").await;
    let set = |runner: &'static str, status| store.set_session_status("s1", runner, status);
    let err = refused(set("lnch_ghost", SessionStatus::Idle).await);
    assert!(matches!(err, StoreError::RunnerNotRegistered), "{err:?}");
    let err = refused(
        store
            .set_session_status("nope", "lnch_a", SessionStatus::Idle)
            .await,
    );
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
    let err = refused(set("lnch_a", SessionStatus::Idle).await);
    assert!(matches!(err, StoreError::Illegal { .. }), "{err:?}");
    assert_eq!(session_status(store, "s1").await, "running");
    report(store, &rec, completed()).await;
    let err = refused(set("lnch_b", SessionStatus::Idle).await);
    assert!(matches!(err, StoreError::LeaseConflict { .. }), "{err:?}");
    assert_eq!(session_status(store, "s1").await, "finished");
    let s = set("lnch_a", SessionStatus::Idle).await.unwrap();
    assert_eq!(wire(&s.status), "idle");
    let items = feed(store, Some("s1")).await;
    assert_eq!(data(items.last().unwrap())["session"]["status"], "idle");
    let s = set("lnch_a", SessionStatus::Stopped).await.unwrap();
    assert_eq!(wire(&s.status), "stopped");
    assert_eq!(session_status(store, "s1").await, "stopped");
}

pub async fn sessions_delete_counts_and_removes_runs_and_events(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let rec = running(store, &a, "r1", "s1").await;
    let err = refused(store.delete_session("s1").await);
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    report(store, &rec, idle).await;
    let err = refused(store.delete_session("s1").await);
    assert!(
        matches!(err, StoreError::Busy { .. }),
        "idle is busy: {err:?}"
    );
    assert_eq!(events(store, "s1").await.len(), 2, "nothing deleted");
    store.create_run(resume("r2", "s1")).await.unwrap();
    let rec = claim(store, &a, ttl()).await;
    report(store, &rec, RunReport::Started).await;
    store
        .append_event("s1", message("s1", "hello", None))
        .await
        .unwrap();
    report(store, &rec, completed()).await;
    let child = NewRun {
        parent_session_id: Some("s1".into()),
        ..start("rc", "child")
    };
    store.create_run(child).await.unwrap();
    let child = store.get_session("child").await.unwrap().unwrap();
    assert_eq!(child.parent_session_id.as_deref(), Some("s1"));

    let out = store.delete_session("s1").await.unwrap();
    assert_eq!((out.events_count, out.runs_count), (5, 2));
    assert!(store.get_session("s1").await.unwrap().is_none());
    assert!(store.get_run("r1").await.unwrap().is_none());
    assert!(store.get_run("r2").await.unwrap().is_none());
    assert!(store.latest_run("s1").await.unwrap().is_none());
    assert!(events(store, "s1").await.is_empty());
    assert_eq!(ids(&store.list_sessions().await.unwrap()), ["child"]);
    let child = store.get_session("child").await.unwrap().unwrap();
    assert_eq!(
        child.parent_session_id, None,
        "the parent link goes with it"
    );
    let items = feed(store, Some("s1")).await;
    let last = items.last().unwrap();
    assert_eq!(last.kind, "session_deleted");
    assert_eq!(
        data(last),
        serde_json::json!({"session_id": "s1", "runs_deleted": 2})
    );
    let err = refused(store.delete_session("s1").await);
    assert!(matches!(err, StoreError::SessionNotFound { .. }), "{err:?}");
}

pub async fn sessions_result_is_the_latest_result_event(store: &dyn Store) {
    store.create_run(start("r1", "s1")).await.unwrap();
    assert!(store.session_result("s1").await.unwrap().is_none());
    assert!(store.session_result("nope").await.unwrap().is_none());
    let result = |text: &str, data: Option<serde_json::Value>| EventWrite {
        event: Event {
            result_text: Some(text.into()),
            result_data: data.and_then(|d| d.as_object().cloned()),
            ..Event::new("result", "s1")
        },
        ..message("s1", "", None)
    };
    for w in [
        result("first", None),
        message("s1", "after", None),
        result("final", Some(serde_json::json!({"n": 2}))),
        message("s1", "later still", None),
    ] {
        store.append_event("s1", w).await.unwrap();
    }
    let r = store.session_result("s1").await.unwrap().expect("a result");
    assert_eq!(r.result_text.as_deref(), Some("final"));
    assert_eq!(
        r.result_data.map(serde_json::Value::Object),
        Some(serde_json::json!({"n": 2}))
    );
}

fn sorted<S: serde::Serialize>(mut v: Vec<(S, i64)>) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = v.drain(..).map(|(s, n)| (wire(&s), n)).collect();
    out.sort();
    out
}

pub async fn sessions_counts_by_status(store: &dyn Store) {
    let c = store.counts().await.unwrap();
    assert!(c.runs_by_status.is_empty() && c.sessions_by_status.is_empty());
    assert_eq!((c.events, c.runners_online), (0, 0));
    let a = runner(store, "lnch_a").await;
    runner(store, "lnch_b").await;
    let rec = running(store, &a, "r1", "s1").await;
    report(store, &rec, completed()).await;
    running(store, &a, "r2", "s2").await;
    store.create_run(start("r3", "s3")).await.unwrap();
    store.create_run(start("r4", "s4")).await.unwrap();
    store.stop_run("r4").await.unwrap();
    let c = store.counts().await.unwrap();
    let pairs = |v: &[(&str, i64)]| {
        v.iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sorted(c.runs_by_status),
        pairs(&[
            ("completed", 1),
            ("pending", 1),
            ("running", 1),
            ("stopped", 1)
        ])
    );
    assert_eq!(
        sorted(c.sessions_by_status),
        pairs(&[
            ("finished", 1),
            ("pending", 1),
            ("running", 1),
            ("stopped", 1)
        ])
    );
    assert_eq!(c.events, 3, "run_start, run_completed, run_start");
    assert_eq!(c.runners_online, 2);
}

/// The retention purge deletes what ended and keeps what may still run (an idle
/// session may be resumed); the space is handed back after.
pub async fn retention_purge_deletes_only_ended_sessions(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    let ends = [
        (
            "s1",
            RunReport::Completed {
                session_status: None,
            },
        ),
        (
            "s2",
            RunReport::Failed {
                error: "boom".into(),
            },
        ),
        (
            "s3",
            RunReport::Completed {
                session_status: Some(SessionStatus::Idle),
            },
        ),
    ];
    for (s, end) in ends {
        let rec = running(store, &a, &s.replace('s', "r"), s).await;
        report(store, &rec, end).await;
    }
    store.create_run(start("r4", "s4")).await.unwrap();
    store.stop_run("r4").await.unwrap();
    running(store, &a, "r5", "s5").await;
    let mut purged = Vec::new();
    for s in ids(&store.list_sessions().await.unwrap()) {
        match store.delete_session(&s).await {
            Ok(out) => {
                assert_eq!(out.runs_count, 1, "{s}");
                purged.push(s);
            }
            Err(StoreError::Busy { .. }) => {}
            Err(e) => panic!("{s}: {e:?}"),
        }
    }
    purged.sort();
    assert_eq!(purged, ["s1", "s2", "s4"]);
    assert_eq!(ids(&store.list_sessions().await.unwrap()), ["s5", "s3"]);
    store.reclaim_space().await.unwrap();
    let c = store.counts().await.unwrap();
    assert_eq!(c.events, 3, "s3: run_start, run_completed; s5: run_start");
}
