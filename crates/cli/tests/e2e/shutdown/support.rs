//! What the stop tests share: signals, exit checks, logs, SSE readers, writers.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use aof_wire::sse::parse::Parser;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::harness::*;

/// The bound these tests configure (the default).
pub const BOUND: Duration = Duration::from_secs(10);
/// Room on top of the bound for a loaded 2-core machine (process start-up, scheduling).
pub const SLACK: Duration = Duration::from_secs(20);
pub const SUBSCRIBERS: usize = 100;
pub const POLLS: usize = 20;

pub fn signal(child: &tokio::process::Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(child.id().expect("still running") as i32);
    nix::sys::signal::kill(pid, sig).expect("signal");
}

/// Sends `sig` to `child`; returns when, for [`exits_within`].
pub fn signalled(child: &tokio::process::Child, sig: nix::sys::signal::Signal) -> Instant {
    let t0 = Instant::now();
    signal(child, sig);
    t0
}

/// A coordinator with the harness's fast timings and `extra` env on top.
pub async fn fast_coordinator(dir: &std::path::Path, extra: &[(&str, &str)]) -> Coordinator {
    let mut cenv = fast_env();
    cenv.extend(env(extra));
    Coordinator::start(dir, cenv).await
}

/// `aof up` SIGINTed: returns when the signal went, once its runner says it is draining.
pub async fn interrupted_and_draining(up: &Up) -> Instant {
    let t0 = signalled(&up.child, nix::sys::signal::Signal::SIGINT);
    wait_for("the runner to drain", || async {
        up.log().contains("draining").then_some(())
    })
    .await;
    t0
}

/// Waits until the session has an event whose first text is `text`.
pub async fn wait_text(url: &str, sid: &str, text: &str) {
    wait_for(&format!("the event '{text}'"), || async {
        events(url, sid)
            .await
            .iter()
            .any(|e| e["content"][0]["text"] == text)
            .then_some(())
    })
    .await
}

/// Waits for `child` to exit after a signal sent at `since`; asserts exit 0 within
/// `bound` + slack and returns how long it took.
pub async fn exits_within(
    child: &mut tokio::process::Child,
    since: Instant,
    bound: Duration,
    logs: &Logs,
) -> Duration {
    let status = tokio::time::timeout(bound + SLACK, child.wait())
        .await
        .unwrap_or_else(|_| panic!("no exit within {:?}\n{}", bound + SLACK, logs.read()))
        .unwrap();
    assert!(status.success(), "exit {status}\n{}", logs.read());
    since.elapsed()
}

/// A coordinator's logs (the harness writes `coordinator.*.log` in its data dir).
pub fn coordinator_logs(c: &Coordinator) -> Logs {
    Logs {
        dir: c.data_dir.clone(),
        prefix: "coordinator.",
    }
}

/// `aof up`'s logs (`up.*.log`, one a start, in `dir`).
pub fn up_logs(dir: &std::path::Path) -> Logs {
    Logs {
        dir: dir.to_path_buf(),
        prefix: "up.",
    }
}

/// The log files `<dir>/<prefix>*.log` of a process and its restarts.
pub struct Logs {
    pub dir: std::path::PathBuf,
    pub prefix: &'static str,
}

