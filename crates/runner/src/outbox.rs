//! One run's outbox: what the execution has to tell the coordinator (events and the
//! executor-session bind), delivered strictly in order by a separate task.
//!
//! The queue is unbounded on purpose: while the coordinator is unreachable the executor
//! keeps running and its output waits here, instead of stalling the agent process.

use std::sync::Arc;

use aof_executors::ExecEvent;
use aof_wire::{event::types, session::BindRequest, Event};
use tokio::sync::mpsc;

use crate::{
    active::{RunControl, StopReason},
    backoff::{retry, Attempt},
    client::{Client, RunRef},
};

/// One queued write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// `key` is the idempotency key, fixed when queued so a re-send reuses it.
    Event {
        key: String,
        event: Box<Event>,
    },
    Bind(BindRequest),
}

/// What an executor event becomes before it gets a key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mapped {
    Event(Box<Event>),
    /// The executor's own session id, to bind to the session.
    Bind(String),
}

/// Event type of a line the agent wrote to stderr (the text is in `error`).
pub(crate) const STDERR_EVENT: &str = "stderr";

/// Event types an executor may not post as its own: the run lifecycle is the
/// coordinator's, and the `result` event the runner's (from the outcome).
const RESERVED_TYPES: [&str; 5] = [
    types::RESULT,
    types::RUN_START,
    types::RUN_COMPLETED,
    types::RUN_FAILED,
    types::RUN_STOPPED,
];

/// An executor's structured event as a session event: `session_id` forced to the run's
/// session, a missing `timestamp` filled with now. One that is not a valid event (or
/// claims a reserved or over-long `event_type`, which the coordinator would refuse or
/// readers would misread) is posted as `raw`, the object kept in `tool_output`. Keys
/// `Event` does not have are dropped.
pub(crate) fn structured_event(session_id: &str, event: serde_json::Value) -> Event {
    let parsed = match &event {
        serde_json::Value::Object(obj) => {
            let mut obj = obj.clone();
            obj.insert("session_id".into(), session_id.into());
            if obj.get("timestamp").is_none_or(serde_json::Value::is_null) {
                obj.insert("timestamp".into(), aof_wire::now_ts().into());
            }
            serde_json::from_value::<Event>(serde_json::Value::Object(obj)).ok()
        }
        _ => None,
    };
    match parsed {
        Some(e)
            if !e.event_type.is_empty()
                && e.event_type.len() <= 64
                && !RESERVED_TYPES.contains(&e.event_type.as_str()) =>
        {
            e
        }
        _ => Event {
            tool_output: Some(event),
            ..Event::new(types::RAW, session_id)
        },
    }
}

/// Map an executor event onto the session-event vocabulary.
pub(crate) fn map_exec_event(session_id: &str, ev: ExecEvent) -> Mapped {
    match ev {
        ExecEvent::Message { role, text } => {
            Mapped::Event(Box::new(Event::message(session_id, &role, &text)))
        }
        ExecEvent::SessionId { id } => Mapped::Bind(id),
        ExecEvent::Raw { data } => Mapped::Event(Box::new(Event {
            tool_output: Some(data),
            ..Event::new(types::RAW, session_id)
        })),
        ExecEvent::Structured { event } => {
            Mapped::Event(Box::new(structured_event(session_id, event)))
        }
        ExecEvent::Stderr { text } => Mapped::Event(Box::new(Event {
            error: Some(text),
            ..Event::new(STDERR_EVENT, session_id)
        })),
        // The execution loop sends usage through the run's budget (`limits`); this is
        // the same event without limits, for completeness.
        ExecEvent::Usage { usage } => {
            let mut b = crate::limits::Budget::new(Default::default(), tokio::time::Instant::now());
            b.record(usage, session_id);
            Mapped::Event(Box::new(b.event(session_id)))
        }
    }
}

/// The `result` event of a completed run. `result_data` is an object on the wire; any
/// other value is kept under `"value"` rather than dropped.
pub(crate) fn result_event(
    session_id: &str,
    result_text: Option<String>,
    result_data: Option<serde_json::Value>,
) -> Event {
    let result_data = match result_data {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(map)) => Some(map),
        Some(other) => Some(serde_json::Map::from_iter([("value".to_string(), other)])),
    };
    Event {
        result_text,
        result_data,
        ..Event::new(types::RESULT, session_id)
    }
}

