//! The bridge's side of the coordinator API: start and resume runs, stop sessions,
//! decide approvals, and follow the feed (`/sse/sessions`) from a cursor.

use std::time::Duration;

use aof_wire::{
    approval::{Approval, ApprovalDecision, ApprovalList, Decision},
    run::{RunCreate, RunCreateResponse, RunType},
    ErrorBody,
};
use reqwest::{header, StatusCode};

/// A refusal or failure, phrased for the chat.
#[derive(Debug, thiserror::Error)]
pub enum AofError {
    #[error("AOF refused ({status}{}): {detail}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Refused {
        status: StatusCode,
        code: Option<String>,
        detail: String,
    },
    #[error("AOF is unreachable: {0}")]
    Unreachable(#[from] reqwest::Error),
}

impl AofError {
    /// Worth trying again later: AOF is down, restarting or overloaded (a 4xx is an
    /// answer, and is said in the chat instead).
    pub fn is_transient(&self) -> bool {
        match self {
            AofError::Unreachable(_) => true,
            AofError::Refused { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            AofError::Refused { code, .. } => code.as_deref(),
            AofError::Unreachable(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct Aof {
    http: reqwest::Client,
    /// The feed is one long response: no overall timeout, only for connecting.
    feed_http: reqwest::Client,
    base: String,
}

impl Aof {
    pub fn new(base: &str, key: Option<&str>) -> anyhow::Result<Aof> {
        let mut headers = header::HeaderMap::new();
        if let Some(key) = key {
            let mut v = header::HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
                anyhow::anyhow!("the AOF API key holds characters not allowed in a header")
            })?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers.clone())
            .timeout(Duration::from_secs(30))
            .build()?;
        let feed_http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Aof {
            http,
            feed_http,
            base: base.trim_end_matches('/').to_string(),
        })
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        resp: reqwest::Response,
    ) -> Result<T, AofError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json().await?);
        }
        let body: Option<ErrorBody> = resp.json().await.ok();
        Err(AofError::Refused {
            status,
            code: body.as_ref().and_then(|b| b.code.clone()),
            detail: body
                .map(|b| match b.detail {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .unwrap_or_else(|| status.to_string()),
        })
    }

    /// Starts `session_id` (chosen by the bridge, so a replayed command finds it taken:
    /// `session_exists`) with `agent` and `prompt`.
    pub async fn start(
        &self,
        session_id: &str,
        agent: &str,
        prompt: &str,
    ) -> Result<RunCreateResponse, AofError> {
        self.create_run(RunType::StartSession, session_id, Some(agent), prompt)
            .await
    }

    pub async fn resume(
        &self,
        session_id: &str,
        prompt: &str,
    ) -> Result<RunCreateResponse, AofError> {
        self.create_run(RunType::ResumeSession, session_id, None, prompt)
            .await
    }

    async fn create_run(
        &self,
        run_type: RunType,
        session_id: &str,
        agent: Option<&str>,
        prompt: &str,
    ) -> Result<RunCreateResponse, AofError> {
        let mut parameters = serde_json::Map::new();
        parameters.insert("prompt".into(), prompt.into());
        let body = RunCreate {
            run_type,
            parameters,
            session_id: Some(session_id.to_string()),
            agent_name: agent.map(str::to_string),
            project_dir: None,
            parent_session_id: None,
            execution_mode: Default::default(),
            additional_demands: None,
            scope: None,
        };
        let resp = self
            .http
            .post(format!("{}/runs", self.base))
            .json(&body)
            .send()
            .await?;
        Self::answer(resp).await
    }

    pub async fn stop(&self, session_id: &str) -> Result<serde_json::Value, AofError> {
        let resp = self
            .http
            .post(format!("{}/sessions/{session_id}/stop", self.base))
            .send()
            .await?;
        Self::answer(resp).await
    }

    pub async fn pending_approvals(&self, session_id: &str) -> Result<Vec<Approval>, AofError> {
        let resp = self
            .http
            .get(format!("{}/approvals", self.base))
            .query(&[("session_id", session_id), ("status", "pending")])
            .send()
            .await?;
        Ok(Self::answer::<ApprovalList>(resp).await?.approvals)
    }

    pub async fn decide(
        &self,
        approval_id: &str,
        decision: Decision,
        message: Option<String>,
    ) -> Result<Approval, AofError> {
        let resp = self
            .http
            .post(format!("{}/approvals/{approval_id}", self.base))
            .json(&ApprovalDecision {
                decision,
                message,
                updated_input: None,
            })
            .send()
            .await?;
        Self::answer(resp).await
    }

    /// The feed after `cursor` (replayed from the store, then live), without the init
    /// frame: the bridge only needs events.
    pub async fn feed(&self, cursor: i64) -> Result<reqwest::Response, AofError> {
        let resp = self
            .feed_http
            .get(format!("{}/sse/sessions", self.base))
            .query(&[("include_init", "false")])
            .header(header::ACCEPT, "text/event-stream")
            .header("last-event-id", cursor.to_string())
            .send()
            .await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(Self::answer::<serde_json::Value>(resp).await.unwrap_err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_outages_are_tried_again() {
        let refused = |code: u16| AofError::Refused {
            status: StatusCode::from_u16(code).unwrap(),
            code: None,
            detail: String::new(),
        };
        assert!(refused(503).is_transient() && refused(500).is_transient());
        assert!(refused(429).is_transient());
        for answer in [400, 403, 404, 409, 422] {
            assert!(!refused(answer).is_transient(), "{answer}");
        }
    }
}
