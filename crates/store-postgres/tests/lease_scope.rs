//! Issue #20 store cases (shared with SQLite) on a real PostgreSQL server
//! (`AOF_TEST_DATABASE_URL`, a fresh database per test).

#[path = "../../store-sqlite/tests/common/lease_scope.rs"]
mod cases;

use aof_store_postgres::{testing, PgOptions, PgStore};

async fn store() -> Option<PgStore> {
    let Some(base) = testing::base_url() else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return None;
    };
    let url = testing::fresh_database(&base).await.unwrap();
    Some(PgStore::connect(&url, PgOptions::default()).await.unwrap())
}

#[tokio::test]
async fn a_scoped_claim_leaves_runs_outside_the_scope_pending() {
    let Some(s) = store().await else { return };
    cases::a_scoped_claim_leaves_runs_outside_the_scope_pending(&s).await;
}

#[tokio::test]
async fn a_lease_of_another_sessions_run_writes_nothing() {
    let Some(s) = store().await else { return };
    cases::a_lease_of_another_sessions_run_writes_nothing(&s).await;
}
