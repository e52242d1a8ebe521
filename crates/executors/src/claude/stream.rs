//! Claude Code's `stream-json` output (one JSON object a line) → `ExecEvent`s:
//! - `system`/`init`: the Claude session id (for resume) and the line itself as `raw`;
//! - `assistant`: each `text` block an assistant message, each `tool_use` a `pre_tool`;
//! - `user`: each `tool_result` a `post_tool` (with the call's name and input, the
//!   output, and `error` when it failed);
//! - `result`: kept for the outcome (text, usage, cost, duration);
//! - usage: each assistant message's `usage` (by message id: a message split into
//!   several lines repeats it), summed, then the `result`'s totals and cost, reported as
//!   `ExecEvent::Usage` whenever the running total changes;
//! - anything else, and blocks of other kinds, as `raw`: nothing is dropped;
//! - a line that is not a JSON object with a string `type` is malformed: kept as `raw`
//!   and counted, and the run fails.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::{ExecEvent, Usage};

#[derive(Debug, Default)]
pub(crate) struct StreamState {
    /// tool_use id → (name, input), to give each `post_tool` its call.
    calls: HashMap<String, (String, Value)>,
    pub session_id: Option<String>,
    /// The last `result` line.
    pub result: Option<Value>,
    pub malformed: usize,
    pub first_malformed: Option<String>,
    /// Assistant message id → its usage (the latest line's), in first-seen order.
    message_usage: Vec<(String, Usage)>,
    /// The last usage reported.
    reported: Usage,
}

/// Anthropic `usage` → tokens; cache reads and writes are input the model processed.
fn anthropic_usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input_tokens: n("input_tokens")
            + n("cache_creation_input_tokens")
            + n("cache_read_input_tokens"),
        output_tokens: n("output_tokens"),
        cost_usd: None,
    }
}

fn object(v: &Value) -> Value {
    match v {
        Value::Object(_) => v.clone(),
        Value::Null => json!({}),
        other => json!({ "value": other }),
    }
}

fn structured(fields: Value) -> ExecEvent {
    ExecEvent::Structured { event: fields }
}

impl StreamState {
    /// The events of one stdout line, in order.
    pub(crate) fn line(&mut self, line: &str) -> Vec<ExecEvent> {
        if line.trim().is_empty() {
            return Vec::new();
        }
        let parsed = serde_json::from_str::<Value>(line).ok();
        let kind = parsed
            .as_ref()
            .and_then(|v| v.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let (Some(v), Some(kind)) = (parsed, kind) else {
            self.malformed += 1;
            self.first_malformed
                .get_or_insert_with(|| line.chars().take(200).collect());
            return vec![ExecEvent::Raw {
                data: json!({ "malformed_line": line }),
            }];
        };
        match kind.as_str() {
            "system" => self.system(v),
            "assistant" => {
                let usage = self.message_usage(&v);
                let mut out = self.assistant(v);
                out.extend(usage);
                out
            }
            "user" => self.user(v),
            "result" => {
                if let Some(id) = v.get("session_id").and_then(Value::as_str) {
                    self.session_id.get_or_insert_with(|| id.to_string());
                }
                // The run's own totals and price supersede the per-message sum.
                let usage = v.get("usage").map(|u| Usage {
                    cost_usd: v.get("total_cost_usd").and_then(Value::as_f64),
                    ..anthropic_usage(u)
                });
                self.result = Some(v);
                usage.and_then(|u| self.report(u)).into_iter().collect()
            }
            _ => vec![ExecEvent::Raw { data: v }],
        }
    }

    /// Record an assistant line's usage; the new running total if it changed.
    fn message_usage(&mut self, v: &Value) -> Option<ExecEvent> {
        let message = v.get("message")?;
        let id = message.get("id").and_then(Value::as_str)?;
        let usage = anthropic_usage(message.get("usage")?);
        match self.message_usage.iter_mut().find(|(i, _)| i == id) {
            Some((_, u)) => *u = usage,
            None => self.message_usage.push((id.to_string(), usage)),
        }
        let total = self
            .message_usage
            .iter()
            .fold(Usage::default(), |acc, (_, u)| Usage {
                input_tokens: acc.input_tokens + u.input_tokens,
                output_tokens: acc.output_tokens + u.output_tokens,
                cost_usd: None,
            });
        self.report(total)
    }

    fn report(&mut self, usage: Usage) -> Option<ExecEvent> {
        (usage != self.reported).then(|| {
            self.reported = usage;
            ExecEvent::Usage { usage }
        })
    }

    fn system(&mut self, v: Value) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        if v.get("subtype").and_then(Value::as_str) == Some("init") {
            if let Some(id) = v.get("session_id").and_then(Value::as_str) {
                if self.session_id.as_deref() != Some(id) {
                    self.session_id = Some(id.to_string());
                    out.push(ExecEvent::SessionId { id: id.to_string() });
                }
            }
        }
        out.push(ExecEvent::Raw { data: v });
        out
    }

