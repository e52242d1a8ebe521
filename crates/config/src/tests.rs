use std::{path::PathBuf, time::Duration};

use aof_core::RecoveryMode;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn file(text: &str) -> (tempfile_path::Guard, PathBuf) {
    tempfile_path::write(text)
}

/// A tiny temp-file helper (no extra dependency): removed on drop.
mod tempfile_path {
    use std::path::PathBuf;

    pub struct Guard(PathBuf);

    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    pub fn write(text: &str) -> (Guard, PathBuf) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "aof-config-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&p, text).unwrap();
        (Guard(p.clone()), p)
    }
}

fn load(text: Option<&str>, vars: &[(&str, &str)], flags: &[(&'static str, &str)]) -> Config {
    try_load(text, vars, flags).unwrap()
}

fn try_load(
    text: Option<&str>,
    vars: &[(&str, &str)],
    flags: &[(&'static str, &str)],
) -> Result<Config, ConfigError> {
    let f = text.map(file);
    let inputs = Inputs {
        config_path: f.as_ref().map(|(_, p)| p.clone()),
        flags: flags.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    };
    Config::load(&inputs, env(vars))
}

#[test]
fn precedence_default_file_alias_aof_flag() {
    let key = "coordinator.poll_timeout";
    let toml = "[coordinator]\npoll_timeout = 11\n";
    let secs = |c: &Config| c.coordinator().unwrap().poll_timeout.as_secs();

    let c = load(None, &[], &[]);
    assert_eq!(
        (secs(&c), &c.get(key).unwrap().source),
        (30, &Source::Default)
    );

    let c = load(Some(toml), &[], &[]);
    assert_eq!(secs(&c), 11);
    assert!(matches!(c.get(key).unwrap().source, Source::File(_)));

    let c = load(Some(toml), &[("RUNNER_POLL_TIMEOUT", "12")], &[]);
    assert_eq!(secs(&c), 12);
    assert_eq!(
        c.get(key).unwrap().source.to_string(),
        "env RUNNER_POLL_TIMEOUT"
    );

    let both = [("RUNNER_POLL_TIMEOUT", "12"), ("AOF_POLL_TIMEOUT", "13")];
    let c = load(Some(toml), &both, &[]);
    assert_eq!(secs(&c), 13);
    assert_eq!(
        c.get(key).unwrap().source.to_string(),
        "env AOF_POLL_TIMEOUT (over RUNNER_POLL_TIMEOUT)"
    );
    assert_eq!(
        c.shadowed(),
        ["AOF_POLL_TIMEOUT wins over RUNNER_POLL_TIMEOUT"]
    );

    // No flag for poll_timeout: use listen for the top layer.
    let toml = "[coordinator]\nlisten = \"127.0.0.1:1\"\n";
    let vars = [("AOF_LISTEN", "127.0.0.1:2")];
    let c = load(Some(toml), &vars, &[("coordinator.listen", "127.0.0.1:3")]);
    assert_eq!(c.coordinator().unwrap().listen.port(), 3);
    assert_eq!(
        c.get("coordinator.listen").unwrap().source,
        Source::Flag("--listen")
    );
    let c = load(Some(toml), &vars, &[]);
    assert_eq!(c.coordinator().unwrap().listen.port(), 2);
}

#[test]
fn config_file_from_env_and_flag() {
    let (_g, p) = file("data_dir = \"/from-env-file\"\n");
    let c = Config::load(
        &Inputs::default(),
        env(&[("AOF_CONFIG", p.to_str().unwrap())]),
    )
    .unwrap();
    assert_eq!(c.data_dir(), PathBuf::from("/from-env-file"));
    let (_g2, p2) = file("data_dir = \"/from-flag-file\"\n");
    let inputs = Inputs {
        config_path: Some(p2.clone()),
        flags: vec![],
    };
    let c = Config::load(&inputs, env(&[("AOF_CONFIG", p.to_str().unwrap())])).unwrap();
    assert_eq!(c.file.as_deref(), Some(p2.as_path()));
    assert_eq!(c.data_dir(), PathBuf::from("/from-flag-file"));
}

#[test]
fn defaults_match_the_coordinator_defaults() {
    let c = load(None, &[], &[]).coordinator().unwrap();
    let d = aof_coordinator::CoordinatorConfig::default();
    assert_eq!(c.listen, d.listen);
    assert_eq!(c.db_path, d.db_path);
    assert_eq!(c.agents_dir, d.agents_dir);
    assert_eq!(c.durability, d.durability);
    assert_eq!(c.poll_timeout, d.poll_timeout);
    assert_eq!(c.heartbeat_interval, d.heartbeat_interval);
    assert_eq!(c.stale_threshold, d.stale_threshold);
    assert_eq!(c.remove_threshold, d.remove_threshold);
    assert_eq!(c.no_match_timeout, d.no_match_timeout);
    assert_eq!(c.recovery, d.recovery);
    assert_eq!(c.lease_ttl, d.lease_ttl);
    assert_eq!(c.sweep_interval, d.sweep_interval);
    assert_eq!(c.cors_origins, d.cors_origins);
    assert_eq!(c.allowed_hosts, d.allowed_hosts);
    assert_eq!(c.max_body_bytes, d.max_body_bytes);
    assert_eq!(c.placeholder_env, d.placeholder_env);
    let r = load(None, &[], &[]).runner(None).unwrap();
    assert_eq!(r.urls, ["http://127.0.0.1:8765"]);
    assert_eq!(r.max_concurrent, 4);
    assert_eq!(r.executor_profile, "echo");
    assert_eq!(
        r.workspace_root,
        PathBuf::from(".agent-orchestrator/workspaces")
    );
    assert_eq!(r.stop_grace, Duration::from_secs(5));
    assert_eq!(r.drain_timeout, Duration::from_secs(20));
    assert!(r.tags.is_empty());
    let rd = aof_runner::RunnerConfig::default();
    assert_eq!(r.allow_blueprint_executors, rd.allow_blueprint_executors);
    assert_eq!(
        load(None, &[], &[]).log_target().unwrap(),
        LogTarget::Stderr
    );
}

#[test]
fn every_reference_name_still_works() {
    let c = load(
        None,
        &[
            ("AGENT_ORCHESTRATOR_DB_PATH", "/x/db.sqlite"),
            ("AGENT_ORCHESTRATOR_AGENTS_DIR", "/x/agents"),
            ("AOF_SQLITE_SYNCHRONOUS", "full"),
            ("RUNNER_POLL_TIMEOUT", "7"),
            ("RUNNER_HEARTBEAT_INTERVAL", "2"),
            ("RUNNER_STALE_THRESHOLD", "20"),
            ("RUNNER_REMOVE_THRESHOLD", "40"),
            ("RUN_NO_MATCH_TIMEOUT", "9"),
            ("RUN_RECOVERY_MODE", "all"),
            ("CORS_ORIGINS", "http://a,http://b"),
            ("AOF_MAX_BODY_BYTES", "1000"),
            ("AUTH_ENABLED", "false"),
            ("AGENT_ORCHESTRATOR_API_URL", "http://coord:9/"),
            ("RUNNER_TAGS", "gpu, big"),
            ("PROJECT_DIR", "/proj"),
            ("AOF_LOG_FORMAT", "json"),
            ("AOF_LOG_TARGET", "stdout"),
        ],
        &[],
    );
    let k = c.coordinator().unwrap();
    assert_eq!(k.db_path, PathBuf::from("/x/db.sqlite"));
    assert_eq!(k.agents_dir, PathBuf::from("/x/agents"));
    assert_eq!(k.durability, aof_store_sqlite::Durability::Full);
    assert_eq!(k.poll_timeout, Duration::from_secs(7));
    // Derived: lease = 3 heartbeats, sweep = lease / 4.
    assert_eq!(k.lease_ttl, Duration::from_secs(6));
    assert_eq!(k.sweep_interval, Duration::from_millis(1500));
    assert_eq!(k.stale_threshold, Duration::from_secs(20));
    assert_eq!(k.remove_threshold, Duration::from_secs(40));
    assert_eq!(k.no_match_timeout, Duration::from_secs(9));
    assert_eq!(k.recovery, RecoveryMode::All);
    assert_eq!(k.cors_origins, "http://a,http://b");
    assert_eq!(k.max_body_bytes, 1000);
    let r = c.runner(None).unwrap();
    assert_eq!(r.urls, ["http://coord:9"]);
    assert_eq!(r.tags, ["gpu", "big"]);
    assert_eq!(r.project_dir, "/proj");
    assert_eq!(c.log_format().unwrap(), LogFormat::Json);
    assert_eq!(c.log_target().unwrap(), LogTarget::Stdout);
    let c = load(
        None,
        &[("AOF_LEASE_TTL", "8"), ("RUNNER_LIFECYCLE_INTERVAL", "0.5")],
        &[],
    );
    let k = c.coordinator().unwrap();
    assert_eq!(k.lease_ttl, Duration::from_secs(8));
    assert_eq!(k.sweep_interval, Duration::from_millis(500));
}

#[test]
fn data_dir_flag_relocates_derived_paths() {
    let c = load(
        None,
        &[("AGENT_ORCHESTRATOR_DB_PATH", "/env/db")],
        &[("data_dir", "/flag")],
    );
    let k = c.coordinator().unwrap();
    assert_eq!(k.db_path, PathBuf::from("/flag/observability.db"));
    assert_eq!(k.agents_dir, PathBuf::from("/flag/agents"));
    let c = load(None, &[("AGENT_ORCHESTRATOR_DB_PATH", "/env/db")], &[]);
    assert_eq!(c.coordinator().unwrap().db_path, PathBuf::from("/env/db"));
    // The reference's project dir places the data dir, unless something more specific does.
    let c = load(None, &[("AGENT_ORCHESTRATOR_PROJECT_DIR", "/proj")], &[]);
    assert_eq!(
        c.coordinator().unwrap().agents_dir,
        PathBuf::from("/proj/.agent-orchestrator/agents")
    );
    let c = load(
        None,
        &[
            ("AGENT_ORCHESTRATOR_PROJECT_DIR", "/proj"),
            ("AOF_DATA_DIR", "/d"),
        ],
        &[],
    );
    assert_eq!(
        c.coordinator().unwrap().db_path,
        PathBuf::from("/d/observability.db")
    );
}

#[test]
fn errors_name_the_setting_and_its_source() {
    let e = load(None, &[("RUNNER_POLL_TIMEOUT", "soon")], &[])
        .coordinator()
        .unwrap_err()
        .0;
    assert_eq!(e, "RUNNER_POLL_TIMEOUT=soon: must be a number of seconds");
    let e = load(None, &[], &[("coordinator.listen", "nope")])
        .coordinator()
        .unwrap_err()
        .0;
    assert_eq!(
        e,
        "--listen nope: must be ADDRESS:PORT, e.g. 127.0.0.1:8765"
    );
    let e = load(None, &[("AOF_LOG_TARGET", "syslog")], &[])
        .log_target()
        .unwrap_err()
        .0;
    assert_eq!(e, "AOF_LOG_TARGET=syslog: must be stderr or stdout");
    let e = load(None, &[("RUN_RECOVERY_MODE", "maybe")], &[])
        .coordinator()
        .unwrap_err()
        .0;
    assert!(
        e.starts_with("RUN_RECOVERY_MODE=maybe: must be none"),
        "{e}"
    );
    // Auth on through the reference's variable; OIDC needs all three of its keys.
    let c = load(None, &[("AUTH_ENABLED", "true")], &[])
        .coordinator()
        .unwrap();
    assert!(c.auth.enabled && c.auth.metrics_public && c.auth.oidc.is_none());
    let e = load(
        None,
        &[("AUTH_ENABLED", "true"), ("AOF_OIDC_ISSUER", "https://i/")],
        &[],
    )
    .coordinator()
    .unwrap_err()
    .0;
    assert!(
        e.contains("missing: auth.oidc_audience (AOF_OIDC_AUDIENCE or AUTH0_AUDIENCE), auth.oidc_jwks (AOF_OIDC_JWKS or AUTH0_DOMAIN)"),
        "{e}"
    );
    // Auth off and a non-loopback address: refused unless --insecure-listen.
    let e = load(None, &[], &[("coordinator.listen", "0.0.0.0:1")])
        .coordinator()
        .unwrap_err()
        .0;
    assert!(e.contains("--insecure-listen"), "{e}");
    assert!(load(
        None,
        &[],
        &[
            ("coordinator.listen", "0.0.0.0:1"),
            ("coordinator.insecure_listen", "true")
        ]
    )
    .coordinator()
    .is_ok());
    let e = load(Some("[runner]\nmax_concurrent = 0\n"), &[], &[])
        .runner(None)
        .unwrap_err()
        .0;
    assert!(e.starts_with("runner.max_concurrent = \"0\" in "), "{e}");
    let r = load(None, &[("AOF_RUNNER_DRAIN_TIMEOUT", "2.5")], &[])
        .runner(None)
        .unwrap();
    assert_eq!(r.drain_timeout, Duration::from_millis(2500));
    let e = load(None, &[("AOF_RUNNER_DRAIN_TIMEOUT", "soon")], &[])
        .runner(None)
        .unwrap_err()
        .0;
    assert!(
        e.contains("AOF_RUNNER_DRAIN_TIMEOUT") && e.contains("between 0 and 86400"),
        "{e}"
    );
    let e = load(None, &[("RUNNER_STALE_THRESHOLD", "700")], &[])
        .coordinator()
        .unwrap_err()
        .0;
    assert!(e.contains("RUNNER_STALE_THRESHOLD"), "{e}");
    let e = load(None, &[("AOF_EXECUTOR", "command")], &[])
        .runner(None)
        .unwrap_err()
        .0;
    assert!(e.contains("needs runner.command"), "{e}");

    // File errors: unknown keys and sections are named; syntax errors name the file.
    let e = try_load(Some("[coordinator]\npoll_timeot = 3\n"), &[], &[])
        .unwrap_err()
        .0;
    assert!(e.contains("unknown key `coordinator.poll_timeot`"), "{e}");
    let e = try_load(Some("[coordinater]\nlisten = \"x\"\n"), &[], &[])
        .unwrap_err()
        .0;
    assert!(e.contains("unknown section `[coordinater]`"), "{e}");
    let e = try_load(Some("listen = \n"), &[], &[]).unwrap_err().0;
    assert!(e.starts_with("config file "), "{e}");
    let inputs = Inputs {
        config_path: Some("/nonexistent/aof.toml".into()),
        flags: vec![],
    };
    let e = Config::load(&inputs, env(&[])).unwrap_err().0;
    assert!(
        e.starts_with("cannot read config file /nonexistent/aof.toml"),
        "{e}"
    );
}

#[test]
fn file_values_of_every_type_flatten() {
    let c = load(
        Some(
            "data_dir = \"/d\"\n[runner]\ntags = [\"a\", \"b\"]\nstop_grace = 0.5\n\
             [coordinator]\nmax_body_bytes = 10\n[auth]\nenabled = false\n",
        ),
        &[],
        &[],
    );
    let r = c.runner(None).unwrap();
    assert_eq!(r.tags, ["a", "b"]);
    assert_eq!(r.stop_grace, Duration::from_millis(500));
    assert_eq!(r.workspace_root, PathBuf::from("/d/workspaces"));
    assert_eq!(c.coordinator().unwrap().max_body_bytes, 10);

    let c = load(
        Some(
            "[coordinator]\nplaceholder_env = [\"HOME\", \"USER\"]\n\
             [runner]\nexecutor = \"command\"\ncommand = \"python3 a.py\"\n\
             command_timeout = 2.5\nallow_blueprint_executors = false\n",
        ),
        &[],
        &[],
    );
    assert_eq!(c.coordinator().unwrap().placeholder_env, ["HOME", "USER"]);
    let r = c.runner(None).unwrap();
    assert!(!r.allow_blueprint_executors);
    assert_eq!(
        r.executor,
        aof_executors::ExecutorConfig::Command {
            program: "python3".into(),
            args: vec!["a.py".into()],
            timeout_seconds: Some(2.5),
        }
    );
    let e = load(None, &[("AOF_COMMAND_TIMEOUT", "3")], &[])
        .runner(None)
        .unwrap_err()
        .0;
    assert!(e.starts_with("AOF_COMMAND_TIMEOUT=3: only applies"), "{e}");

    let c = load(
        Some(
            "data_dir = \"/d\"\n[runner]\nexecutor = \"claude_code\"\nclaude_model = \"sonnet\"\n",
        ),
        &[
            ("AOF_CLAUDE_ALLOWED_TOOLS", "Bash,Read"),
            ("AOF_CLAUDE_BIN", "/opt/claude"),
        ],
        &[],
    );
    let r = c.runner(None).unwrap();
    assert_eq!(r.executor_profile, "claude_code");
    assert_eq!(r.state_dir, PathBuf::from("/d/runner"));
    assert_eq!(
        r.executor,
        aof_executors::ExecutorConfig::ClaudeCode(aof_executors::claude::ClaudeCodeConfig {
            program: Some("/opt/claude".into()),
            model: Some("sonnet".into()),
            allowed_tools: vec!["Bash".into(), "Read".into()],
            stall_timeout_seconds: Some(900.0),
            ..Default::default()
        })
    );
}

#[test]
fn secrets_are_masked() {
    let c = load(None, &[("AOF_API_KEY", "s3cret")], &[]);
    assert_eq!(c.api().unwrap().key.as_deref(), Some("s3cret"));
    assert!(!format!("{:?}", c.api().unwrap()).contains("s3cret"));
    let row = c
        .show()
        .into_iter()
        .find(|r| r.setting.key == "api.key")
        .unwrap();
    assert_eq!(row.display_value(), "****");
    assert_eq!(row.source.to_string(), "env AOF_API_KEY");
    // Empty variables are unset.
    let c = load(None, &[("AOF_API_KEY", "")], &[]);
    assert_eq!(c.api().unwrap().key, None);
}

/// The README and ARCHITECTURE.md hold exactly the generated table between markers.
#[test]
fn docs_hold_the_generated_table() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        let start = "<!-- config-table:start -->\n";
        let end = "<!-- config-table:end -->";
        let a = text
            .find(start)
            .unwrap_or_else(|| panic!("{doc}: no {start:?} marker"));
        let b = text
            .find(end)
            .unwrap_or_else(|| panic!("{doc}: no {end:?} marker"));
        assert_eq!(
            &text[a + start.len()..b],
            markdown_table(),
            "{doc}: the settings table is stale; regenerate it with `aof config table`"
        );
    }
}

#[test]
fn retention_days_are_whole_days_or_off() {
    let c = load(None, &[], &[]);
    assert_eq!(c.coordinator().unwrap().retention, None);
    let c = load(None, &[("AOF_RETENTION_DAYS", "30")], &[]);
    assert_eq!(
        c.coordinator().unwrap().retention,
        Some(Duration::from_secs(30 * 86_400))
    );
    for bad in ["0", "1.5", "-3", "forever", "40000"] {
        let c = load(None, &[("AOF_RETENTION_DAYS", bad)], &[]);
        let err = c.coordinator().unwrap_err().to_string();
        assert!(err.contains("AOF_RETENTION_DAYS"), "{bad}: {err}");
    }
}

#[test]
fn shutdown_timeout_defaults_to_10_s_and_bounds_every_server() {
    let c = load(None, &[], &[]);
    assert_eq!(
        c.coordinator().unwrap().shutdown_timeout,
        Duration::from_secs(10)
    );
    assert_eq!(c.shutdown_timeout().unwrap(), Duration::from_secs(10));
    let toml = "[coordinator]\nshutdown_timeout = 2.5\n";
    let c = load(Some(toml), &[], &[]);
    assert_eq!(c.shutdown_timeout().unwrap(), Duration::from_millis(2500));
    let c = load(Some(toml), &[("AOF_SHUTDOWN_TIMEOUT", "30")], &[]);
    assert_eq!(
        c.coordinator().unwrap().shutdown_timeout,
        Duration::from_secs(30)
    );
    // No stop without a bound, and none that is a hang by another name.
    for bad in ["0", "-1", "soon", "3601"] {
        let c = load(None, &[("AOF_SHUTDOWN_TIMEOUT", bad)], &[]);
        let err = c.shutdown_timeout().unwrap_err().to_string();
        assert!(err.contains("AOF_SHUTDOWN_TIMEOUT"), "{bad}: {err}");
        assert!(c.coordinator().is_err(), "{bad}");
    }
}

#[test]
fn audit_retention_defaults_to_90_days_and_0_keeps_forever() {
    let c = load(None, &[], &[]);
    assert_eq!(
        c.coordinator().unwrap().audit_retention,
        Some(Duration::from_secs(90 * 86_400))
    );
    let c = load(None, &[("AOF_AUDIT_RETENTION_DAYS", "0")], &[]);
    assert_eq!(c.coordinator().unwrap().audit_retention, None);
    let c = load(None, &[("AOF_AUDIT_RETENTION_DAYS", "7")], &[]);
    assert_eq!(
        c.coordinator().unwrap().audit_retention,
        Some(Duration::from_secs(7 * 86_400))
    );
    for bad in ["1.5", "-3", "forever", "40000"] {
        let c = load(None, &[("AOF_AUDIT_RETENTION_DAYS", bad)], &[]);
        let err = c.coordinator().unwrap_err().to_string();
        assert!(err.contains("AOF_AUDIT_RETENTION_DAYS"), "{bad}: {err}");
    }
}

/// `AOF_PROJECT_DIR_ROOTS`: unset = no roots (any path); a list of absolute paths;
/// a relative root is a configuration error naming the setting.
#[test]
fn project_dir_roots() {
    let c = load(None, &[], &[]);
    assert!(c.coordinator().unwrap().project_dir_roots.is_empty());
    let c = load(None, &[("AOF_PROJECT_DIR_ROOTS", "/srv/a, /home/b")], &[]);
    assert_eq!(
        c.coordinator().unwrap().project_dir_roots,
        [PathBuf::from("/srv/a"), PathBuf::from("/home/b")]
    );
    let c = load(None, &[("AOF_PROJECT_DIR_ROOTS", "/srv/a,rel")], &[]);
    let e = c.coordinator().unwrap_err().to_string();
    assert!(
        e.contains("AOF_PROJECT_DIR_ROOTS") && e.contains("rel"),
        "{e}"
    );
}

#[test]
fn database_url_selects_the_store() {
    let k = |v: &str| {
        load(
            None,
            &[("AOF_DATABASE_URL", v), ("AOF_DB_PATH", "/d/db")],
            &[],
        )
        .coordinator()
    };
    let pg = k("postgres://aof:pw@127.0.0.1:5432/aof").unwrap();
    assert_eq!(
        pg.postgres_url.as_ref().unwrap().0,
        "postgres://aof:pw@127.0.0.1:5432/aof"
    );
    let debug = format!("{:?}", pg.postgres_url.unwrap());
    assert!(
        !debug.contains("pw") && debug.contains("aof:***@127.0.0.1"),
        "{debug}"
    );
    assert!(k("postgresql://h/db").unwrap().postgres_url.is_some());
    let lite = k("sqlite:///x/other.db").unwrap();
    assert_eq!(
        (lite.postgres_url, lite.db_path),
        (None, PathBuf::from("/x/other.db"))
    );
    let kept = k("sqlite://").unwrap();
    assert_eq!(
        (kept.postgres_url, kept.db_path),
        (None, PathBuf::from("/d/db"))
    );
    let unset = load(None, &[], &[]).coordinator().unwrap();
    assert!(unset.postgres_url.is_none());
    let err = k("mysql://h/db").unwrap_err().to_string();
    assert!(
        err.contains("AOF_DATABASE_URL") && err.contains("postgres://"),
        "{err}"
    );
    // A secret: `aof config show` masks it.
    let row = load(None, &[("AOF_DATABASE_URL", "postgres://u:pw@h/db")], &[])
        .show()
        .into_iter()
        .find(|r| r.setting.key == "coordinator.database_url")
        .unwrap();
    assert_eq!(row.display_value(), "****");
}

#[test]
fn runner_takes_several_coordinator_urls() {
    let c = load(None, &[("AOF_URL", "http://a:1/, https://b:2")], &[]);
    assert_eq!(c.runner(None).unwrap().urls, ["http://a:1", "https://b:2"]);
    // The CLI talks to the first.
    assert_eq!(c.api().unwrap().url, "http://a:1");
    // `aof runner --url A --url B` arrives joined; it wins over the env.
    let c = load(
        None,
        &[("AOF_URL", "http://a:1")],
        &[("api.url", "http://x:1,http://y:2")],
    );
    assert_eq!(c.runner(None).unwrap().urls, ["http://x:1", "http://y:2"]);
    let e = load(None, &[("AOF_URL", "http://a:1,,http://b:2")], &[])
        .runner(None)
        .unwrap_err()
        .0;
    assert_eq!(
        e,
        "AOF_URL=http://a:1,,http://b:2: has an empty URL in its list"
    );
    let e = load(None, &[("AOF_URL", "http://a:1,b:2")], &[])
        .runner(None)
        .unwrap_err()
        .0;
    assert_eq!(
        e,
        "AOF_URL=http://a:1,b:2: \"b:2\" must start with http:// or https://"
    );
}

#[test]
fn otel_is_off_unless_an_endpoint_is_set() {
    assert_eq!(load(None, &[], &[]).otel().unwrap(), None);
    // Only a service name: still nothing to export to.
    assert_eq!(
        load(None, &[("OTEL_SERVICE_NAME", "x")], &[])
            .otel()
            .unwrap(),
        None
    );
    let c = load(
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_SERVICE_NAME", "svc"),
        ],
        &[],
    );
    assert_eq!(
        c.otel().unwrap(),
        Some(crate::OtelSettings {
            traces_endpoint: "http://collector:4318/v1/traces".into(),
            service_name: Some("svc".into()),
        })
    );
    // The per-signal URL is used as is and wins; AOF_* names win over OTEL_* ones.
    let c = load(
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://b/traces"),
        ],
        &[],
    );
    assert_eq!(
        c.otel().unwrap().unwrap().traces_endpoint,
        "https://b/traces"
    );
    let c = load(
        None,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("AOF_OTEL_ENDPOINT", "http://c:1"),
        ],
        &[],
    );
    assert_eq!(
        c.otel().unwrap().unwrap().traces_endpoint,
        "http://c:1/v1/traces"
    );
    let err = load(
        None,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
        &[],
    )
    .otel()
    .unwrap_err();
    assert!(
        err.0.contains("OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318"),
        "{err}"
    );
}

