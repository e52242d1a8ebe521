//! Session events and the feed: append (with idempotency and fencing), list, replay.

use rusqlite::{Connection, OptionalExtension, Row};

use aof_store::{EventWrite, StoreError, StoreResult};
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

/// Appends one event inside `w`. `Ok(None)`: the idempotency key was stored before.
pub(crate) fn append_in_tx(
    w: &mut Tx<'_>,
    session_id: &str,
    event: Event,
    run_id: Option<&str>,
    idem_key: Option<&str>,
) -> StoreResult<Option<StoredEvent>> {
    if let Some(key) = idem_key {
        if seen_key(w, session_id, key)? {
            return Ok(None);
        }
    }
    // One statement: the session's next `seq` is read inside the INSERT, and the
    // `feed_next_seq` trigger moves it on.
    let data = serde_json::json!({ "data": &event });
    let (cursor, seq): (i64, i64) = w
        .prepare_cached(
            "INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data) \
             SELECT 'event', session_id, next_seq, ?2, ?3, ?4, ?5 FROM sessions WHERE session_id = ?1 \
             RETURNING cursor, seq",
        )
        .and_then(|mut st| {
            st.query_row(
                (session_id, run_id, idem_key, &event.event_type, data.to_string()),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .map_err(internal)?
        .ok_or_else(|| StoreError::SessionNotFound(session_id.to_string()))?;
    w.push_item(FeedItem {
        cursor,
        kind: sse::EVENT.to_string(),
        session_id: Some(session_id.to_string()),
        data,
    });
    Ok(Some(StoredEvent {
        id: cursor,
        seq,
        run_id: run_id.map(str::to_string),
        event,
    }))
}

fn stored_from_row(r: &Row) -> rusqlite::Result<StoredEvent> {
    let data: String = r.get("data")?;
    let mut v: serde_json::Value =
        serde_json::from_str(&data).map_err(|e| rows::bad_column("data", e))?;
    let event: Event =
        serde_json::from_value(v["data"].take()).map_err(|e| rows::bad_column("data", e))?;
    Ok(StoredEvent {
        id: r.get("cursor")?,
        seq: r.get("seq")?,
        run_id: r.get("run_id")?,
        event,
    })
}

/// The common case in one statement: the session check, the next `seq`, the lease check
/// and the idempotency rule all ride in the INSERT. `Ok(None)`: nothing was inserted.
fn append_fast(
    w: &mut Tx<'_>,
    session_id: &str,
    write: &EventWrite,
) -> StoreResult<Option<StoredEvent>> {
    if write.lease_token.is_some() && write.run_id.is_none() {
        return Ok(None);
    }
    let data = serde_json::json!({ "data": &write.event });
    let row: Option<(i64, i64)> = w
        .prepare_cached(
            "INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data) \
             SELECT 'event', s.session_id, s.next_seq, ?2, ?3, ?4, ?5 FROM sessions s \
             WHERE s.session_id = ?1 AND (?6 IS NULL OR EXISTS (SELECT 1 FROM runs r \
               WHERE r.run_id = ?2 AND r.session_id = ?1 AND r.lease_token = ?6 \
               AND r.status IN ('claimed','running','stopping'))) \
             ON CONFLICT DO NOTHING RETURNING cursor, seq",
        )
        .and_then(|mut st| {
            st.query_row(
                (
                    session_id,
                    &write.run_id,
                    &write.idempotency_key,
                    &write.event.event_type,
                    data.to_string(),
                    &write.lease_token,
                ),
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .map_err(internal)?;
    let Some((cursor, seq)) = row else {
        return Ok(None);
    };
    w.push_item(FeedItem {
        cursor,
        kind: sse::EVENT.to_string(),
        session_id: Some(session_id.to_string()),
        data,
    });
    Ok(Some(StoredEvent {
        id: cursor,
        seq,
        run_id: write.run_id.clone(),
        event: write.event.clone(),
    }))
}

/// Appends `write`, or tells why not: no session, a repeated key (`Ok(None)`) or a stale
/// lease.
fn append(w: &mut Tx<'_>, session_id: &str, write: EventWrite) -> StoreResult<Option<StoredEvent>> {
    if let Some(stored) = append_fast(w, session_id, &write)? {
        return Ok(Some(stored));
    }
    if rows::load_session(w, session_id)?.is_none() {
        return Err(StoreError::SessionNotFound(session_id.to_string()));
    }
    if let Some(token) = &write.lease_token {
        // A retry of an event that was stored is fine even if the lease moved on since.
        if let Some(key) = &write.idempotency_key {
            if seen_key(w, session_id, key)? {
                return Ok(None);
            }
        }
        let run_id = write.run_id.as_deref().ok_or_else(|| {
            StoreError::Illegal("a lease token needs the x-aof-run-id header".into())
        })?;
        let run = rows::load_run(w, run_id)?.ok_or(StoreError::RunNotFound)?;
        if run.run.session_id != session_id
            || !run.status.is_leased()
            || run.lease_token.as_deref() != Some(token.as_str())
        {
            return Err(StoreError::LeaseConflict(format!(
                "lease for run {run_id} is no longer held (run is {})",
                run.status
            )));
        }
    }
    append_in_tx(
        w,
        session_id,
        write.event,
        write.run_id.as_deref(),
        write.idempotency_key.as_deref(),
    )
}

impl SqliteStore {
    pub(crate) async fn append_event_impl(
        &self,
        session_id: &str,
        write: EventWrite,
    ) -> StoreResult<Option<StoredEvent>> {
        let sid = session_id.to_string();
        // Answered only once the transaction holding the row is committed (a failed
        // commit, e.g. disk full, comes back here as an error).
        self.write(move |w| append(w, &sid, write)).await
    }

    /// One write job for the whole batch: all stored, in order, or none (a failing
    /// event rolls the job back).
    pub(crate) async fn append_events_impl(
        &self,
        session_id: &str,
        writes: Vec<EventWrite>,
    ) -> StoreResult<Vec<Option<StoredEvent>>> {
        let sid = session_id.to_string();
        self.write(move |w| {
            writes
                .into_iter()
                .map(|write| append(w, &sid, write))
                .collect()
        })
        .await
    }

    pub(crate) async fn list_events_impl(
        &self,
        session_id: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let sid = session_id.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT cursor, seq, run_id, data FROM feed \
                 WHERE session_id = ? AND kind = 'event' AND cursor > ? ORDER BY cursor LIMIT ?",
            )
            .and_then(|mut st| {
                st.query_map(
                    (sid, after.unwrap_or(0), limit.unwrap_or(-1)),
                    stored_from_row,
                )?
                .collect()
            })
            .map_err(internal)
        })
        .await
    }

    pub(crate) async fn session_result_impl(
        &self,
        session_id: &str,
    ) -> StoreResult<Option<SessionResult>> {
        let sid = session_id.to_string();
        let ev = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT cursor, seq, run_id, data FROM feed WHERE session_id = ? \
                     AND kind = 'event' AND event_type = ? ORDER BY cursor DESC LIMIT 1",
                )
                .and_then(|mut st| {
                    st.query_row((sid, types::RESULT), stored_from_row)
                        .optional()
                })
                .map_err(internal)
            })
            .await?;
        Ok(ev.map(|ev| SessionResult {
            result_text: ev.event.result_text,
            result_data: ev.event.result_data,
        }))
    }

    pub(crate) async fn feed_after_impl(
        &self,
        cursor: i64,
        session_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FeedItem>> {
        let sid = session_id.map(str::to_string);
        self.read(move |c| {
            c.prepare_cached(
                "SELECT cursor, kind, session_id, data FROM feed WHERE cursor > ?1 \
                 AND (?2 IS NULL OR session_id = ?2 OR session_id IS NULL) ORDER BY cursor LIMIT ?3",
            )
            .and_then(|mut st| {
                st.query_map((cursor, sid, limit), |r| {
                    let data: String = r.get("data")?;
                    Ok(FeedItem {
                        cursor: r.get("cursor")?,
                        kind: r.get("kind")?,
                        session_id: r.get("session_id")?,
                        data: serde_json::from_str(&data)
                            .map_err(|e| rows::bad_column("data", e))?,
                    })
                })?
                .collect()
            })
            .map_err(internal)
        })
        .await
    }

    pub(crate) async fn feed_head_impl(&self) -> StoreResult<i64> {
        self.read(|c| {
            c.query_row("SELECT MAX(cursor) FROM feed", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(internal)
        })
        .await
        .map(|h| h.unwrap_or(0))
    }
}
