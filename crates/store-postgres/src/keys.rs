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

#[cfg(test)]
mod tests {
    use aof_store::prelude::*;
    use aof_wire::auth::Role;

    use super::*;
    use crate::{testing, PgOptions};

    #[tokio::test]
    async fn keys_tokens_and_runner_bindings_round_trip() {
        let Some(base) = testing::base_url() else {
            eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
            return;
        };
        let url = testing::fresh_database(&base).await.unwrap();
        let s = PgStore::connect(&url, PgOptions::default()).await.unwrap();
        let key = |id: &str, ms: i64| KeyRecord {
            id: id.into(),
            name: Some(format!("n-{id}")),
            role: Role::Runner,
            hash: "h".into(),
            created_at: at(ms),
            revoked_at: None,
            scope: KeyScope::default(),
        };
        s.create_key(&key("a", 1_000)).await.unwrap();
        s.create_key(&key("b", 2_000)).await.unwrap();
        let ids: Vec<String> = s
            .list_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.id)
            .collect();
        assert_eq!(ids, ["b", "a"], "newest first");
        assert!(s.revoke_key("a").await.unwrap());
        let first = s.find_key("a").await.unwrap().unwrap().revoked_at;
        assert!(first.is_some());
        assert!(s.revoke_key("a").await.unwrap());
        assert_eq!(
            s.find_key("a").await.unwrap().unwrap().revoked_at,
            first,
            "first revocation kept"
        );
        assert!(!s.revoke_key("zz").await.unwrap());
        assert_eq!(s.find_key("b").await.unwrap().unwrap().role, Role::Runner);
        let scope = KeyScope {
            tags: vec!["gpu".into()],
            agents: vec!["a".into(), "b".into()],
        };
        s.create_key(&KeyRecord {
            scope: scope.clone(),
            ..key("c", 3_000)
        })
        .await
        .unwrap();
        assert_eq!(s.find_key("c").await.unwrap().unwrap().scope, scope);
        assert!(s.find_key("b").await.unwrap().unwrap().scope.is_unlimited());

        let t = SessionTokenRecord {
            id: "t1".into(),
            hash: "h".into(),
            run_id: "r".into(),
            session_id: "s".into(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        };
        s.create_session_token(&t).await.unwrap();
        assert_eq!(
            s.find_session_token("t1")
                .await
                .unwrap()
                .unwrap()
                .session_id,
            "s"
        );
        assert!(s.find_session_token("t2").await.unwrap().is_none());

        assert_eq!(s.runner_key("lnch_1").await.unwrap(), None);
        s.bind_runner_key("lnch_1", "a").await.unwrap();
        s.bind_runner_key("lnch_1", "b").await.unwrap();
        assert_eq!(s.runner_key("lnch_1").await.unwrap().as_deref(), Some("b"));
    }
}