/// Issue #20: CORS is same-origin unless set, `*` never with auth off beyond loopback,
/// and allowed hosts are plain host names.
#[test]
fn cors_and_allowed_hosts() {
    let c = load(None, &[], &[]).coordinator().unwrap();
    assert_eq!(c.cors_origins, "", "same origin only by default");
    assert!(c.allowed_hosts.is_empty());
    let c = load(
        None,
        &[("AOF_ALLOWED_HOSTS", " Coordinator, aof.example.com ,")],
        &[],
    )
    .coordinator()
    .unwrap();
    assert_eq!(c.allowed_hosts, ["coordinator", "aof.example.com"]);
    for bad in ["coordinator:8765", "http://coordinator", "a/b"] {
        let e = load(None, &[("AOF_ALLOWED_HOSTS", bad)], &[])
            .coordinator()
            .unwrap_err()
            .0;
        assert!(
            e.contains("coordinator.allowed_hosts (AOF_ALLOWED_HOSTS)"),
            "{e}"
        );
    }
    let public = [
        ("coordinator.listen", "0.0.0.0:1"),
        ("coordinator.insecure_listen", "true"),
    ];
    let e = load(None, &[("CORS_ORIGINS", "*")], &public)
        .coordinator()
        .unwrap_err()
        .0;
    assert!(
        e.contains("coordinator.cors_origins (CORS_ORIGINS)") && e.contains("AUTH_ENABLED"),
        "{e}"
    );
    // On loopback, or with auth on, `*` is the operator's explicit choice.
    assert!(load(None, &[("CORS_ORIGINS", "*")], &[])
        .coordinator()
        .is_ok());
    assert!(load(
        None,
        &[("CORS_ORIGINS", "*"), ("AUTH_ENABLED", "true")],
        &public
    )
    .coordinator()
    .is_ok());
}

