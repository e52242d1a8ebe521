//! One coordinator per SQLite file: there are no other coordinators to wake or hear.

use aof_store::prelude::*;
use aof_store_sqlite::{SqliteOptions, SqliteStore};

#[tokio::test]
async fn no_remote_wake_ups_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("w.db"), SqliteOptions::default())
        .await
        .unwrap();
    assert!(store.remote_wakes().is_none());
    // Nothing to tell, and nothing breaks: the store still answers.
    store.publish_wake();
    store.ping().await.unwrap();
}
