//! OIDC bearer tokens: JWTs (RS256 or ES256) checked against the issuer's JWKS for
//! signature, `iss`, `aud`, `exp` and `nbf`, with a non-empty `sub`; the role comes from
//! one claim. The JWKS is read from a file, or fetched from a URL (https, or http on
//! loopback only) at start and again when a token names an unknown `kid` (key
//! rotation), at most once a minute so bad tokens cannot make us hammer it.
//!
//! No lock is held across a fetch: the key set is swapped whole once a fetch is done,
//! so requests whose `kid` is known never wait for the network; requests that need the
//! refetch in flight wait for it instead of starting another.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{jwk::JwkSet, Algorithm, DecodingKey, Validation};
use tokio::sync::watch;

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
    /// The current key set, replaced whole after a fetch. Locked only to clone or swap
    /// the `Arc`, never across an await.
    keys: RwLock<Arc<JwkSet>>,
    /// Refetch bookkeeping: a check-and-set under a short lock, never across the fetch.
    refetch: Mutex<Refetch>,
}

#[derive(Default)]
struct Refetch {
    /// When the last refetch started (`None`: none since the fetch at start).
    last: Option<Instant>,
    /// The refetch in flight: its sender is dropped when it ends (done, failed or
    /// cancelled), which wakes every request waiting for it.
    inflight: Option<watch::Receiver<()>>,
}

/// What a request with an unknown `kid` does about it.
enum Plan {
    Fetch(watch::Sender<()>),
    Wait(watch::Receiver<()>),
    GiveUp,
}

fn is_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// `auth.oidc_jwks` must be a file, an `https://` URL, or an `http://` URL on a
/// loopback host (a local test issuer or sidecar): keys fetched over plain HTTP from
/// elsewhere could be swapped by anyone on the path, who could then sign any token.
pub fn check_jwks_source(src: &str) -> Result<(), String> {
    if !src
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("http://"))
    {
        return Ok(());
    }
    let url = reqwest::Url::parse(src)
        .map_err(|e| format!("auth.oidc_jwks: '{src}' is not a valid URL: {e}"))?;
    let host = url.host_str().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "auth.oidc_jwks (AOF_OIDC_JWKS): '{src}' is plain http to a non-loopback host; \
             use https:// (anyone on the path could swap the signing keys), or a file"
        ))
    }
}

impl Oidc {
    pub async fn load(cfg: OidcConfig) -> anyhow::Result<Oidc> {
        check_jwks_source(&cfg.jwks).map_err(anyhow::Error::msg)?;
        // A redirect must not downgrade an https JWKS to plain http.
        let redirects = reqwest::redirect::Policy::custom(|a| {
            if a.previous().len() >= 5 {
                a.error("too many redirects")
            } else if check_jwks_source(a.url().as_str()).is_ok() {
                a.follow()
            } else {
                a.error("redirect to plain http refused")
            }
        });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(redirects)
            .build()?;
        let mut oidc = Oidc {
            cfg,
            http,
            keys: RwLock::new(Arc::new(JwkSet { keys: Vec::new() })),
            refetch: Mutex::new(Refetch::default()),
        };
        let set = oidc.fetch().await?;
        *oidc.keys.get_mut().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
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

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        let set = self
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        set.find(kid).and_then(|j| DecodingKey::from_jwk(j).ok())
    }

    async fn key(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(k) = self.cached(kid) {
            return Some(k);
        }
        if !is_url(&self.cfg.jwks) {
            return None;
        }
        let plan = {
            let mut r = self.refetch.lock().unwrap_or_else(PoisonError::into_inner);
            match &r.inflight {
                // A sender still alive: that refetch is running.
                Some(rx) if rx.has_changed().is_ok() => Plan::Wait(rx.clone()),
                _ if r.last.is_some_and(|t| t.elapsed() < REFETCH_EVERY) => Plan::GiveUp,
                _ => {
                    let (tx, rx) = watch::channel(());
                    r.last = Some(Instant::now());
                    r.inflight = Some(rx);
                    Plan::Fetch(tx)
                }
            }
        };
        match plan {
            Plan::GiveUp => return None,
            // Ends with an error once the fetcher drops its sender.
            Plan::Wait(mut rx) => while rx.changed().await.is_ok() {},
            Plan::Fetch(done) => {
                match self.fetch().await {
                    Ok(set) => {
                        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set)
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot refresh the OIDC JWKS"),
                }
                drop(done);
            }
        }
        self.cached(kid)
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
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // `nbf` when present, with the same leeway as `exp` (the library's default).
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => bad("expired"),
                K::ImmatureSignature => bad("not valid yet (nbf)"),
                K::InvalidIssuer => bad("wrong issuer"),
                K::InvalidAudience => bad("wrong audience"),
                K::InvalidSignature => bad("bad signature"),
                K::MissingRequiredClaim(c) if c == "sub" => bad("no subject (sub)"),
                _ => bad("rejected"),
            }
        })?;
        let claims = data.claims;
        // The subject names the caller (audit, runner bindings): it must name someone.
        let sub = claims["sub"]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| bad("no subject (sub)"))?
            .to_string();
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
    fn plain_http_jwks_only_on_loopback() {
        for ok in [
            "https://issuer.example/jwks.json",
            "http://127.0.0.1:8080/jwks",
            "http://127.9.9.9/jwks",
            "http://localhost:1/jwks",
            "HTTP://LOCALHOST/jwks",
            "http://[::1]:9/jwks",
            "/etc/aof/jwks.json",
        ] {
            assert_eq!(check_jwks_source(ok), Ok(()), "{ok}");
        }
        for bad in [
            "http://issuer.example/jwks",
            "http://10.0.0.1/jwks",
            "http://localhost.evil.test/jwks",
            "http://127.0.0.1.evil.test/jwks",
            "http://[::2]/jwks",
            "Http://0.0.0.0/jwks",
        ] {
            let e = check_jwks_source(bad).unwrap_err();
            assert!(e.starts_with("auth.oidc_jwks"), "{bad}: {e}");
        }
    }

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
