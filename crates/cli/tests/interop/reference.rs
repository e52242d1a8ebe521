//! The AOF reference implementation as real peer processes: its coordinator (uvicorn),
//! its runner (`agent-runner`, executors started by `uv run --script`) and its dashboard
//! (the vite build, served as a single-page app). Paths come from
//! `scripts/ci/reference.sh`, which `scripts/test.sh` evaluates.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
};

use tokio::process::{Child, Command};

use crate::harness::{wait_for, wait_healthy};

/// Where `scripts/ci/reference.sh` put the reference's parts.
#[derive(Clone, Debug)]
pub struct RefPaths {
    /// The reference checkout (`servers/`, `apps/`, `config/`).
    pub dir: PathBuf,
    pub python: PathBuf,
    /// Holds the `uv` binary the reference runner starts executors with.
    pub uv_dir: PathBuf,
    pub uv_cache: PathBuf,
    pub exclude_newer: String,
    pub dashboard_dist: PathBuf,
    pub dashboard_sentinel: String,
}

impl RefPaths {
    /// The reference's parts, or None (with a loud message) when
    /// `scripts/ci/reference.sh` was not evaluated. With `CI=true` a missing peer fails
    /// the test instead: CI never skips.
    pub fn get() -> Option<RefPaths> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let found = (|| {
            Some(RefPaths {
                dir: var("AOF_REF_DIR")?.into(),
                python: var("AOF_REF_PYTHON")?.into(),
                uv_dir: var("AOF_REF_UV_DIR")?.into(),
                uv_cache: var("AOF_REF_UV_CACHE")?.into(),
                exclude_newer: var("AOF_REF_EXCLUDE_NEWER")?,
                dashboard_dist: var("AOF_REF_DASHBOARD_DIST")?.into(),
                dashboard_sentinel: var("AOF_REF_DASHBOARD_SENTINEL")?,
            })
        })();
        match found {
            Some(p) => Some(p),
            None if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true but the AOF reference is not prepared: eval \"$(bash scripts/ci/reference.sh)\"")
            }
            None => {
                eprintln!(
                    "SKIPPED: the AOF reference is not prepared; run eval \"$(bash scripts/ci/reference.sh)\" first"
                );
                None
            }
        }
    }

    pub fn coordinator_dir(&self) -> PathBuf {
        self.dir.join("servers/agent-coordinator")
    }

    pub fn runner_dir(&self) -> PathBuf {
        self.dir.join("servers/agent-runner")
    }

    /// PATH with the reference's `uv` first (its runner execs `uv run --script`).
    fn path_env(&self) -> String {
        format!(
            "{}:{}",
            self.uv_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }
}

/// A free loopback port (the reference coordinator cannot be told to pick one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The reference coordinator (FastAPI under uvicorn) with auth off, its SQLite database
/// and agents folder in `dir`. It keeps runs and runners in memory: one per test.
pub struct RefCoordinator {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
}

impl RefCoordinator {
    pub async fn start(p: &RefPaths, dir: &Path) -> RefCoordinator {
        Self::start_with(p, dir, &[]).await
    }

    pub async fn start_with(p: &RefPaths, dir: &Path, env: &[(&str, &str)]) -> RefCoordinator {
        let dir = dir.join("ref-coordinator");
        std::fs::create_dir_all(dir.join("agents")).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("coordinator.log")).unwrap();
        let child = Command::new(&p.python)
            .current_dir(p.coordinator_dir())
            .args(["-m", "uvicorn", "main:app", "--host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .env("AGENT_ORCHESTRATOR_DB_PATH", dir.join("observability.db"))
            .env("AGENT_ORCHESTRATOR_AGENTS_DIR", dir.join("agents"))
            .env("AUTH_ENABLED", "false")
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the reference coordinator");
        let url = format!("http://127.0.0.1:{port}");
        wait_healthy(&url).await;
        RefCoordinator { child, url, dir }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.join("observability.db")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("coordinator.log")).unwrap_or_default()
    }

    /// SIGKILL, then wait: its database file is then complete on disk (WAL included).
    pub async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// The reference runner (`agent-runner --profile PROFILE`) pointed at `url`.
pub struct RefRunner {
    pub child: Child,
    pub dir: PathBuf,
}

impl RefRunner {
    pub async fn start(
        p: &RefPaths,
        url: &str,
        dir: &Path,
        profile: &str,
        extra: &[&str],
    ) -> RefRunner {
        let dir = dir.join(format!("ref-runner-{profile}"));
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("runner.log")).unwrap();
        let child = Command::new(&p.python)
            .current_dir(p.runner_dir())
            .arg("agent-runner")
            .args(["--profile", profile, "--verbose"])
            .args(extra)
            .env("AGENT_ORCHESTRATOR_API_URL", url)
            .env("PROJECT_DIR", &dir)
            .env("PATH", p.path_env())
            .env("UV_CACHE_DIR", &p.uv_cache)
            .env("UV_EXCLUDE_NEWER", &p.exclude_newer)
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the reference runner");
        RefRunner { child, dir }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("runner.log")).unwrap_or_default()
    }

    /// Waits until the runner logged its registration; returns its runner id.
    pub async fn registered(&self) -> String {
        wait_for("the reference runner's registration", || async {
            let log = self.log();
            log.lines()
                .find_map(|l| l.split("Registered as ").nth(1))
                .map(|id| id.trim().to_string())
        })
        .await
    }
}

/// The reference dashboard's vite build, with its API URL rewritten to `api_url`, served
/// on loopback as a single-page app (unknown paths answer `index.html`).
pub struct RefDashboard {
    pub url: String,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RefDashboard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RefDashboard {
    pub async fn serve(p: &RefPaths, api_url: &str) -> RefDashboard {
        let dir = tempfile::Builder::new()
            .prefix("aof-ref-dashboard-")
            .tempdir()
            .unwrap();
        copy_rewriting(
            &p.dashboard_dist,
            dir.path(),
            &p.dashboard_sentinel,
            api_url,
        );
        let root = dir.path().to_path_buf();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let root = root.clone();
            async move { static_file(&root, uri.path()) }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        RefDashboard {
            url,
            _dir: dir,
            task,
        }
    }
}

fn copy_rewriting(from: &Path, to: &Path, sentinel: &str, api_url: &str) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_rewriting(&entry.path(), &dest, sentinel, api_url);
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            let bytes = match String::from_utf8(bytes) {
                Ok(text) => text.replace(sentinel, api_url).into_bytes(),
                Err(e) => e.into_bytes(),
            };
            std::fs::write(dest, bytes).unwrap();
        }
    }
}

fn static_file(root: &Path, path: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let rel = path.trim_start_matches('/');
    let candidate = root.join(rel);
    // No `..` escapes: only plain names below the root are files; the rest is the app.
    let file = if !rel.is_empty() && !rel.contains("..") && candidate.is_file() {
        candidate
    } else {
        root.join("index.html")
    };
    let mime = match file.extension().and_then(|e| e.to_str()) {
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "text/html; charset=utf-8",
    };
    match std::fs::read(&file) {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, mime)], body).into_response(),
        Err(_) => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

impl RefCoordinator {
    /// Copies parts of the reference's example `config/` (e.g. `capabilities`, `scripts`,
    /// `mcp-servers`) next to its agents folder, where it looks for them: its agents
    /// refer to these by name, and its `GET /agents` fails while one is missing.
    pub fn seed_config(&self, p: &RefPaths, parts: &[&str]) {
        for part in parts {
            copy_tree(&p.dir.join("config").join(part), &self.dir.join(part));
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            // Contents only: the checkout's files are read-only.
            std::fs::write(&dest, std::fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}
