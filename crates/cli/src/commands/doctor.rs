//! `aof doctor`: what a deployment exposes, one line per concern with a verdict.
//! Reads the merged settings the way `aof coordinator` / `aof runner` would, and with
//! `--probe` also asks the live coordinator at the URL (read-only requests plus one
//! cross-origin write to a run id that cannot exist). Exit 1 when any line is a risk.

use std::{path::Path, time::Duration};

use serde::Serialize;
use serde_json::json;

use aof_config::Config;

use crate::{commands::coordinator::CoordinatorArgs, table};

#[derive(clap::Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    aof doctor                                  # the settings this environment gives\n  \
    AUTH_ENABLED=true aof doctor --listen 0.0.0.0:8765\n  \
    aof doctor --probe --url https://aof.example.com --json")]
pub struct DoctorArgs {
    #[command(flatten)]
    pub coordinator: CoordinatorArgs,
    /// Coordinator URL to probe (default: AOF_URL / AGENT_ORCHESTRATOR_API_URL).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Also probe the running coordinator at the URL.
    #[arg(long)]
    pub probe: bool,
    /// Print JSON: {"checks": [{"check", "verdict", "detail"}], "risks": N}.
    #[arg(long)]
    pub json: bool,
}

impl DoctorArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let mut f = self.coordinator.flags();
        f.extend(self.url.iter().map(|u| ("api.url", u.clone())));
        f
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Risk,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Risk => "RISK",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Check {
    check: &'static str,
    verdict: Verdict,
    detail: String,
}

fn check(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Check {
    Check {
        check,
        verdict,
        detail: detail.into(),
    }
}

pub async fn run(args: DoctorArgs, cfg: &Config) -> anyhow::Result<u8> {
    // Off the async threads: the checks read files (the data dir, a runner's profile).
    let c = cfg.clone();
    let mut checks = tokio::task::spawn_blocking(move || settings(&c)).await?;
    if args.probe {
        checks.extend(probe(&cfg.api()?.url).await);
    }
    let risks = checks.iter().filter(|c| c.verdict == Verdict::Risk).count();
    if args.json {
        table::print_json(&json!({"checks": checks, "risks": risks}));
    } else {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    c.check.to_string(),
                    c.verdict.label().to_string(),
                    c.detail.clone(),
                ]
            })
            .collect();
        table::print(&["CHECK", "VERDICT", "DETAIL"], &rows);
    }
    Ok(u8::from(risks > 0))
}

/// What the merged settings expose, without touching the network.
fn settings(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    let c = match cfg.coordinator() {
        Ok(c) => c,
        Err(e) => {
            out.push(check(
                "coordinator settings",
                Verdict::Risk,
                format!("refused at start: {e}"),
            ));
            return out;
        }
    };
    let loopback = c.listen.ip().is_loopback();
    let auth = c.auth.enabled;
    out.push(match (auth, loopback) {
        (true, _) => check(
            "auth",
            Verdict::Ok,
            "on: every route but /health, /ready (and /metrics if public) needs a credential",
        ),
        (false, true) => check(
            "auth",
            Verdict::Warn,
            "off: every local user and process can run agents; browsers are held off by the Origin, Host and content-type checks. Turn it on (AUTH_ENABLED=true) on shared machines",
        ),
        (false, false) => check(
            "auth",
            Verdict::Risk,
            format!("off on {} (--insecure-listen): anyone who reaches the port can run agents, unless a proxy in front authenticates", c.listen),
        ),
    });
    out.push(check(
        "listen",
        if loopback || auth {
            Verdict::Ok
        } else {
            Verdict::Risk
        },
        if loopback {
            format!("{} (loopback only)", c.listen)
        } else {
            format!("{} (reachable from the network)", c.listen)
        },
    ));
    let cors = c.cors_origins.trim();
    out.push(if cors.is_empty() {
        check("cors", Verdict::Ok, "same-origin only (CORS_ORIGINS empty)")
    } else if cors == "*" {
        check(
            "cors",
            if auth { Verdict::Warn } else { Verdict::Risk },
            "CORS_ORIGINS=*: any web page may read what an uncredentialed request gets (never with cookies); list the dashboards' origins instead",
        )
    } else {
        check("cors", Verdict::Ok, format!("only {cors}"))
    });
    if auth {
        out.push(if c.auth.metrics_public {
            check(
                "metrics",
                Verdict::Warn,
                "/metrics answers without a credential (counters only); AOF_METRICS_PUBLIC=false to require a viewer key",
            )
        } else {
            check("metrics", Verdict::Ok, "/metrics needs a viewer key")
        });
        out.push(if c.auth.cookie_secure {
            check("cookie", Verdict::Ok, "browser cookie is Secure")
        } else {
            check(
                "cookie",
                Verdict::Warn,
                "browser cookie without Secure: put TLS in front and set AOF_COOKIE_SECURE=true",
            )
        });
    }
    if let Some(o) = &c.auth.oidc {
        let jwks = o.jwks.trim();
        let plain_remote = jwks.starts_with("http://") && !is_loopback_url(jwks);
        out.push(check(
            "oidc",
            if plain_remote {
                Verdict::Risk
            } else {
                Verdict::Ok
            },
            format!("issuer {}, JWKS {jwks}", o.issuer),
        ));
    }
    out.push(if c.project_dir_roots.is_empty() {
        check(
            "project dirs",
            Verdict::Warn,
            "any project_dir is accepted; AOF_PROJECT_DIR_ROOTS limits where runs may work",
        )
    } else {
        check(
            "project dirs",
            Verdict::Ok,
            format!("inside {}", join_paths(&c.project_dir_roots)),
        )
    });
    out.push(if c.placeholder_env.is_empty() {
        check(
            "placeholder env",
            Verdict::Ok,
            "blueprints read no coordinator environment",
        )
    } else {
        check(
            "placeholder env",
            Verdict::Warn,
            format!(
                "blueprints may read ${{env.X}} for {}",
                c.placeholder_env.join(", ")
            ),
        )
    });
    if c.postgres_url.is_none() {
        out.push(data_dir(&cfg.data_dir()));
    }
    // A coordinator-only build (the coordinator image) has no runner settings to check.
    #[cfg(feature = "runner")]
    out.extend(runner(cfg));
    out
}

