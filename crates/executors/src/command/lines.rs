//! What one line of a command's stdout means: plain text (an assistant message), a
//! structured event (a JSON object with a string `event_type`), or the run's result
//! (`{"event_type": "result", "result_text": …, "result_data": …}`), or its usage so far
//! (`{"event_type": "usage", "input_tokens": …, "output_tokens": …, "cost_usd": …}`).

use serde_json::Value;

use crate::Usage;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    Text(String),
    Event(Value),
    /// Replaces the accumulated stdout as the run's result; the last one wins.
    Result {
        text: Option<String>,
        data: Option<Value>,
    },
    /// The run's usage so far, for the runner's limits (each replaces the last).
    Usage(Usage),
}

pub(crate) fn classify(line: String) -> Line {
    // Cheap test first: most lines of most programs are not JSON.
    if !line.trim_start().starts_with('{') {
        return Line::Text(line);
    }
    let Ok(Value::Object(mut obj)) = serde_json::from_str::<Value>(&line) else {
        return Line::Text(line);
    };
    match obj.get("event_type") {
        Some(Value::String(t)) if t == "result" => Line::Result {
            text: match obj.remove("result_text") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(other) => Some(other.to_string()),
            },
            data: obj.remove("result_data").filter(|d| !d.is_null()),
        },
        Some(Value::String(t)) if t == "usage" => {
            let n = |k: &str| obj.get(k).and_then(Value::as_u64).unwrap_or(0);
            Line::Usage(Usage {
                input_tokens: n("input_tokens"),
                output_tokens: n("output_tokens"),
                cost_usd: obj.get("cost_usd").and_then(Value::as_f64),
            })
        }
        Some(Value::String(_)) => Line::Event(Value::Object(obj)),
        _ => Line::Text(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn classifies_lines() {
        let text = |s: &str| Line::Text(s.to_string());
        assert_eq!(classify("hello".into()), text("hello"));
        assert_eq!(classify("{not json".into()), text("{not json"));
        assert_eq!(classify("[1, 2]".into()), text("[1, 2]"));
        // An object without a string event_type is text too.
        assert_eq!(classify(r#"{"a": 1}"#.into()), text(r#"{"a": 1}"#));
        assert_eq!(
            classify(r#"{"event_type": 3}"#.into()),
            text(r#"{"event_type": 3}"#)
        );
        assert_eq!(
            classify(r#"  {"event_type": "pre_tool", "tool_name": "ls"}"#.into()),
            Line::Event(json!({"event_type": "pre_tool", "tool_name": "ls"}))
        );
        assert_eq!(
            classify(
                r#"{"event_type": "result", "result_text": "ok", "result_data": {"n": 1}}"#.into()
            ),
            Line::Result {
                text: Some("ok".into()),
                data: Some(json!({"n": 1}))
            }
        );
        assert_eq!(
            classify(r#"{"event_type": "result", "result_text": 42, "result_data": null}"#.into()),
            Line::Result {
                text: Some("42".into()),
                data: None
            }
        );
        assert_eq!(
            classify(r#"{"event_type": "usage", "input_tokens": 7, "output_tokens": 3}"#.into()),
            Line::Usage(Usage {
                input_tokens: 7,
                output_tokens: 3,
                cost_usd: None
            })
        );
        assert_eq!(
            classify(r#"{"event_type": "usage", "cost_usd": 0.25}"#.into()),
            Line::Usage(Usage {
                cost_usd: Some(0.25),
                ..Usage::default()
            })
        );
    }
}
