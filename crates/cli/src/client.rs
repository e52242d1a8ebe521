//! The HTTP client every resource command uses: base URL from `--url` / config,
//! `Authorization: Bearer` from `AOF_API_KEY`, and error bodies (`{"detail","code"}`)
//! turned into one-line [`Refused`] errors (exit 1). Connection failures stay plain
//! errors (exit 2). It must not print anything itself.

use std::{fmt, time::Duration};

use reqwest::{header, Method, StatusCode};
use serde_json::Value;

use aof_wire::ErrorBody;

/// `--url`, shared by every command that talks to a coordinator.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct UrlArg {
    /// Coordinator URL (default: AOF_URL / AGENT_ORCHESTRATOR_API_URL, else http://127.0.0.1:8765).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
}

impl UrlArg {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        self.url.iter().map(|u| ("api.url", u.clone())).collect()
    }
}

/// The coordinator answered with an error status: the operation was refused (exit 1).
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub code: Option<String>,
    pub message: String,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.replace('\n', " ");
        match &self.code {
            Some(c) => write!(f, "rejected ({}, {c}): {message}", self.status),
            None => write!(f, "rejected ({}): {message}", self.status),
        }
    }
}

impl std::error::Error for Refused {}

/// A coordinator client; cheap to clone.
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(cfg: &aof_config::ApiConfig) -> anyhow::Result<Api> {
        let mut headers = header::HeaderMap::new();
        if let Some(key) = &cfg.key {
            let mut v = header::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                anyhow::anyhow!("AOF_API_KEY holds characters not allowed in a header")
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()?;
        Ok(Api {
            http,
            base: cfg.url.clone(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One request; 2xx bodies come back as JSON (`Null` when empty), anything else as
    /// [`Refused`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the coordinator at {}: {e}", self.base))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer from {}: {e}", self.base))?;
        if !status.is_success() {
            return Err(refused(status, &text).into());
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} {path}: the answer is not JSON: {e}", self.base))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }
}

fn refused(status: StatusCode, text: &str) -> Refused {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(b) => Refused {
            status,
            code: b.code.clone(),
            message: b.message(),
        },
        Err(_) => Refused {
            status,
            code: None,
            message: match text.trim() {
                "" => status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_string(),
                t => t.chars().take(200).collect(),
            },
        },
    }
}

/// Encodes one path segment (ids are plain, but a typo must not change the route).
pub fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `--url` and `--json` for a resource noun (`aof sessions …`); global within it, so
/// they go before or after the verb.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Coordinator URL (default: AOF_URL / AGENT_ORCHESTRATOR_API_URL, else http://127.0.0.1:8765).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// Print JSON (the API's shape) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Common {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        self.url.iter().map(|u| ("api.url", u.clone())).collect()
    }
}
