//! `async_callback` children: the end of such a child is recorded for its parent, and
//! delivered (marked) by the parent's resume run, in that run's own transaction.

use aof_core::SessionStatus;
use aof_wire::{runner::RunnerInfo, ExecutionMode};

use super::*;

/// Parent `p` is idle after its first run.
async fn idle_parent(store: &dyn Store, a: &RunnerInfo) {
    let rec = running(store, a, "p1", "p").await;
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    report(store, &rec, idle).await;
}

fn child(run_id: &str, session_id: &str, mode: ExecutionMode) -> NewRun {
    NewRun {
        parent_session_id: Some("p".into()),
        execution_mode: mode,
        ..start(run_id, session_id)
    }
}

/// Runs child `run_id` of `p` to the end `end`.
async fn child_ends(
    store: &dyn Store,
    a: &RunnerInfo,
    (run_id, session_id): (&str, &str),
    mode: ExecutionMode,
    end: RunReport,
) {
    store
        .create_run(child(run_id, session_id, mode))
        .await
        .unwrap();
    let rec = claim(store, a, ttl()).await;
    assert_eq!(rec.run.run_id, run_id);
    report(store, &rec, RunReport::Started).await;
    report(store, &rec, end).await;
}

/// (parent, child session, child run, status) of the parent's undelivered callbacks.
async fn pending(store: &dyn Store, parent: &str) -> Vec<(String, String, String, String)> {
    let list = store.pending_callbacks(parent).await.unwrap();
    let rows = list.into_iter().map(|c| {
        let status = wire(&c.status);
        (
            c.parent_session_id,
            c.child_session_id,
            c.child_run_id,
            status,
        )
    });
    rows.collect()
}

fn row(child: &str, run: &str, status: &str) -> (String, String, String, String) {
    ("p".into(), child.into(), run.into(), status.into())
}

pub async fn callbacks_an_async_callback_childs_end_is_pending_for_its_parent(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    idle_parent(store, &a).await;
    assert!(pending(store, "p").await.is_empty());
    assert!(store.callback_parents().await.unwrap().is_empty());
    let cb = ExecutionMode::AsyncCallback;
    child_ends(store, &a, ("c1", "child1"), cb, completed()).await;
    let failed = RunReport::Failed {
        error: "boom".into(),
    };
    child_ends(store, &a, ("c2", "child2"), cb, failed).await;
    // A synchronous child tells its parent nothing.
    let sync = ExecutionMode::Sync;
    child_ends(store, &a, ("c3", "child3"), sync, completed()).await;
    assert_eq!(
        pending(store, "p").await,
        [
            row("child1", "c1", "finished"),
            row("child2", "c2", "failed")
        ],
        "oldest first"
    );
    assert_eq!(store.callback_parents().await.unwrap(), ["p"]);
    let ids: Vec<i64> = store
        .pending_callbacks("p")
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert!(ids[0] < ids[1]);
    // A second end of the same run records nothing more.
    store
        .set_session_status("child1", "lnch_a", SessionStatus::Idle)
        .await
        .unwrap();
    assert_eq!(pending(store, "p").await.len(), 2);
    assert!(pending(store, "child1").await.is_empty());
}

pub async fn callbacks_deliver_in_create_run_marks_them_delivered(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    idle_parent(store, &a).await;
    let cb = ExecutionMode::AsyncCallback;
    child_ends(store, &a, ("c1", "child1"), cb, completed()).await;
    child_ends(store, &a, ("c2", "child2"), cb, completed()).await;
    let ids: Vec<i64> = store
        .pending_callbacks("p")
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 2);
    let deliver = NewRun {
        deliver_callbacks: ids,
        ..resume("p2", "p")
    };
    let rec = store.create_run(deliver).await.unwrap();
    assert_eq!(wire(&rec.status), "pending");
    assert!(pending(store, "p").await.is_empty());
    assert!(store.callback_parents().await.unwrap().is_empty());
    assert_eq!(
        store.latest_run("p").await.unwrap().unwrap().run.run_id,
        "p2"
    );
}

/// Nothing is stored when the parent has a run in flight, or a callback was delivered
/// already: the callbacks stay as they were.
pub async fn callbacks_busy_parent_or_delivered_callback_stores_nothing(store: &dyn Store) {
    let a = runner(store, "lnch_a").await;
    idle_parent(store, &a).await;
    let cb = ExecutionMode::AsyncCallback;
    child_ends(store, &a, ("c1", "child1"), cb, completed()).await;
    let id = store.pending_callbacks("p").await.unwrap()[0].id;
    let deliver = |run_id: &str| NewRun {
        deliver_callbacks: vec![id],
        ..resume(run_id, "p")
    };
    // The parent is busy with a run of its own.
    store.create_run(resume("p2", "p")).await.unwrap();
    let err = refused(store.create_run(deliver("p3")).await);
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(store.get_run("p3").await.unwrap().is_none());
    assert_eq!(pending(store, "p").await, [row("child1", "c1", "finished")]);
    // Once it is idle again the callback is delivered, then never again.
    let rec = claim(store, &a, ttl()).await;
    assert_eq!(rec.run.run_id, "p2");
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    report(store, &rec, idle).await;
    store.create_run(deliver("p3")).await.unwrap();
    let rec = claim(store, &a, ttl()).await;
    let idle = RunReport::Completed {
        session_status: Some(SessionStatus::Idle),
    };
    report(store, &rec, idle).await;
    let err = refused(store.create_run(deliver("p4")).await);
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(store.get_run("p4").await.unwrap().is_none());
    assert_eq!(
        store.latest_run("p").await.unwrap().unwrap().run.run_id,
        "p3"
    );
}
