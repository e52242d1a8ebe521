//! Session events and the feed: append (with idempotency and fencing), list, replay.

use sqlx::Row;

use aof_store::{EventWrite, StoreError, StoreResult};
use aof_wire::{
    event::types,
    sse::{self, FeedItem},
    Event, SessionResult, StoredEvent,
};

use aof_core::run::RunStatus;

use crate::{internal, live, PgStore, WriteTx, WRITE_LOCK_KEY};

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
            sqlx::query_scalar("SELECT cursor FROM feed WHERE session_id = $1 AND idem_key = $2")
                .bind(session_id)
                .bind(key)
                .fetch_optional(&mut *w.tx)
                .await
                .map_err(internal)?;
        if seen.is_some() {
            return Ok(None);
        }
    }
    // The row lock on the session plus the store's write lock: `seq` and `cursor` are
    // both taken in commit order. One statement: each round trip here is paid under the
    // write lock.
    let data = sse::event_payload(&event).map_err(internal)?;
    let row = sqlx::query(
        "WITH s AS (UPDATE sessions SET next_seq = next_seq + 1 WHERE session_id = $1 \
         RETURNING next_seq - 1 AS seq) \
         INSERT INTO feed(kind, session_id, seq, run_id, idem_key, event_type, data) \
         SELECT 'event', $1, s.seq, $2, $3, $4, $5 FROM s RETURNING cursor, seq",
    )
    .bind(session_id)
    .bind(run_id)
    .bind(idem_key)
    .bind(&event.event_type)
    .bind(&*data)
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

