//! Session events and the feed: append (with idempotency and fencing), list, replay.

use sqlx::Row;

use aof_store::{EventWrite, StoreError, StoreResult};
use aof_wire::{
    event::types,
    sse::{self, FeedItem},
    Event, SessionResult, StoredEvent,
};

use crate::{internal, rows, SqliteStore, WriteTx};

/// Appends one event inside `w`. `Ok(None)`: the idempotency key was stored before.
pub(crate) async fn append_in_tx(
    w: &mut WriteTx<'_>,
    session_id: &str,
    event: Event,
    run_id: Option<&str>,
    idem_key: Option<&str>,
) -> StoreResult<Option<StoredEvent>> {
    if let Some(key) = idem_key {
        let seen: Option<i64> =
            sqlx::query_scalar("SELECT cursor FROM feed WHERE session_id = ? AND idem_key = ?")
                .bind(session_id)
                .bind(key)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(internal)?;
        if seen.is_some() {
            return Ok(None);
        }
    }
    // One statement: the session's next `seq` is read inside the INSERT, and the
    // `feed_next_seq` trigger moves it on.
    let data = serde_json::json!({ "data": &event });
    let row = sqlx::query(
        "INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data) \
         SELECT 'event', session_id, next_seq, ?2, ?3, ?4, ?5 FROM sessions WHERE session_id = ?1 \
         RETURNING cursor, seq",
    )
    .bind(session_id)
    .bind(run_id)
    .bind(idem_key)
    .bind(&event.event_type)
    .bind(data.to_string())
    .fetch_optional(&mut *w.tx)
    .await
    .map_err(internal)?
    .ok_or_else(|| StoreError::SessionNotFound(session_id.to_string()))?;
    let (cursor, seq): (i64, i64) = (row.get("cursor"), row.get("seq"));
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

fn stored_from_row(r: &sqlx::sqlite::SqliteRow) -> StoreResult<StoredEvent> {
    let data: String = r.get("data");
    let mut v: serde_json::Value = serde_json::from_str(&data).map_err(internal)?;
    let event: Event = serde_json::from_value(v["data"].take()).map_err(internal)?;
    Ok(StoredEvent {
        id: r.get("cursor"),
        seq: r.get("seq"),
        run_id: r.get("run_id"),
        event,
    })
}

impl SqliteStore {
    /// One statement: the session check, the next `seq`, the lease check and the
    /// idempotency rule all ride in the INSERT, so it joins a group commit without a
    /// savepoint. `Ok(None)`: nothing was inserted, and the careful path below finds out why.
    async fn append_fast(
        &self,
        session_id: &str,
        write: &EventWrite,
    ) -> StoreResult<Option<StoredEvent>> {
        if write.lease_token.is_some() && write.run_id.is_none() {
            return Ok(None);
        }
        let data = serde_json::json!({ "data": &write.event });
        let mut w = self.begin_single().await?;
        let row = sqlx::query(
            "INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data) \
             SELECT 'event', s.session_id, s.next_seq, ?2, ?3, ?4, ?5 FROM sessions s \
             WHERE s.session_id = ?1 AND (?6 IS NULL OR EXISTS (SELECT 1 FROM runs r \
               WHERE r.run_id = ?2 AND r.session_id = ?1 AND r.lease_token = ?6 \
               AND r.status IN ('claimed','running','stopping'))) \
             ON CONFLICT DO NOTHING RETURNING cursor, seq",
        )
        .bind(session_id)
        .bind(&write.run_id)
        .bind(&write.idempotency_key)
        .bind(&write.event.event_type)
        .bind(data.to_string())
        .bind(&write.lease_token)
        .fetch_all(&mut *w.tx)
        .await
        .map_err(internal)?;
        let Some(row) = row.into_iter().next() else {
            // Nothing written; end the job so a batch it joined goes on.
            w.commit().await?;
            return Ok(None);
        };
        let (cursor, seq): (i64, i64) = (row.get("cursor"), row.get("seq"));
        w.push_item(FeedItem {
            cursor,
            kind: sse::EVENT.to_string(),
            session_id: Some(session_id.to_string()),
            data,
        });
        // Answered only once the transaction holding the row is committed (a failed
        // commit, e.g. disk full, comes back here as an error).
        w.commit().await?;
        Ok(Some(StoredEvent {
            id: cursor,
            seq,
            run_id: write.run_id.clone(),
            event: write.event.clone(),
        }))
    }

    pub(crate) async fn append_event_impl(
        &self,
        session_id: &str,
        write: EventWrite,
    ) -> StoreResult<Option<StoredEvent>> {
        if let Some(stored) = self.append_fast(session_id, &write).await? {
            return Ok(Some(stored));
        }
        // Nothing inserted: no session, a repeated key or a stale lease. The
        // transactional path tells which (and inserts, if things changed meanwhile).
        let mut w = self.begin().await?;
        if rows::load_session(&mut w.tx, session_id).await?.is_none() {
            return Err(StoreError::SessionNotFound(session_id.to_string()));
        }
        if let Some(token) = &write.lease_token {
            // A retry of an event that was stored is fine even if the lease moved on since.
            if let Some(key) = &write.idempotency_key {
                let seen: Option<i64> = sqlx::query_scalar(
                    "SELECT cursor FROM feed WHERE session_id = ? AND idem_key = ?",
                )
                .bind(session_id)
                .bind(key)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(internal)?;
                if seen.is_some() {
                    return Ok(None);
                }
            }
            let run_id = write.run_id.as_deref().ok_or_else(|| {
                StoreError::Illegal("a lease token needs the x-aof-run-id header".into())
            })?;
            let run = rows::load_run(&mut w.tx, run_id)
                .await?
                .ok_or(StoreError::RunNotFound)?;
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
        let out = append_in_tx(
            &mut w,
            session_id,
            write.event,
            write.run_id.as_deref(),
            write.idempotency_key.as_deref(),
        )
        .await?;
        w.commit().await?;
        Ok(out)
    }

    pub(crate) async fn list_events_impl(
        &self,
        session_id: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = sqlx::query(
            "SELECT cursor, seq, run_id, data FROM feed \
             WHERE session_id = ? AND kind = 'event' AND cursor > ? ORDER BY cursor LIMIT ?",
        )
        .bind(session_id)
        .bind(after.unwrap_or(0))
        .bind(limit.unwrap_or(-1))
        .fetch_all(&self.readers)
        .await
        .map_err(internal)?;
        rows.iter().map(stored_from_row).collect()
    }

    pub(crate) async fn session_result_impl(
        &self,
        session_id: &str,
    ) -> StoreResult<Option<SessionResult>> {
        let row = sqlx::query(
            "SELECT cursor, seq, run_id, data FROM feed WHERE session_id = ? AND kind = 'event' \
             AND event_type = ? ORDER BY cursor DESC LIMIT 1",
        )
        .bind(session_id)
        .bind(types::RESULT)
        .fetch_optional(&self.readers)
        .await
        .map_err(internal)?;
        let Some(row) = row else { return Ok(None) };
        let ev = stored_from_row(&row)?.event;
        Ok(Some(SessionResult {
            result_text: ev.result_text,
            result_data: ev.result_data,
        }))
    }

    pub(crate) async fn feed_after_impl(
        &self,
        cursor: i64,
        session_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FeedItem>> {
        let rows = match session_id {
            Some(sid) => sqlx::query(
                "SELECT cursor, kind, session_id, data FROM feed \
                 WHERE cursor > ? AND (session_id = ? OR session_id IS NULL) ORDER BY cursor LIMIT ?",
            )
            .bind(cursor)
            .bind(sid)
            .bind(limit)
            .fetch_all(&self.readers)
            .await,
            None => sqlx::query(
                "SELECT cursor, kind, session_id, data FROM feed WHERE cursor > ? ORDER BY cursor LIMIT ?",
            )
            .bind(cursor)
            .bind(limit)
            .fetch_all(&self.readers)
            .await,
        }
        .map_err(internal)?;
        rows.iter()
            .map(|r| {
                let data: String = r.get("data");
                Ok(FeedItem {
                    cursor: r.get("cursor"),
                    kind: r.get("kind"),
                    session_id: r.get("session_id"),
                    data: serde_json::from_str(&data).map_err(internal)?,
                })
            })
            .collect()
    }

    pub(crate) async fn feed_head_impl(&self) -> StoreResult<i64> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(cursor) FROM feed")
            .fetch_one(&self.readers)
            .await
            .map_err(internal)?;
        Ok(head.unwrap_or(0))
    }
}
