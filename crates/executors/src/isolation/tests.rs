use std::{collections::BTreeMap, os::unix::fs::PermissionsExt, path::Path, time::Duration};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::{command::CommandExecutor, ExecCx, ExecEvent, Executor, Job, Outcome};

fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The runner's environment as an agent host has it: credentials of every kind.
const RUNNER_ENV: &[(&str, &str)] = &[
    ("PATH", "/usr/bin:/bin"),
    ("HOME", "/root"),
    ("USER", "root"),
    ("LANG", "C.UTF-8"),
    ("LC_ALL", "C"),
    ("TZ", "UTC"),
    ("https_proxy", "http://proxy:3128"),
    ("AOF_API_KEY", "aof_runner_secret"),
    ("AOF_DATABASE_URL", "postgres://aof:pw@db/aof"),
    ("AOF_URL", "http://coord:8765"),
    ("OPENAI_API_KEY", "sk-openai"),
    ("AWS_ACCESS_KEY_ID", "AKIA"),
    ("AWS_SECRET_ACCESS_KEY", "aws-secret"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/creds.json"),
    ("AZURE_CLIENT_SECRET", "azure-secret"),
    ("ANTHROPIC_API_KEY", "sk-ant"),
    ("GITHUB_TOKEN", "ghp"),
    ("DATABASE_URL", "postgres://x"),
    ("SSH_AUTH_SOCK", "/tmp/agent.sock"),
];

#[test]
fn the_environment_is_the_allow_list_and_the_runs_own() {
    let run_env = BTreeMap::from([
        ("AOF_SESSION_TOKEN".to_string(), "aofs_tok".to_string()),
        ("TRACEPARENT".to_string(), "00-abc-def-01".to_string()),
        // Even if the runner handed it over by mistake.
        ("AOF_API_KEY".to_string(), "never".to_string()),
    ]);
    let plain = AgentProcess::default();
    let env = environment(
        vars(RUNNER_ENV),
        ExecutorEnv::default(),
        &plain,
        Path::new("/s"),
        &run_env,
    );
    let keys: Vec<&str> = env.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "AOF_SESSION_TOKEN",
            "HOME",
            "LANG",
            "LC_ALL",
            "PATH",
            "TRACEPARENT",
            "TZ",
            "USER",
            "https_proxy"
        ]
    );
    assert_eq!(env["HOME"], "/root");

    // What an executor needs, and what the operator names, get through; AOF_* never.
    let named = AgentProcess {
        pass_env: vec![
            "OPENAI_API_KEY".into(),
            "AOF_API_KEY".into(),
            "AOF_DATABASE_URL".into(),
        ],
        ..Default::default()
    };
    let claude = ExecutorEnv {
        names: &[],
        prefixes: &["ANTHROPIC_"],
    };
    let env = environment(
        vars(RUNNER_ENV),
        claude,
        &named,
        Path::new("/s"),
        &BTreeMap::new(),
    );
    assert_eq!(env["OPENAI_API_KEY"], "sk-openai");
    assert_eq!(env["ANTHROPIC_API_KEY"], "sk-ant");
    for gone in [
        "AOF_API_KEY",
        "AOF_DATABASE_URL",
        "AOF_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "AZURE_CLIENT_SECRET",
        "GITHUB_TOKEN",
        "DATABASE_URL",
        "SSH_AUTH_SOCK",
    ] {
        assert!(!env.contains_key(gone), "{gone} leaked");
    }

    // An agent user: its own identity; HOME falls back to the session's dir.
    let as_user = AgentProcess {
        user: Some(AgentUser {
            uid: 990,
            gid: 990,
            name: Some("agent".into()),
            home: None,
        }),
        ..Default::default()
    };
    let env = environment(
        vars(RUNNER_ENV),
        ExecutorEnv::default(),
        &as_user,
        Path::new("/ws/.sessions/ses_1"),
        &BTreeMap::new(),
    );
    assert_eq!(
        (
            env["HOME"].as_str(),
            env["USER"].as_str(),
            env["LOGNAME"].as_str()
        ),
        ("/ws/.sessions/ses_1", "agent", "agent")
    );
}

#[test]
fn agent_user_specs_are_checked() {
    for (spec, want) in [
        ("", "is empty"),
        ("root", "must not run as root"),
        ("0", "must not run as root"),
        ("1000:0", "must not run as root"),
        ("a:b", "expected a user name"),
        ("no-such-user-aof", "no such user"),
    ] {
        let err = AgentUser::resolve(spec).unwrap_err();
        assert!(err.contains(want), "{spec}: {err}");
        assert!(err.starts_with("runner.agent_user"), "{err}");
    }
}