/// The producing side, owned by the execution task. Dropping it closes the queue.
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Item>,
    key_prefix: String,
    next: u64,
    session_id: String,
    hostname: String,
    executor_profile: String,
    project_dir: Option<String>,
}

impl Outbox {
    pub(crate) fn new(
        tx: mpsc::UnboundedSender<Item>,
        run: &RunRef,
        hostname: &str,
        executor_profile: &str,
        project_dir: Option<String>,
    ) -> Outbox {
        Outbox {
            tx,
            key_prefix: format!("{}:{}", run.run_id, run.attempt),
            next: 1,
            session_id: run.session_id.clone(),
            hostname: hostname.to_string(),
            executor_profile: executor_profile.to_string(),
            project_dir,
        }
    }

    fn push(&self, item: Item) {
        // The delivery task ends early only when the lease is lost; then nothing matters.
        let _ = self.tx.send(item);
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        let key = format!("{}:{}", self.key_prefix, self.next);
        self.next += 1;
        self.push(Item::Event {
            key,
            event: Box::new(event),
        });
    }

    pub(crate) fn push_events(&mut self, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.push_event(event);
        }
    }

    pub(crate) fn push_exec(&mut self, ev: ExecEvent) {
        match map_exec_event(&self.session_id, ev) {
            Mapped::Event(event) => self.push_event(*event),
            Mapped::Bind(executor_session_id) => self.push(Item::Bind(BindRequest {
                executor_session_id,
                hostname: self.hostname.clone(),
                executor_profile: self.executor_profile.clone(),
                project_dir: self.project_dir.clone(),
            })),
        }
    }
}

/// How delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeliveryEnd {
    /// Every queued item was delivered (or dropped as hopeless) and the queue closed.
    Drained,
    /// The lease was lost or the runner gave up waiting; the rest was dropped.
    Interrupted,
}

