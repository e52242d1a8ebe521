//! API keys, run session tokens and runner-key bindings (`AuthStore`). Only hashes are
//! stored; the coordinator's auth module makes and checks the secrets.

use async_trait::async_trait;
use chrono::Utc;
use sqlx::{postgres::PgRow, Row};

pub(crate) use aof_store::keys::at;
use aof_store::{AuthStore, KeyRecord, SessionTokenRecord, StoreResult};
use aof_wire::auth::KeyScope;

use crate::{internal, ms, PgStore};

fn key_from_row(r: &PgRow) -> StoreResult<KeyRecord> {
    let role: String = r.get("role");
    Ok(KeyRecord {
        id: r.get("id"),
        name: r.get("name"),
        role: role
            .parse()
            .map_err(|e: String| internal(anyhow::anyhow!(e)))?,
        hash: r.get("hash"),
        created_at: at(r.get("created_ms")),
        revoked_at: r.get::<Option<i64>, _>("revoked_ms").map(at),
        scope: KeyScope {
            tags: r.get("scope_tags"),
            agents: r.get("scope_agents"),
        },
    })
}

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
        rows.iter().map(key_from_row).collect()
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        let q = sqlx::query("SELECT * FROM api_keys WHERE id = $1").bind(id);
        let row = q.fetch_optional(&self.pool).await.map_err(internal)?;
        row.as_ref().map(key_from_row).transpose()
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
        let insert = sqlx::query(
            "INSERT INTO session_tokens(id, hash, run_id, session_id, expires_ms) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.hash)
        .bind(&t.run_id)
        .bind(&t.session_id)
        .bind(ms(t.expires_at));
        self.exec([purge, insert]).await.map(drop)
    }

    async fn find_session_token(&self, id: &str) -> StoreResult<Option<SessionTokenRecord>> {
        let q = sqlx::query("SELECT * FROM session_tokens WHERE id = $1").bind(id);
        let row = q.fetch_optional(&self.pool).await.map_err(internal)?;
        Ok(row.map(|r| SessionTokenRecord {
            id: r.get("id"),
            hash: r.get("hash"),
            run_id: r.get("run_id"),
            session_id: r.get("session_id"),
            expires_at: at(r.get("expires_ms")),
        }))
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
