//! Upgrades: a database created at every earlier schema version, with data written in that
//! version's shape, opens with the current store (which runs the remaining migrations) and
//! reads back everything it held. A new migration is covered automatically: the test walks
//! every prefix of the embedded migration list.

use std::borrow::Cow;

use aof_store::{prelude::*, EventWrite};
use aof_store_sqlite::{SqliteOptions, SqliteStore};
use aof_wire::Event;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Rows as the first schema (0001) stored them (a feed row's `data` is its SSE payload): a finished session with three events and
/// its completed run, a queued run on a second session, one registered runner.
const SEED_V1: &str = r#"
INSERT INTO sessions(session_id, status, created_at, project_dir, agent_name, next_seq)
VALUES ('ses_old', 'finished', '2026-01-02T03:04:05Z', '/proj', 'writer', 4),
       ('ses_queued', 'pending', '2026-01-02T03:05:00Z', NULL, 'writer', 1);
INSERT INTO runs(run_id, run_type, session_id, agent_name, parameters, execution_mode,
                 status, runner_id, created_at, completed_at, attempt)
VALUES ('run_done', 'start_session', 'ses_old', 'writer', '{"prompt":"hi"}', 'sync',
        'completed', 'lnch_a', '2026-01-02T03:04:05Z', '2026-01-02T03:04:09Z', 1),
       ('run_queued', 'start_session', 'ses_queued', 'writer', '{"prompt":"later"}',
        'async_poll', 'pending', NULL, '2026-01-02T03:05:00Z', NULL, 0);
INSERT INTO feed(kind, session_id, seq, run_id, event_type, data) VALUES
 ('event', 'ses_old', 1, 'run_done', 'message',
  '{"data":{"event_type":"message","session_id":"ses_old","timestamp":"2026-01-02T03:04:06Z","role":"user","content":[{"type":"text","text":"hi"}]}}'),
 ('event', 'ses_old', 2, 'run_done', 'message',
  '{"data":{"event_type":"message","session_id":"ses_old","timestamp":"2026-01-02T03:04:07Z","role":"assistant","content":[{"type":"text","text":"hello"}]}}'),
 ('event', 'ses_old', 3, 'run_done', 'result',
  '{"data":{"event_type":"result","session_id":"ses_old","timestamp":"2026-01-02T03:04:08Z","result_text":"done"}}');
INSERT INTO runners(runner_id, registered_at, last_heartbeat, last_heartbeat_ms, hostname,
                    project_dir, executor_profile, executor, tags)
VALUES ('lnch_a', '2026-01-02T03:00:00Z', '2026-01-02T03:04:09Z', 1767323049000, 'h1',
        '/proj', 'echo', '{"type":"echo"}', '["gpu"]');
"#;

/// Added by 0003: an API key (hash only).
const SEED_V3: &str = r#"
INSERT INTO api_keys(id, name, role, hash, created_ms)
VALUES ('k1', 'ops', 'admin', 'aa', 1767323049000);
"#;

/// Added by 0005: a child's result waiting for its parent.
const SEED_V5: &str = r#"
INSERT INTO callbacks(parent_session_id, child_session_id, child_run_id, status, created_ms)
VALUES ('ses_old', 'ses_queued', 'run_child', 'finished', 1767323049000);
"#;

const SEEDS: &[(usize, &str)] = &[(1, SEED_V1), (3, SEED_V3), (5, SEED_V5)];

#[tokio::test]
async fn every_earlier_schema_with_data_upgrades_to_the_current_one() {
    let all = sqlx::migrate!("./migrations");
    let total = all.migrations.len();
    assert!(
        total >= 5,
        "expected at least the five migrations, got {total}"
    );

    for k in 1..=total {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");

        // The database as the version with `k` migrations left it.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        let mut old = sqlx::migrate!("./migrations");
        old.migrations = Cow::Owned(all.migrations[..k].to_vec());
        old.run(&pool).await.unwrap();
        for (since, sql) in SEEDS.iter().filter(|(since, _)| *since <= k) {
            sqlx::raw_sql(sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("seed v{since} at schema {k}: {e}"));
        }
        pool.close().await;

        // Opening with the current store runs the rest.
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap_or_else(|e| panic!("upgrade from schema {k}: {e}"));
        check(&store, k).await;
        drop(store);

        // A second open finds nothing left to migrate and the same data.
        let again = SqliteStore::open(&path, SqliteOptions::default())
            .await
            .unwrap();
        let events = again.list_events("ses_old", None, None).await.unwrap();
        assert_eq!(events.len(), 4, "schema {k}: reopened");

        // A file from before incremental auto-vacuum: the first reclaim converts it with a
        // full VACUUM, later ones are incremental; the data stays readable throughout.
        let out = again.delete_session("ses_old").await.unwrap();
        assert_eq!(out.events_count, 4);
        again.reclaim_space().await.unwrap();
        again.reclaim_space().await.unwrap();
        assert!(again.get_session("ses_old").await.unwrap().is_none());
        assert!(again.get_session("ses_queued").await.unwrap().is_some());
    }
}

async fn check(store: &SqliteStore, k: usize) {
    let s = store
        .get_session("ses_old")
        .await
        .unwrap()
        .expect("session");
    assert_eq!(s.status.as_str(), "finished", "schema {k}");
    assert_eq!(s.agent_name.as_deref(), Some("writer"));
    assert_eq!(s.project_dir.as_deref(), Some("/proj"));

    let events = store.list_events("ses_old", None, None).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "schema {k}");
    assert_eq!(events[1].event.text().as_deref(), Some("hello"));
    assert!(events
        .iter()
        .all(|e| e.run_id.as_deref() == Some("run_done")));
    let result = store.session_result("ses_old").await.unwrap().unwrap();
    assert_eq!(result.result_text.as_deref(), Some("done"));

    // The event numbering carries on where the old version stopped.
    let next = store
        .append_event(
            "ses_old",
            EventWrite {
                event: Event::message("ses_old", "user", "after upgrade"),
                run_id: None,
                idempotency_key: Some("k-after".into()),
                lease_token: None,
            },
        )
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(next.seq, 4, "schema {k}");
    assert!(next.id > events[2].id);

    let done = store.get_run("run_done").await.unwrap().expect("run_done");
    assert_eq!(done.run.status.as_str(), "completed");
    assert_eq!(done.run.parameters["prompt"], "hi");
    assert_eq!(done.run.resolved_agent_blueprint, None);
    let pending = store.list_runs(Some("pending"), None).await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|r| r.run_id.as_str())
            .collect::<Vec<_>>(),
        ["run_queued"],
        "schema {k}"
    );

    let runners = store
        .list_runners(chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(runners.len(), 1);
    assert_eq!(runners[0].tags, ["gpu"]);
    assert_eq!(runners[0].status.as_str(), "stale");

    let key = store.find_key("k1").await.unwrap();
    assert_eq!(key.is_some(), k >= 3, "schema {k}: api key");
    let callbacks = store.pending_callbacks("ses_old").await.unwrap();
    assert_eq!(
        callbacks.len(),
        usize::from(k >= 5),
        "schema {k}: callbacks"
    );
}
