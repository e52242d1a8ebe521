//! The conversation as OpenAI messages, rebuilt from the session's stored events, so a
//! resume continues it on any runner: the coordinator's log is the only state.
//!
//! Read: `message` events (user and assistant text; an assistant message of this
//! executor also carries its `tool_call` blocks) and `post_tool` events (a `tool_result`
//! block with the call's id). A call without a result (a run that died mid-step) is
//! dropped with its message if nothing else is left, so the history stays valid for
//! the endpoint. Events of the current run are skipped: its prompt comes from the job.

use std::collections::HashSet;

use serde_json::{json, Value};

use aof_wire::StoredEvent;

fn text_of(content: &[Value]) -> String {
    content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str).unwrap_or("text") == "text")
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect()
}

/// The messages of earlier runs, oldest first.
pub(crate) fn messages(events: &[StoredEvent], current_run: &str) -> Vec<Value> {
    let mut events: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.run_id.as_deref() != Some(current_run))
        .collect();
    events.sort_by_key(|e| e.seq);
    // Only calls that got a result may stay in an assistant message.
    let answered: HashSet<&str> = events
        .iter()
        .filter(|e| e.event.event_type == "post_tool")
        .flat_map(|e| e.event.content.iter().flatten())
        .filter_map(|b| b.get("tool_call_id").and_then(Value::as_str))
        .collect();
    let mut out = Vec::new();
    let mut open_calls: HashSet<String> = HashSet::new();
    for e in events {
        let ev = &e.event;
        let content = ev.content.as_deref().unwrap_or(&[]);
        match (ev.event_type.as_str(), ev.role.as_deref()) {
            ("message", Some("user")) => {
                out.push(json!({"role": "user", "content": text_of(content)}));
            }
            ("message", Some("assistant")) => {
                let text = text_of(content);
                let calls: Vec<Value> = content
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_call"))
                    .filter(|b| {
                        b.get("id")
                            .and_then(Value::as_str)
                            .is_some_and(|id| answered.contains(id))
                    })
                    .map(|b| {
                        json!({"id": b["id"], "type": "function", "function": {
                            "name": b["name"], "arguments": b["arguments"]}})
                    })
                    .collect();
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                let mut m = json!({"role": "assistant", "content": text});
                if !calls.is_empty() {
                    for c in &calls {
                        if let Some(id) = c["id"].as_str() {
                            open_calls.insert(id.to_string());
                        }
                    }
                    m["tool_calls"] = Value::Array(calls);
                }
                out.push(m);
            }
            ("post_tool", _) => {
                for b in content {
                    let Some(id) = b.get("tool_call_id").and_then(Value::as_str) else {
                        continue;
                    };
                    // Only right after the assistant message that made the call.
                    if open_calls.remove(id) {
                        let text = b.get("text").and_then(Value::as_str).unwrap_or("");
                        out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aof_wire::Event;

    fn stored(seq: i64, run: &str, event: Event) -> StoredEvent {
        StoredEvent {
            id: seq,
            seq,
            run_id: Some(run.into()),
            event,
        }
    }

    #[test]
    fn rebuilds_a_tool_conversation_and_skips_the_current_run() {
        let s = "ses";
        let mut assistant_call = Event::message(s, "assistant", "");
        assistant_call.content = Some(vec![
            json!({"type": "tool_call", "id": "c1", "name": "add", "arguments": "{\"a\":1}"}),
            json!({"type": "tool_call", "id": "lost", "name": "add", "arguments": "{}"}),
        ]);
        let post = Event {
            content: Some(vec![
                json!({"type": "tool_result", "tool_call_id": "c1", "text": "2"}),
            ]),
            ..Event::new("post_tool", s)
        };
        let events = vec![
            stored(1, "r1", Event::new("run_start", s)),
            stored(2, "r1", Event::message(s, "user", "add 1")),
            stored(3, "r1", assistant_call),
            stored(4, "r1", Event::new("pre_tool", s)),
            stored(5, "r1", post),
            stored(6, "r1", Event::message(s, "assistant", "It is 2.")),
            stored(7, "r1", Event::new("result", s)),
            // A message_delta is not a message.
            stored(8, "r2", Event::new("message_delta", s)),
            stored(9, "r2", Event::message(s, "user", "now the current prompt")),
        ];
        let m = messages(&events, "r2");
        assert_eq!(
            m,
            vec![
                json!({"role": "user", "content": "add 1"}),
                json!({"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}}]}),
                json!({"role": "tool", "tool_call_id": "c1", "content": "2"}),
                json!({"role": "assistant", "content": "It is 2."}),
            ]
        );
        assert!(messages(&[], "r").is_empty());
    }
}
