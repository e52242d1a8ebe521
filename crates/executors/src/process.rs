//! Child processes shared by the process-based executors (`command`, `claude_code`):
//! spawning as the leader of a new process group, reading output lines, signalling the
//! whole group, and the stop escalation. What the output means is each executor's job.

use std::{process::Stdio, time::Duration};

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
