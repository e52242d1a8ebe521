//! `Store` for `SqliteStore`: a thin mapping onto the inherent methods in each module.

use async_trait::async_trait;
use chrono::Duration;
use tokio::sync::{broadcast, watch};

use aof_core::{RunStatus, SessionStatus};
use aof_store::{prelude::*, *};
use aof_wire::{
    auth::KeyScope,
    runner::{HeldLease, RunnerInfo},
    sse::FeedItem,
    Run, SessionResult, StoredEvent,
};

use crate::{internal, SqliteStore};

#[async_trait]
impl EventStore for SqliteStore {
    fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.feed_tx.subscribe()
    }

    async fn session_result(&self, id: &str) -> StoreResult<Option<SessionResult>> {
        self.session_result_impl(id).await
    }

    async fn append_event(&self, id: &str, write: EventWrite) -> StoreResult<Option<StoredEvent>> {
        self.append_event_impl(id, write).await
    }

    async fn append_events(
        &self,
        id: &str,
        writes: Vec<EventWrite>,
    ) -> StoreResult<Vec<Option<StoredEvent>>> {
        self.append_events_impl(id, writes).await
    }

    async fn list_events(
        &self,
        id: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        self.list_events_impl(id, after, limit).await
    }

    async fn feed_after(
        &self,
        cursor: i64,
        session_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FeedItem>> {
        self.feed_after_impl(cursor, session_id, limit).await
    }

    async fn feed_head(&self) -> StoreResult<i64> {
        self.feed_head_impl().await
    }
}

#[async_trait]
impl AuthStore for SqliteStore {
    async fn create_key(&self, key: &KeyRecord) -> StoreResult<()> {
        self.create_key_impl(key).await
    }

    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>> {
        self.list_keys_impl().await
    }

    async fn find_key(&self, id: &str) -> StoreResult<Option<KeyRecord>> {
        self.find_key_impl(id).await
    }

    async fn revoke_key(&self, id: &str) -> StoreResult<bool> {
        self.revoke_key_impl(id).await
    }

    async fn create_session_token(&self, token: &SessionTokenRecord) -> StoreResult<()> {
        self.create_session_token_impl(token).await
    }

    async fn find_session_token(&self, id: &str) -> StoreResult<Option<SessionTokenRecord>> {
        self.find_session_token_impl(id).await
    }

    async fn bind_runner_key(&self, runner_id: &str, key_id: &str) -> StoreResult<()> {
        self.bind_runner_key_impl(runner_id, key_id).await
    }

    async fn runner_key(&self, runner_id: &str) -> StoreResult<Option<String>> {
        self.runner_key_impl(runner_id).await
    }
}

#[async_trait]
impl LoginStore for SqliteStore {
    async fn create_browser_session(&self, s: &BrowserSessionRecord) -> StoreResult<()> {
        self.create_browser_session_impl(s).await
    }

    async fn find_browser_session(&self, hash: &str) -> StoreResult<Option<BrowserSessionRecord>> {
        self.find_browser_session_impl(hash).await
    }

    async fn delete_browser_session(&self, hash: &str) -> StoreResult<bool> {
        self.delete_browser_session_impl(hash).await
    }

    async fn delete_browser_sessions_of_key(&self, key_id: &str) -> StoreResult<u64> {
        self.delete_browser_sessions_of_key_impl(key_id).await
    }
}

#[async_trait]
impl AuditStore for SqliteStore {
    // Audit log
    async fn append_audit(&self, entries: &[aof_store::NewAuditEntry]) -> StoreResult<()> {
        self.append_audit_impl(entries).await
    }

    async fn list_audit(
        &self,
        q: &aof_store::AuditQuery,
    ) -> StoreResult<Vec<aof_wire::audit::AuditEntry>> {
        self.list_audit_impl(q).await
    }

    async fn purge_audit(&self, before: chrono::DateTime<chrono::Utc>) -> StoreResult<u64> {
        self.purge_audit_impl(before).await
    }
}

#[async_trait]
impl ImportStore for SqliteStore {
    async fn import_session(&self, s: aof_store::ImportedSession) -> StoreResult<bool> {
        self.import_session_impl(s).await
    }
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| {
            c.prepare_cached("SELECT 1")
                .and_then(|mut st| st.query_row([], |_| Ok(())))
                .map_err(internal)
        })
        .await
    }

    async fn reclaim_space(&self) -> StoreResult<u64> {
        self.reclaim_space_impl().await
    }

    async fn counts(&self) -> StoreResult<Counts> {
        // Statuses this build does not know are skipped.
        fn by_status<S: std::str::FromStr>(
            c: &rusqlite::Connection,
            sql: &str,
        ) -> StoreResult<Vec<(S, i64)>> {
            c.prepare_cached(sql)
                .and_then(|mut st| {
                    st.query_map([], |r| Ok((r.get::<_, String>("status")?, r.get("n")?)))?
                        .collect::<rusqlite::Result<Vec<(String, i64)>>>()
                })
                .map_err(internal)
                .map(|rows| {
                    rows.into_iter()
                        .filter_map(|(st, n)| Some((st.parse::<S>().ok()?, n)))
                        .collect()
                })
        }
        let (runs, sessions, events) = self
            .read(|c| {
                let runs = by_status::<RunStatus>(
                    c,
                    "SELECT status, COUNT(*) AS n FROM runs GROUP BY status",
                )?;
                let sessions = by_status::<SessionStatus>(
                    c,
                    "SELECT status, COUNT(*) AS n FROM sessions GROUP BY status",
                )?;
                let events: i64 = c
                    .prepare_cached("SELECT COUNT(*) FROM feed WHERE kind = 'event'")
                    .and_then(|mut st| st.query_row([], |r| r.get(0)))
                    .map_err(internal)?;
                Ok((runs, sessions, events))
            })
            .await?;
        let online = self
            .list_runners(self.opts.stale_after)
            .await?
            .iter()
            .filter(|r| r.status == aof_store::runners::ONLINE)
            .count() as i64;
        Ok(Counts {
            runs_by_status: runs,
            sessions_by_status: sessions,
            events,
            runners_online: online,
        })
    }

    fn publish_wake(&self) {
        // One coordinator per database file: the local wake-up is all there is.
    }

    fn remote_wakes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}
