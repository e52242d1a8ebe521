//! API keys, session tokens and browser sessions: what both stores share about them.
//! Only hashes are stored; the coordinator's auth module makes and checks the secrets.

use chrono::{DateTime, Utc};

/// A time both stores keep as epoch milliseconds (`created_ms`, `expires_ms`, …). A
/// value out of chrono's range reads as the epoch.
pub fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_round_trip() {
        let t = at(1_700_000_000_123);
        assert_eq!(t.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(t.to_rfc3339(), "2023-11-14T22:13:20.123+00:00");
        assert_eq!(at(i64::MAX), DateTime::<Utc>::default(), "out of range");
    }
}
