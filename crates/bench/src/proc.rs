//! What the kernel tells us about a process: resident memory, open descriptors, our own
//! CPU time, and the descriptor limit. Linux only (`/proc`); elsewhere values are `None`.

use std::time::Duration;

use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};

/// A `kB` field of `/proc/PID/status`, e.g. `VmRSS` (now) or `VmHWM` (peak).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Resident set size now, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS")
}

/// Peak resident set size since the process started, in kB.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    status_kb(pid, "VmHWM")
}

/// Number of open file descriptors.
pub fn fd_count(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// User + system CPU time this process has used so far (all threads).
pub fn self_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::from_secs(t.tv_sec().max(0) as u64)
                    + Duration::from_micros(t.tv_usec().max(0) as u64)
            };
            tv(u.user_time()) + tv(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// User + system CPU time another process has used so far (all threads), from
/// `/proc/PID/stat`.
pub fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let ticks = tick(11)? + tick(12)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Raises the soft open-file limit to the hard limit (SSE fan-out holds one socket per
/// subscriber, twice when the coordinator is in-process). Returns the soft limit after.
pub fn raise_nofile() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kb(me).is_some_and(|kb| kb > 0));
        assert!(peak_rss_kb(me) >= rss_kb(me));
        assert!(fd_count(me).is_some_and(|n| n >= 3));
        assert!(raise_nofile().is_some_and(|n| n > 0));
        // Burn CPU until our own clock shows 100 ms (however loaded the machine is), so
        // the two readings of our time agree to within a few 10 ms ticks.
        let mut x = 0u64;
        while self_cpu() < Duration::from_millis(100) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let own = self_cpu();
        let seen = cpu_of(me).expect("our own /proc/PID/stat");
        let diff = own.abs_diff(seen);
        assert!(
            diff <= Duration::from_millis(50),
            "getrusage {own:?} vs /proc {seen:?}"
        );
        assert!(cpu_of(u32::MAX).is_none());
    }
}
