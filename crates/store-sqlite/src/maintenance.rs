//! Space reclamation after purges. New databases are created with
//! `auto_vacuum = INCREMENTAL`, so freed pages go back with a cheap
//! `incremental_vacuum`; an older file is converted once by a full `VACUUM`.

use rusqlite::Connection;

use aof_store::StoreResult;

use crate::{internal, SqliteStore};

fn pragma_i64(conn: &Connection, sql: &'static str) -> StoreResult<i64> {
    conn.query_row(sql, [], |r| r.get(0)).map_err(internal)
}

fn exec(conn: &Connection, sql: &'static str) -> StoreResult<()> {
    // Stepped to the end: `incremental_vacuum` frees one page per row it returns (a
    // single step, as `execute_batch` does, would free one page only).
    conn.prepare(sql)
        .and_then(|mut st| {
            let mut rows = st.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })
        .map_err(internal)
}

impl SqliteStore {
    /// Copies the WAL into the database file and truncates it (a coordinator's stop),
    /// so the file alone holds every commit. On the writer, after what is queued.
    pub async fn checkpoint(&self) -> StoreResult<()> {
        self.writer
            .bare(|conn| exec(conn, "PRAGMA wal_checkpoint(TRUNCATE)"))
            .await
    }

    pub(crate) async fn reclaim_space_impl(&self) -> StoreResult<u64> {
        // On the writer, outside any batch: VACUUM needs no open transaction.
        self.writer
            .bare(|conn| {
                let page_size = pragma_i64(conn, "PRAGMA page_size")?;
                let before = pragma_i64(conn, "PRAGMA page_count")?;
                if pragma_i64(conn, "PRAGMA auto_vacuum")? == 2 {
                    exec(conn, "PRAGMA incremental_vacuum")?;
                } else {
                    exec(conn, "PRAGMA auto_vacuum = INCREMENTAL")?;
                    exec(conn, "VACUUM")?;
                }
                // In WAL mode the main file shrinks at the checkpoint.
                exec(conn, "PRAGMA wal_checkpoint(TRUNCATE)")?;
                let after = pragma_i64(conn, "PRAGMA page_count")?;
                Ok(u64::try_from((before - after).max(0) * page_size).unwrap_or(0))
            })
            .await
    }
}
