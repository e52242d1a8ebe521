//! Id generation. Prefixes match the AOF reference so clients that sniff them keep working.

use rand::{distributions::Alphanumeric, Rng};

fn suffix(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(|c| (c as char).to_ascii_lowercase())
        .collect()
}

pub fn new_run_id() -> String {
    format!("run_{}", suffix(12))
}

pub fn new_session_id() -> String {
    format!("ses_{}", suffix(12))
}

pub fn new_runner_id() -> String {
    format!("lnch_{}", suffix(12))
}

/// Lease tokens are secrets held by one runner: long enough not to be guessed.
pub fn new_lease_token() -> String {
    format!("lease_{}", suffix(24))
}

pub fn new_event_key() -> String {
    suffix(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefixes_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert!(a.starts_with("run_") && a.len() == 16);
        assert_ne!(a, b);
        assert!(new_session_id().starts_with("ses_"));
        assert!(new_runner_id().starts_with("lnch_"));
        assert!(new_lease_token().len() > 24);
    }
}
