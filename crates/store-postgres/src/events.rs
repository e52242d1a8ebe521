//! Session events and the feed (`EventStore`): append (with idempotency and fencing, the
//! rule in `aof_store::events`, run in SQL here), list, replay.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::Row;
use tokio::sync::broadcast;

use aof_core::run::RunStatus;
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

use crate::{internal, rows::all, PgStore, WriteTx};

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
    // The session row's lock (the UPDATE) comes before the cursor: one session's `seq`s
    // and cursors are in commit order. The transaction has its id already (`BEGIN_WRITE`).
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
    let run_id = run_id.map(str::to_string);
    let (stored, item) = events::appended(session_id, cursor, seq, run_id, event, data);
    w.push_item(item);
    Ok(Some(stored))
}

/// One event: `aof_append_event` (migration 0012), answering in the batch's shape.
const APPEND_ONE: &str = "SELECT outcome, ARRAY[out_cursor] AS out_cursors, \
    ARRAY[out_seq] AS out_seqs, detail, 1 AS failed_index \
    FROM aof_append_event($1, $2, $3, $4, $5, $6, $7)";
/// A batch: `aof_append_events` (migration 0012), every event's checks first.
const APPEND_MANY: &str = "SELECT outcome, out_cursors, out_seqs, detail, failed_index \
    FROM aof_append_events($1, $2, $3, $4, $5, $6, $7)";

impl PgStore {
    /// `writes` in one round trip, one transaction: all stored in order, or nothing. The checks are `aof_store::events`' rule, in SQL.
    async fn append(
        &self,
        session_id: &str,
        writes: Vec<EventWrite>,
    ) -> StoreResult<Vec<Option<StoredEvent>>> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let leased = RunStatus::ALL.into_iter().filter(|s| s.is_leased());
        let leased: Vec<&str> = leased.map(RunStatus::as_str).collect();
        let datas: Vec<Arc<str>> = writes
            .iter()
            .map(|w| sse::event_payload(&w.event))
            .collect::<Result<_, _>>()
            .map_err(internal)?;
        let texts: Vec<&str> = datas.iter().map(|d| &**d).collect();
        let col = |f: fn(&EventWrite) -> Option<&str>| writes.iter().map(f).collect::<Vec<_>>();
        let runs = col(|w| w.run_id.as_deref());
        let idems = col(|w| w.idempotency_key.as_deref());
        let tokens = col(|w| w.lease_token.as_deref());
        let types: Vec<&str> = writes.iter().map(|w| w.event.event_type.as_str()).collect();
        let one = writes.len() == 1;
        let q = sqlx::query(if one { APPEND_ONE } else { APPEND_MANY });
        let q = q.bind(session_id);
        let q = if one {
            let q = q.bind(runs[0]).bind(idems[0]).bind(tokens[0]);
            q.bind(&leased).bind(types[0]).bind(texts[0])
        } else {
            let q = q.bind(&runs).bind(&idems).bind(&tokens);
            q.bind(&leased).bind(&types).bind(&texts)
        };
        let row = q.fetch_one(&self.pool).await.map_err(internal)?;
        let outcome: String = row.get("outcome");
        if !matches!(outcome.as_str(), "stored" | "duplicate") {
            // 1-based in SQL; the event the refusal is about.
            let failed = row
                .get::<Option<i32>, _>("failed_index")
                .and_then(|i| usize::try_from(i).ok()?.checked_sub(1))
                .and_then(|i| runs.get(i).copied().flatten());
            return Err(match outcome.as_str() {
                "no_session" => StoreError::SessionNotFound(session_id.to_string()),
                "need_run_id" => events::need_run_id(),
                "no_run" => StoreError::RunNotFound,
                "lease_conflict" => {
                    let status: Option<String> = row.get("detail");
                    match status.as_deref().map(str::parse::<RunStatus>) {
                        Some(Ok(status)) => events::lease_lost(failed.unwrap_or_default(), status),
                        _ => internal(anyhow::anyhow!("aof_append_event(s): status {status:?}")),
                    }
                }
                other => internal(anyhow::anyhow!("aof_append_event(s): outcome {other}")),
            });
        }
        // NULL: a key stored before (or earlier in this batch), a duplicate.
        let cursors: Vec<Option<i64>> = row.get("out_cursors");
        let seqs: Vec<Option<i64>> = row.get("out_seqs");
        if cursors.len() != writes.len() || seqs.len() != writes.len() {
            return Err(internal(anyhow::anyhow!(
                "aof_append_event(s): {} cursors for {} events",
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
            let (stored, item) =
                events::appended(session_id, cursor, seq, write.run_id, write.event, data);
            items.push(item);
            out.push(Some(stored));
        }
        // Live subscribers get each event as its own item, in cursor order.
        self.shared.committed(items).await;
        Ok(out)
    }
}

#[async_trait]
impl EventStore for PgStore {
    fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.shared.feed_tx.subscribe()
    }

    async fn append_event(
        &self,
        session_id: &str,
        write: EventWrite,
    ) -> StoreResult<Option<StoredEvent>> {
        Ok(self.append(session_id, vec![write]).await?.pop().flatten())
    }

    async fn append_events(
        &self,
        session_id: &str,
        writes: Vec<EventWrite>,
    ) -> StoreResult<Vec<Option<StoredEvent>>> {
        self.append(session_id, writes).await
    }

    async fn list_events(
        &self,
        session_id: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<StoredEvent>> {
        let (after, limit) = events::page(after, limit);
        let sql = "SELECT cursor, seq, run_id, data FROM feed \
                   WHERE session_id = $1 AND kind = 'event' AND cursor > $2 ORDER BY cursor LIMIT $3";
        let q = sqlx::query(sql).bind(session_id).bind(after).bind(limit);
        let rows = q.fetch_all(&self.pool).await.map_err(internal)?;
        all(rows, stored_event)
    }

    async fn session_result(&self, session_id: &str) -> StoreResult<Option<SessionResult>> {
        let sql = "SELECT cursor, seq, run_id, data FROM feed WHERE session_id = $1 \
                   AND kind = 'event' AND event_type = $2 ORDER BY cursor DESC LIMIT 1";
        let q = sqlx::query(sql).bind(session_id).bind(types::RESULT);
        let row = q.fetch_optional(&self.pool).await.map_err(internal)?;
        let latest = row.as_ref().map(stored_event).transpose()?;
        Ok(latest.map(|ev| events::session_result(ev.event)))
    }

    async fn feed_after(
        &self,
        cursor: i64,
        session_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<FeedItem>> {
        // Never above the watermark: a cursor beyond it may still be overtaken by a
        // smaller one that commits later (`live`).
        let until = self.released();
        let q = sqlx::query(
            "SELECT cursor, kind, session_id, data FROM feed WHERE cursor > $1 AND cursor <= $2 \
             AND ($3::text IS NULL OR session_id = $3 OR session_id IS NULL) \
             ORDER BY cursor LIMIT $4",
        );
        let q = q.bind(cursor).bind(until).bind(session_id).bind(limit);
        all(q.fetch_all(&self.pool).await.map_err(internal)?, feed_item)
    }

    async fn feed_head(&self) -> StoreResult<i64> {
        Ok(self.released())
    }
}
