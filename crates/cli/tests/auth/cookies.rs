//! The browser cookie is a server-side session id, never the API key: it expires, dies
//! on logout and with its key, and is `__Host-` prefixed when Secure. Each attack
//! replays a cookie as a write and checks nothing was written.

use std::sync::Arc;

use serde_json::{json, Value};

use aof_coordinator::auth::secrets;
use aof_store::{prelude::*, BrowserSessionRecord};

use super::*;

/// The store a coordinator under test uses, opened beside it (SQLite: the same file,
/// which WAL lets two processes share; PostgreSQL: the same database).
async fn store_of(coord: &Coordinator) -> Arc<dyn Store> {
    if postgres_mode() {
        let url = std::fs::read_to_string(coord.data_dir.join("database_url")).unwrap();
        let s = aof_store_postgres::PgStore::connect(&url, Default::default())
            .await
            .unwrap();
        return Arc::new(s);
    }
    let s = aof_store_sqlite::SqliteStore::open(
        &coord.data_dir.join("observability.db"),
        Default::default(),
    )
    .await
    .unwrap();
    Arc::new(s)
}

/// Logs in with `key`; returns the whole `Set-Cookie` and its `name=value` pair.
async fn login(url: &str, key: &str) -> (String, String) {
    let resp = client()
        .post(format!("{url}/auth/login"))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().to_string();
    (set, pair)
}

/// `GET /auth/me` with only this cookie: (status, body).
async fn me(url: &str, pair: &str) -> (u16, Value) {
    req(
        "GET",
        &format!("{url}/auth/me"),
        None,
        None,
        &[("cookie", pair)],
    )
    .await
}

/// `POST /runs` with only this cookie, from the coordinator's own page (so only the
/// credential can make it fail).
async fn create_run(url: &str, pair: &str) -> (u16, Value) {
    let own = format!("http://{}", url.trim_start_matches("http://"));
    let body = json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "p"}});
    req(
        "POST",
        &format!("{url}/runs"),
        None,
        Some(body),
        &[("cookie", pair), ("origin", &own)],
    )
    .await
}

async fn run_count(url: &str, admin: &str) -> usize {
    let (st, b) = req("GET", &format!("{url}/runs"), Some(admin), None, &[]).await;
    assert_eq!(st, 200, "{b}");
    b.as_array()
        .or_else(|| b["runs"].as_array())
        .unwrap_or_else(|| panic!("runs list: {b}"))
        .len()
}

/// The stored hash of a cookie pair's session.
fn hash_of(pair: &str) -> String {
    let value = pair.split_once('=').unwrap().1;
    secrets::hash(secrets::browser_secret(value).expect("a browser-session cookie"))
}