#[test]
fn caps_per_key_default_to_the_coordinator_defaults_and_need_a_positive_count() {
    let c = load(None, &[], &[]).coordinator().unwrap();
    assert_eq!(c.caps, aof_coordinator::CoordinatorConfig::default().caps);
    let c = load(
        None,
        &[
            ("AOF_MAX_STREAMS_PER_KEY", "3"),
            ("AOF_MAX_POLLS_PER_KEY", "1000"),
            ("AOF_MAX_MCP_WAITS_PER_KEY", "2"),
        ],
        &[],
    )
    .coordinator()
    .unwrap();
    assert_eq!(
        (c.caps.streams, c.caps.polls, c.caps.mcp_waits),
        (3, 1000, 2)
    );
    for bad in ["0", "-1", "many", "1.5"] {
        let err = load(None, &[("AOF_MAX_POLLS_PER_KEY", bad)], &[])
            .coordinator()
            .unwrap_err();
        assert!(err.0.contains("AOF_MAX_POLLS_PER_KEY"), "{bad}: {err}");
    }
}

/// A secret's value never appears in a parse error: a database URL is shown with its
/// password masked, an API key not at all.
#[test]
fn parse_errors_mask_secrets() {
    let err = load(
        None,
        &[(
            "AOF_DATABASE_URL",
            "mysql://u:hunter2secret@h/db?password=qwertysecret",
        )],
        &[],
    )
    .coordinator()
    .unwrap_err();
    assert!(err.0.contains("AOF_DATABASE_URL="), "{err}");
    assert!(!err.0.contains("hunter2secret"), "{err}");
    assert!(!err.0.contains("qwertysecret"), "{err}");
}

