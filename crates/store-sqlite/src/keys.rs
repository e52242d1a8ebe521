//! API keys, run session tokens and runner-key bindings (`AuthStore`). Only hashes are
//! stored; the coordinator's auth module makes and checks the secrets.

use async_trait::async_trait;
use chrono::Utc;

use aof_store::{rows, statements, AuthStore, KeyRecord, SessionTokenRecord, StoreResult};

use crate::{
    internal, ms,
    rows::{mark, values},
    SqliteStore,
};

#[async_trait]
impl AuthStore for SqliteStore {
    async fn create_key(&self, k: &KeyRecord) -> StoreResult<()> {
        let tags = serde_json::to_string(&k.scope.tags).map_err(internal)?;
        let agents = serde_json::to_string(&k.scope.agents).map_err(internal)?;
        let k = k.clone();
        self.exec(
            "INSERT INTO api_keys(id, name, role, hash, created_ms, revoked_ms, scope_tags, \
             scope_agents) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                k.id,
                k.name,
                k.role.as_str(),
                k.hash,
                ms(k.created_at),
                k.revoked_at.map(ms),
                tags,
                agents,
            ),
        )
        .await
        .map(drop)
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        let sql = "SELECT * FROM api_keys ORDER BY created_ms DESC, id";
        self.query(sql, [], |r| rows::key(r)).await
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        let sql = "SELECT * FROM api_keys WHERE id = ?";
        self.query_opt(sql, [id.to_string()], |r| rows::key(r))
            .await
    }

    async fn revoke_key(&self, id: &str) -> StoreResult<bool> {
        let sql = "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ?";
        Ok(self.exec(sql, (ms(Utc::now()), id.to_string())).await? > 0)
    }

    async fn create_session_token(&self, t: &SessionTokenRecord) -> StoreResult<()> {
        let t = t.clone();
        self.write(move |w| {
            // Expired tokens are useless; dropping them here keeps the table small.
            w.prepare_cached("DELETE FROM session_tokens WHERE expires_ms < ?")
                .and_then(|mut st| st.execute([ms(Utc::now())]))
                .map_err(internal)?;
            let (sql, vals) = statements::session_token_insert(&t, mark);
            w.prepare_cached(&sql)
                .and_then(|mut st| st.execute(values(vals)))
                .map(drop)
                .map_err(internal)
        })
        .await
    }

    async fn find_session_token(&self, id: &str) -> StoreResult<Option<SessionTokenRecord>> {
        let sql = "SELECT * FROM session_tokens WHERE id = ?";
        self.query_opt(sql, [id.to_string()], |r| rows::session_token(r))
            .await
    }

    async fn bind_runner_key(&self, runner_id: &str, key_id: &str) -> StoreResult<()> {
        self.exec(
            "INSERT INTO runner_keys(runner_id, key_id) VALUES (?, ?) \
             ON CONFLICT(runner_id) DO UPDATE SET key_id = excluded.key_id",
            (runner_id.to_string(), key_id.to_string()),
        )
        .await
        .map(drop)
    }

    async fn runner_key(&self, runner_id: &str) -> StoreResult<Option<String>> {
        let sql = "SELECT key_id FROM runner_keys WHERE runner_id = ?";
        self.query_opt(sql, [runner_id.to_string()], |r| r.get(0))
            .await
    }
}
