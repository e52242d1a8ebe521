#![allow(dead_code)] // shared by the e2e, auth, browser and interop test binaries; each uses a part
//! Test harness: real `aof` processes on loopback, each in its own temp dir, with logs
//! kept in that dir (set AOF_TEST_KEEP_TMP=1 to keep and print it).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_aof");

/// Generous bound for things that normally take milliseconds (2 loaded cores).
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("aof-e2e-")
        .tempdir()
        .expect("tempdir");
    if std::env::var("AOF_TEST_KEEP_TMP").is_ok() {
        eprintln!("test dir: {}", dir.path().display());
    }
    dir
}

/// Polls `f` until it returns Some, or panics after `PATIENCE` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    aof_testkit::wait::poll_until(what, PATIENCE, Duration::from_millis(20), f).await
}

/// Env that makes leases, heartbeats and polls short enough for tests.
pub fn fast_env() -> Vec<(String, String)> {
    [
        ("RUNNER_HEARTBEAT_INTERVAL", "1"),
        ("AOF_LEASE_TTL", "3"),
        ("RUNNER_POLL_TIMEOUT", "5"),
        ("RUNNER_LIFECYCLE_INTERVAL", "0.2"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Which store the coordinators under test use: SQLite in their data dir (default), or
/// with `AOF_TEST_STORE=postgres` a fresh PostgreSQL database per data dir on the server
/// `AOF_TEST_DATABASE_URL` names (scripts/test.sh runs the API suite both ways).
pub fn postgres_mode() -> bool {
    match std::env::var("AOF_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("AOF_TEST_STORE={other}: must be sqlite or postgres"),
    }
}

/// The env that points an `aof` process at `data_dir`'s store: nothing for SQLite; for
/// PostgreSQL `AOF_DATABASE_URL` of the database made for this dir (made on first use
/// and remembered in `<data_dir>/database_url`, so restarts and offline `aof keys` see
/// the same rows).
pub fn store_env(data_dir: &Path) -> Vec<(String, String)> {
    if !postgres_mode() {
        return Vec::new();
    }
    let file = data_dir.join("database_url");
    let url = match std::fs::read_to_string(&file) {
        Ok(u) => u,
        Err(_) => {
            let base = std::env::var("AOF_TEST_DATABASE_URL").expect(
                "AOF_TEST_STORE=postgres needs AOF_TEST_DATABASE_URL (scripts/ci/postgres.sh)",
            );
            // Its own thread and runtime: callers may be sync code inside a test runtime.
            let url = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(aof_store_postgres::testing::fresh_database(&base))
            })
            .join()
            .unwrap()
            .expect("create a test database");
            std::fs::create_dir_all(data_dir).unwrap();
            std::fs::write(&file, &url).unwrap();
            url
        }
    };
    vec![("AOF_DATABASE_URL".into(), url)]
}

pub struct Coordinator {
    pub child: Child,
    pub url: String,
    pub port: u16,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    starts: u32,
}

impl Coordinator {
    pub async fn start(dir: &Path, env: Vec<(String, String)>) -> Coordinator {
        Self::start_at(dir, 0, env).await
    }

    /// On `port` (0: a free one), for a peer that needs the URL before the coordinator
    /// starts (a dashboard whose origin goes into the coordinator's `CORS_ORIGINS`).
    pub async fn start_at(dir: &Path, port: u16, env: Vec<(String, String)>) -> Coordinator {
        let data_dir = dir.join("coord");
        std::fs::create_dir_all(&data_dir).unwrap();
        let mut c = Coordinator {
            child: spawn_coord(&data_dir, port, &env, 0).await,
            url: String::new(),
            port: 0,
            data_dir,
            env,
            starts: 1,
        };
        let addr = read_addr(&c.data_dir.join("addr")).await;
        c.port = addr.rsplit(':').next().unwrap().parse().unwrap();
        c.url = format!("http://{addr}");
        wait_healthy(&c.url).await;
        c
    }

    /// SIGKILL: no drain, no cleanup — a crash.
    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }

    /// Starts again on the same port and data dir (after `kill9`).
    pub async fn restart(&mut self) {
        let _ = std::fs::remove_file(self.data_dir.join("addr"));
        self.child = spawn_coord(&self.data_dir, self.port, &self.env, self.starts).await;
        self.starts += 1;
        read_addr(&self.data_dir.join("addr")).await;
        wait_healthy(&self.url).await;
    }

    pub fn log(&self) -> String {
        (0..self.starts)
            .map(|i| {
                std::fs::read_to_string(self.data_dir.join(format!("coordinator.{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

async fn spawn_coord(data_dir: &Path, port: u16, env: &[(String, String)], n: u32) -> Child {
    let log = std::fs::File::create(data_dir.join(format!("coordinator.{n}.log"))).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["coordinator", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--addr-file")
        .arg(data_dir.join("addr"))
        .envs(env.iter().cloned())
        .envs(store_env(data_dir))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    cmd.spawn().expect("spawn coordinator")
}

async fn read_addr(path: &Path) -> String {
    wait_for("coordinator address file", || async {
        std::fs::read_to_string(path).ok().filter(|s| !s.is_empty())
    })
    .await
}

pub async fn wait_healthy(url: &str) {
    let c = client();
    wait_for("coordinator /health", || async {
        match c.get(format!("{url}/health")).send().await {
            Ok(r) if r.status().is_success() => Some(()),
            _ => None,
        }
    })
    .await
}

/// `aof up` (coordinator + runner in one process) started in `dir` as its working
/// directory, so its data lands in `dir/.agent-orchestrator`.
pub struct Up {
    pub child: Child,
    pub url: String,
    pub port: u16,
    log: PathBuf,
}

impl Up {
    pub async fn start(dir: &Path) -> Up {
        Self::start_with(dir, 0, &[], &[], "up.log").await
    }

    /// On `port` (0: a free one) with extra flags and env, logging to `dir/log_name`
    /// (the same dir and port again: a restart on the same data).
    pub async fn start_with(
        dir: &Path,
        port: u16,
        args: &[&str],
        env: &[(String, String)],
        log_name: &str,
    ) -> Up {
        let addr_file = dir.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = dir.join(log_name);
        let child = Command::new(BIN)
            .current_dir(dir)
            .args([
                "up",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--addr-file",
            ])
            .arg(&addr_file)
            .args(args)
            .envs(env.iter().cloned())
            .envs(store_env(&dir.join(".agent-orchestrator")))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn aof up");
        let addr = read_addr(&addr_file).await;
        let url = format!("http://{addr}");
        wait_healthy(&url).await;
        Up {
            child,
            url,
            port: addr.rsplit(':').next().unwrap().parse().unwrap(),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Runner {
    pub child: Child,
    pub dir: PathBuf,
}

impl Runner {
    pub async fn start(url: &str, dir: &Path, name: &str, extra: &[&str]) -> Runner {
        let rdir = dir.join(name);
        std::fs::create_dir_all(&rdir).unwrap();
        let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["runner", "--url", url, "--hostname", name])
            .arg("--workspace")
            .arg(rdir.join("ws"))
            .arg("--project-dir")
            .arg(&rdir)
            .args(extra)
            .env("RUST_LOG", "info,aof_runner=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        Runner {
            child: cmd.spawn().expect("spawn runner"),
            dir: rdir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("runner.log")).unwrap_or_default()
    }

    pub async fn kill9(&mut self) {
        self.child.start_kill().expect("kill -9");
        let _ = self.child.wait().await;
    }
}

/// `aof ARGS` with `env` added and the test process's own `AOF_URL`,
/// `AGENT_ORCHESTRATOR_API_URL` and `AOF_API_KEY` removed: (exit code, stdout, stderr).
pub async fn aof_cli(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("AOF_URL")
        .env_remove("AGENT_ORCHESTRATOR_API_URL")
        .env_remove("AOF_API_KEY")
        .envs(env.iter().cloned())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Not every test binary that includes this harness uses each of them.
#[allow(unused_imports)]
pub use aof_testkit::http::{call, call_h, call_raw, client};

pub async fn start_run(url: &str, prompt: &str) -> (String, String) {
    let (st, body) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": prompt}})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    (
        body["run_id"].as_str().unwrap().to_string(),
        body["session_id"].as_str().unwrap().to_string(),
    )
}

/// Echo knobs ride in the prompt's first line (`!echo {json}`), since the implicit
/// parameter schema allows only `prompt`.
pub fn echo_prompt(knobs: Value, text: &str) -> String {
    format!("!echo {knobs}\n{text}")
}

pub async fn session_status(url: &str, sid: &str) -> String {
    let (_, b) = call("GET", &format!("{url}/sessions/{sid}/status"), None).await;
    b["status"].as_str().unwrap_or("").to_string()
}

pub async fn wait_session(url: &str, sid: &str, want: &str) {
    wait_for(&format!("session {sid} to be {want}"), || async {
        (session_status(url, sid).await == want).then_some(())
    })
    .await
}

/// A session's runs, oldest first.
pub async fn runs_of(url: &str, sid: &str) -> Vec<Value> {
    let (_, b) = call("GET", &format!("{url}/runs"), None).await;
    let mut runs: Vec<Value> = b["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["session_id"] == sid)
        .cloned()
        .collect();
    runs.sort_by_key(|r| r["created_at"].as_str().unwrap_or("").to_string());
    runs
}

pub async fn events(url: &str, sid: &str) -> Vec<Value> {
    let (st, b) = call("GET", &format!("{url}/sessions/{sid}/events"), None).await;
    assert_eq!(st, 200, "{b}");
    b["events"].as_array().cloned().unwrap_or_default()
}

/// Registers a protocol-speaking test runner (a real HTTP client, no executor).
pub async fn register(url: &str, host: &str) -> String {
    let (st, b) = call(
        "POST",
        &format!("{url}/runner/register"),
        Some(
            json!({"hostname": host, "project_dir": "/p", "executor_profile": "test",
                    "executor": {"type": "autonomous"}}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    b["runner_id"].as_str().unwrap().to_string()
}

// Not every suite that includes this file reads a stream.
#[allow(unused_imports)]
pub use aof_testkit::sse::Sse;

/// `aof keys create --data-dir` (offline): the way the first keys are made.
pub fn offline_key(data_dir: &Path, role: &str) -> String {
    let out = std::process::Command::new(BIN)
        .args(["keys", "create", "--role", role, "--name", role])
        .arg("--data-dir")
        .arg(data_dir)
        .envs(store_env(data_dir))
        .env_remove("AOF_API_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("aof_"), "{key}");
    key
}

/// The lease headers of a run as a runner's poll gave it.
pub fn lease(run: &Value) -> [(&str, &str); 2] {
    [
        ("x-aof-lease-token", run["lease_token"].as_str().unwrap()),
        ("x-aof-run-id", run["run_id"].as_str().unwrap()),
    ]
}

/// What a runner sends before a listed tool (`Bash` with `command`) runs, under the
/// run's lease; returns the approval id (pending).
pub async fn ask(url: &str, sid: &str, run: &Value, command: &str, key: &str) -> String {
    let (st, b) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/approvals"),
        Some(json!({"run_id": run["run_id"], "tool_name": "Bash",
                    "tool_input": {"command": command}, "request_key": key})),
        &lease(run),
    )
    .await;
    assert!(st == 200 || st == 201, "{st} {b}");
    assert_eq!(b["status"], "pending", "{b}");
    b["approval_id"].as_str().unwrap().to_string()
}

/// `GET /approvals/{id}` (auth off).
pub async fn approval(url: &str, id: &str) -> Value {
    let (st, b) = call("GET", &format!("{url}/approvals/{id}"), None).await;
    assert_eq!(st, 200, "{b}");
    b
}

/// A test runner (`runner`, from `register`) takes the next run and reports it started,
/// as a runner does before its executor asks for anything; returns the run as the poll
/// gave it (with its lease).
pub async fn claim_started(url: &str, runner: &str) -> Value {
    let run = wait_for("a run for the test runner", || async {
        let (st, b) = call(
            "GET",
            &format!("{url}/runner/runs?runner_id={runner}"),
            None,
        )
        .await;
        (st == 200 && b.get("run").is_some()).then(|| b["run"].clone())
    })
    .await;
    let rid = run["run_id"].as_str().unwrap();
    let (st, b) = call_h(
        "POST",
        &format!("{url}/runner/runs/{rid}/started"),
        Some(json!({"runner_id": runner})),
        &lease(&run),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    run
}
