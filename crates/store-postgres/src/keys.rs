//! API keys, run session tokens and runner-key bindings. Only hashes are stored; the
//! coordinator's auth module makes and checks the secrets.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::{postgres::PgRow, Row};

use aof_store::{KeyRecord, SessionTokenRecord, StoreResult};
use aof_wire::auth::KeyScope;

use crate::{internal, ms, PgStore};

pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

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

impl PgStore {
    pub(crate) async fn create_key_impl(&self, k: &KeyRecord) -> StoreResult<()> {
        let mut w = self.begin().await?;
        sqlx::query(
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
        .bind(&k.scope.agents)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?;
        w.commit().await
    }

    pub(crate) async fn list_keys_impl(&self) -> StoreResult<Vec<KeyRecord>> {
        sqlx::query("SELECT * FROM api_keys ORDER BY created_ms DESC, id")
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?
            .iter()
            .map(key_from_row)
            .collect()
    }

    pub(crate) async fn find_key_impl(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?
            .as_ref()
            .map(key_from_row)
            .transpose()
    }

    pub(crate) async fn revoke_key_impl(&self, id: &str) -> StoreResult<bool> {
        let mut w = self.begin().await?;
        let n =
            sqlx::query("UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2")
                .bind(ms(Utc::now()))
                .bind(id)
                .execute(&mut *w.tx)
                .await
                .map_err(internal)?
                .rows_affected();
        w.commit().await?;
        Ok(n > 0)
    }

    pub(crate) async fn create_session_token_impl(
        &self,
        t: &SessionTokenRecord,
    ) -> StoreResult<()> {
        let mut w = self.begin().await?;
        // Expired tokens are useless; dropping them here keeps the table small.
        sqlx::query("DELETE FROM session_tokens WHERE expires_ms < $1")
            .bind(ms(Utc::now()))
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        sqlx::query(
            "INSERT INTO session_tokens(id, hash, run_id, session_id, expires_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.hash)
        .bind(&t.run_id)
        .bind(&t.session_id)
        .bind(ms(t.expires_at))
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?;
        w.commit().await
    }

    pub(crate) async fn find_session_token_impl(
        &self,
        id: &str,
    ) -> StoreResult<Option<SessionTokenRecord>> {
        let row = sqlx::query("SELECT * FROM session_tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?;
        Ok(row.map(|r| SessionTokenRecord {
            id: r.get("id"),
            hash: r.get("hash"),
            run_id: r.get("run_id"),
            session_id: r.get("session_id"),
            expires_at: at(r.get("expires_ms")),
        }))
    }

    pub(crate) async fn bind_runner_key_impl(
        &self,
        runner_id: &str,
        key_id: &str,
    ) -> StoreResult<()> {
        let mut w = self.begin().await?;
        sqlx::query(
            "INSERT INTO runner_keys(runner_id, key_id) VALUES ($1, $2) \
             ON CONFLICT(runner_id) DO UPDATE SET key_id = excluded.key_id",
        )
        .bind(runner_id)
        .bind(key_id)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?;
        w.commit().await
    }

    pub(crate) async fn runner_key_impl(&self, runner_id: &str) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT key_id FROM runner_keys WHERE runner_id = $1")
            .bind(runner_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)
    }
}