    fn blocks(v: &Value) -> Option<&Vec<Value>> {
        v.get("message")
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
    }

    fn assistant(&mut self, v: Value) -> Vec<ExecEvent> {
        let Some(blocks) = Self::blocks(&v) else {
            return vec![ExecEvent::Raw { data: v }];
        };
        let mut out = Vec::new();
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") => out.push(ExecEvent::Message {
                    role: "assistant".into(),
                    text: block
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                }),
                Some("tool_use") => {
                    let id = block.get("id").and_then(Value::as_str).unwrap_or("");
                    let name = block.get("name").and_then(Value::as_str).unwrap_or("");
                    let input = object(block.get("input").unwrap_or(&Value::Null));
                    self.calls
                        .insert(id.to_string(), (name.to_string(), input.clone()));
                    out.push(structured(json!({
                        "event_type": "pre_tool",
                        "tool_name": name,
                        "tool_input": input,
                        "content": [block],
                    })));
                }
                _ => out.push(ExecEvent::Raw {
                    data: json!({"type": "assistant", "block": block,
                                 "session_id": v.get("session_id")}),
                }),
            }
        }
        out
    }

    fn user(&mut self, v: Value) -> Vec<ExecEvent> {
        let Some(blocks) = Self::blocks(&v) else {
            return vec![ExecEvent::Raw { data: v }];
        };
        let mut out = Vec::new();
        for block in blocks {
            if block.get("type").and_then(Value::as_str) != Some("tool_result") {
                out.push(ExecEvent::Raw {
                    data: json!({"type": "user", "block": block,
                                 "session_id": v.get("session_id")}),
                });
                continue;
            }
            let id = block
                .get("tool_use_id")
                .and_then(Value::as_str)
                .unwrap_or("");
            let (name, input) = self
                .calls
                .remove(id)
                .unwrap_or_else(|| (String::new(), json!({})));
            let output = block.get("content").cloned().unwrap_or(Value::Null);
            let mut event = Map::new();
            event.insert("event_type".into(), "post_tool".into());
            event.insert("tool_name".into(), name.into());
            event.insert("tool_input".into(), input);
            if block.get("is_error").and_then(Value::as_bool) == Some(true) {
                event.insert("error".into(), text_of(&output).into());
            }
            event.insert("tool_output".into(), output);
            // The CLI's structured result (stdout, stderr, …) rides along with the block.
            let mut detail = block.clone();
            if let Some(r) = v.get("tool_use_result") {
                detail["tool_use_result"] = r.clone();
            }
            event.insert("content".into(), json!([detail]));
            out.push(structured(Value::Object(event)));
        }
        out
    }
}