fn stored_from_row(r: &sqlx::postgres::PgRow) -> StoreResult<StoredEvent> {
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

impl PgStore {
    /// One round trip (`aof_append_event`, migration 0005) under the process's write
    /// lock; the same checks, in the same order, as a write inside `WriteTx`.
    pub(crate) async fn append_event_impl(
        &self,
        session_id: &str,
        write: EventWrite,
    ) -> StoreResult<Option<StoredEvent>> {
        let leased: Vec<&str> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_leased())
            .map(RunStatus::as_str)
            .collect();
        let data = sse::event_payload(&write.event).map_err(internal)?;
        let _guard = self.shared.write_lock.lock().await;
        let row = sqlx::query(
            "SELECT outcome, out_cursor, out_seq, detail \
             FROM aof_append_event($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(WRITE_LOCK_KEY)
        .bind(session_id)
        .bind(write.run_id.as_deref())
        .bind(write.idempotency_key.as_deref())
        .bind(write.lease_token.as_deref())
        .bind(&leased)
        .bind(&write.event.event_type)
        .bind(&*data)
        .bind(live::CHANNEL)
        .bind(&self.shared.instance)
        .fetch_one(&self.pool)
        .await
        .map_err(internal)?;
        let outcome: String = row.get("outcome");
        match outcome.as_str() {
            "stored" => {}
            "duplicate" => return Ok(None),
            "no_session" => return Err(StoreError::SessionNotFound(session_id.to_string())),
            "need_run_id" => {
                return Err(StoreError::Illegal(
                    "a lease token needs the x-aof-run-id header".into(),
                ))
            }
            "no_run" => return Err(StoreError::RunNotFound),
            "lease_conflict" => {
                let status: Option<String> = row.get("detail");
                return Err(StoreError::LeaseConflict(format!(
                    "lease for run {} is no longer held (run is {})",
                    write.run_id.as_deref().unwrap_or_default(),
                    status.unwrap_or_default()
                )));
            }
            other => {
                return Err(internal(anyhow::anyhow!(
                    "aof_append_event: outcome {other}"
                )))
            }
        }
        let cursor: i64 = row.get("out_cursor");
        let stored = StoredEvent {
            id: cursor,
            seq: row.get("out_seq"),
            run_id: write.run_id,
            event: write.event,
        };
        self.publish(vec![FeedItem {
            cursor,
            kind: sse::EVENT.to_string(),
            session_id: Some(session_id.to_string()),
            data,
        }])
        .await;
        Ok(Some(stored))
    }

    /// A batch in one round trip and one transaction (`aof_append_events`, migration
    /// 0006): every event's checks first, then all stored in order, or nothing.
    pub(crate) async fn append_events_impl(
        &self,
        session_id: &str,
        writes: Vec<EventWrite>,
    ) -> StoreResult<Vec<Option<StoredEvent>>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let leased: Vec<&str> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_leased())
            .map(RunStatus::as_str)
            .collect();
        let datas: Vec<std::sync::Arc<str>> = writes
            .iter()
            .map(|w| sse::event_payload(&w.event))
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        let texts: Vec<&str> = datas.iter().map(|d| &**d).collect();
        let runs: Vec<Option<&str>> = writes.iter().map(|w| w.run_id.as_deref()).collect();
        let idems: Vec<Option<&str>> = writes
            .iter()
            .map(|w| w.idempotency_key.as_deref())
            .collect();
        let tokens: Vec<Option<&str>> = writes.iter().map(|w| w.lease_token.as_deref()).collect();
        let types: Vec<&str> = writes.iter().map(|w| w.event.event_type.as_str()).collect();
        let _guard = self.shared.write_lock.lock().await;
        let row = sqlx::query(
            "SELECT outcome, out_cursors, out_seqs, detail, failed_index \
             FROM aof_append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(WRITE_LOCK_KEY)
        .bind(session_id)
        .bind(&runs)
        .bind(&idems)
        .bind(&tokens)
        .bind(&leased)
        .bind(&types)
        .bind(&texts)
        .bind(live::CHANNEL)
        .bind(&self.shared.instance)
        .fetch_one(&self.pool)
        .await
        .map_err(internal)?;
        let outcome: String = row.get("outcome");
        // 1-based in SQL; the event the refusal is about.
        let failed = row
            .get::<Option<i32>, _>("failed_index")
            .and_then(|i| usize::try_from(i).ok()?.checked_sub(1))
            .and_then(|i| writes.get(i));
        match outcome.as_str() {
            "stored" => {}
            "no_session" => return Err(StoreError::SessionNotFound(session_id.to_string())),
            "need_run_id" => {
                return Err(StoreError::Illegal(
                    "a lease token needs the x-aof-run-id header".into(),
                ))
            }
            "no_run" => return Err(StoreError::RunNotFound),
            "lease_conflict" => {
                let status: Option<String> = row.get("detail");
                return Err(StoreError::LeaseConflict(format!(
                    "lease for run {} is no longer held (run is {})",
                    failed.and_then(|w| w.run_id.as_deref()).unwrap_or_default(),
                    status.unwrap_or_default()
                )));
            }
            other => {
                return Err(internal(anyhow::anyhow!(
                    "aof_append_events: outcome {other}"
                )))
            }
        }
        let cursors: Vec<Option<i64>> = row.get("out_cursors");
        let seqs: Vec<Option<i64>> = row.get("out_seqs");
        if cursors.len() != writes.len() || seqs.len() != writes.len() {
            return Err(internal(anyhow::anyhow!(
                "aof_append_events: {} cursors for {} events",
                cursors.len(),
                writes.len()
            )));
        }
        let mut out = Vec::with_capacity(writes.len());
        let mut items = Vec::new();
        for (((write, data), cursor), seq) in writes.into_iter().zip(datas).zip(cursors).zip(seqs) {
            let (Some(cursor), Some(seq)) = (cursor, seq) else {
                out.push(None);
                continue;
            };
            items.push(FeedItem {
                cursor,
                kind: sse::EVENT.to_string(),
                session_id: Some(session_id.to_string()),
                data,
            });
            out.push(Some(StoredEvent {
                id: cursor,
                seq,
                run_id: write.run_id,
                event: write.event,
            }));
        }
        // Live subscribers get each event as its own item, in cursor order.
        self.publish(items).await;
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
             WHERE session_id = $1 AND kind = 'event' AND cursor > $2 ORDER BY cursor LIMIT $3",
        )
        .bind(session_id)
        .bind(after.unwrap_or(0))
        .bind(limit.filter(|l| *l >= 0))
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        rows.iter().map(stored_from_row).collect()
    }

    pub(crate) async fn session_result_impl(
        &self,
        session_id: &str,
    ) -> StoreResult<Option<SessionResult>> {
        let row = sqlx::query(
            "SELECT cursor, seq, run_id, data FROM feed WHERE session_id = $1 AND kind = 'event' \
             AND event_type = $2 ORDER BY cursor DESC LIMIT 1",
        )
        .bind(session_id)
        .bind(types::RESULT)
        .fetch_optional(&self.pool)
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
                 WHERE cursor > $1 AND (session_id = $2 OR session_id IS NULL) ORDER BY cursor LIMIT $3",
            )
            .bind(cursor)
            .bind(sid)
            .bind(limit)
            .fetch_all(&self.pool)
            .await,
            None => sqlx::query(
                "SELECT cursor, kind, session_id, data FROM feed WHERE cursor > $1 ORDER BY cursor LIMIT $2",
            )
            .bind(cursor)
            .bind(limit)
            .fetch_all(&self.pool)
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
                    data: data.into(),
                })
            })
            .collect()
    }

    pub(crate) async fn feed_head_impl(&self) -> StoreResult<i64> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(cursor) FROM feed")
            .fetch_one(&self.pool)
            .await
            .map_err(internal)?;
        Ok(head.unwrap_or(0))
    }
}
