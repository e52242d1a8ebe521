use std::path::PathBuf;

use serde_json::json;

use crate::{Config, Inputs, LogLevel};

fn load_with(pairs: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Config {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let inputs = Inputs {
        config_path: None,
        flags: flags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    };
    Config::load(&inputs, move |k| {
        pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })
    .unwrap()
}

fn load(pairs: &[(&str, &str)]) -> Config {
    load_with(pairs, &[])
}

/// A profiles folder with one Claude Code profile and one echo profile.
struct Profiles(PathBuf);

impl Profiles {
    fn new() -> Profiles {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "aof-runner-profiles-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let claude = json!({"type": "autonomous", "lifecycle": "persistent",
            "command": "executors/claude-code/ao-claude-code-exec",
            "config": {"permission_mode": "default", "setting_sources": ["project"], "model": "haiku"}});
        std::fs::write(dir.join("careful.json"), claude.to_string()).unwrap();
        let echo = json!({"type": "autonomous", "command": "executors/echo-executor/ao-echo-exec"});
        std::fs::write(dir.join("echo.json"), echo.to_string()).unwrap();
        Profiles(dir)
    }

    fn dir(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Profiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn profile_sets_executor_name_and_announcement() {
    let p = Profiles::new();
    let r = load(&[("PROFILE", "careful"), ("AOF_PROFILES_DIR", p.dir())])
        .runner(None)
        .unwrap();
    assert_eq!(r.executor_profile, "careful");
    let aof_executors::ExecutorConfig::ClaudeCode(c) = &r.executor else {
        panic!("{:?}", r.executor)
    };
    assert_eq!(
        (c.model.as_deref(), c.permission_mode.as_deref()),
        (Some("haiku"), Some("default"))
    );
    assert_eq!(c.setting_sources, Some(vec!["project".to_string()]));
    let a = serde_json::Value::Object(r.executor_announce.clone().unwrap());
    assert_eq!(a["type"], "autonomous");
    assert_eq!(a["config"]["model"], "haiku");

    // AOF's own settings go over the profile's; `--profile` names it differently.
    let r = load_with(
        &[
            ("PROFILE", "careful"),
            ("AOF_PROFILES_DIR", p.dir()),
            ("AOF_CLAUDE_MODEL", "sonnet"),
            ("AOF_EXECUTOR", "claude_code"),
        ],
        &[("runner.profile", "mine")],
    )
    .runner(None)
    .unwrap();
    let aof_executors::ExecutorConfig::ClaudeCode(c) = &r.executor else {
        panic!()
    };
    assert_eq!(c.model.as_deref(), Some("sonnet"));
    assert_eq!(c.permission_mode.as_deref(), Some("default"));
    assert_eq!(r.executor_profile, "mine");
    assert_eq!(r.executor_announce.unwrap()["config"]["model"], "sonnet");

    // Without a profile nothing changes: the executor's name, no announcement.
    let r = load(&[]).runner(None).unwrap();
    assert_eq!(r.executor_profile, "echo");
    assert!(r.executor_announce.is_none());
}

#[test]
fn a_profile_contradicted_or_missing_is_an_error_naming_both() {
    let p = Profiles::new();
    let e = load(&[
        ("PROFILE", "echo"),
        ("AOF_PROFILES_DIR", p.dir()),
        ("AOF_EXECUTOR", "claude_code"),
    ])
    .runner(None)
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("AOF_EXECUTOR=claude_code contradicts PROFILE=echo (a echo profile)"),
        "{e}"
    );
    let e = load(&[
        ("PROFILE", "careful"),
        ("AOF_PROFILES_DIR", p.dir()),
        ("AOF_COMMAND", "python3 x.py"),
    ])
    .runner(None)
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("AOF_COMMAND=python3 x.py: only applies to executor `command`"),
        "{e}"
    );
    let e = load(&[("PROFILE", "best"), ("AOF_PROFILES_DIR", p.dir())])
        .runner(None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("PROFILE=best: no profile") && e.contains("careful, echo"),
        "{e}"
    );
}

