//! AOF → chat: follows the coordinator's feed from the stored cursor and posts each
//! event of a bridged session into its thread, under the transaction id `aof.<cursor>`.
//! The cursor is stored only after the event is posted, so a restart resumes at the
//! first event not known to be in the room; one posted but not yet acknowledged is
//! sent again with the same transaction id, which the homeserver deduplicates.

use std::{collections::HashMap, sync::Arc};

use aof_wire::{event::types, sse, Event};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::{
    bridge::{Backoff, Bridge, Retry},
    render::render,
    state::FEED_CURSOR,
};

/// Feed frames of other sessions between two cursor writes (theirs cost nothing to
/// replay, so the cursor need not follow each one).
const SKIP_WRITE_EVERY: u32 = 200;

#[derive(serde::Deserialize)]
struct EventFrame {
    data: Event,
}

impl Bridge {
    /// Follows the feed until `stop`; reconnects with backoff.
    pub async fn feed_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut cursor: i64 = match self.state.get(FEED_CURSOR).await {
            Ok(c) => c.and_then(|c| c.parse().ok()).unwrap_or(0),
            Err(e) => {
                tracing::error!(error = %e, "matrix bridge: cannot read its state");
                return;
            }
        };
        let mut last_answer: HashMap<String, String> = HashMap::new();
        let mut backoff = Backoff::new();
        while !stop.is_cancelled() {
            let failure = tokio::select! {
                _ = stop.cancelled() => break,
                r = self.follow(&mut cursor, &mut last_answer, &mut backoff, &stop) => r,
            };
            if let Err(e) = self.state.set(FEED_CURSOR, &cursor.to_string()).await {
                tracing::error!(error = %e, "matrix bridge: cannot store the feed cursor");
            }
            let wait = backoff.wait();
            tracing::warn!(error = %failure, cursor, retry_in_ms = wait.as_millis() as u64, "AOF feed closed; reconnecting");
            tokio::select! { _ = stop.cancelled() => break, _ = tokio::time::sleep(wait) => {} }
        }
        let _ = self.state.set(FEED_CURSOR, &cursor.to_string()).await;
    }

    /// One connection: returns why it ended.
    async fn follow(
        &self,
        cursor: &mut i64,
        last_answer: &mut HashMap<String, String>,
        backoff: &mut Backoff,
        stop: &CancellationToken,
    ) -> anyhow::Error {
        let resp = match self.aof.feed(*cursor).await {
            Ok(r) => r,
            Err(e) => return e.into(),
        };
        backoff.reset();
        let mut parser = sse::parse::Parser::default();
        let mut body = resp.bytes_stream();
        let mut skipped = 0u32;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return e.into(),
            };
            for frame in parser.feed(&chunk) {
                if frame.event == sse::RESYNC {
                    return anyhow::anyhow!("the coordinator asked for a resync");
                }
                let Some(id) = frame.id.as_deref().and_then(|i| i.parse::<i64>().ok()) else {
                    continue;
                };
                if id <= *cursor {
                    continue;
                }
                let posted = match frame.event.as_str() {
                    sse::EVENT => match serde_json::from_str::<EventFrame>(&frame.data) {
                        Ok(f) => match self.deliver(id, &f.data, last_answer, stop).await {
                            Ok(posted) => posted,
                            Err(e) => return e.into(),
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, cursor = id, "unreadable feed event skipped");
                            false
                        }
                    },
                    _ => false,
                };
                *cursor = id;
                skipped += 1;
                if posted || skipped >= SKIP_WRITE_EVERY {
                    skipped = 0;
                    if let Err(e) = self.state.set(FEED_CURSOR, &id.to_string()).await {
                        return e.into();
                    }
                }
            }
        }
        anyhow::anyhow!("the feed ended")
    }

    /// Posts `e` into its session's thread when the session is bridged and the event
    /// is one people read; retries the homeserver until it takes it (or `stop`).
    async fn deliver(
        &self,
        cursor: i64,
        e: &Event,
        last_answer: &mut HashMap<String, String>,
        stop: &CancellationToken,
    ) -> Result<bool, Retry> {
        let Some(thread) = self.state.thread_of_session(&e.session_id).await? else {
            return Ok(false);
        };
        let Some(text) = render(e, last_answer.get(&e.session_id).map(String::as_str)) else {
            return Ok(false);
        };
        if e.event_type == types::MESSAGE {
            last_answer.insert(e.session_id.clone(), text.clone());
        }
        let txn = format!("aof.{cursor}");
        let mut backoff = Backoff::new();
        loop {
            match self
                .reply(&thread.room_id, &thread.root_event_id, &txn, &text)
                .await
            {
                Ok(()) => return Ok(true),
                Err(Retry::State(e)) => return Err(Retry::State(e)),
                Err(err) => {
                    let wait = backoff.wait();
                    tracing::warn!(error = %err, retry_in_ms = wait.as_millis() as u64, session = %e.session_id, "posting to the homeserver failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Err(err),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }
}
