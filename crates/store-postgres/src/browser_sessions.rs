//! Browser sessions (the dashboard's cookie): stored by the SHA-256 of the cookie's
//! secret; the coordinator's auth module makes and checks the secrets.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{postgres::PgRow, Row};

use aof_store::{BrowserSessionRecord, StoreResult};

use crate::{internal, ms, PgStore};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn from_row(r: &PgRow) -> BrowserSessionRecord {
    BrowserSessionRecord {
        hash: r.get("hash"),
        key_id: r.get("key_id"),
        created_at: at(r.get("created_ms")),
        expires_at: at(r.get("expires_ms")),
    }
}

impl PgStore {
    pub(crate) async fn create_browser_session_impl(
        &self,
        s: &BrowserSessionRecord,
    ) -> StoreResult<()> {
        let mut w = self.begin().await?;
        // Expired sessions are useless; dropping them here keeps the table small.
        sqlx::query("DELETE FROM browser_sessions WHERE expires_ms < $1")
            .bind(ms(Utc::now()))
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        sqlx::query(
            "INSERT INTO browser_sessions(hash, key_id, created_ms, expires_ms) VALUES ($1, $2, $3, $4)",
        )
        .bind(&s.hash)
        .bind(&s.key_id)
        .bind(ms(s.created_at))
        .bind(ms(s.expires_at))
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?;
        w.commit().await
    }

    pub(crate) async fn find_browser_session_impl(
        &self,
        hash: &str,
    ) -> StoreResult<Option<BrowserSessionRecord>> {
        let row = sqlx::query("SELECT * FROM browser_sessions WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?;
        Ok(row.as_ref().map(from_row))
    }

    pub(crate) async fn delete_browser_session_impl(&self, hash: &str) -> StoreResult<bool> {
        let n = sqlx::query("DELETE FROM browser_sessions WHERE hash = $1")
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(internal)?
            .rows_affected();
        Ok(n > 0)
    }

    pub(crate) async fn delete_browser_sessions_of_key_impl(
        &self,
        key_id: &str,
    ) -> StoreResult<u64> {
        Ok(
            sqlx::query("DELETE FROM browser_sessions WHERE key_id = $1")
                .bind(key_id)
                .execute(&self.pool)
                .await
                .map_err(internal)?
                .rows_affected(),
        )
    }
}
