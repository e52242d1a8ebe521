//! `${source.key}` placeholders in blueprints: `params`, `scope`, `env` (allow-listed
//! variables only), `runtime` (`session_id`, `run_id`). `${runner.*}` is left for the
//! runner; anything unknown or missing stays as written.
//!
//! One pass only: a substituted value is never expanded again, so a parameter cannot
//! smuggle in `${env.SECRET}`.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value};

static PLACEHOLDER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{([^}]+)\}").expect("valid regex"));

pub struct Sources<'a> {
    pub params: &'a Map<String, Value>,
    pub scope: &'a Map<String, Value>,
    /// Allowed environment variable names; others are never read.
    pub env_allow: &'a [String],
    pub session_id: &'a str,
    pub run_id: &'a str,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Sources<'_> {
    fn lookup(&self, inner: &str) -> Option<String> {
        let (source, key) = inner.split_once('.')?;
        match source {
            "params" => self.params.get(key).and_then(text),
            "scope" => self.scope.get(key).and_then(text),
            "env" if self.env_allow.iter().any(|a| a == key) => std::env::var(key).ok(),
            "runtime" => match key {
                "session_id" => Some(self.session_id.to_string()),
                "run_id" => Some(self.run_id.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn substitute_str(&self, s: &str) -> String {
        PLACEHOLDER
            .replace_all(s, |c: &regex::Captures| {
                self.lookup(&c[1]).unwrap_or_else(|| c[0].to_string())
            })
            .into_owned()
    }

    /// Substitutes in every string value (never in keys), recursively.
    pub fn substitute(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.substitute_str(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.substitute(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), self.substitute(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

pub fn has_placeholder(s: &str) -> bool {
    PLACEHOLDER.is_match(s)
}

/// The first placeholder in an MCP server `url` that whoever creates a run could fill
/// in, and so send the entry's headers (`${env.*}` secrets among them) wherever they
/// like: `${params.*}` or `${scope.*}` anywhere; in the scheme and host part (up to the
/// first `/` after `://`, or all of it without `://`) anything but `${env.*}` and
/// `${runner.*}`, which the deployment sets (a run may choose its `session_id`).
pub fn run_chosen_in_url(url: &str) -> Option<String> {
    let host_end = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or(url.len(), |j| i + 3 + j),
        None => url.len(),
    };
    PLACEHOLDER.captures_iter(url).find_map(|c| {
        let whole = c.get(0).expect("group 0");
        let source = c[1]
            .split('.')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let chosen = match source.as_str() {
            "params" | "scope" => true,
            "env" | "runner" => false,
            _ => whole.start() < host_end,
        };
        chosen.then(|| whole.as_str().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sources_and_rules() {
        std::env::set_var("AOF_TEST_ALLOWED", "yes");
        std::env::set_var("AOF_TEST_SECRET", "hidden");
        let params = json!({"topic": "rust", "n": 3, "flag": true})
            .as_object()
            .cloned()
            .unwrap();
        let scope = json!({"partition": "p1", "evil": "${env.AOF_TEST_SECRET}"})
            .as_object()
            .cloned()
            .unwrap();
        let allow = vec!["AOF_TEST_ALLOWED".to_string()];
        let s = Sources {
            params: &params,
            scope: &scope,
            env_allow: &allow,
            session_id: "ses_1",
            run_id: "run_1",
        };
        let v = json!({
            "a": "${params.topic}/${params.n}/${params.flag}",
            "b": ["${scope.partition}", "${runtime.session_id}", "${runtime.run_id}"],
            "c": {"${params.topic}": "${env.AOF_TEST_ALLOWED}", "d": "${env.AOF_TEST_SECRET}"},
            "e": "${runner.orchestrator_mcp_url}", "f": "${params.missing}", "g": "${scope.evil}", "h": 5
        });
        assert_eq!(
            s.substitute(&v),
            json!({
                "a": "rust/3/true",
                "b": ["p1", "ses_1", "run_1"],
                "c": {"${params.topic}": "yes", "d": "${env.AOF_TEST_SECRET}"},
                "e": "${runner.orchestrator_mcp_url}", "f": "${params.missing}",
                "g": "${env.AOF_TEST_SECRET}", "h": 5
            })
        );
        assert!(has_placeholder("x ${a.b}"));
        assert!(!has_placeholder("x $a.b"));
    }

    #[test]
    fn urls_a_run_creator_could_redirect() {
        for (url, bad) in [
            ("https://${params.host}/mcp", "${params.host}"),
            ("https://mcp.example.com/${params.repo}", "${params.repo}"),
            ("https://x/mcp?tenant=${scope.tenant}", "${scope.tenant}"),
            ("${ params.url }", "${ params.url }"),
            (
                "https://${runtime.session_id}.example.com/",
                "${runtime.session_id}",
            ),
            ("${runtime.session_id}/mcp", "${runtime.session_id}"),
            ("https://${env.HOST}:${PARAMS.port}/", "${PARAMS.port}"),
        ] {
            assert_eq!(run_chosen_in_url(url).as_deref(), Some(bad), "{url}");
        }
        for url in [
            "https://mcp.example.com/mcp",
            "https://${env.MCP_HOST}/mcp",
            "${runner.orchestrator_mcp_url}",
            "https://mcp.example.com/s/${runtime.session_id}",
            "${env.BASE}",
        ] {
            assert_eq!(run_chosen_in_url(url), None, "{url}");
        }
    }
}
