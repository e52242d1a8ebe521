//! The durability settings are what ARCHITECTURE.md says: WAL, and `synchronous` as
//! configured; checkpoints every 8,192 WAL pages (BENCHMARKS.md).

use aof_store_sqlite::{Durability, SqliteOptions, SqliteStore};

#[tokio::test]
async fn wal_and_synchronous_level_are_applied() {
    for (durability, want) in [(Durability::Normal, 1i64), (Durability::Full, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(
            &dir.path().join("p.db"),
            SqliteOptions {
                durability,
                ..SqliteOptions::default()
            },
        )
        .await
        .unwrap();
        let (mode, sync, checkpoint) = store.pragmas().await.unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(checkpoint, 8192);
        assert_eq!(sync, want, "{durability:?}");
    }
}
