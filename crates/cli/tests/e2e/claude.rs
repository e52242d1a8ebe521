//! The `claude_code` executor end to end: the real Claude Code CLI (`AOF_CLAUDE_BIN`)
//! under a real runner, its model replayed by `aof_testkit::ReplayServer`. `aof run`
//! shows the tool call and the answer live; a follow-up after a runner restart
//! continues the same Claude conversation.

use std::{path::Path, process::Stdio};

use aof_testkit::{claude_bin, Block, ReplayServer, Rule};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::*;

/// `aof runner --executor claude_code`, its data dir (the CLI's state) and workspaces
/// under `rdir`, the model endpoint pointed at the replay.
fn claude_runner(url: &str, rdir: &Path, bin: &Path, replay: &str, n: u32) -> Child {
    std::fs::create_dir_all(rdir).unwrap();
    let log = std::fs::File::create(rdir.join(format!("runner.{n}.log"))).unwrap();
    Command::new(BIN)
        .args(["runner", "--url", url, "--hostname", "claude-host"])
        .args(["--executor", "claude_code", "--stop-grace", "2"])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .env("AOF_DATA_DIR", rdir.join("data"))
        .env("AOF_CLAUDE_BIN", bin)
        .env("AOF_CLAUDE_ALLOWED_TOOLS", "Bash")
        .env("ANTHROPIC_BASE_URL", replay)
        .env("ANTHROPIC_API_KEY", "sk-ant-replay")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        // Must never reach the agent: the allow-list drops it.
        .env("AOF_RUNNER_ONLY_SECRET", "do-not-leak")
        .env("RUST_LOG", "info,aof_runner=debug,aof_executors=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn runner")
}

