//! Sessions: reads, bind/metadata updates, runner-reported status, delete.

use rusqlite::{params, OptionalExtension};

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
    SqliteStore,
};

impl SqliteStore {
    pub(crate) async fn get_session_impl(&self, id: &str) -> StoreResult<Option<Session>> {
        let id = id.to_string();
        self.read(move |c| load_session(c, &id)).await
    }

    pub(crate) async fn list_sessions_impl(&self) -> StoreResult<Vec<Session>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {SESSION_COLS} FROM sessions ORDER BY created_at DESC, rowid DESC"
            ))
            .and_then(|mut st| st.query_map([], session_from_row)?.collect())
            .map_err(internal)
        })
        .await
    }

    pub(crate) async fn list_sessions_page_impl(
        &self,
        after: Option<SessionCursor>,
        limit: i64,
    ) -> StoreResult<SessionPage> {
        self.read(move |c| {
            let order = "ORDER BY created_at DESC, rowid DESC LIMIT ?";
            let mut rows: Vec<(Session, SessionCursor)> = match &after {
                None => c
                    .prepare_cached(&format!(
                        "SELECT {SESSION_COLS}, rowid FROM sessions {order}"
                    ))
                    .and_then(|mut st| st.query_map(params![limit], page_row)?.collect()),
                Some(a) => c
                    .prepare_cached(&format!(
                        "SELECT {SESSION_COLS}, rowid FROM sessions \
                         WHERE created_at < ?1 OR (created_at = ?1 AND rowid < ?2) {order}"
                    ))
                    .and_then(|mut st| {
                        st.query_map(params![a.created_at, a.row, limit], page_row)?
                            .collect()
                    }),
            }
            .map_err(internal)?;
            let next = match rows.len() as i64 == limit {
                true => rows.last().map(|(_, c)| c.clone()),
                false => None,
            };
            Ok(SessionPage {
                sessions: rows.drain(..).map(|(s, _)| s).collect(),
                next,
            })
        })
        .await
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
        let (id, req, lease_token) = (id.to_string(), req.clone(), lease_token.map(str::to_string));
        self.write(move |w| {
            let id = id.as_str();
            if load_session(w, id)?.is_none() {
                return Err(StoreError::SessionNotFound(id.to_string()));
            }
            if let Some(token) = &lease_token {
                let held: Option<String> = w
                    .prepare_cached(
                        "SELECT run_id FROM runs WHERE session_id = ? AND lease_token = ? \
                         AND status IN ('claimed','running','stopping')",
                    )
                    .and_then(|mut st| st.query_row((id, token), |r| r.get(0)).optional())
                    .map_err(internal)?;
                if held.is_none() {
                    return Err(StoreError::LeaseConflict(format!(
                        "lease for session {id} is no longer held"
                    )));
                }
            }
            w.prepare_cached(
                "UPDATE sessions SET executor_session_id = ?, hostname = ?, executor_profile = ?, \
                 project_dir = COALESCE(?, project_dir), status = 'running' WHERE session_id = ?",
            )
            .and_then(|mut st| {
                st.execute((
                    &req.executor_session_id,
                    &req.hostname,
                    &req.executor_profile,
                    &req.project_dir,
                    id,
                ))
            })
            .map_err(internal)?;
            let s =
                load_session(w, id)?.ok_or_else(|| StoreError::SessionNotFound(id.to_string()))?;
            feed_session(w, sse::SESSION_UPDATED, &s)?;
            Ok(s)
        })
        .await
    }

    pub(crate) async fn patch_metadata_impl(
        &self,
        id: &str,
        p: &MetadataPatch,
    ) -> StoreResult<Session> {
        let (id, p) = (id.to_string(), p.clone());
        self.write(move |w| {
            let id = id.as_str();
            if load_session(w, id)?.is_none() {
                return Err(StoreError::SessionNotFound(id.to_string()));
            }
            w.prepare_cached(
                "UPDATE sessions SET project_dir = COALESCE(?, project_dir), agent_name = COALESCE(?, agent_name), \
                 last_resumed_at = COALESCE(?, last_resumed_at), executor_session_id = COALESCE(?, executor_session_id), \
                 executor_profile = COALESCE(?, executor_profile), hostname = COALESCE(?, hostname) WHERE session_id = ?",
            )
            .and_then(|mut st| {
                st.execute((
                    &p.project_dir,
                    &p.agent_name,
                    &p.last_resumed_at,
                    &p.executor_session_id,
                    &p.executor_profile,
                    &p.hostname,
                    id,
                ))
            })
            .map_err(internal)?;
            let s = load_session(w, id)?
                .ok_or_else(|| StoreError::SessionNotFound(id.to_string()))?;
            feed_session(w, sse::SESSION_UPDATED, &s)?;
            Ok(s)
        })
        .await
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
        let (id, runner_id) = (id.to_string(), runner_id.to_string());
        self.write(move |w| {
            let id = id.as_str();
            let Some(current) = load_session(w, id)? else {
                return Err(StoreError::SessionNotFound(id.to_string()));
            };
            // Only the runner that served the session's latest run may close it.
            let last_run: Option<String> = w
                .prepare_cached(
                    "SELECT run_id FROM runs WHERE session_id = ? ORDER BY rowid DESC LIMIT 1",
                )
                .and_then(|mut st| st.query_row([id], |r| r.get(0)).optional())
                .map_err(internal)?;
            if let Some(run_id) = last_run {
                let run = load_run(w, &run_id)?;
                if let Some(run) = run {
                    if run.run.runner_id.as_deref() != Some(runner_id.as_str()) {
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
            let s = set_session_status(w, id, status)?.unwrap_or(current);
            Ok(s)
        })
        .await
    }

    pub(crate) async fn delete_session_impl(&self, id: &str) -> StoreResult<DeleteOutcome> {
        let id = id.to_string();
        self.write(move |w| {
            let id = id.as_str();
            let Some(s) = load_session(w, id)? else {
                return Err(StoreError::SessionNotFound(id.to_string()));
            };
            let active: i64 = w
                .prepare_cached(
                    "SELECT COUNT(*) AS n FROM runs WHERE session_id = ? AND status IN ('claimed','running','stopping')",
                )
                .and_then(|mut st| st.query_row([id], |r| r.get("n")))
                .map_err(internal)?;
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
            let events = w
                .prepare_cached("DELETE FROM feed WHERE session_id = ? AND kind = 'event'")
                .and_then(|mut st| st.execute([id]))
                .map_err(internal)? as u64;
            let runs = w
                .prepare_cached("DELETE FROM runs WHERE session_id = ?")
                .and_then(|mut st| st.execute([id]))
                .map_err(internal)? as u64;
            w.prepare_cached("DELETE FROM sessions WHERE session_id = ?")
                .and_then(|mut st| st.execute([id]))
                .map_err(internal)?;
            w.prepare_cached(
                "UPDATE sessions SET parent_session_id = NULL WHERE parent_session_id = ?",
            )
            .and_then(|mut st| st.execute([id]))
            .map_err(internal)?;
            // A deleted parent can no longer be told anything; its children's callbacks go too.
            w.prepare_cached(
                "DELETE FROM callbacks WHERE parent_session_id = ?1 OR child_session_id = ?1",
            )
            .and_then(|mut st| st.execute([id]))
            .map_err(internal)?;
            w.feed(
                sse::SESSION_DELETED,
                Some(id),
                serde_json::json!({"session_id": id, "runs_deleted": runs}),
            )?;
            Ok(DeleteOutcome {
                events_count: events,
                runs_count: runs,
            })
        })
        .await
    }
}

fn page_row(r: &rusqlite::Row) -> rusqlite::Result<(Session, SessionCursor)> {
    let s = session_from_row(r)?;
    let cursor = SessionCursor {
        created_at: s.created_at.clone(),
        row: r.get("rowid")?,
    };
    Ok((s, cursor))
}
