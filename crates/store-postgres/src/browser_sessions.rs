//! Browser sessions (the dashboard's cookie, `LoginStore`): stored by the SHA-256 of
//! the cookie's secret; the coordinator's auth module makes and checks the secrets.

use async_trait::async_trait;
use chrono::Utc;

use aof_store::{rows, statements, BrowserSessionRecord, LoginStore, StoreResult};

use crate::{
    internal, ms,
    rows::{bind_all, mark},
    PgStore,
};

#[async_trait]
impl LoginStore for PgStore {
    async fn create_browser_session(&self, s: &BrowserSessionRecord) -> StoreResult<()> {
        // Expired sessions are useless; dropping them here keeps the table small.
        let sql = "DELETE FROM browser_sessions WHERE expires_ms < $1";
        let purge = sqlx::query(sql).bind(ms(Utc::now()));
        let (sql, vals) = statements::browser_session_insert(s, mark);
        self.exec([purge, bind_all(sqlx::query(&sql), vals)])
            .await
            .map(drop)
    }

    async fn find_browser_session(&self, hash: &str) -> StoreResult<Option<BrowserSessionRecord>> {
        let q = sqlx::query("SELECT * FROM browser_sessions WHERE hash = $1").bind(hash);
        let row = q.fetch_optional(&self.pool).await.map_err(internal)?;
        row.as_ref().map(rows::browser_session).transpose()
    }

    // Deletes need no feed cursor, so they skip the write lock.
    async fn delete_browser_session(&self, hash: &str) -> StoreResult<bool> {
        let q = sqlx::query("DELETE FROM browser_sessions WHERE hash = $1").bind(hash);
        let done = q.execute(&self.pool).await.map_err(internal)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_browser_sessions_of_key(&self, key_id: &str) -> StoreResult<u64> {
        let q = sqlx::query("DELETE FROM browser_sessions WHERE key_id = $1").bind(key_id);
        let done = q.execute(&self.pool).await.map_err(internal)?;
        Ok(done.rows_affected())
    }
}
