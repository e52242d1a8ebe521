//! Issue #25 end to end with the real Claude Code CLI (`AOF_CLAUDE_BIN`) against the
//! Messages API replay, under a real coordinator and runner (in process, loopback
//! HTTP). The replayed model asks for `Bash` writing a file; the CLI's permission
//! prompt goes to the coordinator's `approval_prompt` MCP tool
//! (`--permission-prompt-tool`), which waits until the test, acting as the operator,
//! decides through the API.
//!
//! Without the CLI the tests are skipped with a note, except under `CI=true`.

#[path = "support/stack.rs"]
mod stack;

use std::path::{Path, PathBuf};

use aof_executors::{approval::ApprovalPolicy, claude::ClaudeCodeConfig, ExecutorConfig};
use aof_testkit::{claude_bin, Block, ReplayServer, Rule};
use serde_json::{json, Value};
use stack::{of_type, Stack};

const PROMPT: &str = "please create the file";
const COMMAND: &str = "echo approved > approved.txt";

/// The replay, and a stack whose runner runs the real CLI pointed at it (through a
/// wrapper that sets the replay's URL: the runner passes agents only allow-listed
/// variables of its own environment).
async fn setup(bin: &Path, floor: ApprovalPolicy, agent: Value) -> (Stack, ReplayServer) {
    let replay = ReplayServer::start([
        Rule::when("create the file")
            .reply([Block::tool_use(
                "Bash",
                json!({"command": COMMAND, "description": "Write the file"}),
            )])
            .times(1),
        Rule::otherwise().reply([Block::text("done")]),
    ])
    .await
    .unwrap();
    let wrappers = tempfile::tempdir().unwrap().keep();
    let wrapper = wrappers.join("claude");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexport ANTHROPIC_BASE_URL='{}' ANTHROPIC_API_KEY=sk-ant-replay \
             CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\nexec '{}' \"$@\"\n",
            replay.base_url(),
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let executor = ExecutorConfig::ClaudeCode(ClaudeCodeConfig {
        program: Some(wrapper.to_string_lossy().into_owned()),
        ..Default::default()
    });
    let s = Stack::start(executor, floor).await;
    s.agent(agent).await;
    (s, replay)
}

fn shell_agent(approval: Option<Value>) -> Value {
    let mut a = json!({"name": "shell", "description": "Runs shell commands"});
    if let Some(p) = approval {
        a["approval"] = p;
    }
    a
}

/// Where the agent's Bash would have written its file, if it ran.
fn written(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.join("workspaces")];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().is_some_and(|n| n == "approved.txt") {
                out.push(p);
            }
        }
    }
    out
}

/// A run that asks for Bash; the pending approval it made, checked.
async fn asked(s: &Stack) -> (String, Value) {
    let sid = s.run("shell", PROMPT).await;
    let a = s.pending(&sid).await;
    assert_eq!(a["tool_name"], "Bash", "{a}");
    assert_eq!(a["tool_input"]["command"], COMMAND, "{a}");
    assert_eq!(s.status(&sid).await, "waiting_approval");
    assert!(written(s.dir.path()).is_empty(), "ran before approval");
    (sid, a)
}

async fn approved_runs(s: &Stack) {
    let (sid, a) = asked(s).await;
    let d = s
        .decide(
            a["approval_id"].as_str().unwrap(),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(d["status"], "approved", "{d}");
    let session = s.ended(&sid).await;
    assert_eq!(session["status"], "finished", "{session}");
    let files = written(s.dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), "approved\n");
    let events = s.events(&sid).await;
    let post = of_type(&events, "post_tool");
    assert!(
        post.iter().any(|p| p["tool_name"] == "Bash"),
        "no Bash post_tool: {events:#?}"
    );
    assert_eq!(of_type(&events, "approval_resolved").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_bash_call_runs() {
    let Some(bin) = claude_bin() else { return };
    let agent = shell_agent(Some(json!({"tools": ["Bash"], "timeout_seconds": 300})));
    let (s, _replay) = setup(&bin, ApprovalPolicy::default(), agent).await;
    approved_runs(&s).await;
}

/// The runner's floor reaches the coordinator (the MCP header): a blueprint without
/// any `approval` still waits for Bash on this runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_floor_holds_without_a_blueprint_policy() {
    let Some(bin) = claude_bin() else { return };
    let floor = ApprovalPolicy::parse(&json!({"tools": ["Bash"]})).unwrap();
    let (s, _replay) = setup(&bin, floor, shell_agent(None)).await;
    approved_runs(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_bash_call_is_not_run_and_the_model_reads_why() {
    let Some(bin) = claude_bin() else { return };
    let agent = shell_agent(Some(json!({"tools": ["Bash"], "timeout_seconds": 300})));
    let (s, replay) = setup(&bin, ApprovalPolicy::default(), agent).await;
    let (sid, a) = asked(&s).await;
    let d = s
        .decide(
            a["approval_id"].as_str().unwrap(),
            json!({"decision": "deny", "message": "not on this machine"}),
        )
        .await;
    assert_eq!(d["status"], "denied", "{d}");
    let session = s.ended(&sid).await;
    assert_eq!(session["status"], "finished", "{session}");
    assert!(written(s.dir.path()).is_empty(), "the denied command ran");
    // The model's next request carries the denial as the Bash call's result.
    let last = replay.turns().last().cloned().unwrap();
    let results = last.tool_results();
    assert!(
        results
            .iter()
            .any(|(_, text, _)| text.contains("not on this machine")),
        "{results:?}"
    );
}
