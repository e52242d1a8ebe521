//! The executor with a stand-in CLI (a shell script replaying stream-json and checking
//! its flags) for what the real CLI cannot do on demand, and with the real CLI against
//! the replay server for the rest.

use std::{collections::BTreeMap, path::Path, time::Duration};

use aof_testkit::{claude_bin, Block, ReplayServer, Rule};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;

/// Recorded from the real CLI; replayed by the stand-in.
const TRANSCRIPT: &str = include_str!("transcript.jsonl");

fn job(prompt: &str) -> Job {
    Job {
        run_id: "run_1".into(),
        session_id: "ses_1".into(),
        agent_name: Some("helper".into()),
        prompt: prompt.into(),
        parameters: json!({}),
        project_dir: None,
        resume: None,
        blueprint: None,
        system_prompt: None,
        orchestrator_mcp_url: Some("http://127.0.0.1:1/mcp".into()),
        history: None,
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    work: PathBuf,
    state: PathBuf,
    script: PathBuf,
}

/// A stand-in `claude`: checks the flags every run needs (exit 90 if one is missing),
/// saves its arguments, stdin, environment and MCP config in its working directory,
/// then runs `body`.
fn stand_in(body: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let script = dir.path().join("claude");
    let header = r#"#!/bin/sh
printf '%s\n' "$@" > args.txt
cat > prompt.txt
env > env.txt
for want in -p "--output-format stream-json" --verbose --strict-mcp-config; do
  case " $* " in *" $want "*) ;; *) echo "stand-in: missing flag $want" >&2; exit 90;; esac
done
mcp=$(printf '%s\n' "$@" | sed -n '/^--mcp-config$/{n;p;}')
cp "$mcp" mcp.json || { echo "stand-in: no mcp config" >&2; exit 90; }
"#;
    std::fs::write(&script, format!("{header}{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    Setup {
        state: dir.path().join("state"),
        work,
        script,
        _dir: dir,
    }
}

fn executor(program: &Path, stall: Option<f64>) -> ClaudeExecutor {
    ClaudeExecutor::new(ClaudeCodeConfig {
        program: Some(program.to_string_lossy().into_owned()),
        allowed_tools: vec!["Bash".into()],
        stall_timeout_seconds: stall,
        ..Default::default()
    })
    .unwrap()
}

fn cx(
    s: &Setup,
    cancel: CancellationToken,
    env: &[(&str, &str)],
) -> (ExecCx, mpsc::Receiver<ExecEvent>) {
    let (tx, rx) = mpsc::channel(256);
    (
        ExecCx {
            workdir: s.work.clone(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            cancel,
            events: tx,
            stop_grace: Duration::from_secs(2),
            state_dir: s.state.clone(),
            session_dir: s.state.join("ses_1"),
            agent: Default::default(),
            approval: Default::default(),
        },
        rx,
    )
}

async fn finish(done: Execution, mut rx: mpsc::Receiver<ExecEvent>) -> (Outcome, Vec<ExecEvent>) {
    let outcome = tokio::time::timeout(Duration::from_secs(60), done.done)
        .await
        .expect("the run ends")
        .unwrap()
        .unwrap();
    let mut events = Vec::new();
    while let Some(ev) = rx.recv().await {
        events.push(ev);
    }
    (outcome, events)
}

fn init_line() -> &'static str {
    TRANSCRIPT.lines().next().unwrap()
}