/// The data directory holds the database (anyone who can write it can mint keys).
fn data_dir(dir: &Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(dir) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => check(
            "data dir",
            Verdict::Warn,
            format!(
                "{} is mode {:o}: other users may read the database; chmod 700",
                dir.display(),
                m.permissions().mode() & 0o777
            ),
        ),
        Ok(_) => check(
            "data dir",
            Verdict::Ok,
            format!("{} (owner only)", dir.display()),
        ),
        Err(_) => check(
            "data dir",
            Verdict::Ok,
            format!("{} does not exist yet", dir.display()),
        ),
    }
}

#[cfg(feature = "runner")]
fn runner(cfg: &Config) -> Vec<Check> {
    let r = match cfg.runner(None) {
        Ok(r) => r,
        Err(e) => {
            return vec![check(
                "runner settings",
                Verdict::Risk,
                format!("refused at start: {e}"),
            )]
        }
    };
    let mut out = vec![if r.allow_blueprint_executors {
        check(
            "blueprint executors",
            Verdict::Warn,
            "blueprints may choose the program a runner executes: whoever may edit agents runs code on runners (runner.allow_blueprint_executors=false)",
        )
    } else {
        check(
            "blueprint executors",
            Verdict::Ok,
            "only the runner's own executor runs; blueprints can only narrow its tools",
        )
    }];
    // The owner of /proc/self is this process's effective uid.
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    };
    out.push(if root {
        check(
            "agent user",
            Verdict::Warn,
            "a runner started here runs agents as root: use a dedicated user or a container per runner",
        )
    } else {
        check(
            "agent user",
            Verdict::Ok,
            "agents run as this (non-root) user; give runners their own user",
        )
    });
    out
}

fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| {
            let h = h.trim_start_matches('[').trim_end_matches(']');
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        })
}

fn join_paths(p: &[std::path::PathBuf]) -> String {
    p.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the live coordinator answers a stranger: no credential, a foreign Origin.
async fn probe(base: &str) -> Vec<Check> {
    const FOREIGN: &str = "https://aof-doctor.invalid";
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => return vec![check("probe", Verdict::Risk, e.to_string())],
    };
    let mut out = Vec::new();
    match client.get(format!("{base}/health")).send().await {
        Ok(r) if r.status().is_success() => {
            out.push(check("probe", Verdict::Ok, format!("{base} answers")))
        }
        Ok(r) => {
            out.push(check(
                "probe",
                Verdict::Risk,
                format!("{base}/health answered {}", r.status()),
            ));
            return out;
        }
        Err(e) => {
            out.push(check(
                "probe",
                Verdict::Risk,
                format!("{base} unreachable: {e}"),
            ));
            return out;
        }
    }
    let remote = !is_loopback_url(base);
    out.push(match client.get(format!("{base}/sessions")).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => check(
            "probe: auth",
            Verdict::Ok,
            "no credential: 401 on GET /sessions",
        ),
        Ok(r) => check(
            "probe: auth",
            if remote { Verdict::Risk } else { Verdict::Warn },
            format!("no credential: GET /sessions answered {}", r.status()),
        ),
        Err(e) => check("probe: auth", Verdict::Risk, e.to_string()),
    });
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{base}/runs"))
        .header("origin", FOREIGN)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await;
    out.push(match preflight {
        Ok(r) => match r.headers().get("access-control-allow-origin") {
            None => check(
                "probe: cors",
                Verdict::Ok,
                "a foreign origin gets no CORS grant",
            ),
            Some(v) => check(
                "probe: cors",
                if v == "*" {
                    Verdict::Warn
                } else {
                    Verdict::Risk
                },
                format!(
                    "a foreign origin is granted Access-Control-Allow-Origin: {}",
                    v.to_str().unwrap_or("?")
                ),
            ),
        },
        Err(e) => check("probe: cors", Verdict::Risk, e.to_string()),
    });
    // Writes a web page could send: a simple one (text/plain, no preflight) and a JSON
    // one (allowed after a preflight, if CORS grants it). The run id cannot exist, so
    // even a coordinator that lets them through changes nothing.
    for (name, content_type) in [
        ("probe: simple cross-origin write", "text/plain"),
        ("probe: cross-origin write", "application/json"),
    ] {
        let write = client
            .post(format!("{base}/runs/run_aof_doctor_probe/stop"))
            .header("origin", FOREIGN)
            .header("content-type", content_type)
            .body("{}")
            .send()
            .await;
        out.push(match write {
            // 403: the Origin check; 401: no credential; 415: not JSON. Each refuses it.
            Ok(r) if matches!(r.status().as_u16(), 401 | 403 | 415) => check(
                name,
                Verdict::Ok,
                format!(
                    "a foreign page's {content_type} POST is refused ({})",
                    r.status()
                ),
            ),
            Ok(r) => check(
                name,
                Verdict::Risk,
                format!(
                    "a foreign page's {content_type} POST reached a handler ({})",
                    r.status()
                ),
            ),
            Err(e) => check(name, Verdict::Risk, e.to_string()),
        });
    }
    out
}
