//! OIDC bearer tokens: JWTs (RS256 or ES256) checked against the issuer's JWKS for
//! signature, `iss`, `aud` and `exp`; the role comes from one claim. The JWKS is read
//! from a file, or fetched from a URL at start and again when a token names an unknown
//! `kid` (key rotation), at most once a minute so bad tokens cannot make us hammer it.

use std::time::{Duration, Instant};

use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use tokio::sync::Mutex;

use aof_wire::auth::Role;

use crate::config::OidcConfig;

const REFETCH_EVERY: Duration = Duration::from_secs(60);

/// Why a token was refused (the detail goes to the client; never the token).
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token carries no AOF role in claim '{0}'")]
    NoRole(String),
}

pub struct Oidc {
    cfg: OidcConfig,
    http: reqwest::Client,
    /// The current key set and when it was last fetched. Written on (re)fetch only;
    /// an async lock because the refetch awaits while holding it (one fetch at a time).
    keys: Mutex<(JwkSet, Option<Instant>)>,
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

impl Oidc {
    pub async fn load(cfg: OidcConfig) -> anyhow::Result<Oidc> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        let oidc = Oidc {
            cfg,
            http,
            keys: Mutex::new((JwkSet { keys: Vec::new() }, None)),
        };
        let set = oidc.fetch().await?;
        *oidc.keys.lock().await = (set, Some(Instant::now()));
        Ok(oidc)
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let src = &self.cfg.jwks;
        let text = if is_url(src) {
            self.http
                .get(src)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?
        } else {
            tokio::fs::read_to_string(src)
                .await
                .map_err(|e| anyhow::anyhow!("auth.oidc_jwks: cannot read {src}: {e}"))?
        };
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("auth.oidc_jwks: {src} is not a JWKS: {e}"))
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        let mut keys = self.keys.lock().await;
        if keys.0.find(kid).is_none()
            && is_url(&self.cfg.jwks)
            && keys.1.is_none_or(|t| t.elapsed() >= REFETCH_EVERY)
        {
            keys.1 = Some(Instant::now());
            match self.fetch().await {
                Ok(set) => keys.0 = set,
                Err(e) => tracing::warn!(error = %e, "cannot refresh the OIDC JWKS"),
            }
        }
        keys.0.find(kid).and_then(|j| DecodingKey::from_jwk(j).ok())
    }

    /// Checks a JWT; returns its subject and role.
    pub async fn verify(&self, token: &str) -> Result<(String, Role), OidcError> {
        let bad = |m: &str| OidcError::Invalid(m.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(bad("algorithm not allowed (RS256 or ES256)"));
        }
        let kid = header.kid.ok_or_else(|| bad("no kid"))?;
        let key = self.key(&kid).await.ok_or_else(|| bad("unknown kid"))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => bad("expired"),
                K::InvalidIssuer => bad("wrong issuer"),
                K::InvalidAudience => bad("wrong audience"),
                K::InvalidSignature => bad("bad signature"),
                _ => bad("rejected"),
            }
        })?;
        let claims = data.claims;
        let sub = claims["sub"].as_str().unwrap_or("").to_string();
        let role = role_from(&claims[&self.cfg.role_claim])
            .ok_or_else(|| OidcError::NoRole(self.cfg.role_claim.clone()))?;
        Ok((sub, role))
    }
}

/// The most capable AOF role named by the claim (a string or a list of strings); admin
/// over operator over viewer over runner. Unknown values are ignored.
fn role_from(claim: &serde_json::Value) -> Option<Role> {
    let names: Vec<&str> = match claim {
        serde_json::Value::String(s) => vec![s.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let rank = |r: &Role| match r {
        Role::Runner => 0,
        Role::Viewer => 1,
        Role::Operator => 2,
        Role::Admin => 3,
    };
    names
        .iter()
        .filter_map(|n| n.parse::<Role>().ok())
        .max_by_key(rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_claim_picks_the_most_capable_known_role() {
        assert_eq!(role_from(&serde_json::json!("viewer")), Some(Role::Viewer));
        assert_eq!(
            role_from(&serde_json::json!(["runner", "operator", "x"])),
            Some(Role::Operator)
        );
        assert_eq!(role_from(&serde_json::json!(["x"])), None);
        assert_eq!(role_from(&serde_json::json!(null)), None);
    }
}