fn failed(o: &Outcome) -> &str {
    match o {
        Outcome::Failed { error } => error,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn replays_a_transcript_with_the_right_flags_and_environment() {
    let s = stand_in(&format!("cat <<'EOF'\n{}EOF", TRANSCRIPT));
    let mut j = job("do the thing").with_blueprint(Some(json!({"system_prompt": "be brief"})));
    j.resume = Some("prev-claude-session".into());
    let (c, rx) = cx(
        &s,
        CancellationToken::new(),
        &[("AOF_SESSION_TOKEN", "tok-1")],
    );
    let ex = executor(&s.script, None).start(j, c).await.unwrap();
    let (outcome, events) = finish(ex, rx).await;
    let Outcome::Completed {
        result_text,
        result_data,
    } = &outcome
    else {
        panic!("{outcome:?}")
    };
    assert_eq!(result_text.as_deref(), Some("The proof is written."));
    let data = result_data.as_ref().unwrap();
    assert_eq!(data["usage"]["output_tokens"], 26);
    assert_eq!(data["total_cost_usd"], 0.099344);
    assert!(data["duration_ms"].as_u64().is_some());
    assert!(matches!(&events[0], ExecEvent::SessionId { id } if id.starts_with("b5fd1d49")));
    assert!(events.iter().any(
        |e| matches!(e, ExecEvent::Structured { event } if event["event_type"] == "pre_tool")
    ));

    let args = std::fs::read_to_string(s.work.join("args.txt")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let at = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    assert_eq!(at("--resume"), "prev-claude-session");
    assert_eq!(at("--append-system-prompt"), "be brief");
    assert_eq!(at("--allowedTools"), "Bash");
    assert_eq!(
        std::fs::read_to_string(s.work.join("prompt.txt")).unwrap(),
        "do the thing"
    );
    let mcp: Value =
        serde_json::from_str(&std::fs::read_to_string(s.work.join("mcp.json")).unwrap()).unwrap();
    assert_eq!(
        mcp["mcpServers"]["agent-orchestrator"]["headers"]["Authorization"],
        "Bearer tok-1"
    );
    // The config holding the token is gone after the run.
    assert!(!Path::new(at("--mcp-config")).exists());
    let env = std::fs::read_to_string(s.work.join("env.txt")).unwrap();
    // This session's own config dir, in its private dir.
    let config_dir = s.state.join("ses_1").join("claude");
    assert!(
        env.contains(&format!("CLAUDE_CONFIG_DIR={}", config_dir.display())),
        "{env}"
    );
    assert!(env.contains("AOF_SESSION_ID=ses_1"));
    assert!(!env.contains("AOF_API_KEY"));
}

#[tokio::test]
async fn stop_mid_stream_interrupts_and_ends_stopped() {
    let s = stand_in(&format!(
        "trap 'echo interrupted >&2; exit 130' INT\necho '{}'\necho '{}'\nwhile :; do sleep 0.1; done",
        init_line(),
        r#"{"type":"assistant","message":{"content":[{"type":"text","text":"working"}]}}"#
    ));
    let cancel = CancellationToken::new();
    let (c, mut rx) = cx(&s, cancel.clone(), &[]);
    let ex = executor(&s.script, None).start(job("p"), c).await.unwrap();
    // Wait for the text, so the stop lands mid-stream.
    let mut seen = Vec::new();
    while let Some(ev) = rx.recv().await {
        let is_text = matches!(&ev, ExecEvent::Message { text, .. } if text == "working");
        seen.push(ev);
        if is_text {
            break;
        }
    }
    cancel.cancel();
    let (outcome, rest) = finish(ex, rx).await;
    assert_eq!(outcome, Outcome::Stopped);
    // The interrupt (SIGINT) reached it first.
    assert!(
        rest.contains(&ExecEvent::Stderr {
            text: "interrupted".into()
        }),
        "{rest:?}"
    );
}

#[tokio::test]
async fn a_cli_ignoring_interrupt_and_term_is_killed() {
    let s = stand_in(&format!(
        "trap 'echo got-int >&2' INT\ntrap 'echo got-term >&2' TERM\necho '{}'\nwhile :; do sleep 0.1; done",
        init_line()
    ));
    let cancel = CancellationToken::new();
    let (mut c, mut rx) = cx(&s, cancel.clone(), &[]);
    c.stop_grace = Duration::from_secs(4);
    let ex = executor(&s.script, None).start(job("p"), c).await.unwrap();
    assert!(matches!(rx.recv().await, Some(ExecEvent::SessionId { .. })));
    cancel.cancel();
    let (outcome, rest) = finish(ex, rx).await;
    assert_eq!(outcome, Outcome::Stopped);
    let stderr: Vec<&str> = rest
        .iter()
        .filter_map(|e| match e {
            // (the shell also reports its `sleep` child "Terminated")
            ExecEvent::Stderr { text } if text.starts_with("got-") => Some(text.as_str()),
            _ => None,
        })
        .collect();
    // Interrupt first, then SIGTERM; SIGKILL ended it (no handler can answer that).
    assert_eq!(stderr, ["got-int", "got-term"]);
}

#[tokio::test]
async fn crash_mid_stream_fails_with_the_reason() {
    let s = stand_in(&format!(
        "echo '{}'\necho 'fatal: out of memory' >&2\nexit 3",
        init_line()
    ));
    let (c, rx) = cx(&s, CancellationToken::new(), &[]);
    let ex = executor(&s.script, None).start(job("p"), c).await.unwrap();
    let (outcome, events) = finish(ex, rx).await;
    assert_eq!(
        failed(&outcome),
        "Claude Code exited with code 3 before its result: fatal: out of memory"
    );
    // stdout and stderr are read side by side: the order between them is not fixed.
    assert!(events
        .iter()
        .any(|e| matches!(e, ExecEvent::SessionId { .. })));
}

#[tokio::test]
async fn an_error_result_fails_with_the_clis_words() {
    // What the real CLI (2.1.330) prints when `--resume` names a conversation it lacks.
    let s = stand_in(
        r#"echo 'No conversation found with session ID: 3f1c8a4e' >&2
echo '{"type":"result","subtype":"error_during_execution","is_error":true,"num_turns":0,"session_id":"3f1c8a4e","total_cost_usd":0,"errors":["No conversation found with session ID: 3f1c8a4e"]}'
exit 1"#,
    );
    let (c, rx) = cx(&s, CancellationToken::new(), &[]);
    let ex = executor(&s.script, None).start(job("p"), c).await.unwrap();
    let (outcome, _) = finish(ex, rx).await;
    assert_eq!(
        failed(&outcome),
        "Claude Code ended with error_during_execution (exit code 1): No conversation found with session ID: 3f1c8a4e"
    );
}

#[tokio::test]
async fn a_cli_lingering_after_its_result_is_stopped_and_the_result_stands() {
    let s = stand_in(&format!("cat <<'EOF'\n{}EOF\nsleep 120", TRANSCRIPT));
    let (c, rx) = cx(&s, CancellationToken::new(), &[]);
    let mut ex = executor(&s.script, None);
    ex.after_result = Duration::from_millis(300);
    let (outcome, _) = finish(ex.start(job("p"), c).await.unwrap(), rx).await;
    assert!(
        matches!(&outcome, Outcome::Completed { result_text: Some(t), .. } if t == "The proof is written."),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_stalled_stream_fails_by_the_watchdog() {
    let s = stand_in(&format!("echo '{}'\nsleep 120", init_line()));
    let (c, rx) = cx(&s, CancellationToken::new(), &[]);
    let ex = executor(&s.script, Some(0.5))
        .start(job("p"), c)
        .await
        .unwrap();
    let (outcome, _) = finish(ex, rx).await;
    assert_eq!(
        failed(&outcome),
        "Claude Code stream stalled: no output for 0.5s (stall_timeout_seconds); the process was stopped"
    );
}

#[tokio::test]
async fn malformed_lines_are_kept_and_fail_the_run() {
    let result = TRANSCRIPT.lines().last().unwrap();
    let s = stand_in(&format!(
        "echo '{}'\necho 'this is not json'\necho '{}'",
        init_line(),
        result
    ));
    let (c, rx) = cx(&s, CancellationToken::new(), &[]);
    let ex = executor(&s.script, None).start(job("p"), c).await.unwrap();
    let (outcome, events) = finish(ex, rx).await;
    assert_eq!(
        failed(&outcome),
        "Claude Code wrote 1 malformed stream-json line(s) (kept as raw events); first: this is not json"
    );
    assert!(events.contains(&ExecEvent::Raw {
        data: json!({"malformed_line": "this is not json"})
    }));
}

#[tokio::test]
async fn a_missing_cli_is_a_clear_error() {
    let s = stand_in("");
    let (c, _rx) = cx(&s, CancellationToken::new(), &[]);
    let err = executor(Path::new("/nonexistent/claude"), None)
        .start(job("p"), c)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("cannot start Claude Code '/nonexistent/claude'"),
        "{err}"
    );
}

/// The real CLI against the replay: a Bash call runs in the workdir; a second run
/// resumes the Claude session and the replay sees the earlier conversation.
#[tokio::test]
async fn the_real_cli_runs_tools_and_resumes() {
    let Some(bin) = claude_bin() else { return };
    let server = ReplayServer::start([
        Rule::when("write the proof").reply([Block::tool_use(
            "Bash",
            json!({"command": "echo hi > proof.txt && cat proof.txt"}),
        )]),
        Rule::when("what did you write").reply([Block::text("I wrote hi to proof.txt.")]),
        Rule::otherwise().reply([Block::text("Done: proof written.")]),
    ])
    .await
    .unwrap();
    let s = stand_in("");
    let env = [
        ("ANTHROPIC_BASE_URL", server.base_url()),
        ("ANTHROPIC_API_KEY", "sk-ant-replay".to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ex = executor(&bin, None);

    let (c, rx) = cx(&s, CancellationToken::new(), &env);
    let j = job("please write the proof")
        .with_blueprint(Some(json!({"system_prompt": "You are the proof writer."})));
    let (outcome, events) = finish(ex.start(j, c).await.unwrap(), rx).await;
    let Outcome::Completed {
        result_text,
        result_data,
    } = &outcome
    else {
        panic!("{outcome:?} {events:#?}")
    };
    assert_eq!(result_text.as_deref(), Some("Done: proof written."));
    assert!(
        result_data.as_ref().unwrap()["usage"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        std::fs::read_to_string(s.work.join("proof.txt")).unwrap(),
        "hi\n"
    );
    let post = events
        .iter()
        .find_map(|e| match e {
            ExecEvent::Structured { event } if event["event_type"] == "post_tool" => Some(event),
            _ => None,
        })
        .expect("a post_tool event");
    assert_eq!(
        post["tool_input"]["command"],
        "echo hi > proof.txt && cat proof.txt"
    );
    assert_eq!(post["tool_output"], "hi");
    let claude_session = events
        .iter()
        .find_map(|e| match e {
            ExecEvent::SessionId { id } => Some(id.clone()),
            _ => None,
        })
        .unwrap();
    let turns = server.turns();
    assert!(turns[0].system_text().contains("You are the proof writer."));

    let (c, rx) = cx(&s, CancellationToken::new(), &env);
    let mut j = job("what did you write?");
    j.resume = Some(claude_session.clone());
    let (outcome, events) = finish(ex.start(j, c).await.unwrap(), rx).await;
    assert!(
        matches!(&outcome, Outcome::Completed { result_text: Some(t), .. } if t == "I wrote hi to proof.txt."),
        "{outcome:?} {events:#?}"
    );
    let last = server.turns().pop().unwrap();
    let convo = last.conversation_text();
    assert!(convo.contains("please write the proof"), "{convo}");
    assert!(convo.contains("what did you write?"));
    assert!(last.tool_results().iter().any(|(_, out, _)| out == "hi"));
}

mod sessions;

#[test]
fn setting_sources_are_checked() {
    let with = |s: &[&str]| ClaudeCodeConfig {
        setting_sources: Some(s.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    assert!(ClaudeExecutor::new(with(&[])).is_ok());
    assert!(ClaudeExecutor::new(with(&["user", "project", "local"])).is_ok());
    let err = ClaudeExecutor::new(with(&["project", "global"]))
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("\"global\" is not one of user, project, local"),
        "{err}"
    );
}
