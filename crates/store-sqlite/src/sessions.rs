//! `SessionStore` on SQLite: the SQL of session reads, bind/metadata updates,
//! runner-reported status and delete. The rules are `aof_store::sessions`.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

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
    rows::{feed_session, load_session, mark, set_session_status, values},
    SqliteStore, Tx,
};

/// Writes the session a rule returned and feeds `session_updated`.
fn write_session(w: &mut Tx<'_>, s: Session) -> StoreResult<Session> {
    let (sql, vals) = statements::session_write(&s, mark);
    w.prepare_cached(&sql)
        .and_then(|mut st| st.execute(values(vals)))
        .map_err(internal)?;
    feed_session(w, sse::SESSION_UPDATED, &s)?;
    Ok(s)
}

/// The session and how many of its runs a runner holds (with `token`: under that lease).
fn load_held(c: &Connection, id: &str, token: Option<&str>) -> StoreResult<Option<(Session, i64)>> {
    c.prepare_cached(&format!(
        "SELECT {SESSION_COLS}, (SELECT COUNT(*) FROM runs WHERE session_id = ?1 \
         AND status IN {LEASED} AND (?2 IS NULL OR lease_token = ?2)) AS held \
         FROM sessions WHERE session_id = ?1"
    ))
    .and_then(|mut st| {
        let row = |r: &Row| Ok((session(r)?, r.get("held")?));
        st.query_row(params![id, token], row).optional()
    })
    .map_err(internal)
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn get_session(&self, id: &str) -> StoreResult<Option<Session>> {
        let id = id.to_string();
        self.read(move |c| load_session(c, &id)).await
    }

    async fn list_sessions_page(
        &self,
        filter: &SessionFilter,
        after: Option<SessionCursor>,
        limit: i64,
    ) -> StoreResult<SessionPage> {
        let filter = filter.clone();
        self.read(move |c| {
            let (sql, vals) =
                statements::sessions_page(&filter, after.as_ref(), limit, "rowid", mark);
            let row = |r: &Row| Ok((session(r)?, r.get("rowid")?));
            c.prepare_cached(&sql)
                .and_then(|mut st| st.query_map(values(vals), row)?.collect())
                .map(|rows| sessions::page(rows, limit))
                .map_err(internal)
        })
        .await
    }

    async fn bind(
        &self,
        id: &str,
        req: &BindRequest,
        lease_token: Option<&str>,
    ) -> StoreResult<Session> {
        let (id, req, token) = (id.to_string(), req.clone(), lease_token.map(str::to_string));
        self.write(move |w| {
            let current = load_held(w, &id, token.as_deref())?;
            let s = sessions::on_bind(&id, current, &req, token.is_some())?;
            write_session(w, s)
        })
        .await
    }

    async fn patch_metadata(&self, id: &str, p: &MetadataPatch) -> StoreResult<Session> {
        let (id, p) = (id.to_string(), p.clone());
        self.write(move |w| {
            let s = sessions::on_patch(&id, load_session(w, &id)?, &p)?;
            write_session(w, s)
        })
        .await
    }

    async fn set_session_status(
        &self,
        id: &str,
        runner_id: &str,
        status: SessionStatus,
    ) -> StoreResult<Session> {
        let (id, runner_id) = (id.to_string(), runner_id.to_string());
        self.write(move |w| {
            let registered = w
                .prepare_cached("SELECT 1 FROM runners WHERE runner_id = ?")
                .and_then(|mut st| st.exists([&runner_id]))
                .map_err(internal)?;
            let latest = w
                .prepare_cached(&format!(
                    "SELECT {RUN_COLS} FROM runs WHERE session_id = ? ORDER BY rowid DESC LIMIT 1"
                ))
                .and_then(|mut st| st.query_row([&id], |r| run(r)).optional())
                .map_err(internal)?;
            let current = load_session(w, &id)?;
            let current =
                sessions::on_runner_status(&id, &runner_id, registered, current, latest.as_ref())?;
            Ok(set_session_status(w, &id, status)?.unwrap_or(current))
        })
        .await
    }

    async fn delete_session(&self, id: &str) -> StoreResult<DeleteOutcome> {
        let id = id.to_string();
        self.write(move |w| {
            let id = id.as_str();
            sessions::check_delete(id, load_held(w, id, None)?)?;
            let mut counts = Vec::new();
            for sql in statements::session_delete(mark) {
                let n = w.prepare_cached(&sql).and_then(|mut st| st.execute([id]));
                counts.push(n.map_err(internal)? as u64);
            }
            let (events, runs) = (counts[0], counts[1]);
            w.feed(sse::SESSION_DELETED, Some(id), sessions::deleted(id, runs))?;
            Ok(DeleteOutcome {
                events_count: events,
                runs_count: runs,
            })
        })
        .await
    }
}
