//! Per-credential caps on long-lived requests: SSE streams, runner long-polls and the
//! orchestrator MCP calls that wait for a child session. Each holds a task, a store
//! subscription and a socket for as long as it lasts, so one leaked or hostile key
//! could otherwise hold them by the thousand. Beyond its cap a credential gets 429 with
//! a stable code and `Retry-After` (a tool error for MCP calls).
//!
//! Counted per credential: an API key's id, an OIDC subject, a session token's session.
//! With auth off there is no identity to tell callers apart and the listener is
//! loopback (every peer is 127.0.0.1), so all callers share one bucket. The runner
//! inside `aof up` (auth on) is exempt: it is this process. The counters live in this
//! process only; coordinators sharing a database count separately.

use aof_wire::error::ErrorCode;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{
    auth::{Caller, Principal},
    error::ApiError,
    AppState,
};

/// What a slot is held for; each kind has its own cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `GET /sse/sessions`, for as long as the stream is open.
    Stream,
    /// `GET /runner/runs`, until it answers.
    Poll,
    /// A `mode: sync` orchestrator MCP call, until the child's run ends.
    McpWait,
}

/// The caps (`coordinator.max_*_per_key`). Generous defaults: a dashboard in several
/// tabs opens one stream per tab; a fleet of runners sharing one key holds one poll
/// per runner (a key may register any number of runner ids, so counting per runner id
/// would bound nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapsConfig {
    pub streams: usize,
    pub polls: usize,
    pub mcp_waits: usize,
}

impl Default for CapsConfig {
    fn default() -> Self {
        CapsConfig {
            streams: 64,
            polls: 256,
            mcp_waits: 64,
        }
    }
}

/// The counters. Locked only to bump a number, never across an await.
#[derive(Debug)]
pub struct Caps {
    cfg: CapsConfig,
    /// `Retry-After` for a refused poll: by then every poll held now has answered.
    poll_retry: u64,
    held: Mutex<HashMap<(Kind, String), usize>>,
}

/// Seconds a refused stream is told to wait before trying again.
const STREAM_RETRY: u64 = 10;

impl Caps {
    pub fn new(cfg: CapsConfig, poll_timeout: std::time::Duration) -> Arc<Caps> {
        Arc::new(Caps {
            cfg,
            poll_retry: poll_timeout.as_secs().max(1),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The bucket a principal counts in; `None`: not counted.
    fn bucket(p: &Principal) -> Option<String> {
        match p {
            Principal::Internal => None,
            Principal::Open => Some("open".into()),
            Principal::Key { id, .. } => Some(format!("key:{id}")),
            Principal::Oidc { subject, .. } => Some(format!("oidc:{subject}")),
            Principal::Session { session_id, .. } => Some(format!("session:{session_id}")),
        }
    }

    fn limit(&self, kind: Kind) -> usize {
        match kind {
            Kind::Stream => self.cfg.streams,
            Kind::Poll => self.cfg.polls,
            Kind::McpWait => self.cfg.mcp_waits,
        }
    }

    /// Takes a slot of `kind` for `p`, released when the returned guard drops.
    pub fn acquire(self: &Arc<Self>, kind: Kind, p: &Principal) -> Result<Slot, ApiError> {
        let Some(bucket) = Caps::bucket(p) else {
            return Ok(Slot(None));
        };
        let limit = self.limit(kind);
        let key = (kind, bucket);
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let n = held.entry(key.clone()).or_insert(0);
            if *n < limit {
                *n += 1;
                return Ok(Slot(Some((self.clone(), key))));
            }
        }
        tracing::warn!(bucket = %key.1, ?kind, limit, "cap reached; request refused");
        let (what, code, retry) = match kind {
            Kind::Stream => ("event streams", ErrorCode::TooManyStreams, STREAM_RETRY),
            Kind::Poll => (
                "runner long-polls",
                ErrorCode::TooManyPolls,
                self.poll_retry,
            ),
            Kind::McpWait => ("waiting MCP calls", ErrorCode::TooManyWaits, STREAM_RETRY),
        };
        Err(ApiError::TooMany(
            format!("This credential already holds {limit} {what} (the most allowed); close one or retry later"),
            code,
            retry,
        ))
    }

    /// Slots held now of `kind` by `p` (tests, metrics).
    pub fn held(&self, kind: Kind, p: &Principal) -> usize {
        let Some(bucket) = Caps::bucket(p) else {
            return 0;
        };
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&(kind, bucket)).copied().unwrap_or(0)
    }

    fn release(&self, key: &(Kind, String)) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(key);
            }
        }
    }
}

