//! A `claude_code` runner with auth on: the runner's key never reaches the agent, the
//! session token does, and a follow-up resumes the Claude session (the runner reads the
//! session's `executor_session_id` with the run's session token, which a runner key
//! may not).

use aof_testkit::{claude_bin, Block, ReplayServer, Rule};
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_runner_with_auth_keeps_its_key_and_resumes() {
    let Some(bin) = claude_bin() else { return };
    let replay = ReplayServer::start([
        Rule::when("check the env").reply([Block::tool_use(
            "Bash",
            json!({"command": "echo key=$(env | grep -c '^AOF_API_KEY=') token=$(env | grep -c '^AOF_SESSION_TOKEN=aof')"}),
        )]),
        Rule::when("again").reply([Block::text("Resumed.")]),
        Rule::otherwise().reply([Block::text("Checked.")]),
    ])
    .await
    .unwrap();
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let rdir = dir.path().join("runner");
    std::fs::create_dir_all(&rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    let _runner = Command::new(BIN)
        .args([
            "runner",
            "--url",
            &url,
            "--hostname",
            "r1",
            "--executor",
            "claude_code",
        ])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .envs(fast_env())
        .env("AOF_DATA_DIR", rdir.join("data"))
        .env("AOF_API_KEY", &keys.runner)
        .env("AOF_CLAUDE_BIN", &bin)
        .env("AOF_CLAUDE_ALLOWED_TOOLS", "Bash")
        .env("ANTHROPIC_BASE_URL", replay.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-replay")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let op = [("AOF_API_KEY", keys.operator.as_str())];
    let (url, op) = (&url, &op);
    let run = |args: Vec<String>| async move {
        let mut all: Vec<String> = ["run", "helper"].map(String::from).to_vec();
        all.extend(args);
        all.extend(["--follow", "--url", url, "--timeout", "120"].map(String::from));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        aof(&refs, op).await
    };
    let (code, out, err) = run(vec!["please check the env".into()]).await;
    let runner_log = || std::fs::read_to_string(rdir.join("runner.log")).unwrap_or_default();
    assert_eq!(code, 0, "{out}\n{err}\n{}", runner_log());
    // The tool saw the session token but not the runner's key.
    assert!(out.contains("[post_tool] Bash → key=0 token=1"), "{out}");
    let sid = err
        .split_whitespace()
        .find(|w| w.starts_with("ses_"))
        .unwrap()
        .trim_end_matches(':')
        .to_string();

    let (code, out, err) = run(vec!["and again".into(), "--resume".into(), sid]).await;
    assert_eq!(code, 0, "{out}\n{err}\n{}", runner_log());
    assert!(out.contains("[result] Resumed."), "{out}");
    let convo = replay.turns().pop().unwrap().conversation_text();
    assert!(convo.contains("please check the env"), "{convo}");
    assert!(convo.contains("key=0 token=1"), "{convo}");
    assert_no_secret("runner log", &runner_log(), &[&keys.runner]);
}
