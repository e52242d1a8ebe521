//! What the kernel tells us about a process: resident memory, open descriptors, our own
//! CPU time, a process tree's CPU time, and the descriptor limit. Linux only (`/proc`);
//! elsewhere values are `None`.

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

/// The numbers of `/proc/PID/stat` we use, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    ppid: u32,
    /// utime + stime: this process's own threads.
    own: u64,
    /// cutime + cstime: its children that have exited *and been waited for*.
    reaped: u64,
}

/// Parses one `/proc/PID/stat` line.
fn parse_stat(stat: &str) -> Option<Stat> {
    // The command name is in parentheses and may hold spaces: count fields after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // ppid is field 4, utime/stime/cutime/cstime fields 14–17; `rest` starts at field 3.
    let num = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(num(1)?).ok()?,
        own: num(11)? + num(12)?,
        reaped: num(13)? + num(14)?,
    })
}

fn stat_of(pid: u32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn ticks(n: u64) -> Option<Duration> {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(Duration::from_secs_f64(n as f64 / hz as f64))
}

/// User + system CPU time another process has used so far (all threads), from
/// `/proc/PID/stat`.
pub fn cpu_of(pid: u32) -> Option<Duration> {
    ticks(stat_of(pid)?.own)
}

/// CPU time of a process tree so far: `pid` and every live descendant (utime + stime),
/// plus every exited descendant that its parent has waited for (cutime + cstime of the
/// parent). For PostgreSQL's postmaster that is every backend and worker, including
/// backends that came and went during the run: the postmaster reaps its children.
/// Lost: a descendant reparented out of the tree (never the case for PostgreSQL), and
/// one that exits between our reading its parent and itself (a few ticks at most).
pub fn tree_cpu(pid: u32) -> Option<Duration> {
    let root = stat_of(pid)?;
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if p != pid {
            if let Some(s) = stat_of(p) {
                all.push((p, s));
            }
        }
    }
    ticks(tree_ticks(pid, root, &all))
}

/// [`tree_cpu`]'s sum over `(pid, stat)` of every process but the root.
fn tree_ticks(root_pid: u32, root: Stat, all: &[(u32, Stat)]) -> u64 {
    let mut total = root.own + root.reaped;
    let mut parents = vec![root_pid];
    while let Some(parent) = parents.pop() {
        for (p, s) in all.iter().filter(|(_, s)| s.ppid == parent) {
            total += s.own + s.reaped;
            parents.push(*p);
        }
    }
    total
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
        // Our tree holds at least ourselves.
        assert!(tree_cpu(me).is_some_and(|t| t + Duration::from_millis(50) >= seen));
        assert!(tree_cpu(u32::MAX).is_none());
    }

    #[test]
    fn parses_stat_with_spaces_and_parens_in_the_name() {
        // A real postgres backend line (fields after cstime trimmed), name with ") ".
        let line = "4242 (postgres: a) b) S 4000 4000 4000 0 -1 4194560 1 0 0 0 \
                    17 5 3 2 20 0 1 0 100 1000 10";
        let s = parse_stat(line).expect("parses");
        assert_eq!(
            s,
            Stat {
                ppid: 4000,
                own: 22,
                reaped: 5
            }
        );
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn a_tree_sums_descendants_and_their_reaped_children_not_strangers() {
        let st = |ppid, own, reaped| Stat { ppid, own, reaped };
        // 10 = postmaster (reaped 100 ticks of exited backends); 11, 12 its children,
        // 13 a grandchild (of 12); 20 is a stranger and its child 21 too.
        let all = [
            (11, st(10, 5, 0)),
            (12, st(10, 7, 3)),
            (13, st(12, 2, 0)),
            (20, st(1, 1000, 1000)),
            (21, st(20, 1000, 0)),
        ];
        assert_eq!(
            tree_ticks(10, st(1, 40, 100), &all),
            40 + 100 + 5 + 7 + 3 + 2
        );
        assert_eq!(tree_ticks(12, st(10, 7, 3), &all), 7 + 3 + 2);
    }
}
