//! API keys, run session tokens and runner-key bindings (`AuthStore`). Only hashes are
//! stored; the coordinator's auth module makes and checks the secrets.

use async_trait::async_trait;
use chrono::Utc;

use aof_store::{rows, statements, AuthStore, KeyRecord, SessionTokenRecord, StoreResult};

use crate::{
    internal, ms,
    rows::{all, bind_all, mark},
    PgStore,
};

#[async_trait]
impl AuthStore for PgStore {
    async fn create_key(&self, k: &KeyRecord) -> StoreResult<()> {
        let q = sqlx::query(
            "INSERT INTO api_keys(id, name, role, hash, created_ms, revoked_ms, scope_tags, \
             scope_agents) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(k.role.as_str())
        .bind(&k.hash)
        .bind(ms(k.created_at))
        .bind(k.revoked_at.map(ms))
        .bind(&k.scope.tags)
        .bind(&k.scope.agents);
        self.exec([q]).await.map(drop)
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        let q = sqlx::query("SELECT * FROM api_keys ORDER BY created_ms DESC, id");
        let rows = q.fetch_all(&self.pool).await.map_err(internal)?;
        all(rows, rows::key)
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        let q = sqlx::query("SELECT * FROM api_keys WHERE id = $1").bind(id);
        let row = q.fetch_optional(&self.pool).await.map_err(internal)?;
        row.as_ref().map(rows::key).transpose()
    }

    async fn revoke_key(&self, id: &str) -> StoreResult<bool> {
        let sql = "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2";
        let q = sqlx::query(sql).bind(ms(Utc::now())).bind(id);
        Ok(self.exec([q]).await? > 0)
    }

    async fn create_session_token(&self, t: &SessionTokenRecord) -> StoreResult<()> {
        // Expired tokens are useless; dropping them here keeps the table small.
        let sql = "DELETE FROM session_tokens WHERE expires_ms < $1";
        let purge = sqlx::query(sql).bind(ms(Utc::now()));
        let (sql, vals) = statements::session_token_insert(t, mark);
        self.exec([purge, bind_all(sqlx::query(&sql), vals)])
            .await
            .map(drop)
    }

    async fn find_session_token(&self, id: &str) -> StoreResult<Option<SessionTokenRecord>> {
        let q = sqlx::query("SELECT * FROM session_tokens WHERE id = $1").bind(id);
        let row = q.fetch_optional(&self.pool).await.map_err(internal)?;
        row.as_ref().map(rows::session_token).transpose()
    }

    async fn bind_runner_key(&self, runner_id: &str, key_id: &str) -> StoreResult<()> {
        let q = sqlx::query(
            "INSERT INTO runner_keys(runner_id, key_id) VALUES ($1, $2) \
             ON CONFLICT(runner_id) DO UPDATE SET key_id = excluded.key_id",
        );
        self.exec([q.bind(runner_id).bind(key_id)]).await.map(drop)
    }

    async fn runner_key(&self, runner_id: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT key_id FROM runner_keys WHERE runner_id = $1")
            .bind(runner_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)
    }
}