/// One held slot; dropping it gives the slot back.
#[must_use = "the slot is released as soon as it is dropped"]
pub struct Slot(Option<(Arc<Caps>, (Kind, String))>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((caps, key)) = &self.0 {
            caps.release(key);
        }
    }
}

/// Extractor: an event-stream slot for the caller, or 429 before the handler runs.
pub struct StreamSlot(pub Slot);

impl FromRequestParts<AppState> for StreamSlot {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let Caller(p) = Caller::from_request_parts(parts, st).await?;
        st.caps.acquire(Kind::Stream, &p).map(StreamSlot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aof_wire::auth::Role;

    fn key(id: &str) -> Principal {
        Principal::Key {
            id: id.into(),
            name: None,
            role: Role::Viewer,
        }
    }

    #[test]
    fn counts_per_credential_and_kind_and_releases_on_drop() {
        let caps = Caps::new(
            CapsConfig {
                streams: 2,
                polls: 1,
                mcp_waits: 1,
            },
            std::time::Duration::from_secs(30),
        );
        let (a, b) = (key("a"), key("b"));
        let s1 = caps.acquire(Kind::Stream, &a).unwrap();
        let _s2 = caps.acquire(Kind::Stream, &a).unwrap();
        let e = caps.acquire(Kind::Stream, &a).err().unwrap();
        assert_eq!(
            (e.status().as_u16(), e.code()),
            (429, ErrorCode::TooManyStreams)
        );
        // Another key, and another kind of the same key, are counted apart.
        let _b1 = caps.acquire(Kind::Stream, &b).unwrap();
        let _p = caps.acquire(Kind::Poll, &a).unwrap();
        let e = caps.acquire(Kind::Poll, &a).err().unwrap();
        assert_eq!(e.code(), "too_many_polls");
        assert!(matches!(e, ApiError::TooMany(_, _, 30)));
        drop(s1);
        assert_eq!(caps.held(Kind::Stream, &a), 1);
        let _s3 = caps.acquire(Kind::Stream, &a).unwrap();
        // A session token counts as its session; the in-process runner is exempt.
        let s = Principal::Session {
            session_id: "ses_1".into(),
            run_id: "run_1".into(),
        };
        let _w = caps.acquire(Kind::McpWait, &s).unwrap();
        let e = caps.acquire(Kind::McpWait, &s).err().unwrap();
        assert_eq!(e.code(), "too_many_waits");
        let internal: Vec<Slot> = (0..5)
            .map(|_| caps.acquire(Kind::Poll, &Principal::Internal).unwrap())
            .collect();
        assert_eq!(internal.len(), 5);
        assert_eq!(caps.held(Kind::Poll, &Principal::Internal), 0);
        // Auth off: everyone in one bucket.
        let _o = caps.acquire(Kind::Poll, &Principal::Open).unwrap();
        assert!(caps.acquire(Kind::Poll, &Principal::Open).is_err());
    }

    #[test]
    fn an_emptied_bucket_is_forgotten() {
        let caps = Caps::new(CapsConfig::default(), std::time::Duration::from_secs(1));
        drop(caps.acquire(Kind::Stream, &key("a")).unwrap());
        assert!(caps.held.lock().unwrap().is_empty());
    }
}
