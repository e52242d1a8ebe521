//! `AdminStore`: readiness, counts, space and wake-ups across coordinators.

use async_trait::async_trait;
use tokio::sync::watch;

use aof_core::{RunStatus, SessionStatus};
use aof_store::{prelude::*, *};

use crate::{internal, PgStore};

/// `(status, n)` rows; statuses this build does not know are skipped.
fn counts<S: std::str::FromStr>(found: Vec<sqlx::postgres::PgRow>) -> StoreResult<Vec<(S, i64)>> {
    let counts = found.iter().map(rows::status_count::<S, _, _>);
    Ok(counts
        .collect::<StoreResult<Vec<_>>>()?
        .into_iter()
        .flatten()
        .collect())
}

#[async_trait]
impl AdminStore for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(internal)?;
        Ok(())
    }

    async fn counts(&self) -> StoreResult<Counts> {
        let runs = sqlx::query("SELECT status, COUNT(*) AS n FROM runs GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        let sessions = sqlx::query("SELECT status, COUNT(*) AS n FROM sessions GROUP BY status")
            .fetch_all(&self.pool)
            .await
            .map_err(internal)?;
        let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM feed WHERE kind = 'event'")
            .fetch_one(&self.pool)
            .await
            .map_err(internal)?;
        let approvals: i64 = sqlx::query_scalar(statements::approvals::COUNT_PENDING)
            .fetch_one(&self.pool)
            .await
            .map_err(internal)?;
        let online = self
            .list_runners(self.opts.stale_after)
            .await?
            .iter()
            .filter(|r| r.status == aof_wire::RunnerStatus::Online)
            .count() as i64;
        Ok(Counts {
            runs_by_status: counts::<RunStatus>(runs)?,
            sessions_by_status: counts::<SessionStatus>(sessions)?,
            events,
            runners_online: online,
            approvals_pending: approvals,
        })
    }

    fn publish_wake(&self) {
        self.shared.wake_out.notify_one();
    }

    fn remote_wakes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.shared.wake_in.subscribe())
    }
}
