//! Id generation. Prefixes match the AOF reference so clients that sniff them keep working.
//!
//! Run and session ids start with the creation time, so they sort by age and a new
//! row lands at the right edge of every index keyed by them (the runs and sessions
//! primary keys, and the event indexes keyed by session). With random ids each insert
//! dirtied a leaf page somewhere in each of those indexes, and every dirtied page is a
//! 4 KiB frame in the WAL at commit: time-ordered ids cut the coordinator's bytes
//! written per run by a third (BENCHMARKS.md). The random tail keeps two ids made in
//! the same millisecond apart: 36⁸ ≈ 2.8·10¹² choices.

use rand::Rng;

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// Base-36 digits of the millisecond clock: 36⁹ ms is about 3,000 years.
const TIME_DIGITS: usize = 9;

fn random(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| DIGITS[rng.gen_range(0..DIGITS.len())] as char)
        .collect()
}

/// `TIME_DIGITS` base-36 digits of the current Unix time in ms, then `len` random ones.
fn time_ordered(len: usize) -> String {
    let mut ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut time = [b'0'; TIME_DIGITS];
    for digit in time.iter_mut().rev() {
        *digit = DIGITS[(ms % 36) as usize];
        ms /= 36;
    }
    let mut id = String::with_capacity(TIME_DIGITS + len);
    id.extend(time.iter().map(|&b| b as char));
    id.push_str(&random(len));
    id
}

pub fn new_run_id() -> String {
    format!("run_{}", time_ordered(8))
}

pub fn new_session_id() -> String {
    format!("ses_{}", time_ordered(8))
}

/// Approvals sort by age like runs (the pending index and listings are by time).
pub fn new_approval_id() -> String {
    format!("apr_{}", time_ordered(8))
}

pub fn new_runner_id() -> String {
    format!("lnch_{}", random(12))
}

/// Lease tokens are secrets held by one runner: long enough not to be guessed.
pub fn new_lease_token() -> String {
    format!("lease_{}", random(24))
}

pub fn new_event_key() -> String {
    random(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefixes_and_differ() {
        let a = new_run_id();
        let b = new_run_id();
        assert!(
            a.starts_with("run_") && a.len() == 4 + TIME_DIGITS + 8,
            "{a}"
        );
        assert_ne!(a, b);
        assert!(new_session_id().starts_with("ses_"));
        assert!(new_runner_id().starts_with("lnch_"));
        assert!(new_lease_token().len() > 24);
        let all = [a, b, new_session_id(), new_lease_token(), new_event_key()].concat();
        assert!(
            all.bytes().all(|c| c == b'_' || DIGITS.contains(&c)),
            "{all}"
        );
    }

    /// Later ids sort after earlier ones (what keeps inserts at the indexes' right edge).
    #[test]
    fn run_and_session_ids_sort_by_creation_time() {
        let first = (new_run_id(), new_session_id());
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = (new_run_id(), new_session_id());
        assert!(first.0 < later.0, "{first:?} {later:?}");
        assert!(first.1 < later.1, "{first:?} {later:?}");
        // The clock part is the current time: decoding it gives back today, not garbage.
        let ms = u64::from_str_radix(&later.0[4..4 + TIME_DIGITS], 36).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(now - ms < 60_000, "{ms} vs {now}");
    }
}
