//! Browser sessions (the dashboard's cookie): stored by the SHA-256 of the cookie's
//! secret; the coordinator's auth module makes and checks the secrets.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, Row};

use aof_store::{BrowserSessionRecord, StoreResult};

use crate::{internal, ms, SqliteStore};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn from_row(r: &Row) -> rusqlite::Result<BrowserSessionRecord> {
    Ok(BrowserSessionRecord {
        hash: r.get("hash")?,
        key_id: r.get("key_id")?,
        created_at: at(r.get("created_ms")?),
        expires_at: at(r.get("expires_ms")?),
    })
}

impl SqliteStore {
    pub(crate) async fn create_browser_session_impl(
        &self,
        s: &BrowserSessionRecord,
    ) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |w| {
            // Expired sessions are useless; dropping them here keeps the table small.
            w.prepare_cached("DELETE FROM browser_sessions WHERE expires_ms < ?")
                .and_then(|mut st| st.execute([ms(Utc::now())]))
                .map_err(internal)?;
            w.prepare_cached(
                "INSERT INTO browser_sessions(hash, key_id, created_ms, expires_ms) VALUES (?, ?, ?, ?)",
            )
            .and_then(|mut st| {
                st.execute((&s.hash, &s.key_id, ms(s.created_at), ms(s.expires_at)))
            })
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn find_browser_session_impl(
        &self,
        hash: &str,
    ) -> StoreResult<Option<BrowserSessionRecord>> {
        let hash = hash.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM browser_sessions WHERE hash = ?")
                .and_then(|mut st| st.query_row([hash], from_row).optional())
                .map_err(internal)
        })
        .await
    }

    pub(crate) async fn delete_browser_session_impl(&self, hash: &str) -> StoreResult<bool> {
        let hash = hash.to_string();
        let n = self
            .write(move |w| {
                w.prepare_cached("DELETE FROM browser_sessions WHERE hash = ?")
                    .and_then(|mut st| st.execute([hash]))
                    .map_err(internal)
            })
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn delete_browser_sessions_of_key_impl(
        &self,
        key_id: &str,
    ) -> StoreResult<u64> {
        let key_id = key_id.to_string();
        let n = self
            .write(move |w| {
                w.prepare_cached("DELETE FROM browser_sessions WHERE key_id = ?")
                    .and_then(|mut st| st.execute([key_id]))
                    .map_err(internal)
            })
            .await?;
        Ok(n as u64)
    }
}
