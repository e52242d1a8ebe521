//! Bearer tokens from an OAuth 2.0 token endpoint (client credentials grant), the way
//! the AOF reference's runners get theirs from Auth0: one token shared by every request
//! of the runner, fetched on first use and again shortly before it expires, or at once
//! after the coordinator refused it (401).

use std::time::{Duration, Instant};

use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::ClientCredentials;

/// A token endpoint that does not say how long its token lives: assume an hour (as the
/// reference does).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// Renew this long before expiry, or at half the lifetime for short-lived tokens.
const RENEW_AHEAD: Duration = Duration::from_secs(60);
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
#[error("token endpoint {url}: {message}")]
pub(crate) struct TokenError {
    url: String,
    message: String,
    /// Worth trying again (no answer, or a 5xx/429), unlike a refusal of the credentials.
    pub retryable: bool,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

struct Cached {
    header: HeaderValue,
    renew_at: Instant,
}

pub(crate) struct Tokens {
    http: reqwest::Client,
    creds: ClientCredentials,
    /// Held across a fetch, so concurrent requests wait for one fetch instead of each
    /// asking for a token.
    current: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("token_url", &self.creds.token_url)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    pub(crate) fn new(creds: ClientCredentials) -> anyhow::Result<Tokens> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // The secret goes to the configured URL only, never on to a redirect.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Tokens {
            http,
            creds,
            current: Mutex::new(None),
        })
    }

    /// `Bearer <token>` for the next request: the cached token, or a fresh one when
    /// there is none or it is due for renewal.
    pub(crate) async fn bearer(&self) -> Result<HeaderValue, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.header.clone());
        }
        let fresh = self.fetch().await?;
        let header = fresh.header.clone();
        *current = Some(fresh);
        Ok(header)
    }

    /// The coordinator refused `used`: forget it (unless it was already replaced), so
    /// the next request fetches a new one.
    pub(crate) async fn refused(&self, used: &HeaderValue) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| c.header == used) {
            *current = None;
        }
    }

    async fn fetch(&self) -> Result<Cached, TokenError> {
        let c = &self.creds;
        let fail = |message: String, retryable: bool| TokenError {
            url: c.token_url.clone(),
            message,
            retryable,
        };
        let resp = self
            .http
            .post(&c.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", c.client_id.as_str()),
                ("client_secret", c.client_secret.0.as_str()),
                ("audience", c.audience.as_str()),
            ])
            .send()
            .await
            .map_err(|e| fail(format!("no answer: {e}"), true))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            let retryable = status.is_server_error() || status.as_u16() == 429;
            let detail: String = body.chars().take(300).collect();
            return Err(fail(format!("HTTP {status}: {detail}"), retryable));
        }
        let t: TokenResponse = serde_json::from_str(&body)
            .map_err(|e| fail(format!("unreadable answer: {e}"), true))?;
        let lifetime = t
            .expires_in
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            .map_or(DEFAULT_LIFETIME, Duration::from_secs_f64);
        let mut header =
            HeaderValue::from_str(&format!("Bearer {}", t.access_token)).map_err(|_| {
                fail(
                    "the token holds characters not allowed in a header".into(),
                    false,
                )
            })?;
        header.set_sensitive(true);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "got a bearer token from the token endpoint"
        );
        Ok(Cached {
            header,
            renew_at: Instant::now() + lifetime - RENEW_AHEAD.min(lifetime / 2),
        })
    }
}

#[cfg(test)]
mod tests;
