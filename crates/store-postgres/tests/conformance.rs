//! The store conformance suite (`aof_store::conformance`) on a real PostgreSQL server
//! (`AOF_TEST_DATABASE_URL`): each case on a fresh database. Without the URL (and with
//! `CI` unset) every case says SKIPPED and passes.

use aof_store::conformance::Fixture;
use aof_store_postgres::{testing, PgOptions, PgStore};

async fn fresh() -> Option<Fixture> {
    let Some(base) = testing::base_url() else {
        eprintln!("SKIPPED: AOF_TEST_DATABASE_URL is unset");
        return None;
    };
    let url = testing::fresh_database(&base).await.unwrap();
    let store = PgStore::connect(&url, PgOptions::default()).await.unwrap();
    Some(Fixture::new(store))
}

aof_store::conformance_tests!(fresh);