// runner.agent_user / runner.agent_env (issue #20, attack 6).
#[test]
fn agent_user_and_agent_env() {
    let r = load(None, &[], &[]).runner(None).unwrap();
    assert_eq!((r.agent_user, r.agent_env), (None, Vec::<String>::new()));
    let r = load(
        None,
        &[
            ("AOF_RUNNER_AGENT_USER", "aof-agent"),
            ("AOF_RUNNER_AGENT_ENV", "OPENAI_API_KEY, AWS_REGION"),
        ],
        &[],
    )
    .runner(None)
    .unwrap();
    assert_eq!(r.agent_user.as_deref(), Some("aof-agent"));
    assert_eq!(r.agent_env, ["OPENAI_API_KEY", "AWS_REGION"]);
    let c = load(Some("[runner]\nagent_user = \"1500:1500\"\n"), &[], &[]);
    assert_eq!(
        c.runner(None).unwrap().agent_user.as_deref(),
        Some("1500:1500")
    );
    let r = load(None, &[("AOF_RUNNER_AGENT_USER", " ")], &[])
        .runner(None)
        .unwrap();
    assert_eq!(r.agent_user, None);
}

// runner.approval_floor (issue #25).
#[test]
fn approval_floor_is_a_list_or_a_policy() {
    use aof_executors::approval::ApprovalPolicy;
    let floor =
        |vars: &[(&str, &str)]| load(None, vars, &[]).runner(None).map(|r| r.approval_floor);
    assert_eq!(floor(&[]).unwrap(), ApprovalPolicy::default());
    let p = floor(&[("AOF_RUNNER_APPROVAL_FLOOR", "Bash, mcp__github__*")]).unwrap();
    assert_eq!(p.tools, ["Bash", "mcp__github__*"]);
    let p = floor(&[(
        "AOF_RUNNER_APPROVAL_FLOOR",
        r#"{"tools": ["Write"], "timeout_seconds": 300, "on_timeout": "deny"}"#,
    )])
    .unwrap();
    assert_eq!((p.tools.len(), p.timeout_seconds), (1, Some(300)));
    let c = load(
        Some("[runner]\napproval_floor = [\"Bash\", \"Write\"]\n"),
        &[],
        &[],
    );
    assert_eq!(
        c.runner(None).unwrap().approval_floor.tools,
        ["Bash", "Write"]
    );
    for (bad, needle) in [
        (
            r#"{"tools": ["Bash"], "timeout_seconds": 0}"#,
            "timeout_seconds",
        ),
        (r#"{"tool": ["Bash"]}"#, "unknown field"),
        ("{not json", "not a JSON policy"),
    ] {
        let e = floor(&[("AOF_RUNNER_APPROVAL_FLOOR", bad)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("AOF_RUNNER_APPROVAL_FLOOR") && e.contains(needle),
            "{bad}: {e}"
        );
    }
}
