//! Child processes shared by the process-based executors (`command`, `claude_code`):
//! building the command (limits, agent user, empty environment: see `isolation`),
//! spawning as the leader of a new process group, reading output lines, signalling the
//! whole group, the stop escalation, and resource limits (through `prlimit`). What the
//! output means is each executor's job.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use crate::isolation::AgentProcess;
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, BufReader},
    process::{Child, ChildStderr, ChildStdout, Command},
    time::Instant,
};

/// Most of stderr kept for a failure message.
pub(crate) const STDERR_TAIL: usize = 4 * 1024;

/// Resource limits for every agent process (soft = hard). The workspace forbids unsafe
/// code, so no `setrlimit` in a `pre_exec` hook: util-linux `prlimit` sets them on
/// itself and execs the program (same pid, so the process group and signals are as
/// without limits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessLimits {
    /// RLIMIT_AS, bytes of address space.
    pub address_space: Option<u64>,
    /// RLIMIT_CPU, seconds of CPU time (SIGXCPU, then SIGKILL).
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_NOFILE, open file descriptors.
    pub open_files: Option<u64>,
    /// RLIMIT_NPROC, processes of the runner's user (counted across the whole uid).
    pub processes: Option<u64>,
    /// The `prlimit` program; `resolve` makes it absolute.
    pub prlimit: Option<PathBuf>,
}

impl ProcessLimits {
    pub fn is_empty(&self) -> bool {
        self.address_space.is_none()
            && self.cpu_seconds.is_none()
            && self.open_files.is_none()
            && self.processes.is_none()
    }

    /// `prlimit`'s options for these limits.
    pub fn prlimit_args(&self) -> Vec<String> {
        [
            ("--as", self.address_space),
            ("--cpu", self.cpu_seconds),
            ("--nofile", self.open_files),
            ("--nproc", self.processes),
        ]
        .into_iter()
        .filter_map(|(opt, v)| v.map(|v| format!("{opt}={v}")))
        .collect()
    }