#[test]
fn require_matching_tags_and_log_levels() {
    assert!(
        load(&[("REQUIRE_MATCHING_TAGS", "true")])
            .runner(None)
            .unwrap()
            .require_matching_tags
    );
    assert!(!load(&[]).runner(None).unwrap().require_matching_tags);
    let e = load(&[("REQUIRE_MATCHING_TAGS", "maybe")])
        .runner(None)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "REQUIRE_MATCHING_TAGS=maybe: must be true or false");

    for (env, want) in [
        (vec![("DEBUG_LOGGING", "true")], Some(LogLevel::Debug)),
        (vec![("VERBOSE", "1")], Some(LogLevel::Debug)),
        (vec![("VERBOSE", "false")], None),
        (
            vec![("AOF_LOG_LEVEL", "trace"), ("VERBOSE", "true")],
            Some(LogLevel::Trace),
        ),
        (vec![("AOF_LOG_LEVEL", "WARN")], Some(LogLevel::Warn)),
        (vec![], None),
    ] {
        assert_eq!(load(&env).log_level().unwrap(), want, "{env:?}");
    }
    let e = load(&[("DEBUG_LOGGING", "loud")])
        .log_level()
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("DEBUG_LOGGING=loud: must be error, warn"),
        "{e}"
    );
}

#[test]
fn auth0_client_credentials_for_the_runner() {
    let base = [
        ("AUTH0_DOMAIN", "tenant.example.com"),
        ("AUTH0_AUDIENCE", "https://aof.example.com/api"),
        ("AUTH0_RUNNER_CLIENT_ID", "cid"),
        ("AUTH0_RUNNER_CLIENT_SECRET", "s3cret"),
    ];
    let c = load(&base)
        .runner(None)
        .unwrap()
        .oauth
        .expect("credentials");
    assert_eq!(c.token_url, "https://tenant.example.com/oauth/token");
    assert_eq!(
        (
            c.client_id.as_str(),
            c.client_secret.0.as_str(),
            c.audience.as_str()
        ),
        ("cid", "s3cret", "https://aof.example.com/api")
    );
    assert!(!format!("{c:?}").contains("s3cret"));
    // AOF's names work too, and win.
    let mut env = base.to_vec();
    env.push(("AOF_OAUTH_TOKEN_URL", "http://127.0.0.1:9/token"));
    env.push(("AOF_OIDC_AUDIENCE", "aof"));
    let c = load(&env).runner(None).unwrap().oauth.unwrap();
    assert_eq!(
        (c.token_url.as_str(), c.audience.as_str()),
        ("http://127.0.0.1:9/token", "aof")
    );
    assert!(load(&[]).runner(None).unwrap().oauth.is_none());

    let e = load(&base[2..]).runner(None).unwrap_err().to_string();
    assert!(
        e.contains("missing: runner.oauth_token_url (AOF_OAUTH_TOKEN_URL or AUTH0_DOMAIN), auth.oidc_audience (AOF_OIDC_AUDIENCE or AUTH0_AUDIENCE)"),
        "{e}"
    );
    let e = load(&base[..3]).runner(None).unwrap_err().to_string();
    assert!(e.contains("missing: runner.oauth_client_secret"), "{e}");
    let mut env = base.to_vec();
    env.push(("AOF_API_KEY", "aof_k"));
    let e = load(&env).runner(None).unwrap_err().to_string();
    assert!(
        e.contains("both AOF_API_KEY and OAuth client credentials"),
        "{e}"
    );
    let mut env = base.to_vec();
    env.push(("AOF_OAUTH_TOKEN_URL", "http://idp.example.com/token"));
    let e = load(&env).runner(None).unwrap_err().to_string();
    assert!(e.contains("plain http to a non-loopback host"), "{e}");
}
