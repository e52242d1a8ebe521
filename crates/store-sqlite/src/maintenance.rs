//! Space reclamation after purges. New databases are created with
//! `auto_vacuum = INCREMENTAL`, so freed pages go back with a cheap
//! `incremental_vacuum`; an older file is converted once by a full `VACUUM`.

use sqlx::{Row, SqliteConnection};

use aof_store::StoreResult;

use crate::{internal, SqliteStore};

async fn pragma_i64(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<i64> {
    let row = sqlx::query(sql)
        .fetch_one(&mut *conn)
        .await
        .map_err(internal)?;
    Ok(row.get::<i64, _>(0))
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .map_err(internal)?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn reclaim_space_impl(&self) -> StoreResult<u64> {
        // On the writer, outside any batch: VACUUM needs no open transaction.
        self.writer
            .with_conn(async |conn| {
                let page_size = pragma_i64(conn, "PRAGMA page_size").await?;
                let before = pragma_i64(conn, "PRAGMA page_count").await?;
                if pragma_i64(conn, "PRAGMA auto_vacuum").await? == 2 {
                    exec(conn, "PRAGMA incremental_vacuum").await?;
                } else {
                    exec(conn, "PRAGMA auto_vacuum = INCREMENTAL").await?;
                    exec(conn, "VACUUM").await?;
                }
                // In WAL mode the main file shrinks at the checkpoint.
                exec(conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
                let after = pragma_i64(conn, "PRAGMA page_count").await?;
                Ok(u64::try_from((before - after).max(0) * page_size).unwrap_or(0))
            })
            .await
    }
}