    /// With limits set, find `prlimit` on `PATH` (absolute: agent processes start with
    /// an allow-listed environment) and check that it runs. Call once at start, so a runner
    /// that cannot apply its limits refuses to start instead of running agents without.
    pub async fn resolve(mut self) -> Result<ProcessLimits, String> {
        if self.is_empty() {
            return Ok(self);
        }
        let program = match &self.prlimit {
            Some(p) => p.clone(),
            None => find_on_path("prlimit").ok_or_else(|| {
                "resource limits are configured (AOF_RUN_RLIMIT_*) but `prlimit` (util-linux) \
                 is not on PATH; install util-linux or unset the limits"
                    .to_string()
            })?,
        };
        let out = tokio::process::Command::new(&program)
            .arg("--version")
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} --version failed: {}",
                program.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        self.prlimit = Some(program);
        Ok(self)
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A command for an agent process running `program`: under the runner's limits (then
/// through `prlimit`), as the agent user when the runner has one, with an empty
/// environment — the caller adds `isolation::environment`. Arguments added to it
/// afterwards go to `program`.
pub(crate) fn command(program: impl AsRef<Path>, agent: &AgentProcess) -> Command {
    let limits = &agent.limits;
    let mut cmd = if limits.is_empty() {
        Command::new(program.as_ref())
    } else {
        let prlimit = limits
            .prlimit
            .clone()
            .unwrap_or_else(|| PathBuf::from("prlimit"));
        let mut cmd = Command::new(prlimit);
        cmd.args(limits.prlimit_args())
            .arg("--")
            .arg(program.as_ref());
        cmd
    };
    cmd.env_clear();
    if let Some(user) = &agent.user {
        user.apply(&mut cmd);
    }
    cmd
}

/// Spawn `cmd` with piped stdio, as the leader of its own process group (so a stop
/// reaches everything it started), killed if dropped.
pub(crate) fn spawn_group(cmd: &mut Command) -> std::io::Result<Child> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

pub(crate) fn signal_group(pgid: u32, sig: Signal) {
    // The group may be gone already; that is the goal, not an error.
    let _ = killpg(Pid::from_raw(pgid as i32), sig);
}

/// Keep the last `STDERR_TAIL` bytes of stderr, line by line.
pub(crate) fn push_tail(tail: &mut String, line: &str) {
    tail.push_str(line);
    tail.push('\n');
    if tail.len() > STDERR_TAIL {
        let mut cut = tail.len() - STDERR_TAIL;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn next_line<R: AsyncRead + Unpin>(
    r: &mut Option<LineReader<R>>,
) -> Option<String> {
    match r {
        Some(r) => r.next().await,
        None => None,
    }
}

/// A spawned child with its output streams, and where its stop escalation stands.
pub(crate) struct Group {
    pub child: Child,
    pub pgid: u32,
    /// `None` once at its end, or abandoned after a SIGKILL (a grandchild may hold it).
    pub stdout: Option<LineReader<ChildStdout>>,
    pub stderr: Option<LineReader<ChildStderr>>,
    /// When the next stop step is due, and what it is.
    pub next_step: Option<(Instant, Signal)>,
}

impl Group {
    /// Take the child's output streams (stdin stays with the caller).
    pub(crate) fn new(mut child: Child) -> Group {
        Group {
            pgid: child.id().unwrap_or(0),
            stdout: child.stdout.take().map(LineReader::new),
            stderr: child.stderr.take().map(LineReader::new),
            child,
            next_step: None,
        }
    }

    /// Both streams are at their end (or abandoned): time to reap.
    pub(crate) fn drained(&self) -> bool {
        self.stdout.is_none() && self.stderr.is_none()
    }

    /// Start stopping: send `first` to the group now, SIGKILL after `grace`. With
    /// `first = SIGINT` (an interrupt the program can answer), SIGTERM comes halfway.
    pub(crate) fn stop(&mut self, first: Signal, grace: Duration) {
        signal_group(self.pgid, first);
        self.next_step = Some(match first {
            Signal::SIGINT => (Instant::now() + grace / 2, Signal::SIGTERM),
            _ => (Instant::now() + grace, Signal::SIGKILL),
        });
    }

    /// The due stop step (see `stop`); call when `next_step`'s time has come.
    pub(crate) fn escalate(&mut self, grace: Duration) {
        let Some((_, sig)) = self.next_step.take() else {
            return;
        };
        if sig == Signal::SIGKILL {
            tracing::warn!(
                pgid = self.pgid,
                "process ignored SIGTERM; sending SIGKILL to its group"
            );
            signal_group(self.pgid, Signal::SIGKILL);
            // The pipes may be held open by a grandchild; stop reading them.
            self.stdout = None;
            self.stderr = None;
        } else {
            tracing::info!(pgid = self.pgid, signal = %sig, "process still running; signalling its group");
            signal_group(self.pgid, sig);
            self.next_step = Some((Instant::now() + grace / 2, Signal::SIGKILL));
        }
    }

    pub(crate) fn step_at(&self) -> Option<Instant> {
        self.next_step.map(|(at, _)| at)
    }
}

/// Reads lines, decoding invalid UTF-8 lossily (a stray byte must not end the reading
/// and leave the program blocked on a full pipe). Cancel-safe: a partly read line stays
/// in `buf` when a `select!` drops the read, and the next call continues it.
pub(crate) struct LineReader<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        LineReader {
            inner: BufReader::new(inner),
            buf: Vec::new(),
        }
    }

    /// The next line without its `\n` / `\r\n`; `None` at the end (or on a read error).
    pub(crate) async fn next(&mut self) -> Option<String> {
        let n = self
            .inner
            .read_until(b'\n', &mut self.buf)
            .await
            .unwrap_or(0);
        if n == 0 && self.buf.is_empty() {
            return None;
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        let line = String::from_utf8_lossy(&self.buf).into_owned();
        self.buf.clear();
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_prlimit_options() {
        let none = ProcessLimits::default();
        assert!(none.is_empty());
        assert_eq!(none.prlimit_args(), Vec::<String>::new());
        let some = ProcessLimits {
            address_space: Some(1 << 30),
            open_files: Some(64),
            ..Default::default()
        };
        assert_eq!(some.prlimit_args(), ["--as=1073741824", "--nofile=64"]);
    }

    /// A real child under a real `prlimit`: the limit is what the child sees.
    #[tokio::test]
    async fn a_limited_child_sees_its_limits() {
        let limits = ProcessLimits {
            open_files: Some(77),
            cpu_seconds: Some(120),
            ..Default::default()
        }
        .resolve()
        .await
        .expect("prlimit (util-linux) is needed for this test");
        let agent = AgentProcess {
            limits,
            ..Default::default()
        };
        let mut cmd = command("sh", &agent);
        cmd.env("PATH", std::env::var_os("PATH").unwrap())
            .args(["-c", "ulimit -n; ulimit -t; echo $$"]);
        let out = cmd.output().await.unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..2], ["77", "120"], "{text}");
        // Unlimited without limits: the same command is not wrapped.
        let plain = command("sh", &AgentProcess::default());
        assert_eq!(plain.as_std().get_program(), "sh");
    }

    #[tokio::test]
    async fn a_missing_prlimit_is_a_clear_error() {
        let limits = ProcessLimits {
            open_files: Some(10),
            prlimit: Some("/nonexistent/prlimit".into()),
            ..Default::default()
        };
        let e = limits.resolve().await.unwrap_err();
        assert!(e.contains("/nonexistent/prlimit"), "{e}");
        // No limits: nothing to check, even with no prlimit.
        assert!(ProcessLimits::default().resolve().await.is_ok());
    }

    #[tokio::test]
    async fn reads_lines_lossily() {
        let data: &[u8] = b"one\r\ntw\xffo\n\nlast";
        let mut r = LineReader::new(data);
        let mut got = Vec::new();
        while let Some(l) = r.next().await {
            got.push(l);
        }
        assert_eq!(got, ["one", "tw\u{fffd}o", "", "last"]);
    }
}
