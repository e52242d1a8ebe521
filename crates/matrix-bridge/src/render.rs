//! How a session event reads in chat: assistant messages as they are, a tool call as
//! one collapsed line, the result, failures and stops, approvals with what they would
//! run. Everything else (deltas, usage, raw output) stays in AOF.

use aof_wire::{approval::events as approval_events, event::types, Event};

/// Longest tool input shown in a one-line tool summary.
const TOOL_SUMMARY: usize = 160;
/// Longest tool input shown with an approval request (the reviewer must see it whole,
/// or be told it was cut).
const APPROVAL_INPUT: usize = 2000;

/// The chat text of `e`, or `None` when it is not posted. `last_answer` is the
/// session's last assistant text, so a result that repeats it is not posted twice.
pub fn render(e: &Event, last_answer: Option<&str>) -> Option<String> {
    match e.event_type.as_str() {
        types::MESSAGE if e.role.as_deref() == Some("assistant") => {
            e.text().filter(|t| !t.trim().is_empty())
        }
        types::PRE_TOOL => {
            let tool = e.tool_name.as_deref().unwrap_or("tool");
            let input = e
                .tool_input
                .as_ref()
                .map(|i| serde_json::Value::Object(i.clone()).to_string())
                .unwrap_or_default();
            Some(format!("🔧 {tool} {}", cut(&input, TOOL_SUMMARY)))
        }
        types::POST_TOOL => e.error.as_ref().map(|err| {
            let tool = e.tool_name.as_deref().unwrap_or("tool");
            format!("⚠️ {tool} failed: {}", cut(err, TOOL_SUMMARY))
        }),
        types::RESULT => {
            let text = e.result_text.as_deref().unwrap_or("").trim();
            if text.is_empty() || Some(text) == last_answer.map(str::trim) {
                Some("✅ done".into())
            } else {
                Some(format!("✅ {text}"))
            }
        }
        types::RUN_FAILED => Some(format!(
            "❌ run failed: {}",
            e.error.as_deref().unwrap_or("no reason given")
        )),
        types::RUN_STOPPED => Some("⏹️ stopped".into()),
        approval_events::REQUESTED => {
            let tool = e.tool_name.as_deref().unwrap_or("tool");
            let input = e
                .tool_input
                .as_ref()
                .map(|i| serde_json::to_string_pretty(i).unwrap_or_default())
                .unwrap_or_else(|| "{}".into());
            let data = e.result_data.as_ref();
            let field = |k: &str| {
                data.and_then(|d| d.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string()
            };
            Some(format!(
                "⏸️ Approval needed ({}): {tool} wants to run with\n{}\nReply `!aof approve` or `!aof deny <reason>` in this thread. If nobody decides by {}, it is {}.",
                field("approval_id"),
                cut(&input, APPROVAL_INPUT),
                field("expires_at"),
                match field("on_timeout").as_str() {
                    "approve" => "approved",
                    _ => "denied",
                },
            ))
        }
        approval_events::RESOLVED => {
            let data = e.result_data.as_ref()?;
            let s = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let verdict = match s("status").as_deref() {
                Some("approved") => "✔️ approved",
                _ => "✖️ denied",
            };
            let how = match s("resolution").as_deref() {
                Some("timeout") => " (nobody decided in time)".to_string(),
                Some("run_ended") => " (the run ended)".to_string(),
                _ => s("decided_by")
                    .map(|by| format!(" by {by}"))
                    .unwrap_or_default(),
            };
            let msg = s("message").map(|m| format!(": {m}")).unwrap_or_default();
            Some(format!("{verdict}{how}{msg}"))
        }
        _ => None,
    }
}

/// `s` cut to `max` characters, marked when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}… (cut)", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: serde_json::Value) -> Event {
        let mut v = v;
        v["session_id"] = json!("ses_1");
        v["timestamp"] = json!("2026-12-05T00:00:00Z");
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn what_is_posted() {
        let answer = Event::message("ses_1", "assistant", "Hello!");
        assert_eq!(render(&answer, None).as_deref(), Some("Hello!"));
        let user = Event::message("ses_1", "user", "hi");
        assert_eq!(render(&user, None), None);
        let tool = ev(json!({"event_type": "pre_tool", "tool_name": "Bash",
                             "tool_input": {"command": "ls"}}));
        assert_eq!(
            render(&tool, None).as_deref(),
            Some(r#"🔧 Bash {"command":"ls"}"#)
        );
        let ok = ev(json!({"event_type": "post_tool", "tool_name": "Bash"}));
        assert_eq!(render(&ok, None), None);
        let result = ev(json!({"event_type": "result", "result_text": "Hello!"}));
        assert_eq!(render(&result, Some("Hello!")).as_deref(), Some("✅ done"));
        assert_eq!(render(&result, Some("other")).as_deref(), Some("✅ Hello!"));
        let failed = ev(json!({"event_type": "run_failed", "error": "boom"}));
        assert_eq!(
            render(&failed, None).as_deref(),
            Some("❌ run failed: boom")
        );
        for quiet in [
            "message_delta",
            "usage",
            "raw",
            "run_start",
            "run_completed",
        ] {
            assert_eq!(
                render(&ev(json!({"event_type": quiet})), None),
                None,
                "{quiet}"
            );
        }
    }

    #[test]
    fn approvals_show_the_input_and_the_verdict() {
        let asked = ev(
            json!({"event_type": "approval_requested", "tool_name": "Bash",
            "tool_input": {"command": "rm -rf /tmp/x"},
            "result_data": {"approval_id": "apr_1", "expires_at": "soon", "on_timeout": "deny"}}),
        );
        let text = render(&asked, None).unwrap();
        assert!(
            text.contains("apr_1") && text.contains("rm -rf /tmp/x"),
            "{text}"
        );
        assert!(
            text.contains("!aof approve") && text.ends_with("it is denied."),
            "{text}"
        );
        let decided = ev(json!({"event_type": "approval_resolved", "result_data":
            {"status": "denied", "resolution": "reviewer", "decided_by": "key:k1", "message": "no"}}));
        assert_eq!(
            render(&decided, None).as_deref(),
            Some("✖️ denied by key:k1: no")
        );
        let long = "x".repeat(3000);
        assert!(cut(&long, 10).ends_with("… (cut)"));
    }
}
