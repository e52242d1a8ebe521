//! Agent isolation (issue #20, attack 6) with real processes: a `command` agent under a
//! real `aof runner` gets none of the runner's credentials in its environment; with
//! `runner.agent_user` it runs as that user and cannot read the runner's
//! `/proc/<pid>/environ` (which holds the runner's key) nor a root-only file — without
//! it, the same agent can (the control). A runner that cannot switch users refuses to
//! start.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Stdio};

use aof_testkit::{agent_test_user, AGENT_TEST_USER};
use tokio::process::{Child, Command};

use crate::harness::*;

/// In the runner's environment only: a key, a database URL, cloud and model credentials.
const SECRET: &str = "runner-secret-e2e";

/// The agent reports who it is and what it could read of the runner.
const AGENT: &str = r#"#!/bin/sh
read prompt
echo "uid=$(id -u)"
echo "parent=$(cat /proc/$PPID/comm)"
if grep -qa SECRET /proc/$PPID/environ 2>/dev/null; then echo environ=read; else echo environ=denied; fi
if cat "$1" >/dev/null 2>&1; then echo file=read; else echo file=denied; fi
echo "leaked=$(env | grep -c -e SECRET -e '^AOF_API_KEY=' -e '^AOF_DATABASE_URL=' -e '^AWS_' -e '^OPENAI_')"
touch own-work && echo workspace=writable
"#;

/// `aof runner` with the command executor running `agent.sh`, credentials in its
/// environment, optionally `AOF_RUNNER_AGENT_USER`.
fn runner(url: &str, dir: &Path, name: &str, agent_user: Option<&str>) -> Child {
    let rdir = dir.join(name);
    std::fs::create_dir_all(&rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    let command = format!(
        "sh {} {}",
        dir.join("agent.sh").display(),
        dir.join("root-only").display()
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["runner", "--url", url, "--hostname", name])
        .args(["--executor", "command", "--command", &command])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .env("AOF_DATA_DIR", rdir.join("data"))
        .env("AOF_API_KEY", format!("aof_x_{SECRET}"))
        .env(
            "AOF_DATABASE_URL",
            format!("postgres://aof:{SECRET}@db/aof"),
        )
        .env("OPENAI_API_KEY", format!("sk-{SECRET}"))
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("RUST_LOG", "info,aof_runner=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(user) = agent_user {
        cmd.env("AOF_RUNNER_AGENT_USER", user);
    }
    cmd.spawn().expect("spawn runner")
}

/// One run of the agent (each runner here has a coordinator of its own); the lines of
/// its report.
async fn agent_report(url: &str) -> Vec<String> {
    let (_, sid) = start_run(url, "report").await;
    wait_for("the agent's run to end", || async {
        let status = session_status(url, &sid).await;
        matches!(status.as_str(), "finished" | "failed").then_some(())
    })
    .await;
    assert_eq!(session_status(url, &sid).await, "finished");
    let (_, result) = call("GET", &format!("{url}/sessions/{sid}/result"), None).await;
    result["result_text"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_get_no_runner_credentials_and_an_agent_user_cannot_read_the_runner() {
    let Some((uid, _)) = agent_test_user() else {
        return;
    };
    let dir = tempdir();
    // The agent user must reach its workspace and the script: search permission only.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let script = dir.path().join("agent.sh");
    std::fs::write(&script, AGENT.replace("SECRET", SECRET)).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let private = dir.path().join("root-only");
    std::fs::write(&private, SECRET).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();

    // Isolated: the agent runs as the agent user.
    let c = Coordinator::start(&dir.path().join("c1"), fast_env()).await;
    let mut r = runner(&c.url, dir.path(), "isolated", Some(AGENT_TEST_USER));
    let lines = agent_report(&c.url).await;
    let log = std::fs::read_to_string(dir.path().join("isolated/runner.log")).unwrap();
    assert_eq!(
        lines,
        [
            format!("uid={uid}"),
            "parent=aof".into(),
            "environ=denied".into(),
            "file=denied".into(),
            "leaked=0".into(),
            "workspace=writable".into()
        ],
        "{log}"
    );
    assert!(log.contains("agents run as their own user"), "{log}");
    r.start_kill().unwrap();
    let _ = r.wait().await;

    // The control: the same agent as the runner's own user reads the runner's
    // environment (its key) and the private file; the allow-list still holds.
    let c = Coordinator::start(&dir.path().join("c2"), fast_env()).await;
    let _r = runner(&c.url, dir.path(), "shared", None);
    let lines = agent_report(&c.url).await;
    assert_eq!(
        lines,
        [
            "uid=0".to_string(),
            "parent=aof".into(),
            "environ=read".into(),
            "file=read".into(),
            "leaked=0".into(),
            "workspace=writable".into()
        ]
    );
}

/// A runner told to drop agents to another user but not started as root stops at once
/// with a message saying what to do, before it registers or runs anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_that_cannot_switch_users_refuses_to_start() {
    let Some((uid, gid)) = agent_test_user() else {
        return;
    };
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new(BIN)
        .args(["runner", "--url", &c.url, "--hostname", "not-root"])
        .arg("--workspace")
        .arg(dir.path().join("ws"))
        .env("AOF_DATA_DIR", dir.path().join("data"))
        .env("AOF_RUNNER_AGENT_USER", "12345:12345")
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("runner.agent_user") && stderr.contains("cannot switch agent processes"),
        "{stderr}"
    );
    // Nothing registered, no workspace made.
    let (_, runners) = call("GET", &format!("{}/runners", c.url), None).await;
    assert_eq!(
        runners["runners"].as_array().map(Vec::len),
        Some(0),
        "{runners}"
    );
    assert!(!dir.path().join("ws").exists());
}
