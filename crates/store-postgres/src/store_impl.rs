//! `Store` for `PgStore`: a thin mapping onto the inherent methods in each module.

use async_trait::async_trait;
use chrono::Duration;
use sqlx::Row;
use tokio::sync::watch;

use aof_core::{RunStatus, SessionStatus};
use aof_store::{prelude::*, *};
use aof_wire::{
    auth::KeyScope,
    runner::{HeldLease, RegisterRequest, RunnerInfo},
    session::{Affinity, BindRequest, MetadataPatch},
    Run, Session,
};

use crate::{internal, PgStore};

#[async_trait]
impl RunStore for PgStore {
    async fn create_run(&self, new: NewRun) -> StoreResult<RunRecord> {
        self.create_run_impl(new).await
    }

    async fn get_run(&self, run_id: &str) -> StoreResult<Option<RunRecord>> {
        self.get_run_impl(run_id).await
    }

    async fn latest_run(&self, session_id: &str) -> StoreResult<Option<RunRecord>> {
        self.latest_run_impl(session_id).await
    }

    async fn list_runs(&self, status: Option<&str>) -> StoreResult<Vec<Run>> {
        self.list_runs_impl(status).await
    }

    async fn claim_run_scoped(
        &self,
        runner: &RunnerInfo,
        ttl: Duration,
        scope: &KeyScope,
    ) -> StoreResult<Option<RunRecord>> {
        self.claim_run_impl(runner, ttl, scope).await
    }

    async fn report(
        &self,
        run_id: &str,
        who: &Writer,
        report: RunReport,
    ) -> StoreResult<RunRecord> {
        self.report_impl(run_id, who, report).await
    }
}

#[async_trait]
impl StopStore for PgStore {
    async fn stop_run(&self, run_id: &str) -> StoreResult<StopOutcome> {
        self.stop_run_impl(run_id).await
    }

    async fn stop_session(&self, session_id: &str) -> StoreResult<StopOutcome> {
        self.stop_session_impl(session_id).await
    }

    async fn take_stops(&self, runner_id: &str) -> StoreResult<Vec<String>> {
        self.take_stops_impl(runner_id).await
    }
}

#[async_trait]
impl LeaseStore for PgStore {
    async fn heartbeat(
        &self,
        runner_id: &str,
        leases: Option<&[HeldLease]>,
        ttl: Duration,
    ) -> StoreResult<Vec<String>> {
        self.heartbeat_impl(runner_id, leases, ttl).await
    }

    async fn expire_leases(&self, policy: LeasePolicy) -> StoreResult<Vec<Resolved>> {
        self.expire_leases_impl(policy).await
    }

    async fn fail_unmatched(&self) -> StoreResult<Vec<Resolved>> {
        self.fail_unmatched_impl().await
    }

    async fn grace_leases(&self, ttl: Duration) -> StoreResult<u64> {
        self.grace_leases_impl(ttl).await
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn get_session(&self, id: &str) -> StoreResult<Option<Session>> {
        self.get_session_impl(id).await
    }

    async fn list_sessions(&self) -> StoreResult<Vec<Session>> {
        self.list_sessions_impl().await
    }

    async fn list_sessions_page(
        &self,
        after: Option<SessionCursor>,
        limit: i64,
    ) -> StoreResult<SessionPage> {
        self.list_sessions_page_impl(after, limit).await
    }

    async fn affinity(&self, id: &str) -> StoreResult<Option<Affinity>> {
        self.affinity_impl(id).await
    }

    async fn bind(
        &self,
        id: &str,
        req: &BindRequest,
        lease_token: Option<&str>,
    ) -> StoreResult<Session> {
        self.bind_impl(id, req, lease_token).await
    }

    async fn patch_metadata(&self, id: &str, patch: &MetadataPatch) -> StoreResult<Session> {
        self.patch_metadata_impl(id, patch).await
    }

    async fn set_session_status(
        &self,
        id: &str,
        runner_id: &str,
        status: SessionStatus,
    ) -> StoreResult<Session> {
        self.runner_session_status_impl(id, runner_id, status).await
    }

    async fn delete_session(&self, id: &str) -> StoreResult<DeleteOutcome> {
        self.delete_session_impl(id).await
    }
}

#[async_trait]
impl CallbackStore for PgStore {
    async fn pending_callbacks(&self, parent: &str) -> StoreResult<Vec<PendingCallback>> {
        self.pending_callbacks_impl(parent).await
    }

    async fn callback_parents(&self) -> StoreResult<Vec<String>> {
        self.callback_parents_impl().await
    }
}

#[async_trait]
impl RunnerStore for PgStore {
    async fn poll_state(&self, runner_id: &str) -> StoreResult<PollState> {
        self.poll_state_impl(runner_id).await
    }

    async fn register_runner(&self, id: &str, req: &RegisterRequest) -> StoreResult<RunnerInfo> {
        self.register_impl(id, req).await
    }

    async fn list_runners(&self, stale_after: Duration) -> StoreResult<Vec<RunnerInfo>> {
        self.list_runners_impl(stale_after).await
    }

    async fn remove_runner(&self, id: &str, self_: bool) -> StoreResult<()> {
        self.remove_runner_impl(id, self_).await
    }

    async fn take_deregistration(&self, id: &str) -> StoreResult<bool> {
        self.take_deregistration_impl(id).await
    }

    async fn reap_runners(&self, remove_after: Duration) -> StoreResult<Vec<Resolved>> {
        self.reap_runners_impl(remove_after).await
    }
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
        let online = self
            .list_runners_impl(self.opts.stale_after)
            .await?
            .iter()
            .filter(|r| r.status == "online")
            .count() as i64;
        Ok(Counts {
            runs_by_status: runs
                .iter()
                .filter_map(|r| {
                    let st: String = r.get("status");
                    Some((st.parse::<RunStatus>().ok()?, r.get("n")))
                })
                .collect(),
            sessions_by_status: sessions
                .iter()
                .filter_map(|r| {
                    let st: String = r.get("status");
                    Some((st.parse::<SessionStatus>().ok()?, r.get("n")))
                })
                .collect(),
            events,
            runners_online: online,
        })
    }

    fn publish_wake(&self) {
        self.shared.wake_out.notify_one();
    }

    fn remote_wakes(&self) -> Option<watch::Receiver<u64>> {
        Some(self.shared.wake_in.subscribe())
    }
}