/// Deliver items in order until the queue closes. A 409 means our lease was fenced
/// off: stop the execution and deliver nothing more.
pub(crate) async fn deliver(
    client: Client,
    run: RunRef,
    mut rx: mpsc::UnboundedReceiver<Item>,
    control: Arc<RunControl>,
) -> DeliveryEnd {
    loop {
        let item = tokio::select! {
            biased;
            _ = control.interrupt.cancelled() => return DeliveryEnd::Interrupted,
            item = rx.recv() => match item {
                Some(item) => item,
                None => return DeliveryEnd::Drained,
            },
        };
        let (what, res) = match &item {
            Item::Event { key, event } => (
                "event",
                retry("event", &control.interrupt, || {
                    client.post_event(&run, key, event)
                })
                .await,
            ),
            Item::Bind(req) => (
                "bind",
                retry("bind", &control.interrupt, || client.bind(&run, req)).await,
            ),
        };
        match res {
            Attempt::Done(()) => {}
            Attempt::Interrupted => return DeliveryEnd::Interrupted,
            Attempt::Rejected(e) if e.status_code() == Some(409) => {
                tracing::warn!(request = what, error = %e, code = e.code(), "lease lost; stopping execution");
                control.stop(StopReason::LeaseLost);
                return DeliveryEnd::Interrupted;
            }
            Attempt::Rejected(e) => {
                // It would fail the same way forever; later items may still be fine.
                tracing::warn!(request = what, error = %e, code = e.code(), "coordinator rejected write; dropping it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_exec_events() {
        let m = map_exec_event(
            "ses_1",
            ExecEvent::Message {
                role: "assistant".into(),
                text: "hi".into(),
            },
        );
        let Mapped::Event(e) = m else {
            panic!("expected event")
        };
        assert_eq!(e.event_type, "message");
        assert_eq!(e.session_id, "ses_1");
        assert_eq!(e.role.as_deref(), Some("assistant"));
        assert_eq!(e.text().as_deref(), Some("hi"));

        let m = map_exec_event(
            "ses_1",
            ExecEvent::Raw {
                data: json!({"x": 1}),
            },
        );
        let Mapped::Event(e) = m else {
            panic!("expected event")
        };
        assert_eq!(e.event_type, "raw");
        assert_eq!(e.tool_output, Some(json!({"x": 1})));

        assert_eq!(
            map_exec_event("ses_1", ExecEvent::SessionId { id: "abc".into() }),
            Mapped::Bind("abc".into())
        );
    }

    fn mapped(ev: ExecEvent) -> Event {
        match map_exec_event("ses_1", ev) {
            Mapped::Event(e) => *e,
            other => panic!("expected event, got {other:?}"),
        }
    }

    #[test]
    fn maps_stderr_lines() {
        let e = mapped(ExecEvent::Stderr {
            text: "warning: x".into(),
        });
        assert_eq!(e.event_type, "stderr");
        assert_eq!(e.session_id, "ses_1");
        assert_eq!(e.error.as_deref(), Some("warning: x"));
        assert!(!e.timestamp.is_empty());
    }

    #[test]
    fn maps_structured_events() {
        // A valid event: kept, its session forced to the run's, the timestamp filled.
        let e = mapped(ExecEvent::Structured {
            event: json!({
                "event_type": "pre_tool", "session_id": "someone_else",
                "tool_name": "ls", "tool_input": {"path": "."}, "unknown_key": 1
            }),
        });
        assert_eq!(e.event_type, "pre_tool");
        assert_eq!(e.session_id, "ses_1");
        assert_eq!(e.tool_name.as_deref(), Some("ls"));
        assert_eq!(e.tool_input.unwrap()["path"], json!("."));
        assert!(!e.timestamp.is_empty());

        // A given timestamp is kept; a message keeps its content.
        let e = mapped(ExecEvent::Structured {
            event: json!({
                "event_type": "message", "timestamp": "2024-01-01T00:00:00Z",
                "role": "assistant", "content": [{"type": "text", "text": "hi"}]
            }),
        });
        assert_eq!(e.timestamp, "2024-01-01T00:00:00Z");
        assert_eq!(e.text().as_deref(), Some("hi"));

        // Not an event (a field of the wrong shape): raw, the object as it came.
        let bad = json!({"event_type": "post_tool", "tool_input": "not an object"});
        let e = mapped(ExecEvent::Structured { event: bad.clone() });
        assert_eq!(e.event_type, "raw");
        assert_eq!(e.session_id, "ses_1");
        assert_eq!(e.tool_output, Some(bad));

        // Reserved or unacceptable types: raw too.
        for t in ["run_completed", "result", "", &"x".repeat(65)] {
            let ev = json!({"event_type": t});
            let e = mapped(ExecEvent::Structured { event: ev.clone() });
            assert_eq!(e.event_type, "raw", "{t}");
            assert_eq!(e.tool_output, Some(ev));
        }
        let e = mapped(ExecEvent::Structured { event: json!([1]) });
        assert_eq!(e.event_type, "raw");
    }

    #[test]
    fn result_event_shapes_data() {
        let e = result_event("s", Some("done".into()), Some(json!({"k": "v"})));
        assert_eq!(e.event_type, "result");
        assert_eq!(e.result_text.as_deref(), Some("done"));
        assert_eq!(e.result_data.unwrap()["k"], json!("v"));
        let e = result_event("s", None, Some(json!([1, 2])));
        assert_eq!(e.result_data.unwrap()["value"], json!([1, 2]));
        assert!(result_event("s", None, Some(json!(null)))
            .result_data
            .is_none());
    }

    #[test]
    fn keys_are_sequential_per_run_and_binds_take_none() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let run = RunRef {
            run_id: "run_1".into(),
            session_id: "ses_1".into(),
            lease_token: None,
            attempt: 2,
        };
        let mut ob = Outbox::new(tx, &run, "host", "echo", Some("/p".into()));
        ob.push_event(Event::message("ses_1", "user", "hi"));
        ob.push_exec(ExecEvent::SessionId { id: "x".into() });
        ob.push_exec(ExecEvent::Message {
            role: "assistant".into(),
            text: "hi".into(),
        });
        drop(ob);
        let mut items = Vec::new();
        while let Ok(i) = rx.try_recv() {
            items.push(i);
        }
        assert!(matches!(&items[0], Item::Event { key, .. } if key == "run_1:2:1"));
        assert!(
            matches!(&items[1], Item::Bind(b) if b.executor_session_id == "x"
            && b.hostname == "host" && b.project_dir.as_deref() == Some("/p"))
        );
        assert!(matches!(&items[2], Item::Event { key, .. } if key == "run_1:2:2"));
    }
}
