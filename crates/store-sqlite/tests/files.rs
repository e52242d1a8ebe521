//! File modes: the data dir 0700, the database, its -wal and -shm, and backups 0600.

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use aof_store::prelude::*;
use aof_store_sqlite::{SqliteOptions, SqliteStore};

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn database_dir_and_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    // A fresh data dir (two levels) and database: 0700 and 0600, -wal and -shm too.
    let fresh = tmp.path().join("a/b");
    let db = fresh.join("observability.db");
    let s = SqliteStore::open(&db, SqliteOptions::default())
        .await
        .unwrap();
    let now = chrono::Utc::now();
    s.create_browser_session(&aof_store::BrowserSessionRecord {
        hash: "h".into(),
        key_id: "k".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
    })
    .await
    .unwrap();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&tmp.path().join("a")), 0o700);
    for f in [
        "observability.db",
        "observability.db-wal",
        "observability.db-shm",
    ] {
        assert_eq!(mode(&fresh.join(f)), 0o600, "{f}");
    }
    s.close().await;
    drop(s);

    // Left wide by an older version: tightened at the next open.
    fs::set_permissions(&fresh, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
    let s = SqliteStore::open(&db, SqliteOptions::default())
        .await
        .unwrap();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&db), 0o600);
    // A backup is as private as the database.
    let copy = tmp.path().join("backup.db");
    aof_store_sqlite::backup(&db, &copy).await.unwrap();
    assert_eq!(mode(&copy), 0o600);
    drop(s);

    // A shared sticky directory is never tightened (the database still is private).
    let shared = tmp.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let s = SqliteStore::open(&shared.join("x.db"), SqliteOptions::default())
        .await
        .unwrap();
    drop(s);
    assert_eq!(mode(&shared), 0o1777);
    assert_eq!(mode(&shared.join("x.db")), 0o600);
}
