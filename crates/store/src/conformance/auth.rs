//! Auth records: API keys, run session tokens, runner ↔ key bindings, browser sessions.

use aof_wire::auth::{KeyScope, Role};
use chrono::Duration;

use super::*;

fn key(id: &str, ms: i64) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        name: Some(format!("n-{id}")),
        role: Role::Runner,
        hash: format!("hash-{id}"),
        created_at: at_ms(ms),
        revoked_at: None,
        scope: KeyScope::default(),
    }
}

pub async fn keys_create_find_list_revoke_twice_keeps_first_time(store: &dyn Store) {
    assert!(store.list_keys().await.unwrap().is_empty());
    store.create_key(&key("a", 1_000)).await.unwrap();
    let admin = KeyRecord {
        role: Role::Admin,
        name: None,
        ..key("b", 2_000)
    };
    store.create_key(&admin).await.unwrap();
    let ids: Vec<String> = store
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["b", "a"], "newest first");
    let found = store.find_key("a").await.unwrap().expect("stored");
    assert_eq!(
        (
            found.name.as_deref(),
            found.role,
            found.hash.as_str(),
            found.created_at
        ),
        (Some("n-a"), Role::Runner, "hash-a", at_ms(1_000))
    );
    assert_eq!(found.revoked_at, None);
    let b = store.find_key("b").await.unwrap().expect("stored");
    assert_eq!((b.role, b.name), (Role::Admin, None));
    assert!(store.find_key("zz").await.unwrap().is_none());

    assert!(store.revoke_key("a").await.unwrap());
    let first = store.find_key("a").await.unwrap().unwrap().revoked_at;
    assert!(first.is_some());
    assert!(store.revoke_key("a").await.unwrap());
    assert_eq!(
        store.find_key("a").await.unwrap().unwrap().revoked_at,
        first,
        "first revocation kept"
    );
    assert!(!store.revoke_key("zz").await.unwrap());
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed.len(), 2, "revoked keys are listed");
    assert_eq!(listed[1].revoked_at, first);

    let scope = KeyScope {
        tags: vec!["gpu".into()],
        agents: vec!["a".into(), "b".into()],
    };
    let scoped = KeyRecord {
        scope: scope.clone(),
        ..key("c", 3_000)
    };
    store.create_key(&scoped).await.unwrap();
    assert_eq!(store.find_key("c").await.unwrap().unwrap().scope, scope);
    assert!(store
        .find_key("b")
        .await
        .unwrap()
        .unwrap()
        .scope
        .is_unlimited());
}

pub async fn keys_session_tokens_and_runner_bindings_round_trip(store: &dyn Store) {
    let expires = now_ms() + Duration::hours(1);
    let t = SessionTokenRecord {
        id: "t1".into(),
        hash: "h".into(),
        run_id: "r".into(),
        session_id: "s".into(),
        expires_at: expires,
    };
    store.create_session_token(&t).await.unwrap();
    let found = store
        .find_session_token("t1")
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(
        (
            found.id.as_str(),
            found.hash.as_str(),
            found.run_id.as_str(),
            found.session_id.as_str(),
            found.expires_at
        ),
        ("t1", "h", "r", "s", expires)
    );
    assert!(store.find_session_token("t2").await.unwrap().is_none());

    assert_eq!(store.runner_key("lnch_1").await.unwrap(), None);
    store.bind_runner_key("lnch_1", "a").await.unwrap();
    assert_eq!(
        store.runner_key("lnch_1").await.unwrap().as_deref(),
        Some("a")
    );
    store.bind_runner_key("lnch_1", "b").await.unwrap();
    assert_eq!(
        store.runner_key("lnch_1").await.unwrap().as_deref(),
        Some("b"),
        "the latest binding wins"
    );
    assert_eq!(store.runner_key("lnch_2").await.unwrap(), None);
}

/// Create, find, delete one, delete a key's, and the purge of expired rows at create.
pub async fn keys_browser_sessions_create_find_delete(store: &dyn Store) {
    let now = now_ms();
    let rec = |hash: &str, key: &str, expires| BrowserSessionRecord {
        hash: hash.into(),
        key_id: key.into(),
        created_at: now,
        expires_at: expires,
    };
    let hour = Duration::hours(1);
    let a1 = rec("h-a1", "ka", now + hour);
    let a2 = rec("h-a2", "ka", now + hour);
    let b1 = rec("h-b1", "kb", now + hour);
    for r in [&a1, &a2, &b1] {
        store.create_browser_session(r).await.unwrap();
    }
    assert_eq!(store.find_browser_session("h-a1").await.unwrap(), Some(a1));
    assert_eq!(store.find_browser_session("nope").await.unwrap(), None);

    // Logout: one row.
    assert!(store.delete_browser_session("h-a1").await.unwrap());
    assert!(!store.delete_browser_session("h-a1").await.unwrap());
    assert_eq!(store.find_browser_session("h-a1").await.unwrap(), None);

    // Key revoked: all of that key's rows, no other key's.
    store
        .create_browser_session(&rec("h-a3", "ka", now + hour))
        .await
        .unwrap();
    assert_eq!(store.delete_browser_sessions_of_key("ka").await.unwrap(), 2);
    assert_eq!(store.find_browser_session("h-a2").await.unwrap(), None);
    assert_eq!(store.find_browser_session("h-a3").await.unwrap(), None);
    assert_eq!(store.find_browser_session("h-b1").await.unwrap(), Some(b1));
    assert_eq!(store.delete_browser_sessions_of_key("ka").await.unwrap(), 0);

    // An expired row is still found (the caller checks expiry) until the next create
    // drops it; live rows stay.
    let old = rec("h-old", "kb", now - hour);
    store.create_browser_session(&old).await.unwrap();
    assert_eq!(
        store.find_browser_session("h-old").await.unwrap(),
        Some(old)
    );
    store
        .create_browser_session(&rec("h-b2", "kb", now + hour))
        .await
        .unwrap();
    assert_eq!(store.find_browser_session("h-old").await.unwrap(), None);
    assert!(store.find_browser_session("h-b1").await.unwrap().is_some());
    assert!(store.find_browser_session("h-b2").await.unwrap().is_some());
}
