//! `AdminStore`: readiness, counts, space and wake-ups across coordinators.

use async_trait::async_trait;
use tokio::sync::watch;

use aof_core::{RunStatus, SessionStatus};
use aof_store::{prelude::*, *};

use crate::{internal, SqliteStore};

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
                .and_then(|mut st| st.query_map([], |r| rows::status_count(r))?.collect())
                .map(|counts: Vec<_>| counts.into_iter().flatten().collect())
                .map_err(internal)
        }
        let (runs, sessions, events, approvals) = self
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
                let approvals: i64 = c
                    .prepare_cached(aof_store::statements::approvals::COUNT_PENDING)
                    .and_then(|mut st| st.query_row([], |r| r.get("n")))
                    .map_err(internal)?;
                Ok((runs, sessions, events, approvals))
            })
            .await?;
        let online = self
            .list_runners(self.opts.stale_after)
            .await?
            .iter()
            .filter(|r| r.status == aof_wire::RunnerStatus::Online)
            .count() as i64;
        Ok(Counts {
            runs_by_status: runs,
            sessions_by_status: sessions,
            events,
            runners_online: online,
            approvals_pending: approvals,
        })
    }

    fn publish_wake(&self) {
        // One coordinator per database file: the local wake-up is all there is.
    }

    fn remote_wakes(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}
