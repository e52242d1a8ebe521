//! Browser sessions (the dashboard's cookie, `LoginStore`): stored by the SHA-256 of
//! the cookie's secret; the coordinator's auth module makes and checks the secrets.

use async_trait::async_trait;
use chrono::Utc;

use aof_store::{rows, statements, BrowserSessionRecord, LoginStore, StoreResult};

use crate::{
    internal, ms,
    rows::{mark, values},
    SqliteStore,
};

#[async_trait]
impl LoginStore for SqliteStore {
    async fn create_browser_session(&self, s: &BrowserSessionRecord) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |w| {
            // Expired sessions are useless; dropping them here keeps the table small.
            w.prepare_cached("DELETE FROM browser_sessions WHERE expires_ms < ?")
                .and_then(|mut st| st.execute([ms(Utc::now())]))
                .map_err(internal)?;
            let (sql, vals) = statements::browser_session_insert(&s, mark);
            w.prepare_cached(&sql)
                .and_then(|mut st| st.execute(values(vals)))
                .map(drop)
                .map_err(internal)
        })
        .await
    }

    async fn find_browser_session(&self, hash: &str) -> StoreResult<Option<BrowserSessionRecord>> {
        let sql = "SELECT * FROM browser_sessions WHERE hash = ?";
        self.query_opt(sql, [hash.to_string()], |r| rows::browser_session(r))
            .await
    }

    async fn delete_browser_session(&self, hash: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM browser_sessions WHERE hash = ?";
        Ok(self.exec(sql, [hash.to_string()]).await? > 0)
    }

    async fn delete_browser_sessions_of_key(&self, key_id: &str) -> StoreResult<u64> {
        let sql = "DELETE FROM browser_sessions WHERE key_id = ?";
        Ok(self.exec(sql, [key_id.to_string()]).await? as u64)
    }
}
