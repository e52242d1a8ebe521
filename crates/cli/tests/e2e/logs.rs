//! Logging as the container images run `aof`: JSON lines on stdout
//! (`AOF_LOG_FORMAT=json`, `AOF_LOG_TARGET=stdout`), nothing on stderr, and SIGTERM ends
//! the coordinator cleanly (exit 0), which is what `docker stop` sends.

use std::process::Stdio;

use nix::{sys::signal::Signal, unistd::Pid};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::Command,
    time::timeout,
};

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_on_stdout_and_sigterm_exits_0() {
    let dir = tempdir();
    let mut child = Command::new(BIN)
        .args(["coordinator", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("AOF_LOG_TARGET", "stdout")
        .env("AOF_LOG_FORMAT", "json")
        .env_remove("AOF_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The coordinator logs "coordinator listening" at info once it is bound.
    timeout(PATIENCE, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            let listening = l.contains("coordinator listening");
            seen.push(l);
            if listening {
                return;
            }
        }
        panic!("stdout closed before the listening log: {seen:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no listening log on stdout: {seen:?}"));

    let pid = Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
    timeout(PATIENCE, async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push(l);
        }
    })
    .await
    .expect("stdout did not close after SIGTERM");
    let status = timeout(PATIENCE, child.wait()).await.unwrap().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM: {status:?}");

    // Every line but the one-line banner is a JSON event with level and message.
    let mut json_lines = 0;
    for l in seen
        .iter()
        .filter(|l| !l.starts_with("AOF coordinator listening on"))
    {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"));
        assert!(v["level"].is_string() && v["message"].is_string(), "{l}");
        json_lines += 1;
    }
    assert!(json_lines >= 1, "{seen:?}");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(err.trim().is_empty(), "logs went to stderr: {err}");
}
