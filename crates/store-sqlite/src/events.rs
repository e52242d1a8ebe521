//! Session events and the feed (`EventStore`): append (with idempotency and fencing, the
//! rule in `aof_store::events`), list, replay.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension};
use tokio::sync::broadcast;

use aof_store::{
    events,
    rows::{feed_item, stored_event},
    EventStore, EventWrite, StoreError, StoreResult,
};
use aof_wire::{
    event::types,
    sse::{self, FeedItem},
    Event, SessionResult, StoredEvent,
};

use crate::{internal, rows, SqliteStore, Tx};

/// The key's event, if this session stored one under it before.
fn seen_key(conn: &Connection, session_id: &str, key: &str) -> StoreResult<bool> {
    conn.prepare_cached("SELECT 1 FROM feed WHERE session_id = ? AND idem_key = ?")
        .and_then(|mut st| st.exists((session_id, key)))
        .map_err(internal)
}

/// The session's next `seq`, if it exists and, with a lease `token`, `run_id` holds that
/// lease: the common case of every check in one read.
fn next_seq(
    conn: &Connection,
    session_id: &str,
    run_id: Option<&str>,
    token: Option<&str>,
) -> StoreResult<Option<i64>> {
    conn.prepare_cached(
        "SELECT s.next_seq FROM sessions s \
         WHERE s.session_id = ?1 AND (?3 IS NULL OR EXISTS (SELECT 1 FROM runs r \
           WHERE r.run_id = ?2 AND r.session_id = ?1 AND r.lease_token = ?3 \
           AND r.status IN ('claimed','running','stopping')))",
    )
    .and_then(|mut st| {
        st.query_row((session_id, run_id, token), |r| r.get(0))
            .optional()
    })
    .map_err(internal)
}

/// Inserts event `seq` of the session and moves the session's `next_seq` on: plain
/// single-row statements, which SQLite runs without a statement journal. `Ok(None)`: the
/// idempotency key is taken (nothing written).
fn insert_event(
    w: &mut Tx<'_>,
    session_id: &str,
    seq: i64,
    run_id: Option<&str>,
    idem_key: Option<&str>,
    event: Event,
) -> StoreResult<Option<StoredEvent>> {
    let data = sse::event_payload(&event).map_err(internal)?;
    let inserted = w
        .prepare_cached(
            "INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data) \
             VALUES ('event', ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (session_id, idem_key) WHERE idem_key IS NOT NULL DO NOTHING",
        )
        .and_then(|mut st| {
            st.execute((session_id, seq, run_id, idem_key, &event.event_type, &*data))
        })
        .map_err(internal)?;
    if inserted == 0 {
        return Ok(None);
    }
    let cursor = w.last_insert_rowid();
    w.prepare_cached("UPDATE sessions SET next_seq = ? WHERE session_id = ?")
        .and_then(|mut st| st.execute((seq + 1, session_id)))
        .map_err(internal)?;
    let run_id = run_id.map(str::to_string);
    let (stored, item) = events::appended(session_id, cursor, seq, run_id, event, data);
    w.push_item(item);
    Ok(Some(stored))
}

/// Appends one event inside `w`. `Ok(None)`: the idempotency key was stored before.
pub(crate) fn append_in_tx(
    w: &mut Tx<'_>,
    session_id: &str,
    event: Event,
    run_id: Option<&str>,
    idem_key: Option<&str>,
) -> StoreResult<Option<StoredEvent>> {
    let seq = next_seq(w, session_id, None, None)?
        .ok_or_else(|| StoreError::SessionNotFound(session_id.to_string()))?;
    insert_event(w, session_id, seq, run_id, idem_key, event)
}

/// Appends `write` (the insert carries the idempotency rule), or tells why not in the
/// order of `aof_store::events`: no session, a repeated key (`Ok(None)`), the fence.
fn append(w: &mut Tx<'_>, session_id: &str, write: EventWrite) -> StoreResult<Option<StoredEvent>> {
    let (run_id, key) = (write.run_id.as_deref(), write.idempotency_key.as_deref());
    let token = write.lease_token.as_deref();
    if token.is_none() || run_id.is_some() {
        if let Some(seq) = next_seq(w, session_id, run_id, token)? {
            return insert_event(w, session_id, seq, run_id, key, write.event);
        }
    }
    if rows::load_session(w, session_id)?.is_none() {
        return Err(StoreError::SessionNotFound(session_id.to_string()));
    }
    if let Some(key) = key {
        if seen_key(w, session_id, key)? {
            return Ok(None);
        }
    }
    let run = run_id
        .map(|id| rows::load_run(w, id))
        .transpose()?
        .flatten();
    events::fence(session_id, &write, run.as_ref())?;
    append_in_tx(w, session_id, write.event.clone(), run_id, key)
}

#[async_trait]
impl EventStore for SqliteStore {
    fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.feed_tx.subscribe()
    }

    async fn append_event(
        &self,
        session_id: &str,
        write: EventWrite,
    ) -> StoreResult<Option<StoredEvent>> {
        Ok(self
            .append_events(session_id, vec![write])
            .await?
            .pop()
            .flatten())
    }

    /// One write job for the whole batch: all stored, in order, or none (a failing
    /// event rolls the job back). Answered only once the transaction holding the rows is
    /// committed (a failed commit, e.g. disk full, comes back here as an error).
    async fn append_events(
        &self,
        session_id: &str,
        writes: Vec<EventWrite>,
    ) -> StoreResult<Vec<Option<StoredEvent>>> {
        let sid = session_id.to_string();
        self.write(move |w| writes.into_iter().map(|wr| append(w, &sid, wr)).collect())
            .await
    }

    async fn list_events(
        &self,
        session_id: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let (after, limit) = events::page(after, limit);
        let sql = "SELECT cursor, seq, run_id, data FROM feed \
                   WHERE session_id = ? AND kind = 'event' AND cursor > ? ORDER BY cursor LIMIT ?";
        let params = (session_id.to_string(), after, limit.unwrap_or(-1));
        self.query(sql, params, |r| stored_event(r)).await
    }

    async fn session_result(&self, session_id: &str) -> StoreResult<Option<SessionResult>> {
        let sql = "SELECT cursor, seq, run_id, data FROM feed WHERE session_id = ? \
                   AND kind = 'event' AND event_type = ? ORDER BY cursor DESC LIMIT 1";
        let params = (session_id.to_string(), types::RESULT);
        let latest = self.query_opt(sql, params, |r| stored_event(r)).await?;
        Ok(latest.map(|ev| events::session_result(ev.event)))
    }

    async fn feed_after(
        &self,
        cursor: i64,
        session_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FeedItem>> {
        let sql = "SELECT cursor, kind, session_id, data FROM feed WHERE cursor > ?1 \
                   AND (?2 IS NULL OR session_id = ?2 OR session_id IS NULL) ORDER BY cursor LIMIT ?3";
        let params = (cursor, session_id.map(str::to_string), limit);
        self.query(sql, params, |r| feed_item(r)).await
    }

    async fn feed_head(&self) -> StoreResult<i64> {
        let sql = "SELECT MAX(cursor) FROM feed";
        let head = self
            .query_opt(sql, [], |r| r.get::<_, Option<i64>>(0))
            .await?;
        Ok(head.flatten().unwrap_or(0))
    }
}
