//! Browser sessions: what the dashboard's cookie stands for. The cookie holds a random
//! secret; a store keeps only its SHA-256, the API key it acts for and when it ends.
//! The coordinator's auth module makes and checks the secrets.

use chrono::{DateTime, Utc};

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
