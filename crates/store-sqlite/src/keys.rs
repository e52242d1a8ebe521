//! API keys, run session tokens and runner-key bindings. Only hashes are stored; the
//! coordinator's auth module makes and checks the secrets.

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{OptionalExtension, Row};

use aof_store::{KeyRecord, SessionTokenRecord, StoreResult};
use aof_wire::auth::KeyScope;

use crate::{internal, ms, rows::bad_column, SqliteStore};

pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn key_from_row(r: &Row) -> rusqlite::Result<KeyRecord> {
    let role: String = r.get("role")?;
    let list = |col: &str| -> rusqlite::Result<Vec<String>> {
        let text: String = r.get(col)?;
        serde_json::from_str(&text).map_err(|e| bad_column(col, e))
    };
    Ok(KeyRecord {
        id: r.get("id")?,
        name: r.get("name")?,
        role: role.parse().map_err(|e: String| bad_column("role", e))?,
        hash: r.get("hash")?,
        created_at: at(r.get("created_ms")?),
        revoked_at: r.get::<_, Option<i64>>("revoked_ms")?.map(at),
        scope: KeyScope {
            tags: list("scope_tags")?,
            agents: list("scope_agents")?,
        },
    })
}

impl SqliteStore {
    pub(crate) async fn create_key_impl(&self, k: &KeyRecord) -> StoreResult<()> {
        let k = k.clone();
        let tags = serde_json::to_string(&k.scope.tags).map_err(internal)?;
        let agents = serde_json::to_string(&k.scope.agents).map_err(internal)?;
        self.write(move |w| {
            w.prepare_cached(
                "INSERT INTO api_keys(id, name, role, hash, created_ms, revoked_ms, scope_tags, \
                 scope_agents) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut st| {
                st.execute((
                    &k.id,
                    &k.name,
                    k.role.as_str(),
                    &k.hash,
                    ms(k.created_at),
                    k.revoked_at.map(ms),
                    tags,
                    agents,
                ))
            })
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn list_keys_impl(&self) -> StoreResult<Vec<KeyRecord>> {
        self.read(|c| {
            c.prepare_cached("SELECT * FROM api_keys ORDER BY created_ms DESC, id")
                .and_then(|mut st| st.query_map([], key_from_row)?.collect())
                .map_err(internal)
        })
        .await
    }

    pub(crate) async fn find_key_impl(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM api_keys WHERE id = ?")
                .and_then(|mut st| st.query_row([id], key_from_row).optional())
                .map_err(internal)
        })
        .await
    }

    pub(crate) async fn revoke_key_impl(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        let n = self
            .write(move |w| {
                w.prepare_cached(
                    "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, ?) WHERE id = ?",
                )
                .and_then(|mut st| st.execute((ms(Utc::now()), id)))
                .map_err(internal)
            })
            .await?;
        Ok(n > 0)
    }

    pub(crate) async fn create_session_token_impl(
        &self,
        t: &SessionTokenRecord,
    ) -> StoreResult<()> {
        let t = t.clone();
        self.write(move |w| {
            // Expired tokens are useless; dropping them here keeps the table small.
            w.prepare_cached("DELETE FROM session_tokens WHERE expires_ms < ?")
                .and_then(|mut st| st.execute([ms(Utc::now())]))
                .map_err(internal)?;
            w.prepare_cached(
                "INSERT INTO session_tokens(id, hash, run_id, session_id, expires_ms) VALUES (?, ?, ?, ?, ?)",
            )
            .and_then(|mut st| {
                st.execute((&t.id, &t.hash, &t.run_id, &t.session_id, ms(t.expires_at)))
            })
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn find_session_token_impl(
        &self,
        id: &str,
    ) -> StoreResult<Option<SessionTokenRecord>> {
        let id = id.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT * FROM session_tokens WHERE id = ?")
                .and_then(|mut st| {
                    st.query_row([id], |r| {
                        Ok(SessionTokenRecord {
                            id: r.get("id")?,
                            hash: r.get("hash")?,
                            run_id: r.get("run_id")?,
                            session_id: r.get("session_id")?,
                            expires_at: at(r.get("expires_ms")?),
                        })
                    })
                    .optional()
                })
                .map_err(internal)
        })
        .await
    }

    pub(crate) async fn bind_runner_key_impl(
        &self,
        runner_id: &str,
        key_id: &str,
    ) -> StoreResult<()> {
        let (runner_id, key_id) = (runner_id.to_string(), key_id.to_string());
        self.write(move |w| {
            w.prepare_cached(
                "INSERT INTO runner_keys(runner_id, key_id) VALUES (?, ?) \
                 ON CONFLICT(runner_id) DO UPDATE SET key_id = excluded.key_id",
            )
            .and_then(|mut st| st.execute((runner_id, key_id)))
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn runner_key_impl(&self, runner_id: &str) -> StoreResult<Option<String>> {
        let runner_id = runner_id.to_string();
        self.read(move |c| {
            c.prepare_cached("SELECT key_id FROM runner_keys WHERE runner_id = ?")
                .and_then(|mut st| st.query_row([runner_id], |r| r.get(0)).optional())
                .map_err(internal)
        })
        .await
    }
}
