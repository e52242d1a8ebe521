//! Browser sessions: what the dashboard's cookie stands for. The cookie holds a random
//! secret; a store keeps only its SHA-256, the API key it acts for and when it ends.
//! The coordinator's auth module makes and checks the secrets; a conformance check here
//! runs against both backends.

use chrono::{DateTime, Duration, Utc};

use crate::Store;

/// A browser session as stored (never the cookie itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSessionRecord {
    /// Hex SHA-256 of the cookie's secret; the primary key.
    pub hash: String,
    /// The API key this session acts as (its role, its revocation).
    pub key_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Create, find, delete one, delete a key's, and the purge of expired rows at create.
pub async fn conformance(s: &dyn Store) {
    // Stores keep milliseconds.
    let now = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
    let rec = |hash: &str, key: &str, expires: DateTime<Utc>| BrowserSessionRecord {
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
        s.create_browser_session(r).await.unwrap();
    }
    assert_eq!(s.find_browser_session("h-a1").await.unwrap(), Some(a1));
    assert_eq!(s.find_browser_session("nope").await.unwrap(), None);

    // Logout: one row.
    assert!(s.delete_browser_session("h-a1").await.unwrap());
    assert!(!s.delete_browser_session("h-a1").await.unwrap());
    assert_eq!(s.find_browser_session("h-a1").await.unwrap(), None);

    // Key revoked: all of that key's rows, no other key's.
    s.create_browser_session(&rec("h-a3", "ka", now + hour))
        .await
        .unwrap();
    assert_eq!(s.delete_browser_sessions_of_key("ka").await.unwrap(), 2);
    assert_eq!(s.find_browser_session("h-a2").await.unwrap(), None);
    assert_eq!(s.find_browser_session("h-a3").await.unwrap(), None);
    assert_eq!(s.find_browser_session("h-b1").await.unwrap(), Some(b1));
    assert_eq!(s.delete_browser_sessions_of_key("ka").await.unwrap(), 0);

    // An expired row is still found (the caller checks expiry) until the next create
    // drops it; live rows stay.
    let old = rec("h-old", "kb", now - hour);
    s.create_browser_session(&old).await.unwrap();
    assert_eq!(s.find_browser_session("h-old").await.unwrap(), Some(old));
    s.create_browser_session(&rec("h-b2", "kb", now + hour))
        .await
        .unwrap();
    assert_eq!(s.find_browser_session("h-old").await.unwrap(), None);
    assert!(s.find_browser_session("h-b1").await.unwrap().is_some());
    assert!(s.find_browser_session("h-b2").await.unwrap().is_some());
}