#[track_caller]
fn assert_refused(what: &str, (st, b): (u16, Value)) {
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("unauthenticated")),
        "{what}: {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_is_not_the_api_key() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (set, pair) = login(&url, &keys.operator).await;
    for attr in ["aof_session=aofb_", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(set.contains("Max-Age=43200"), "12 hours: {set}");
    // No part of the key: not its id, not its secret (nor any 16 characters of it).
    let (key_id, secret) = secrets::split(&keys.operator, secrets::KEY_PREFIX).unwrap();
    assert!(!set.contains(key_id), "{set}");
    for w in secret.as_bytes().windows(16) {
        assert!(!set.contains(std::str::from_utf8(w).unwrap()), "{set}");
    }
    let (st, who) = me(&url, &pair).await;
    assert_eq!((st, who["role"].as_str()), (200, Some("operator")), "{who}");

    // Attack: the raw key in the cookie (what the cookie used to hold) is not a
    // credential any more; nor is a session id sent as a bearer token.
    let runs = run_count(&url, &keys.admin).await;
    let legacy = format!("aof_session={}", keys.operator);
    assert_refused("key as cookie", create_run(&url, &legacy).await);
    let session_id = pair.split_once('=').unwrap().1;
    let body = json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "p"}});
    assert_refused(
        "session id as bearer",
        req(
            "POST",
            &format!("{url}/runs"),
            Some(session_id),
            Some(body),
            &[],
        )
        .await,
    );
    assert_eq!(run_count(&url, &keys.admin).await, runs, "nothing written");

    // The store holds a hash of the session, never the cookie or the key.
    let store = store_of(&coord).await;
    let row = store.find_browser_session(&hash_of(&pair)).await.unwrap();
    let row = row.expect("the session row");
    assert_eq!(row.key_id, key_id);
    assert_eq!(row.expires_at - row.created_at, chrono::Duration::hours(12));
    assert!(!row.hash.contains(&session_id[5..]));
    assert_no_secret("coordinator log", &coord.log(), &[&keys.operator]);
    assert!(!coord.log().contains(&session_id[5..]), "cookie in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_dies_on_logout() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (_, pair) = login(&url, &keys.operator).await;
    let (_, other) = login(&url, &keys.operator).await;
    assert_ne!(pair, other, "each login is its own session");
    let (st, b) = create_run(&url, &pair).await;
    assert_eq!(st, 201, "the cookie works before logout: {b}");

    let resp = client()
        .post(format!("{url}/auth/logout"))
        .header("cookie", &pair)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cleared = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("aof_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );

    // Attack: a copy of the cookie kept after logout.
    let runs = run_count(&url, &keys.admin).await;
    assert_refused("logged-out cookie", create_run(&url, &pair).await);
    assert_refused("logged-out cookie", me(&url, &pair).await);
    assert_eq!(run_count(&url, &keys.admin).await, runs, "nothing written");
    let store = store_of(&coord).await;
    assert!(store
        .find_browser_session(&hash_of(&pair))
        .await
        .unwrap()
        .is_none());
    // Logout ends that session only.
    assert_eq!(me(&url, &other).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_dies_when_key_revoked() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (st, made) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(&keys.admin),
        Some(json!({"role": "operator", "name": "leaver"})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["id"].as_str().unwrap().to_string();
    let (_, pair) = login(&url, &key).await;
    let (_, pair2) = login(&url, &key).await;
    let (_, bystander) = login(&url, &keys.operator).await;
    assert_eq!(me(&url, &pair).await.0, 200);

    let (st, b) = req(
        "DELETE",
        &format!("{url}/auth/keys/{id}"),
        Some(&keys.admin),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");

    // Attack: the browser of someone whose key was revoked keeps its cookie.
    let runs = run_count(&url, &keys.admin).await;
    for p in [&pair, &pair2] {
        assert_refused("cookie of a revoked key", create_run(&url, p).await);
        assert_refused("cookie of a revoked key", me(&url, p).await);
    }
    assert_eq!(run_count(&url, &keys.admin).await, runs, "nothing written");
    // Its rows are gone; another key's session lives on.
    let store = store_of(&coord).await;
    for p in [&pair, &pair2] {
        assert!(store
            .find_browser_session(&hash_of(p))
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(me(&url, &bystander).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_expires() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (_, pair) = login(&url, &keys.operator).await;
    assert_eq!(me(&url, &pair).await.0, 200);

    // Twelve hours pass (the row's expiry is moved to the past rather than waiting).
    let store = store_of(&coord).await;
    let hash = hash_of(&pair);
    let row = store.find_browser_session(&hash).await.unwrap().unwrap();
    assert!(store.delete_browser_session(&hash).await.unwrap());
    let now = chrono::Utc::now();
    store
        .create_browser_session(&BrowserSessionRecord {
            created_at: now - chrono::Duration::hours(12),
            expires_at: now - chrono::Duration::seconds(1),
            ..row
        })
        .await
        .unwrap();

    // Attack: the expired cookie replayed.
    let runs = run_count(&url, &keys.admin).await;
    assert_refused("expired cookie", create_run(&url, &pair).await);
    assert_refused("expired cookie", me(&url, &pair).await);
    assert_eq!(run_count(&url, &keys.admin).await, runs, "nothing written");

    // The next login drops expired rows; the new session works.
    let (_, fresh) = login(&url, &keys.operator).await;
    assert!(store.find_browser_session(&hash).await.unwrap().is_none());
    assert_eq!(me(&url, &fresh).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookie_uses_host_prefix() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[("AOF_COOKIE_SECURE", "true")]).await;
    let url = coord.url.clone();
    let (set, pair) = login(&url, &keys.operator).await;
    assert!(set.starts_with("__Host-aof_session=aofb_"), "{set}");
    for attr in ["; Secure", "; Path=/", "; HttpOnly", "; SameSite=Strict"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    let (st, b) = create_run(&url, &pair).await;
    assert_eq!(st, 201, "{b}");

    // Attack: the same session id under the unprefixed name (which a sibling site
    // could set without Secure) is not accepted when cookies are Secure.
    let value = pair.split_once('=').unwrap().1;
    let plain = format!("aof_session={value}");
    let runs = run_count(&url, &keys.admin).await;
    let (st, b) = create_run(&url, &plain).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("unauthenticated")),
        "{b}"
    );
    assert_eq!(run_count(&url, &keys.admin).await, runs, "nothing written");

    let resp = client()
        .post(format!("{url}/auth/logout"))
        .header("cookie", &pair)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let cleared = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with("__Host-aof_session=;") && cleared.contains("; Secure"),
        "{cleared}"
    );
    assert_refused("logged-out secure cookie", me(&url, &pair).await);
}
