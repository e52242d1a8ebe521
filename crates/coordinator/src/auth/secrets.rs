//! Credential formats: making, parsing and checking API keys, run session tokens and the
//! in-process runner's key. Only SHA-256 hashes are stored; comparison is constant-time.
//!
//! Formats (the public id lets us find the row without a hash scan; only the secret is
//! hashed):
//! - API key: `aof_<id>_<secret>`, id 12 hex chars, secret 64 hex chars (32 random bytes).
//! - Session token: `aofs_<id>_<secret>`, same sizes.
//! - In-process runner of `aof up`: `aofi_<secret>`, kept in memory only.
//! - Browser session (the cookie): `aofb_<secret>`, secret 64 hex chars; the store
//!   finds the row by the secret's SHA-256 (its primary key), so it needs no id.
//!
//! Secrets are 32 bytes from the OS RNG, so a fast hash suffices: there is nothing to
//! brute-force, unlike a human-chosen password.

use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use aof_store::{prelude::*, KeyRecord, StoreResult};
use aof_wire::auth::{KeyInfo, KeyScope, Role};

pub const KEY_PREFIX: &str = "aof_";
pub const SESSION_PREFIX: &str = "aofs_";
pub const INTERNAL_PREFIX: &str = "aofi_";
pub const BROWSER_PREFIX: &str = "aofb_";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex(&buf)
}

/// Hex SHA-256 of a secret, as stored.
pub fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Constant-time check of `secret` against a stored hash.
pub fn matches(secret: &str, stored_hash: &str) -> bool {
    hash(secret).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

/// `(id, secret)` of a credential with this prefix, if it has the right shape.
pub fn split<'a>(token: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let (id, secret) = token.strip_prefix(prefix)?.split_once('_')?;
    let hexy = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexy(id, 12) && hexy(secret, 64)).then_some((id, secret))
}

/// A new `(id, secret, whole token)` with `prefix`.
pub fn mint(prefix: &str) -> (String, String, String) {
    let id = random_hex(6);
    let secret = random_hex(32);
    let token = format!("{prefix}{id}_{secret}");
    (id, secret, token)
}

/// The secret of a browser-session cookie value, if it has the right shape.
pub fn browser_secret(value: &str) -> Option<&str> {
    value
        .strip_prefix(BROWSER_PREFIX)
        .filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A new browser session: `(cookie value, hash to store)`. The hash is the row's key,
/// looked up by equality: it is a SHA-256 of 32 random bytes, so an attacker can
/// neither guess a row nor learn one from timing.
pub fn mint_browser_session() -> (String, String) {
    let secret = random_hex(32);
    (format!("{BROWSER_PREFIX}{secret}"), hash(&secret))
}

pub fn internal_key() -> String {
    format!("{INTERNAL_PREFIX}{}", random_hex(32))
}

pub fn info(k: &KeyRecord) -> KeyInfo {
    KeyInfo {
        id: k.id.clone(),
        name: k.name.clone(),
        role: k.role,
        prefix: format!("{KEY_PREFIX}{}_", k.id),
        created_at: aof_wire::format_ts(k.created_at),
        revoked_at: k.revoked_at.map(aof_wire::format_ts),
        tags: k.scope.tags.clone(),
        agents: k.scope.agents.clone(),
    }
}

/// Creates and stores a key; returns it listed and the whole key (shown once). Used by
/// `POST /auth/keys` and by `aof keys create --data-dir` (offline, for the first admin).
/// `scope` must have passed `KeyScope::validated` for `role`.
pub async fn create_key(
    store: &dyn Store,
    role: Role,
    name: Option<String>,
    scope: KeyScope,
) -> StoreResult<(KeyInfo, String)> {
    let (id, secret, token) = mint(KEY_PREFIX);
    let rec = KeyRecord {
        id,
        name,
        role,
        hash: hash(&secret),
        created_at: Utc::now(),
        revoked_at: None,
        scope,
    };
    store.create_key(&rec).await?;
    Ok((info(&rec), token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_lookalikes() {
        let (id, secret, token) = mint(KEY_PREFIX);
        assert_eq!(
            split(&token, KEY_PREFIX),
            Some((id.as_str(), secret.as_str()))
        );
        assert!(matches(&secret, &hash(&secret)));
        assert!(!matches(&secret, &hash("other")));
        assert_eq!(split(&token, SESSION_PREFIX), None);
        for bad in [
            "aof_",
            "aof_abc_def",
            "aof_zzzzzzzzzzzz_00",
            &token[..token.len() - 1],
        ] {
            assert_eq!(split(bad, KEY_PREFIX), None, "{bad}");
        }
        assert_ne!(mint(KEY_PREFIX).2, token);
    }

    #[test]
    fn browser_sessions_are_random_and_stored_hashed() {
        let (cookie, stored) = mint_browser_session();
        let secret = browser_secret(&cookie).unwrap();
        assert_eq!(stored, hash(secret));
        assert!(!stored.contains(secret) && !cookie.contains(&stored));
        assert_ne!(mint_browser_session().0, cookie);
        let (key, ..) = mint(KEY_PREFIX);
        for bad in [
            key.as_str(),
            "aofb_",
            "aofb_xyz",
            &cookie[..cookie.len() - 1],
        ] {
            assert_eq!(browser_secret(bad), None, "{bad}");
        }
    }
}
