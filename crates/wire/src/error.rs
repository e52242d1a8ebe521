//! The error envelope: `detail` as AOF clients read it, plus our stable `code`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A human message (string) or, for validation errors, a FastAPI-style list.
    pub detail: serde_json::Value,
    /// Stable snake_case code, documented in docs/errors.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorBody {
    /// The message to show a person, whatever shape `detail` has.
    pub fn message(&self) -> String {
        match &self.detail {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| {
                    let loc = i
                        .get("loc")
                        .and_then(|l| l.as_array())
                        .map(|l| {
                            l.iter()
                                .map(|p| p.as_str().map(str::to_string).unwrap_or(p.to_string()))
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .unwrap_or_default();
                    let msg = i.get("msg").and_then(|m| m.as_str()).unwrap_or("invalid");
                    format!("{loc}: {msg}")
                })
                .collect::<Vec<_>>()
                .join("; "),
            other => {
                let head = other
                    .get("message")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string());
                // Parameter errors carry the specifics in a list; show them on the same line.
                let specifics: Vec<String> = other
                    .get("validation_errors")
                    .and_then(|v| v.as_array())
                    .map(|errs| {
                        errs.iter()
                            .filter_map(|e| {
                                let path = e.get("path")?.as_str()?;
                                let msg = e.get("message")?.as_str()?;
                                Some(format!("{path}: {msg}"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if specifics.is_empty() {
                    head
                } else {
                    format!("{head} ({})", specifics.join("; "))
                }
            }
        }
    }
}
