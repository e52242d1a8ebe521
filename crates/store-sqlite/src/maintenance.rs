//! Space reclamation after purges. New databases are created with
//! `auto_vacuum = INCREMENTAL`, so freed pages go back with a cheap
//! `incremental_vacuum`; an older file is converted once by a full `VACUUM`.

use sqlx::Row;

use aof_store::StoreResult;

use crate::{internal, SqliteStore};

impl SqliteStore {
    pub(crate) async fn reclaim_space_impl(&self) -> StoreResult<u64> {
        // Holds the writer: VACUUM needs the connection outside any transaction.
        let _guard = self.write_lock.lock().await;
        let mut conn = self.writer.acquire().await.map_err(internal)?;
        let pragma = |sql: &'static str| sqlx::query(sql);
        let one = |r: sqlx::sqlite::SqliteRow| r.get::<i64, _>(0);
        let page_size = one(pragma("PRAGMA page_size")
            .fetch_one(&mut *conn)
            .await
            .map_err(internal)?);
        let before = one(pragma("PRAGMA page_count")
            .fetch_one(&mut *conn)
            .await
            .map_err(internal)?);
        let mode = one(pragma("PRAGMA auto_vacuum")
            .fetch_one(&mut *conn)
            .await
            .map_err(internal)?);
        if mode == 2 {
            pragma("PRAGMA incremental_vacuum")
                .execute(&mut *conn)
                .await
                .map_err(internal)?;
        } else {
            pragma("PRAGMA auto_vacuum = INCREMENTAL")
                .execute(&mut *conn)
                .await
                .map_err(internal)?;
            pragma("VACUUM")
                .execute(&mut *conn)
                .await
                .map_err(internal)?;
        }
        // In WAL mode the main file shrinks at the checkpoint.
        pragma("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut *conn)
            .await
            .map_err(internal)?;
        let after = one(pragma("PRAGMA page_count")
            .fetch_one(&mut *conn)
            .await
            .map_err(internal)?);
        Ok(u64::try_from((before - after).max(0) * page_size).unwrap_or(0))
    }
}
