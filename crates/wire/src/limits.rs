//! AOF-RS: per-run limits — wall-clock time, tokens, cost. They come from the runner's
//! settings, an agent blueprint's `limits` object and the executor's own options; the
//! runner enforces the tightest of each (see `RunLimits::tightest`).

use serde::{Deserialize, Serialize};

/// Limits of one run; `None` is "no limit". As a blueprint's `limits`:
/// `{"timeout_seconds": 600, "max_tokens": 200000, "max_cost_usd": 2.5}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunLimits {
    /// Wall-clock seconds from the executor's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Tokens (input + output, as the model endpoint reports them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Cost in US dollars, as the executor reports it (Claude Code does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

impl RunLimits {
    /// Values that parse but make no sense: a timeout or cost that is not a positive,
    /// finite number, a zero token budget.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = self.timeout_seconds {
            if !(t.is_finite() && t > 0.0 && t < 1e9) {
                return Err(format!(
                    "timeout_seconds must be a positive number of seconds, not {t}"
                ));
            }
        }
        if self.max_tokens == Some(0) {
            return Err("max_tokens must be at least 1".into());
        }
        if let Some(c) = self.max_cost_usd {
            if !(c.is_finite() && c > 0.0) {
                return Err(format!(
                    "max_cost_usd must be a positive number of dollars, not {c}"
                ));
            }
        }
        Ok(())
    }

    /// Parse and validate a `limits` value (a blueprint's); the message says what is wrong.
    pub fn parse(v: &serde_json::Value) -> Result<RunLimits, String> {
        let limits = RunLimits::deserialize(v).map_err(|e| format!("limits: {e}"))?;
        limits.validate().map_err(|e| format!("limits: {e}"))?;
        Ok(limits)
    }

    /// The `limits` of a resolved blueprint; absent or null is no limit.
    pub fn from_blueprint(bp: Option<&serde_json::Value>) -> Result<RunLimits, String> {
        match bp.and_then(|b| b.get("limits")) {
            None | Some(serde_json::Value::Null) => Ok(RunLimits::default()),
            Some(v) => RunLimits::parse(v),
        }
    }

    /// Each limit the tighter of the two; a limit set on one side only stands.
    pub fn tightest(self, other: RunLimits) -> RunLimits {
        fn min<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(if b < a { b } else { a }),
                (a, b) => a.or(b),
            }
        }
        RunLimits {
            timeout_seconds: min(self.timeout_seconds, other.timeout_seconds),
            max_tokens: min(self.max_tokens, other.max_tokens),
            max_cost_usd: min(self.max_cost_usd, other.max_cost_usd),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == RunLimits::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_validate_and_tightest() {
        assert_eq!(
            RunLimits::parse(&json!({"timeout_seconds": 30, "max_tokens": 1000})),
            Ok(RunLimits {
                timeout_seconds: Some(30.0),
                max_tokens: Some(1000),
                max_cost_usd: None
            })
        );
        assert_eq!(RunLimits::parse(&json!({})), Ok(RunLimits::default()));
        let err = |v| RunLimits::parse(&v).unwrap_err();
        assert!(err(json!({"timeout": 3})).contains("unknown field `timeout`"));
        assert!(err(json!({"max_tokens": -1})).starts_with("limits: "));
        assert_eq!(
            err(json!({"max_tokens": 0})),
            "limits: max_tokens must be at least 1"
        );
        assert!(err(json!({"timeout_seconds": 0}))
            .contains("timeout_seconds must be a positive number"));
        assert!(err(json!({"max_cost_usd": -0.5})).contains("max_cost_usd"));
        assert!(err(json!("fast")).starts_with("limits: "));

        assert_eq!(
            RunLimits::from_blueprint(Some(&json!({"name": "a"}))),
            Ok(RunLimits::default())
        );
        assert_eq!(
            RunLimits::from_blueprint(Some(&json!({"limits": {"max_cost_usd": 1.5}})))
                .unwrap()
                .max_cost_usd,
            Some(1.5)
        );

        let a = RunLimits {
            timeout_seconds: Some(60.0),
            max_tokens: None,
            max_cost_usd: Some(1.0),
        };
        let b = RunLimits {
            timeout_seconds: Some(30.0),
            max_tokens: Some(500),
            max_cost_usd: Some(2.0),
        };
        let t = RunLimits {
            timeout_seconds: Some(30.0),
            max_tokens: Some(500),
            max_cost_usd: Some(1.0),
        };
        assert_eq!(a.tightest(b), t);
        assert_eq!(b.tightest(a), t);
        assert_eq!(a.tightest(RunLimits::default()), a);
        assert!(RunLimits::default().is_empty() && !a.is_empty());
    }
}
