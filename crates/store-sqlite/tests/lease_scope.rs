//! Issue #20 store cases (`common/lease_scope.rs`) on SQLite.

#[path = "common/lease_scope.rs"]
mod cases;

use aof_store_sqlite::{SqliteOptions, SqliteStore};

async fn store(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("s.db"), SqliteOptions::default())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_scoped_claim_leaves_runs_outside_the_scope_pending() {
    let dir = tempfile::tempdir().unwrap();
    cases::a_scoped_claim_leaves_runs_outside_the_scope_pending(&store(&dir).await).await;
}

#[tokio::test]
async fn a_lease_of_another_sessions_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    cases::a_lease_of_another_sessions_run_writes_nothing(&store(&dir).await).await;
}
