//! A real llama.cpp `llama-server` for the `model_api` tests, from `scripts/ci/llm.sh`
//! (`AOF_LLAMA_SERVER` and a model file variable such as `AOF_LLM_MODEL_15B`). It runs
//! on a free loopback port with the tool-calling chat template in
//! `fixtures/qwen2.5-tools.jinja` (Qwen2.5's own, asking for a bare JSON call instead of
//! `<tool_call>` tags, so the server returns real `tool_calls`), and is killed when
//! dropped. Its log goes to a file in the temp dir (see [`Llama::log`]).

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::process::{Child, Command};

/// The variable naming the 1.5B model (what the tests run against).
pub const MODEL_15B: &str = "AOF_LLM_MODEL_15B";
/// The variable naming the 0.5B model (only for re-recording fixtures).
pub const MODEL_05B: &str = "AOF_LLM_MODEL";

pub struct Llama {
    child: Child,
    port: u16,
    log: PathBuf,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

impl Llama {
    /// Starts the server with the model `$model_var` names and waits until it is
    /// healthy. `None` (with a note) when the server or model is not installed, except
    /// under `CI=true`, where that panics: a run must not pass without it.
    pub async fn start(model_var: &str) -> Option<Llama> {
        let (Some(bin), Some(model)) = (env_path("AOF_LLAMA_SERVER"), env_path(model_var)) else {
            let why = format!(
                "AOF_LLAMA_SERVER / {model_var} are not set: eval \"$(bash scripts/ci/llm.sh)\""
            );
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: {why}"
            );
            eprintln!("SKIPPED (no real model server): {why}");
            return None;
        };
        let mut llama = Llama::spawn(&bin, &model);
        llama.wait_healthy().await;
        Some(llama)
    }

    /// Like [`Llama::start`] but returns as soon as the server listens, while it still
    /// loads the model (it answers 503 "Loading model" then), to record that answer.
    pub async fn start_loading(model_var: &str) -> Option<Llama> {
        let (Some(bin), Some(model)) = (env_path("AOF_LLAMA_SERVER"), env_path(model_var)) else {
            return None;
        };
        let llama = Llama::spawn(&bin, &model);
        let health = format!("http://127.0.0.1:{}/health", llama.port);
        let http = reqwest::Client::new();
        while http.get(&health).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Some(llama)
    }

    fn spawn(bin: &std::path::Path, model: &std::path::Path) -> Llama {
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/qwen2.5-tools.jinja");
        // A free port: bind, read, release (llama-server does not report a port-0 bind).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let log = std::env::temp_dir().join(format!("llama-server-{port}.log"));
        let child = Command::new(bin)
            .arg("-m")
            .arg(model)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["-c", "4096", "-np", "1", "-t", "2", "--no-webui"])
            .args(["--jinja", "--chat-template-file", template])
            // No weight repacking: on CPUs with AMX (Sapphire Rapids) the repacked AMX
            // matmul of this llama.cpp build segfaults at the first decode; seen here.
            .arg("--no-repack")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("llama-server log file"))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        Llama { child, port, log }
    }

    /// Waits until `/health` answers 200 (the model is loaded). Panics with the server's
    /// log if it exits first (a bad flag or a missing file would otherwise cost the
    /// whole deadline).
    pub async fn wait_healthy(&mut self) {
        let health = format!("http://127.0.0.1:{}/health", self.port);
        let http = reqwest::Client::new();
        // Loading takes seconds; generous for a loaded 2-core machine.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        loop {
            if let Ok(r) = http.get(&health).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "llama-server exited ({status}) before it was healthy; log:\n{}",
                    self.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "llama-server not healthy within 600 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `http://127.0.0.1:PORT/v1`, an executor's `base_url`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the server now (SIGKILL), e.g. to cut a stream for real.
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }

    /// Generation speed the server logged (`eval time … tokens per second`), per step.
    pub fn tokens_per_second(&self) -> Vec<f64> {
        self.log()
            .lines()
            .filter(|l| l.contains(" eval time =") && !l.contains("prompt eval"))
            .filter_map(|l| l.split(',').nth(1))
            .filter_map(|s| s.split_whitespace().next())
            .filter_map(|n| n.parse().ok())
            .collect()
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
