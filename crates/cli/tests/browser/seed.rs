//! A big store, fast: sessions written straight into a coordinator's SQLite file (the
//! store's import path, many at once so the writer commits them in groups) before the
//! coordinator starts. Session `i` is created `i` seconds after a fixed time, so the
//! newest is the last one and the order is known.

use std::path::Path;

use futures::StreamExt as _;

use aof_store::{prelude::*, ImportedSession};
use aof_store_sqlite::{SqliteOptions, SqliteStore};
use aof_wire::{Session, SessionStatus};

/// The statuses seeded, in turn.
pub const STATUSES: [SessionStatus; 3] = [
    SessionStatus::Finished,
    SessionStatus::Failed,
    SessionStatus::Stopped,
];

pub fn session_id(i: usize) -> String {
    format!("ses_seed{i:06}")
}

/// Session `i` as seeded: agent `agent-{i % 3}`, host `host-{i % 7}`, a project dir
/// with a word only it has (`needle-{i}`), a status from [`STATUSES`].
pub fn session(i: usize) -> Session {
    let at = chrono::DateTime::from_timestamp(1_767_225_600 + i as i64, 0).unwrap();
    Session {
        session_id: session_id(i),
        status: STATUSES[i % STATUSES.len()],
        created_at: aof_wire::format_ts(at),
        project_dir: Some(format!("/work/needle-{i}")),
        agent_name: Some(format!("agent-{}", i % 3)),
        last_resumed_at: None,
        parent_session_id: None,
        executor_session_id: None,
        executor_profile: Some("echo".into()),
        hostname: Some(format!("host-{}", i % 7)),
    }
}

/// Writes sessions `0..n` into `data_dir`'s store (created if missing).
pub async fn seed_sessions(data_dir: &Path, n: usize) {
    std::fs::create_dir_all(data_dir).unwrap();
    let store = SqliteStore::open(&data_dir.join("observability.db"), SqliteOptions::default())
        .await
        .expect("open the store");
    let t0 = std::time::Instant::now();
    let stored = futures::stream::iter(0..n)
        .map(|i| {
            let store = &store;
            async move {
                let s = session(i);
                let imp = ImportedSession {
                    status: s.status,
                    session: s,
                    runs: Vec::new(),
                    events: Vec::new(),
                };
                store.import_session(imp).await.expect("import")
            }
        })
        .buffer_unordered(64)
        .filter(|new| std::future::ready(*new))
        .count()
        .await;
    assert_eq!(stored, n, "every session stored once");
    store.close().await;
    eprintln!("seeded {n} sessions in {:?}", t0.elapsed());
}