fn job(prompt: &str) -> Job {
    Job {
        run_id: "run_1".into(),
        session_id: "ses_1".into(),
        agent_name: None,
        prompt: prompt.into(),
        parameters: json!({}),
        project_dir: None,
        resume: None,
        blueprint: None,
        system_prompt: None,
        orchestrator_mcp_url: None,
        history: None,
    }
}

/// Run `script` with `sh` through the command executor, as `user` when given, in
/// `work`; its stdout lines.
async fn run_sh(script: &str, work: &Path, user: Option<AgentUser>) -> Vec<String> {
    let (tx, mut rx) = mpsc::channel(64);
    let cx = ExecCx {
        workdir: work.to_path_buf(),
        env: BTreeMap::from([("AOF_SESSION_TOKEN".into(), "aofs_tok".into())]),
        cancel: CancellationToken::new(),
        events: tx,
        stop_grace: Duration::from_secs(2),
        state_dir: work.join("state"),
        session_dir: work.to_path_buf(),
        agent: AgentProcess {
            user,
            ..Default::default()
        },
        approval: Default::default(),
    };
    let ex = CommandExecutor {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
    };
    let done = ex.start(job("p"), cx).await.unwrap().done;
    let outcome = tokio::time::timeout(Duration::from_secs(60), done)
        .await
        .expect("the command ends")
        .unwrap()
        .unwrap();
    let mut lines = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            ExecEvent::Message { text, .. } => lines.push(text),
            ExecEvent::Stderr { text } => eprintln!("agent stderr: {text}"),
            _ => {}
        }
    }
    assert!(
        matches!(outcome, Outcome::Completed { .. }),
        "{outcome:?} {lines:?}"
    );
    lines
}

/// A real child: its environment holds the allow-listed names and the run's, nothing
/// else of this (the "runner's") process — whatever the test harness set.
#[tokio::test]
async fn a_real_command_sees_only_the_allow_list() {
    let dir = tempfile::tempdir().unwrap();
    let lines = run_sh("env | cut -d= -f1 | sort", dir.path(), None).await;
    let job_vars = [
        "AOF_PROMPT",
        "AOF_RUN_ID",
        "AOF_SESSION_ID",
        "AOF_PARAMETERS",
        "AOF_SESSION_TOKEN",
        // Set by sh itself.
        "PWD",
        "SHLVL",
        "OLDPWD",
        "_",
    ];
    for name in &lines {
        assert!(
            BASE_ENV.contains(&name.as_str())
                || BASE_ENV_PREFIX.iter().any(|p| name.starts_with(p))
                || job_vars.contains(&name.as_str()),
            "{name} reached the agent: {lines:?}"
        );
    }
    assert!(lines.iter().any(|l| l == "AOF_SESSION_TOKEN"));
    assert!(lines.iter().any(|l| l == "PATH"));
}

/// Attack 6: an agent running as `runner.agent_user` cannot read this process's
/// `/proc/<pid>/environ` (where a runner keeps its key) nor a root-only file; the same
/// agent without an agent user can (so this test can fail).
#[tokio::test]
async fn an_agent_user_cannot_read_the_runners_environ_or_private_files() {
    let Some((uid, gid)) = aof_testkit::agent_test_user() else {
        return;
    };
    let user = AgentUser::resolve(aof_testkit::AGENT_TEST_USER).unwrap();
    assert_eq!((user.uid, user.gid), (uid, gid));

    let dir = tempfile::tempdir().unwrap();
    // Reachable by the agent, like a workspace: only the file itself is private.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret = dir.path().join("runner-secret");
    std::fs::write(&secret, "top secret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let work = dir.path().join("work");
    private_dir(&work, Some(&user)).unwrap();

    let script = format!(
        "id -u; id -G; \
         if cat /proc/{pid}/environ >/dev/null 2>&1; then echo environ-read; else echo environ-denied; fi; \
         if cat {secret} >/dev/null 2>&1; then echo file-read; else echo file-denied; fi; \
         touch own-file && echo workspace-writable",
        pid = std::process::id(),
        secret = secret.display(),
    );
    let lines = run_sh(&script, &work, Some(user.clone())).await;
    assert_eq!(
        lines,
        [
            uid.to_string(),
            gid.to_string(),
            "environ-denied".into(),
            "file-denied".into(),
            "workspace-writable".into()
        ],
        "as {}",
        aof_testkit::AGENT_TEST_USER
    );

    // The control: the same agent as the runner's own user reads both.
    let lines = run_sh(&script, &work, None).await;
    assert_eq!(
        lines[2..],
        ["environ-read", "file-read", "workspace-writable"],
        "{lines:?}"
    );
    assert_eq!(lines[0], "0");
}