/// A tool result's text: the string, or its text blocks joined.
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from the real CLI (2.1.330) running one Bash call against the replay.
    const TRANSCRIPT: &str = include_str!("transcript.jsonl");

    #[test]
    fn maps_a_recorded_transcript() {
        let mut st = StreamState::default();
        let all: Vec<ExecEvent> = TRANSCRIPT.lines().flat_map(|l| st.line(l)).collect();
        // Usage: per message (the repeated line of a message adds nothing), then the
        // result's totals with the price.
        let usage: Vec<Usage> = all
            .iter()
            .filter_map(|e| match e {
                ExecEvent::Usage { usage } => Some(*usage),
                _ => None,
            })
            .collect();
        let tokens = |i, o, c| Usage {
            input_tokens: i,
            output_tokens: o,
            cost_usd: c,
        };
        assert_eq!(
            usage,
            [
                tokens(12310, 1, None),
                tokens(12310 + 12396, 2, None),
                tokens(24706, 26, Some(0.099344))
            ]
        );
        assert!(matches!(all.last(), Some(ExecEvent::Usage { .. })));
        let events: Vec<ExecEvent> = all
            .into_iter()
            .filter(|e| !matches!(e, ExecEvent::Usage { .. }))
            .collect();
        let sid = "b5fd1d49-0d79-4294-b98b-14d2381b97d9";
        assert_eq!(events[0], ExecEvent::SessionId { id: sid.into() });
        assert!(matches!(&events[1], ExecEvent::Raw { data } if data["subtype"] == "init"));
        assert_eq!(
            events[2],
            ExecEvent::Message {
                role: "assistant".into(),
                text: "Writing it.".into()
            }
        );
        let ExecEvent::Structured { event: pre } = &events[3] else {
            panic!("{events:?}")
        };
        assert_eq!(pre["event_type"], "pre_tool");
        assert_eq!(pre["tool_name"], "Bash");
        assert_eq!(pre["tool_input"]["command"], "echo hi > proof.txt");
        let ExecEvent::Structured { event: post } = &events[4] else {
            panic!("{events:?}")
        };
        assert_eq!(post["event_type"], "post_tool");
        assert_eq!(post["tool_name"], "Bash");
        assert_eq!(post["tool_input"]["command"], "echo hi > proof.txt");
        assert_eq!(post["tool_output"], "(Bash completed with no output)");
        assert!(post.get("error").is_none());
        assert_eq!(
            post["content"][0]["tool_use_result"]["interrupted"],
            json!(false)
        );
        assert_eq!(
            events[5],
            ExecEvent::Message {
                role: "assistant".into(),
                text: "The proof is written.".into()
            }
        );
        assert_eq!(events.len(), 6);
        let result = st.result.as_ref().unwrap();
        assert_eq!(result["result"], "The proof is written.");
        assert_eq!(st.session_id.as_deref(), Some(sid));
        assert_eq!(st.malformed, 0);
    }

    #[test]
    fn unknown_errors_and_malformed_lines() {
        let mut st = StreamState::default();
        // Unknown kinds and block types: raw, whole.
        let ev = st.line(r#"{"type": "stream_event", "event": {"x": 1}}"#);
        assert_eq!(
            ev,
            [ExecEvent::Raw {
                data: json!({"type": "stream_event", "event": {"x": 1}})
            }]
        );
        let ev = st.line(
            r#"{"type": "assistant", "message": {"content": [{"type": "thinking", "thinking": "hm"}]}}"#,
        );
        assert!(matches!(&ev[0], ExecEvent::Raw { data } if data["block"]["thinking"] == "hm"));
        // A failed tool: post_tool with the error text; an unknown id keeps an empty name.
        let ev = st.line(
            r#"{"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "t9", "is_error": true, "content": [{"type": "text", "text": "boom"}]}]}}"#,
        );
        let ExecEvent::Structured { event } = &ev[0] else {
            panic!("{ev:?}")
        };
        assert_eq!(event["error"], "boom");
        assert_eq!(event["tool_name"], "");
        // Not JSON, not an object, no type: malformed, kept raw, counted.
        for bad in ["not json {", "[1,2]", r#"{"no_type": 1}"#] {
            let ev = st.line(bad);
            assert_eq!(
                ev,
                [ExecEvent::Raw {
                    data: json!({ "malformed_line": bad })
                }]
            );
        }
        assert_eq!(st.malformed, 3);
        assert_eq!(st.first_malformed.as_deref(), Some("not json {"));
        assert!(st.line("").is_empty());
    }
}
