//! The store conformance suite (`aof_store::conformance`) on SQLite: each case on a
//! fresh database file in its own temporary directory.

use aof_store::conformance::Fixture;
use aof_store_sqlite::{SqliteOptions, SqliteStore};

async fn fresh() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db"), SqliteOptions::default())
        .await
        .unwrap();
    Some(Fixture::new(store).keeping(dir))
}

aof_store::conformance_tests!(fresh);