impl Logs {
    pub fn read(&self) -> String {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with(self.prefix) && name.ends_with(".log")
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn message(sid: &str, text: &str) -> Value {
    json!({"event_type": "message", "session_id": sid, "timestamp": "2026-01-01T00:00:00+00:00",
           "role": "assistant", "content": [{"type": "text", "text": text}]})
}

/// Told once its test holds for a [`Feed`] being read.
pub type Ready = (tokio::sync::oneshot::Sender<()>, fn(&Feed) -> bool);

/// One `GET /sse/sessions` client, read to its end: the message texts it got (in
/// order), the last id, and whether the stream ended with a `retry:` frame.
#[derive(Default, Debug)]
pub struct Feed {
    pub texts: Vec<String>,
    pub last_id: Option<String>,
    pub ended_with_retry: bool,
}

impl Feed {
    /// Reads from `url` (resuming after `self.last_id`) until the stream ends, or until
    /// `enough` says so. `ready` fires once its test holds after a frame.
    pub async fn read(&mut self, url: &str, ready: Option<Ready>, enough: impl Fn(&Feed) -> bool) {
        let mut rb = client().get(format!("{url}/sse/sessions"));
        if let Some(id) = &self.last_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.send().await.expect("open the feed");
        assert_eq!(resp.status().as_u16(), 200);
        let mut body = resp.bytes_stream();
        let mut parser = Parser::default();
        let mut ready = ready;
        let mut tail = String::new();
        loop {
            let chunk = tokio::time::timeout(PATIENCE, body.next())
                .await
                .expect("a frame or the end within patience");
            let Some(Ok(chunk)) = chunk else { break };
            tail.push_str(&String::from_utf8_lossy(&chunk));
            if tail.len() > 200 {
                tail.drain(..tail.len() - 200);
            }
            for f in parser.feed(&chunk) {
                if f.id.is_some() {
                    self.last_id = f.id.clone();
                }
                if f.event == "event" {
                    let v: Value = serde_json::from_str(&f.data).unwrap();
                    if let Some(t) = v["data"]["content"][0]["text"].as_str() {
                        self.texts.push(t.to_string());
                    }
                }
                if ready.as_ref().is_some_and(|(_, test)| test(self)) {
                    let _ = ready.take().unwrap().0.send(());
                }
            }
            if enough(self) {
                return;
            }
        }
        self.ended_with_retry = tail.ends_with("retry: 1000\n\n");
    }
}

/// The message texts stored for `sessions`.
pub async fn stored_texts(url: &str, sessions: &[String]) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for sid in sessions {
        for e in events(url, sid).await {
            if let Some(t) = e["content"][0]["text"].as_str() {
                all.insert(t.to_string());
            }
        }
    }
    all
}

pub async fn gauge(url: &str, name: &str) -> i64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

/// Writers posting single events and batches until the coordinator is gone; what
/// each got a 201 for is acknowledged.
pub fn writers(url: &str, sessions: &[String], acked: Arc<std::sync::Mutex<Vec<String>>>) {
    for (i, sid) in sessions.iter().enumerate() {
        let (url, sid, acked) = (url.to_string(), sid.clone(), acked.clone());
        tokio::spawn(async move {
            let c = client();
            for n in 0.. {
                let (path, body, texts) = if i % 2 == 0 {
                    let t = format!("{sid}-{n}");
                    ("events", message(&sid, &t), vec![t])
                } else {
                    let texts: Vec<String> = (0..10).map(|k| format!("{sid}-{n}.{k}")).collect();
                    let events: Vec<Value> = texts.iter().map(|t| message(&sid, t)).collect();
                    ("events/batch", json!({ "events": events }), texts)
                };
                let res = c
                    .post(format!("{url}/sessions/{sid}/{path}"))
                    .json(&body)
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().as_u16() == 201 => acked.lock().unwrap().extend(texts),
                    // The coordinator is going or gone: this write was not acknowledged.
                    _ => return,
                }
            }
        });
    }
}

/// A write to a new session whose body never finishes arriving: open until the process
/// ends. Returns once the handler is reading the body (the server's `100 Continue`).
pub async fn stalled_write(url: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_, sid) = start_run(url, "stalled").await;
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /sessions/{sid}/events HTTP/1.1\r\nHost: {addr}\r\nExpect: 100-continue\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
        .await
        .expect("100 Continue")
        .unwrap();
    let got = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(got.starts_with("HTTP/1.1 100"), "{got}");
    s.write_all(b"{\"event_type\"").await.unwrap();
    s
}