/// `aof run … --follow`: (exit code, stdout, stderr).
async fn aof_run(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["run", "--url", url, "--follow", "--timeout", "120"])
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn find<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_run_shows_real_tool_calls_and_resumes_after_a_runner_restart() {
    let Some(bin) = claude_bin() else { return };
    let replay = ReplayServer::start([
        Rule::when("write the proof").reply([
            Block::text("I'll write the proof file."),
            Block::tool_use(
                "Bash",
                json!({"command": "echo hi > proof.txt && cat proof.txt && env | grep -c do-not-leak || true"}),
            ),
        ]),
        Rule::when("what did you write").reply([Block::text("Earlier I wrote hi into proof.txt.")]),
        Rule::otherwise().reply([Block::text("The proof is written.")]),
    ])
    .await
    .unwrap();
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let rdir = dir.path().join("claude");
    let mut runner = claude_runner(&c.url, &rdir, &bin, &replay.base_url(), 0);

    // The agent, in AOF's folder format: its system prompt reaches the model; its
    // `executor` narrows the runner's Claude profile.
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(agents.join("helper")).unwrap();
    std::fs::write(
        agents.join("helper/agent.json"),
        r#"{"name": "helper", "description": "Writes proofs",
            "executor": {"kind": "claude_code", "max_turns": 5}}"#,
    )
    .unwrap();
    std::fs::write(
        agents.join("helper/agent.system-prompt.md"),
        "You are the proof writer.",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["agents", "apply", agents.to_str().unwrap(), "--url", &c.url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let (code, stdout, stderr) = aof_run(&c.url, &["helper", "please write the proof"]).await;
    let runner_log = || std::fs::read_to_string(rdir.join("runner.0.log")).unwrap_or_default();
    assert_eq!(code, 0, "{stdout}\n{stderr}\n{}", runner_log());
    // Live output: the user prompt, the text, the tool call and its output, the answer.
    for want in [
        "[user] please write the proof",
        "[assistant] I'll write the proof file.",
        "[pre_tool] Bash {\"command\":\"echo hi > proof.txt",
        "[post_tool] Bash → hi",
        "[assistant] The proof is written.",
        "[result] The proof is written.",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    let sid = stderr
        .split_whitespace()
        .find(|w| w.starts_with("ses_"))
        .unwrap_or_else(|| panic!("no session id in {stderr}"))
        .trim_end_matches(':')
        .to_string();

    // The real CLI ran the command in the session's working directory.
    let workdir = rdir.join("ws").join(&sid);
    assert_eq!(
        std::fs::read_to_string(workdir.join("proof.txt")).unwrap(),
        "hi\n"
    );

    let evs = events(&c.url, &sid).await;
    let pre = find(&evs, "pre_tool");
    assert_eq!(pre["tool_name"], "Bash");
    assert!(pre["tool_input"]["command"]
        .as_str()
        .unwrap()
        .starts_with("echo hi > proof.txt"));
    let post = find(&evs, "post_tool");
    // "0": the runner's own variable did not reach the tool's environment.
    assert_eq!(post["tool_output"], "hi\n0");
    assert_eq!(post["tool_input"], pre["tool_input"]);
    // The CLI read our --mcp-config: the orchestrator is among its MCP servers.
    let init = evs
        .iter()
        .find(|e| e["event_type"] == "raw" && e["tool_output"]["subtype"] == "init")
        .expect("the init line, kept raw");
    assert!(
        init["tool_output"]["mcp_servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "agent-orchestrator"),
        "{init}"
    );
    let result = find(&evs, "result");
    assert_eq!(result["result_text"], "The proof is written.");
    assert!(
        result["result_data"]["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(result["result_data"]["total_cost_usd"].as_f64().is_some());
    assert!(result["result_data"]["duration_ms"].as_u64().is_some());
    let (_, session) = call("GET", &format!("{}/sessions/{sid}", c.url), None).await;
    let claude_session = session["session"]["executor_session_id"]
        .as_str()
        .expect("the Claude session id is bound")
        .to_string();
    assert_eq!(session["session"]["executor_profile"], "claude_code");
    let turns = replay.turns();
    assert_eq!(turns.len(), 2);
    assert!(
        turns[0].system_text().contains("You are the proof writer."),
        "{}",
        turns[0].system_text()
    );

    // Restart the runner (kill -9: nothing kept in memory), then follow up.
    runner.start_kill().unwrap();
    let _ = runner.wait().await;
    let _runner = claude_runner(&c.url, &rdir, &bin, &replay.base_url(), 1);
    let (code, stdout, stderr) =
        aof_run(&c.url, &["helper", "what did you write?", "--resume", &sid]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("[result] Earlier I wrote hi into proof.txt."),
        "{stdout}"
    );
    // The CLI sent the earlier conversation, tool result included: it resumed.
    let last = replay.turns().pop().unwrap();
    let convo = last.conversation_text();
    assert!(convo.contains("please write the proof"), "{convo}");
    assert!(convo.contains("what did you write?"), "{convo}");
    assert!(last.tool_results().iter().any(|(_, out, _)| out == "hi\n0"));
    let (_, session) = call("GET", &format!("{}/sessions/{sid}", c.url), None).await;
    assert_eq!(
        session["session"]["executor_session_id"],
        claude_session.as_str()
    );
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// A stop while the real CLI runs a long tool: the session ends `stopped` and the
/// tool's process is gone with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_mid_tool_ends_stopped_and_kills_the_tool() {
    let Some(bin) = claude_bin() else { return };
    let replay = ReplayServer::start([
        Rule::when("wait a long time").reply([Block::tool_use(
            "Bash",
            json!({"command": "echo $$ > tool.pid; sleep 300", "timeout": 600000}),
        )]),
        Rule::otherwise().reply([Block::text("done waiting")]),
    ])
    .await
    .unwrap();
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let rdir = dir.path().join("claude");
    let _runner = claude_runner(&c.url, &rdir, &bin, &replay.base_url(), 0);
    let (_, sid) = start_run(&c.url, "please wait a long time").await;
    let pid_file = rdir.join("ws").join(&sid).join("tool.pid");
    let pid: i32 = wait_for("the tool to start", || async {
        std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok()
    })
    .await;
    assert!(alive(pid));
    let (st, body) = call("POST", &format!("{}/sessions/{sid}/stop", c.url), None).await;
    assert_eq!(st, 200, "{body}");
    wait_session(&c.url, &sid, "stopped").await;
    wait_for("the tool's process to end", || async {
        (!alive(pid)).then_some(())
    })
    .await;
    let evs = events(&c.url, &sid).await;
    assert_eq!(find(&evs, "pre_tool")["tool_name"], "Bash");
    assert!(
        evs.iter().any(|e| e["event_type"] == "run_stopped"),
        "{evs:#?}"
    );
}

/// What the real CLI cannot be made to do on demand, through the whole stack: a stand-in
/// (named by the agent's `executor.program`) writes a malformed line, then stalls.
/// The line is kept as a `raw` event, and the run fails with the watchdog's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stand_in_with_bad_output_and_a_stall_fails_the_session_clearly() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let script = dir.path().join("claude-stand-in");
    std::fs::write(
        &script,
        r#"#!/bin/sh
for want in " -p " " --output-format stream-json "; do
  case " $* " in *"$want"*) ;; *) echo "stand-in: missing $want in: $*" >&2; exit 90;; esac
done
echo '{"type":"system","subtype":"init","session_id":"stand-in-1"}'
echo 'this is not stream-json'
exec sleep 300
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(agents.join("flaky")).unwrap();
    std::fs::write(
        agents.join("flaky/agent.json"),
        json!({"name": "flaky", "description": "misbehaves",
               "executor": {"kind": "claude_code", "program": script, "stall_timeout_seconds": 1}})
        .to_string(),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["agents", "apply", agents.to_str().unwrap(), "--url", &c.url])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rdir = dir.path().join("r");
    // No real CLI needed: the agent names its own program.
    let _runner = claude_runner(
        &c.url,
        &rdir,
        Path::new("/nonexistent/claude"),
        "http://127.0.0.1:9",
        0,
    );
    let (code, stdout, stderr) = aof_run(&c.url, &["flaky", "hello"]).await;
    assert_ne!(code, 0);
    assert!(stdout.contains("[raw]"), "{stdout}");
    assert!(
        stdout.contains("[run_failed] Claude Code stream stalled: no output for 1s"),
        "{stdout}\n{stderr}"
    );
    let sid = stderr
        .split_whitespace()
        .find(|w| w.starts_with("ses_"))
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    assert_eq!(session_status(&c.url, &sid).await, "failed");
    let evs = events(&c.url, &sid).await;
    assert!(
        evs.iter()
            .any(|e| e["tool_output"]["malformed_line"] == "this is not stream-json"),
        "{evs:#?}"
    );
}
