#![allow(dead_code)] // shared by the approval test binaries; each uses a part
//! A real coordinator and a real runner in this process, on loopback HTTP as in
//! production (`aof up` runs them the same way), each test with its own data dir.

use std::time::Duration;

use aof_coordinator::{Coordinator, CoordinatorConfig};
use aof_executors::{approval::ApprovalPolicy, ExecutorConfig};
use aof_runner::RunnerConfig;
use aof_testkit::http::call;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Generous bound for a step that normally takes a second or two (a small model's
/// answer included) on 2 loaded cores.
pub const PATIENCE: Duration = Duration::from_secs(180);

pub struct Stack {
    pub url: String,
    pub dir: tempfile::TempDir,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Stack {
    /// A coordinator, and a runner whose default executor is `executor` with `floor`.
    pub async fn start(executor: ExecutorConfig, floor: ApprovalPolicy) -> Stack {
        let dir = tempfile::Builder::new()
            .prefix("aof-approvals-")
            .tempdir()
            .unwrap();
        let cfg = CoordinatorConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db_path: dir.path().join("observability.db"),
            agents_dir: dir.path().join("agents"),
            sweep_interval: Duration::from_millis(200),
            ..CoordinatorConfig::default()
        };
        let coord = Coordinator::bind(cfg).await.unwrap();
        let url = format!("http://{}", coord.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let mut tasks = vec![tokio::spawn(coord.serve(shutdown.clone()))];
        let runner = RunnerConfig {
            urls: vec![url.clone()],
            hostname: "approvals-test".into(),
            project_dir: dir.path().display().to_string(),
            executor_profile: executor.kind().into(),
            executor,
            workspace_root: dir.path().join("workspaces"),
            state_dir: dir.path().join("runner"),
            approval_floor: floor,
            ..RunnerConfig::default()
        };
        tasks.push(tokio::spawn(aof_runner::run(runner, shutdown.clone())));
        Stack {
            url,
            dir,
            shutdown,
            tasks,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (st, b) = call(method, &format!("{}{path}", self.url), body).await;
        assert!((200..300).contains(&st), "{method} {path}: {st} {b}");
        b
    }

    /// `POST /agents` with `blueprint`.
    pub async fn agent(&self, blueprint: Value) {
        self.call("POST", "/agents", Some(blueprint)).await;
    }

    /// Starts a session of `agent`; its session id.
    pub async fn run(&self, agent: &str, prompt: &str) -> String {
        let b = self
            .call(
                "POST",
                "/runs",
                Some(json!({"type": "start_session", "agent_name": agent,
                    "parameters": {"prompt": prompt}})),
            )
            .await;
        b["session_id"].as_str().unwrap().to_string()
    }

    /// The session's one pending approval, once it is there (`GET /approvals`).
    pub async fn pending(&self, sid: &str) -> Value {
        self.until("a pending approval", || async {
            let b = self
                .call(
                    "GET",
                    &format!("/approvals?session_id={sid}&status=pending"),
                    None,
                )
                .await;
            b["approvals"].as_array().and_then(|a| a.first()).cloned()
        })
        .await
    }

    /// Decide as an operator (auth is off in these tests).
    pub async fn decide(&self, approval_id: &str, decision: Value) -> Value {
        self.call("POST", &format!("/approvals/{approval_id}"), Some(decision))
            .await
    }

    /// The session once it ended (finished, failed or stopped).
    pub async fn ended(&self, sid: &str) -> Value {
        self.until("the session to end", || async {
            let b = self.call("GET", &format!("/sessions/{sid}"), None).await;
            let s = b.get("session").cloned().unwrap_or(b);
            matches!(
                s["status"].as_str(),
                Some("finished" | "failed" | "stopped")
            )
            .then_some(s)
        })
        .await
    }

    pub async fn status(&self, sid: &str) -> String {
        let b = self.call("GET", &format!("/sessions/{sid}"), None).await;
        let s = b.get("session").cloned().unwrap_or(b);
        s["status"].as_str().unwrap_or("").to_string()
    }

    pub async fn events(&self, sid: &str) -> Vec<Value> {
        let b = self
            .call("GET", &format!("/sessions/{sid}/events"), None)
            .await;
        b["events"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `f` until it gives a value, or panics after `PATIENCE` naming `what`.
    pub async fn until<T, F, Fut>(&self, what: &str, f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        aof_testkit::wait::poll_until(what, PATIENCE, Duration::from_millis(50), f).await
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The events of one type.
pub fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event_type"] == kind).collect()
}
