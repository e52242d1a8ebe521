//! Sessions: reads, bind/metadata updates, runner-reported status, delete.

use sqlx::Row;

use aof_core::SessionStatus;
use aof_store::{DeleteOutcome, SessionCursor, SessionPage, StoreError, StoreResult};
use aof_wire::{
    session::{Affinity, BindRequest, MetadataPatch},
    sse, Session,
};

use crate::{
    internal,
    rows::{
        feed_session, load_run, load_session, session_from_row, set_session_status, SESSION_COLS,
    },
    PgStore,
};

impl PgStore {
    pub(crate) async fn get_session_impl(&self, id: &str) -> StoreResult<Option<Session>> {
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        load_session(&mut conn, id).await
    }

    pub(crate) async fn list_sessions_impl(&self) -> StoreResult<Vec<Session>> {
        let rows = sqlx::query(&format!(
            "SELECT {SESSION_COLS} FROM sessions ORDER BY created_at DESC, rid DESC"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        Ok(rows.iter().map(session_from_row).collect())
    }

    pub(crate) async fn list_sessions_page_impl(
        &self,
        after: Option<SessionCursor>,
        limit: i64,
    ) -> StoreResult<SessionPage> {
        let order = "ORDER BY created_at DESC, rid DESC LIMIT";
        let rows = match &after {
            None => {
                sqlx::query(&format!(
                    "SELECT {SESSION_COLS}, rid FROM sessions {order} $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
            Some(a) => {
                sqlx::query(&format!(
                    "SELECT {SESSION_COLS}, rid FROM sessions \
                     WHERE created_at < $1 OR (created_at = $1 AND rid < $2) {order} $3"
                ))
                .bind(&a.created_at)
                .bind(a.row)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(internal)?;
        let next = match rows.len() as i64 == limit {
            true => rows.last().map(|r| SessionCursor {
                created_at: r.get("created_at"),
                row: r.get("rid"),
            }),
            false => None,
        };
        Ok(SessionPage {
            sessions: rows.iter().map(session_from_row).collect(),
            next,
        })
    }

    pub(crate) async fn affinity_impl(&self, id: &str) -> StoreResult<Option<Affinity>> {
        Ok(self.get_session_impl(id).await?.map(|s| Affinity {
            session_id: s.session_id,
            hostname: s.hostname,
            project_dir: s.project_dir,
            executor_profile: s.executor_profile,
        }))
    }

    pub(crate) async fn bind_impl(
        &self,
        id: &str,
        req: &BindRequest,
        lease_token: Option<&str>,
    ) -> StoreResult<Session> {
        let mut w = self.begin().await?;
        if load_session(&mut w.tx, id).await?.is_none() {
            return Err(StoreError::SessionNotFound(id.to_string()));
        }
        if let Some(token) = lease_token {
            let held: Option<String> = sqlx::query_scalar(
                "SELECT run_id FROM runs WHERE session_id = $1 AND lease_token = $2 \
                 AND status IN ('claimed','running','stopping')",
            )
            .bind(id)
            .bind(token)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(internal)?;
            if held.is_none() {
                return Err(StoreError::LeaseConflict(format!(
                    "lease for session {id} is no longer held"
                )));
            }
        }
        sqlx::query(
            "UPDATE sessions SET executor_session_id = $1, hostname = $2, executor_profile = $3, \
             project_dir = COALESCE($4, project_dir), status = 'running' WHERE session_id = $5",
        )
        .bind(&req.executor_session_id)
        .bind(&req.hostname)
        .bind(&req.executor_profile)
        .bind(&req.project_dir)
        .bind(id)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?;
        let s = load_session(&mut w.tx, id)
            .await?
            .ok_or_else(|| StoreError::SessionNotFound(id.to_string()))?;
        feed_session(&mut w, sse::SESSION_UPDATED, &s).await?;
        w.commit().await?;
        Ok(s)
    }

    pub(crate) async fn patch_metadata_impl(
        &self,
        id: &str,
        p: &MetadataPatch,
    ) -> StoreResult<Session> {
        let mut w = self.begin().await?;
        if load_session(&mut w.tx, id).await?.is_none() {
            return Err(StoreError::SessionNotFound(id.to_string()));
        }
        sqlx::query(
            "UPDATE sessions SET project_dir = COALESCE($1, project_dir), agent_name = COALESCE($2, agent_name), \
             last_resumed_at = COALESCE($3, last_resumed_at), executor_session_id = COALESCE($4, executor_session_id), \
             executor_profile = COALESCE($5, executor_profile), hostname = COALESCE($6, hostname) WHERE session_id = $7",
        )
        .bind(&p.project_dir)
        .bind(&p.agent_name)
        .bind(&p.last_resumed_at)
        .bind(&p.executor_session_id)
        .bind(&p.executor_profile)
        .bind(&p.hostname)
        .bind(id)
        .execute(&mut *w.tx)
        .await
        .map_err(internal)?;
        let s = load_session(&mut w.tx, id)
            .await?
            .ok_or_else(|| StoreError::SessionNotFound(id.to_string()))?;
        feed_session(&mut w, sse::SESSION_UPDATED, &s).await?;
        w.commit().await?;
        Ok(s)
    }

    pub(crate) async fn runner_session_status_impl(
        &self,
        id: &str,
        runner_id: &str,
        status: SessionStatus,
    ) -> StoreResult<Session> {
        if !self.runner_exists_impl(runner_id).await? {
            return Err(StoreError::RunnerNotRegistered);
        }
        let mut w = self.begin().await?;
        let Some(current) = load_session(&mut w.tx, id).await? else {
            return Err(StoreError::SessionNotFound(id.to_string()));
        };
        // Only the runner that served the session's latest run may close it.
        let last_run: Option<String> = sqlx::query_scalar(
            "SELECT run_id FROM runs WHERE session_id = $1 ORDER BY rid DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
        if let Some(run_id) = last_run {
            let run = load_run(&mut w.tx, &run_id).await?;
            if let Some(run) = run {
                if run.run.runner_id.as_deref() != Some(runner_id) {
                    return Err(StoreError::LeaseConflict(format!(
                        "Session {id} is served by another runner"
                    )));
                }
                if !run.status.is_terminal() {
                    return Err(StoreError::Illegal(format!(
                        "Session {id} has an active run ({}); report the run instead",
                        run.status
                    )));
                }
            }
        }
        let s = set_session_status(&mut w, id, status)
            .await?
            .unwrap_or(current);
        w.commit().await?;
        Ok(s)
    }

    pub(crate) async fn delete_session_impl(&self, id: &str) -> StoreResult<DeleteOutcome> {
        let mut w = self.begin().await?;
        let Some(s) = load_session(&mut w.tx, id).await? else {
            return Err(StoreError::SessionNotFound(id.to_string()));
        };
        let active: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM runs WHERE session_id = $1 AND status IN ('claimed','running','stopping')",
        )
        .bind(id)
        .fetch_one(&mut *w.tx)
        .await
        .map_err(internal)?
        .get("n");
        let status: SessionStatus = s.status.parse().unwrap_or(SessionStatus::Running);
        if matches!(
            status,
            SessionStatus::Running | SessionStatus::Idle | SessionStatus::Stopping
        ) || active > 0
        {
            return Err(StoreError::Busy(format!(
                "Session '{id}' is {}. Stop session first.",
                s.status
            )));
        }
        let events = sqlx::query("DELETE FROM feed WHERE session_id = $1 AND kind = 'event'")
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?
            .rows_affected();
        let runs = sqlx::query("DELETE FROM runs WHERE session_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?
            .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE session_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        sqlx::query("UPDATE sessions SET parent_session_id = NULL WHERE parent_session_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        // A deleted parent can no longer be told anything; its children's callbacks go too.
        sqlx::query("DELETE FROM callbacks WHERE parent_session_id = $1 OR child_session_id = $2")
            .bind(id)
            .bind(id)
            .execute(&mut *w.tx)
            .await
            .map_err(internal)?;
        w.feed(
            sse::SESSION_DELETED,
            Some(id),
            serde_json::json!({"session_id": id, "runs_deleted": runs}),
        )
        .await?;
        w.commit().await?;
        Ok(DeleteOutcome {
            events_count: events,
            runs_count: runs,
        })
    }
}
