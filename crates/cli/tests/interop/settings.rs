//! The reference's settings (environment variables) on our processes: accepted, mapped or refused.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::{
    harness::*,
    reference::{RefCoordinator, RefPaths},
};

/// `aof runner` with `env` (the way the reference's images configure a runner), its
/// stderr in `<dir>/<name>.log`.
struct OurRunner {
    child: Child,
    log: PathBuf,
}

impl OurRunner {
    fn start(url: &str, dir: &Path, name: &str, env: &[(&str, &str)]) -> OurRunner {
        let rdir = dir.join(name);
        std::fs::create_dir_all(&rdir).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["runner", "--url", url, "--hostname", name])
            .arg("--workspace")
            .arg(rdir.join("ws"))
            .arg("--project-dir")
            .arg(&rdir)
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn aof runner");
        OurRunner { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The runner registered under `hostname`, as `GET /runners` shows it.
async fn runner_named(url: &str, hostname: &str, token: Option<&str>) -> Value {
    let c = client();
    wait_for(&format!("runner {hostname} in {url}/runners"), || async {
        let mut rq = c.get(format!("{url}/runners"));
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        let b: Value = rq.send().await.ok()?.json().await.ok()?;
        b["runners"]
            .as_array()?
            .iter()
            .find(|r| r["hostname"] == hostname)
            .cloned()
    })
    .await
}

fn profiles_dir(p: &RefPaths) -> String {
    p.runner_dir().join("profiles").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_profiles_run_as_our_executors() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let profiles = profiles_dir(&p);
    let echo = OurRunner::start(
        &coord.url,
        dir.path(),
        "echo-runner",
        &[
            ("PROFILE", "echo-executor"),
            ("AOF_PROFILES_DIR", &profiles),
            ("RUNNER_TAGS", "interop"),
            ("REQUIRE_MATCHING_TAGS", "true"),
        ],
    );
    let r = runner_named(&coord.url, "echo-runner", None).await;
    assert_eq!(r["executor_profile"], "echo-executor", "{r}");
    assert_eq!(
        r["executor"],
        json!({"type": "autonomous", "command": "echo", "config": {}})
    );
    assert_eq!(
        (&r["tags"], &r["require_matching_tags"]),
        (&json!(["interop"]), &json!(true))
    );

    // It takes only runs that demand its tag: an untagged run, created first, stays
    // pending while the tagged one is claimed and completes.
    let untagged = start_demanding(&coord.url, "untagged", None).await;
    let tagged = start_demanding(&coord.url, "tagged", Some("interop")).await;
    wait_session(&coord.url, &tagged, "finished").await;
    let evs = events(&coord.url, &tagged).await;
    assert!(
        evs.iter()
            .any(|e| e["event_type"] == "message" && e.to_string().contains("tagged")),
        "{evs:?}"
    );
    assert_eq!(runs_of(&coord.url, &untagged).await[0]["status"], "pending");

    // A Claude Code profile: its model, permission mode and setting sources.
    let _claude = OurRunner::start(
        &coord.url,
        dir.path(),
        "claude-runner",
        &[
            ("PROFILE", "full-access-isolated-best"),
            ("AOF_PROFILES_DIR", &profiles),
            ("AOF_CLAUDE_BIN", "/opt/claude/bin/claude"),
        ],
    );
    let r = runner_named(&coord.url, "claude-runner", None).await;
    assert_eq!(r["executor_profile"], "full-access-isolated-best");
    assert_eq!(
        r["executor"],
        json!({"type": "autonomous", "command": "/opt/claude/bin/claude", "config": {
            "program": "/opt/claude/bin/claude", "model": "opus",
            "permission_mode": "bypassPermissions", "setting_sources": []}})
    );

    // What AOF cannot run as the profile asks stops the runner at start, saying why.
    for (profile, want) in [
        ("test-procedural", "the procedural executor"),
        ("no-such-profile", "no profile"),
    ] {
        let mut r = OurRunner::start(
            &coord.url,
            dir.path(),
            profile,
            &[("PROFILE", profile), ("AOF_PROFILES_DIR", &profiles)],
        );
        let status = r.child.wait().await.unwrap();
        assert_eq!(status.code(), Some(2), "{}", r.log());
        assert!(
            r.log().contains(want) && r.log().contains(&format!("PROFILE={profile}")),
            "{}",
            r.log()
        );
    }
    drop(echo);
}

/// Starts a session whose run demands `tag`; returns the session id.
async fn start_demanding(url: &str, prompt: &str, tag: Option<&str>) -> String {
    let mut body =
        json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": prompt}});
    if let Some(t) = tag {
        body["additional_demands"] = json!({"tags": [t]});
    }
    let (st, b) = call("POST", &format!("{url}/runs"), Some(body)).await;
    assert_eq!(st, 201, "{b}");
    b["session_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_matching_tags_reaches_the_reference_coordinator() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let reference = RefCoordinator::start(&p, dir.path()).await;
    let runner = OurRunner::start(
        &reference.url,
        dir.path(),
        "strict",
        &[("RUNNER_TAGS", "gpu"), ("REQUIRE_MATCHING_TAGS", "true")],
    );
    let r = runner_named(&reference.url, "strict", None).await;
    assert_eq!(
        (&r["tags"], &r["require_matching_tags"]),
        (&json!(["gpu"]), &json!(true)),
        "{r}\n{}\n{}",
        runner.log(),
        reference.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_enabled_serves_an_offline_api_page() {
    let Some(_) = RefPaths::get() else { return };
    let dir = tempdir();
    let mut env = fast_env();
    env.push(("DOCS_ENABLED".into(), "true".into()));
    let coord = Coordinator::start(&dir.path().join("on"), env).await;
    let c = client();
    let get = |path: &str| c.get(format!("{}{path}", coord.url)).send();
    let r = get("/docs").await.unwrap();
    assert!(r.url().path() == "/docs/" && r.status() == 200, "{r:?}");
    let html = r.text().await.unwrap();
    assert!(html.contains("<div id=\"swagger-ui\">"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"),
        "the page must not load anything from elsewhere: {html}"
    );
    // Every file the page names loads from the coordinator itself.
    let assets = references(&html);
    assert!(assets.len() >= 4, "{assets:?}");
    for a in &assets {
        let r = get(&format!("/docs/{a}")).await.unwrap();
        assert_eq!(r.status(), 200, "/docs/{a}");
        assert!(!r.bytes().await.unwrap().is_empty(), "/docs/{a}");
    }
    let init = get("/docs/swagger-initializer.js")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("\"/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");

    // The trust boundary covers it: with auth off, a foreign Host is refused.
    let r = get_with_host(&c, &format!("{}/docs/", coord.url), "evil.example").await;
    assert_eq!(r, (403, "host_not_allowed".to_string()));

    // Not enabled: no page.
    let off = Coordinator::start(&dir.path().join("off"), fast_env()).await;
    let r = c.get(format!("{}/docs/", off.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // With auth on, the page needs what `/openapi.json` needs: a viewer credential.
    let mut env = fast_env();
    env.push(("DOCS_ENABLED".into(), "true".into()));
    env.push(("AUTH_ENABLED".into(), "true".into()));
    let secured = Coordinator::start(&dir.path().join("auth"), env).await;
    let viewer = offline_key(&secured.data_dir, "viewer");
    for path in ["/docs/", "/docs/swagger-ui.css", "/openapi.json"] {
        let url = format!("{}{path}", secured.url);
        let anon = c.get(&url).send().await.unwrap();
        assert_eq!(anon.status(), 401, "{path}");
        let r = c.get(&url).bearer_auth(&viewer).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

/// `src="…"` and `href="…"` targets of a page, relative ones only.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().unwrap_or("");
            let target = target.trim_start_matches("./");
            if !target.is_empty() && !target.contains("//") {
                out.push(target.to_string());
            }
        }
    }
    out
}

async fn get_with_host(c: &reqwest::Client, url: &str, host: &str) -> (u16, String) {
    let r = c.get(url).header("host", host).send().await.unwrap();
    let st = r.status().as_u16();
    let b: Value = r.json().await.unwrap_or(Value::Null);
    (st, b["code"].as_str().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_reference_variable_warns_once_naming_the_replacement() {
    let Some(_) = RefPaths::get() else { return };
    let dir = tempdir();
    let mut env = fast_env();
    for (k, v) in [
        ("REAPER_STALE_RUNNING", "900"),
        ("DEBUG_LOGGING", "false"),
        ("DOCS_ENABLED", "false"),
    ] {
        env.push((k.into(), v.into()));
    }
    let coord = Coordinator::start(dir.path(), env).await;
    let runner = OurRunner::start(
        &coord.url,
        dir.path(),
        "warned",
        &[("MCP_PORT", "9001"), ("VERBOSE", "false")],
    );
    runner_named(&coord.url, "warned", None).await;
    let log = coord.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("REAPER_STALE_RUNNING"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("AOF_LEASE_TTL"),
        "{}",
        lines[0]
    );
    let rlog = runner.log();
    let lines: Vec<&str> = rlog.lines().filter(|l| l.contains("MCP_PORT")).collect();
    assert_eq!(lines.len(), 1, "{rlog}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("/mcp"),
        "{}",
        lines[0]
    );
    // Accepted names are not warned about.
    for quiet in ["DEBUG_LOGGING", "DOCS_ENABLED", "VERBOSE"] {
        assert!(
            !log.contains(quiet) && !rlog.contains(quiet),
            "{quiet}:\n{log}\n{rlog}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Auth0: a local stand-in serving the JWKS and the client-credentials token endpoint at
// the paths the reference derives from AUTH0_DOMAIN.
// ---------------------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/oidc/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn jwt(claims: Value) -> String {
    let pem = std::fs::read(fixture("test-private.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some("test-key-1".into());
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

const AUDIENCE: &str = "https://aof.interop.test/api";

/// One token request's form fields.
type Form = Vec<(String, String)>;

#[derive(Clone)]
struct Tenant {
    issuer: String,
    /// Every token request's form.
    requests: Arc<Mutex<Vec<Form>>>,
}

impl Tenant {
    /// The stand-in; its "domain" is `127.0.0.1:PORT` (a loopback domain means http).
    async fn start() -> (Tenant, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let domain = l.local_addr().unwrap().to_string();
        let t = Tenant {
            issuer: format!("http://{domain}/"),
            requests: Arc::default(),
        };
        let jwks: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
        let app = axum::Router::new()
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            )
            .route("/oauth/token", axum::routing::post(token))
            .with_state(t.clone());
        tokio::spawn(async move { axum::serve(l, app).await });
        (t, domain)
    }

    fn token_requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// Client credentials `runner-cid` / `runner-secret` get a 2-second runner token.
async fn token(
    axum::extract::State(t): axum::extract::State<Tenant>,
    axum::Form(form): axum::Form<Vec<(String, String)>>,
) -> (axum::http::StatusCode, axum::Json<Value>) {
    t.requests.lock().unwrap().push(form.clone());
    let has = |k: &str, v: &str| form.iter().any(|(a, b)| a == k && b == v);
    if !(has("grant_type", "client_credentials")
        && has("client_id", "runner-cid")
        && has("client_secret", "runner-secret")
        && has("audience", AUDIENCE))
    {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "access_denied", "error_description": "Unauthorized"})),
        );
    }
    let now = chrono::Utc::now().timestamp();
    let access = jwt(
        json!({"iss": t.issuer, "aud": AUDIENCE, "sub": "runner-cid@clients",
                            "iat": now, "exp": now + 2, "roles": ["runner"]}),
    );
    (
        axum::http::StatusCode::OK,
        axum::Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": 2})),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth0_settings_secure_our_coordinator_and_runner() {
    let Some(_) = RefPaths::get() else { return };
    let dir = tempdir();
    let (tenant, domain) = Tenant::start().await;
    let mut env = fast_env();
    for (k, v) in [
        ("AUTH_ENABLED", "true"),
        ("AUTH0_DOMAIN", domain.as_str()),
        ("AUTH0_AUDIENCE", AUDIENCE),
    ] {
        env.push((k.into(), v.into()));
    }
    let coord = Coordinator::start(dir.path(), env).await;
    let url = coord.url.clone();
    let now = chrono::Utc::now().timestamp();
    let user = |roles: Value, iss: &str| {
        jwt(json!({"iss": iss, "aud": AUDIENCE, "sub": "user|1", "exp": now + 600, "roles": roles}))
    };
    let operator = user(json!(["operator"]), &tenant.issuer);
    let c = client();
    // The coordinator checks tokens against the mapped issuer, audience and JWKS.
    let r = c
        .get(format!("{url}/auth/me"))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(
        (&me["role"], &me["subject"]),
        (&json!("operator"), &json!("user|1"))
    );
    for bad in [
        user(json!(["operator"]), "https://elsewhere.test/"),
        jwt(
            json!({"iss": tenant.issuer, "aud": "other", "sub": "u", "exp": now + 600, "roles": ["admin"]}),
        ),
    ] {
        let r = c
            .get(format!("{url}/sessions"))
            .bearer_auth(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    assert_eq!(
        c.get(format!("{url}/sessions"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    // The reference's runner settings: client credentials for a token from the tenant.
    let auth0 = [
        ("AUTH0_DOMAIN", domain.as_str()),
        ("AUTH0_AUDIENCE", AUDIENCE),
        ("AUTH0_RUNNER_CLIENT_ID", "runner-cid"),
    ];
    let mut good = auth0.to_vec();
    good.push(("AUTH0_RUNNER_CLIENT_SECRET", "runner-secret"));
    let runner = OurRunner::start(&url, dir.path(), "m2m", &good);
    let r = runner_named(&url, "m2m", Some(&operator)).await;
    assert_eq!(r["status"], "online", "{r}");
    // A session runs end to end on it.
    let rq = c
        .post(format!("{url}/runs"))
        .bearer_auth(&operator)
        .json(&json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(rq.status(), 201);
    let sid = rq.json::<Value>().await.unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the session to finish on the m2m runner", || async {
        let b: Value = c
            .get(format!("{url}/sessions/{sid}/status"))
            .bearer_auth(&operator)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (b["status"] == "finished").then_some(())
    })
    .await;
    // Tokens live 2 s: the runner renews them before they expire, and keeps working.
    wait_for("a renewed runner token", || async {
        (tenant.token_requests() >= 3).then_some(())
    })
    .await;
    assert!(!runner.log().contains("runner-secret"), "{}", runner.log());
    let r = runner_named(&url, "m2m", Some(&operator)).await;
    assert_eq!(r["status"], "online", "{r}\n{}", runner.log());

    // A wrong secret: the runner stops at start, naming the token endpoint's refusal.
    let mut wrong = auth0.to_vec();
    wrong.push(("AUTH0_RUNNER_CLIENT_SECRET", "guess"));
    let mut r = OurRunner::start(&url, dir.path(), "m2m-wrong", &wrong);
    assert_eq!(r.child.wait().await.unwrap().code(), Some(2), "{}", r.log());
    let log = r.log();
    assert!(
        log.contains("cannot get a token") && log.contains("/oauth/token") && log.contains("401"),
        "{log}"
    );
    assert!(!log.contains("guess"), "{log}");
}
