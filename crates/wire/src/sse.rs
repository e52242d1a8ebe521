//! Server-sent event names and payloads of `GET /sse/sessions`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Event, Session};

pub const INIT: &str = "init";
pub const SESSION_CREATED: &str = "session_created";
pub const SESSION_UPDATED: &str = "session_updated";
pub const SESSION_DELETED: &str = "session_deleted";
pub const EVENT: &str = "event";
pub const RUN_FAILED: &str = "run_failed";
/// AOF-RS: sent before closing a stream whose client fell too far behind to be served.
pub const RESYNC: &str = "resync";

/// One entry of the coordinator's feed: what SSE clients see, with its global cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub cursor: i64,
    /// SSE event name (one of the constants above).
    pub kind: String,
    pub session_id: Option<String>,
    /// The SSE `data` payload as JSON text: serialized once when stored, then shared by
    /// the row, the broadcast and every subscriber's frame.
    pub data: Arc<str>,
}

/// JSON text of a feed payload (`{"data": event}` for events, `{"session": …}` …).
pub fn payload(value: &impl Serialize) -> serde_json::Result<Arc<str>> {
    serde_json::to_string(value).map(Arc::from)
}

/// The feed payload of an event: `{"data": <event>}`.
pub fn event_payload(event: &Event) -> serde_json::Result<Arc<str>> {
    #[derive(Serialize)]
    struct Payload<'a> {
        data: &'a Event,
    }
    payload(&Payload { data: event })
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct SessionPayload {
    pub session: Session,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct EventPayload {
    pub data: Event,
}

/// Text/event-stream parsing, shared by the CLI, runner-side tools and tests.
pub mod parse {
    #[derive(Debug, Clone, Default, PartialEq)]
    pub struct Frame {
        pub id: Option<String>,
        pub event: String,
        pub data: String,
    }

    /// Incremental parser: feed bytes, take complete frames.
    #[derive(Default)]
    pub struct Parser {
        buf: String,
        cur: Frame,
    }

    impl Parser {
        pub fn feed(&mut self, chunk: &[u8]) -> Vec<Frame> {
            self.buf.push_str(&String::from_utf8_lossy(chunk));
            let mut out = Vec::new();
            while let Some(pos) = self.buf.find('\n') {
                let line: String = self.buf.drain(..=pos).collect();
                let line = line.trim_end_matches(['\n', '\r']);
                if line.is_empty() {
                    if !self.cur.data.is_empty() || !self.cur.event.is_empty() {
                        out.push(std::mem::take(&mut self.cur));
                    }
                    continue;
                }
                if line.starts_with(':') {
                    continue; // comment / keep-alive
                }
                let (field, value) = match line.split_once(':') {
                    Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                    None => (line, ""),
                };
                match field {
                    "id" => self.cur.id = Some(value.to_string()),
                    "event" => self.cur.event = value.to_string(),
                    "data" => {
                        if !self.cur.data.is_empty() {
                            self.cur.data.push('\n');
                        }
                        self.cur.data.push_str(value);
                    }
                    _ => {}
                }
            }
            out
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_split_frames_and_skips_comments() {
            let mut p = Parser::default();
            assert!(p.feed(b"id: 3\nevent: ev").is_empty());
            let frames =
                p.feed(b"ent\ndata: {\"a\":1}\n\n: heartbeat\n\nid: 4\ndata: x\ndata: y\n\n");
            assert_eq!(
                frames,
                vec![
                    Frame {
                        id: Some("3".into()),
                        event: "event".into(),
                        data: "{\"a\":1}".into()
                    },
                    Frame {
                        id: Some("4".into()),
                        event: String::new(),
                        data: "x\ny".into()
                    },
                ]
            );
        }
    }
}
