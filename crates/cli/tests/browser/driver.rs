//! A real headless Debian chromium driven over WebDriver (chromedriver, fantoccini),
//! plus the checks every page gets: axe-core (no serious or critical violation), no
//! script errors, no sideways scrolling at 375 px, and screenshots at 375 and 1280 px.
//!
//! Needs `chromium`, `chromedriver` and axe-core (`AOF_AXE_JS`); `scripts/ci/browser.sh`
//! installs them. With `CI=true` a missing one fails the test; otherwise it is skipped
//! with a message.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::PATIENCE;

pub const WIDTHS: [u32; 2] = [375, 1280];

pub struct Browser {
    pub client: Client,
    pub base: String,
    axe: String,
    artifacts: PathBuf,
    _driver: Child,
    _profile: tempfile::TempDir,
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}

/// Where screenshots go: `AOF_ARTIFACTS_DIR`, else `<target>/artifacts/dashboard`.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("AOF_ARTIFACTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("../artifacts/dashboard"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

fn free_port() -> u16 {
    // Bound and released at once; chromedriver takes no port-file option.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Browser {
    /// `None` (after saying why) when the browser tools are missing and CI is not set.
    pub async fn start(base: &str) -> Option<Browser> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        let chromium = which("chromium");
        let driver = which("chromedriver");
        // Where scripts/ci/browser.sh caches it, when AOF_AXE_JS is not set.
        let axe = std::env::var("AOF_AXE_JS")
            .unwrap_or_else(|_| "/var/tmp/aof-axe/node_modules/axe-core/axe.min.js".into());
        let axe = std::fs::read_to_string(axe).ok();
        let (Some(chromium), Some(driver), Some(axe)) = (chromium, driver, axe) else {
            let msg = "browser tests need chromium, chromedriver and AOF_AXE_JS \
                       (run `source scripts/ci/browser.sh`)";
            assert!(!ci, "{msg}");
            eprintln!("SKIPPED: {msg}");
            return None;
        };
        let port = free_port();
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("chromedriver-{port}.log")))
                .expect("driver log");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        crate::harness::wait_for("chromedriver /status", || async {
            let r = reqwest::get(format!("{url}/status")).await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        let profile = tempfile::Builder::new()
            .prefix("aof-chromium-")
            .tempdir()
            .expect("profile dir");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("WebDriver session");
        Some(Browser {
            client,
            base: base.trim_end_matches('/').to_string(),
            axe,
            artifacts: artifacts_dir(),
            _driver: child,
            _profile: profile,
        })
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("goto {path}: {e}"));
        self.wait_js(
            "document.readyState === 'complete' && !!window.AOF",
            "page load",
        )
        .await;
    }

    /// A page on another origin (the standalone dashboard).
    pub async fn goto_abs(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
        self.wait_js(
            "document.readyState === 'complete' && !!window.AOF",
            "page load",
        )
        .await;
    }

    pub async fn js(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap_or_else(|e| panic!("script {expr}: {e}"))
    }

    /// Waits until `expr` is truthy; returns its value.
    pub async fn wait_js(&self, expr: &str, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE * 2;
        loop {
            let v = self.js(expr).await;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let url = self.client.current_url().await.map(|u| u.to_string());
                let errs = self.js("window.__aofErrors").await;
                panic!("timed out waiting for {what} ({expr}) on {url:?}; script errors: {errs}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("element {css}: {e}"))
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn count(&self, css: &str) -> u64 {
        self.js(&format!("document.querySelectorAll({}).length", json!(css)))
            .await
            .as_u64()
            .unwrap()
    }

    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// No uncaught error, rejected promise or console.error since the page loaded.
    pub async fn assert_no_script_errors(&self) {
        let errs = self
            .js("window.__aofErrors || ['core.js did not run']")
            .await;
        assert_eq!(errs, json!([]), "script errors on {}", self.path().await);
    }

    /// axe-core in the page: no serious or critical violation.
    pub async fn assert_accessible(&self, label: &str) {
        // Injected once per document (it is half a megabyte).
        if self.js("typeof axe").await != "object" {
            self.client
                .execute(&format!("{};\nreturn typeof axe;", self.axe), vec![])
                .await
                .expect("inject axe-core");
        }
        let out = self
            .client
            .execute_async(
                "const done = arguments[arguments.length - 1];
                 axe.run(document, {resultTypes: ['violations']})
                   .then(r => done(r.violations
                     .filter(v => v.impact === 'serious' || v.impact === 'critical')
                     .map(v => ({id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}))))
                   .catch(e => done([{id: 'axe-error', help: String(e)}]));",
                vec![],
            )
            .await
            .expect("axe.run");
        assert_eq!(out, json!([]), "axe violations on {label}");
    }

    /// Every visible control can be reached with Tab, and times show the absolute time
    /// on hover.
    pub async fn assert_keyboard_and_times(&self, name: &str) {
        let unreachable = self
            .js("[...document.querySelectorAll('a[href], button, input, select, textarea, summary')]
                 .filter(e => e.offsetParent !== null && (e.tabIndex < 0 || e.disabled && e.tagName !== 'BUTTON'))
                 .map(e => e.outerHTML.slice(0, 80))")
            .await;
        assert_eq!(
            unreachable,
            json!([]),
            "{name}: controls out of the tab order"
        );
        let bare = self
            .js("[...document.querySelectorAll('time')].filter(t => !t.title || !t.dateTime).length")
            .await;
        assert_eq!(
            bare, 0,
            "{name}: every <time> has datetime and a hover title"
        );
    }

    /// Both widths: no sideways page scroll, accessible, screenshot saved, no errors.
    pub async fn check_page(&self, name: &str) {
        self.assert_keyboard_and_times(name).await;
        for w in WIDTHS {
            self.client.set_window_size(w, 900).await.unwrap();
            self.wait_js(&format!("window.innerWidth <= {w}"), "resize")
                .await;
            let overflow = self
                .js("document.documentElement.scrollWidth - document.documentElement.clientWidth")
                .await;
            assert!(
                overflow.as_i64().unwrap_or(0) <= 1,
                "{name} at {w}px scrolls sideways by {overflow}px"
            );
            self.assert_accessible(&format!("{name} at {w}px")).await;
            self.screenshot(&format!("{name}-{w}")).await;
        }
        self.client.set_window_size(1280, 900).await.unwrap();
        self.assert_no_script_errors().await;
    }

    /// The README's picture of the session page: saved as an artifact, and copied to
    /// `docs/screenshots/session.png` when `AOF_UPDATE_README_SCREENSHOT` is set.
    pub async fn readme_screenshot(&self) {
        self.readme_picture("session").await;
    }

    /// A README picture at 1280 px: the artifact `<name>-readme.png`, copied to
    /// `docs/screenshots/<name>.png` when `AOF_UPDATE_README_SCREENSHOT` is set.
    pub async fn readme_picture(&self, name: &str) {
        self.client.set_window_size(1280, 900).await.unwrap();
        self.wait_js("window.innerWidth > 1000", "resize").await;
        let shot = self.screenshot(&format!("{name}-readme")).await;
        if std::env::var_os("AOF_UPDATE_README_SCREENSHOT").is_some() {
            let dest = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../../docs/screenshots/{name}.png"));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(&shot, dest).unwrap();
        }
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let path = self.artifacts.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
