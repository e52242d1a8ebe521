//! `SessionStore` on PostgreSQL: the SQL of session reads, bind/metadata updates,
//! runner-reported status and delete. The rules are `aof_store::sessions`.

use async_trait::async_trait;
use sqlx::{PgConnection, Row};

use aof_core::SessionStatus;
use aof_store::{
    rows::{run, session, RUN_COLS, SESSION_COLS},
    sessions,
    statements::{self, LEASED},
    DeleteOutcome, SessionCursor, SessionFilter, SessionPage, SessionStore, StoreResult,
};
use aof_wire::{
    session::{BindRequest, MetadataPatch},
    sse, Session,
};

use crate::{
    internal,
    rows::{bind_all, feed_session, load_session, mark, set_session_status, Lock},
    PgStore, WriteTx,
};

/// The session and how many of its runs a runner holds (with `token`: under that lease),
/// for a write: the session's runs are locked first as `runs` says (the lock order),
/// then the session row.
async fn load_held(
    conn: &mut PgConnection,
    id: &str,
    token: Option<&str>,
    runs: Lock,
) -> StoreResult<Option<(Session, i64)>> {
    if runs != Lock::None {
        let lock = runs.sql();
        sqlx::query(&format!(
            "SELECT 1 FROM runs WHERE session_id = $1 ORDER BY run_id{lock}"
        ))
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(internal)?;
    }
    let row = sqlx::query(&format!(
        "SELECT {SESSION_COLS}, (SELECT COUNT(*) FROM runs WHERE session_id = $1 \
         AND status IN {LEASED} AND ($2::text IS NULL OR lease_token = $2)) AS held \
         FROM sessions WHERE session_id = $1 FOR UPDATE"
    ))
    .bind(id)
    .bind(token)
    .fetch_optional(conn)
    .await
    .map_err(internal)?;
    row.map(|r| Ok((session(&r)?, r.get("held")))).transpose()
}

/// Writes the session a rule returned, feeds `session_updated` and commits.
async fn write_session(mut w: WriteTx<'_>, s: Session) -> StoreResult<Session> {
    let (sql, vals) = statements::session_write(&s, mark);
    let q = bind_all(sqlx::query(&sql), vals);
    q.execute(&mut *w.tx).await.map_err(internal)?;
    feed_session(&mut w, sse::SESSION_UPDATED, &s).await?;
    w.commit().await?;
    Ok(s)
}

#[async_trait]
impl SessionStore for PgStore {
    async fn get_session(&self, id: &str) -> StoreResult<Option<Session>> {
        let mut conn = self.pool.acquire().await.map_err(internal)?;
        load_session(&mut conn, id, Lock::None).await
    }

    async fn list_sessions_page(
        &self,
        filter: &SessionFilter,
        after: Option<SessionCursor>,
        limit: i64,
    ) -> StoreResult<SessionPage> {
        let (sql, vals) = statements::sessions_page(filter, after.as_ref(), limit, "rid", mark);
        let q = bind_all(sqlx::query(&sql), vals);
        let rows = q.fetch_all(&self.pool).await.map_err(internal)?;
        let rows = rows.iter().map(|r| Ok((session(r)?, r.get("rid"))));
        Ok(sessions::page(rows.collect::<StoreResult<_>>()?, limit))
    }

    async fn bind(
        &self,
        id: &str,
        req: &BindRequest,
        lease_token: Option<&str>,
    ) -> StoreResult<Session> {
        let mut w = self.begin().await?;
        // The runs FOR SHARE: no expiry or report moves the lease the rule checks.
        let current = load_held(&mut w.tx, id, lease_token, Lock::Share).await?;
        let s = sessions::on_bind(id, current, req, lease_token.is_some())?;
        write_session(w, s).await
    }

    async fn patch_metadata(&self, id: &str, p: &MetadataPatch) -> StoreResult<Session> {
        let mut w = self.begin().await?;
        let current = load_session(&mut w.tx, id, Lock::Update).await?;
        let s = sessions::on_patch(id, current, p)?;
        write_session(w, s).await
    }

    async fn set_session_status(
        &self,
        id: &str,
        runner_id: &str,
        status: SessionStatus,
    ) -> StoreResult<Session> {
        let mut w = self.begin().await?;
        let registered = sqlx::query("SELECT 1 FROM runners WHERE runner_id = $1")
            .bind(runner_id)
            .fetch_optional(&mut *w.tx)
            .await
            .map_err(internal)?
            .is_some();
        // FOR SHARE: the run the rule checks stays as it is until this commits.
        let latest = sqlx::query(&format!(
            "SELECT {RUN_COLS} FROM runs WHERE session_id = $1 ORDER BY rid DESC LIMIT 1 FOR SHARE"
        ))
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await
        .map_err(internal)?;
        let latest = latest.as_ref().map(run).transpose()?;
        let current = load_session(&mut w.tx, id, Lock::Update).await?;
        let current =
            sessions::on_runner_status(id, runner_id, registered, current, latest.as_ref())?;
        let s = set_session_status(&mut w, id, status).await?;
        w.commit().await?;
        Ok(s.unwrap_or(current))
    }

    async fn delete_session(&self, id: &str) -> StoreResult<DeleteOutcome> {
        let mut w = self.begin().await?;
        // Every run of the session locked: none starts or is claimed while it goes.
        let held = load_held(&mut w.tx, id, None, Lock::Update).await?;
        sessions::check_delete(id, held)?;
        let mut counts = Vec::new();
        for sql in statements::session_delete(mark) {
            let done = sqlx::query(&sql).bind(id).execute(&mut *w.tx).await;
            counts.push(done.map_err(internal)?.rows_affected());
        }
        let (events, runs) = (counts[0], counts[1]);
        w.feed(sse::SESSION_DELETED, Some(id), sessions::deleted(id, runs))
            .await?;
        w.commit().await?;
        Ok(DeleteOutcome {
            events_count: events,
            runs_count: runs,
        })
    }
}
