//! Agents orchestrating agents, end to end: a parent Claude Code agent (the real CLI, its
//! model replayed) starts two children through the coordinator's MCP server with
//! `async_callback`, the coordinator is killed while they work, and the parent is resumed
//! with both children's results — each exactly once.

use std::{path::Path, process::Stdio};

use aof_testkit::{claude_bin, Block, ReplayServer, Rule};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::*;

const START: &str = "mcp__agent-orchestrator__start_agent_session";

fn claude_runner(url: &str, rdir: &Path, bin: &Path, replay: &str) -> Child {
    std::fs::create_dir_all(rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    Command::new(BIN)
        .args(["runner", "--url", url, "--hostname", "orchestra"])
        .args(["--executor", "claude_code", "--max-concurrent", "4"])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .env("AOF_DATA_DIR", rdir.join("data"))
        .env("AOF_CLAUDE_BIN", bin)
        .env(
            "AOF_CLAUDE_ALLOWED_TOOLS",
            format!("Bash,{START},mcp__agent-orchestrator__get_agent_session_status"),
        )
        .env("ANTHROPIC_BASE_URL", replay)
        .env("ANTHROPIC_API_KEY", "sk-ant-replay")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("RUST_LOG", "info,aof_runner=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn runner")
}

async fn sessions(url: &str) -> Vec<Value> {
    let (_, b) = call("GET", &format!("{url}/sessions"), None).await;
    b["sessions"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_parent_starts_two_children_over_mcp_and_hears_from_both_once() {
    let Some(bin) = claude_bin() else { return };
    let dir = tempdir();
    let go = dir.path().join("children-go");
    let wait_go = |name: &str| {
        json!({"command": format!(
            "while [ ! -f '{}' ]; do sleep 0.1; done; echo {name}-ok",
            go.display()
        )})
    };
    let replay = ReplayServer::start([
        // The parent: two children, neither awaited.
        Rule::when("orchestrate the team").reply([
            Block::text("Starting two helpers."),
            Block::tool_use(
                START,
                json!({"prompt": "child task alpha", "mode": "async_callback"}),
            ),
            Block::tool_use(
                START,
                json!({"prompt": "child task beta", "mode": "async_callback"}),
            ),
        ]),
        Rule::when("\"status\":\"pending\"").reply([Block::text(
            "Both helpers started; waiting for their callbacks.",
        )]),
        // The children: each blocks in a real Bash tool until the test lets it go.
        Rule::when("child task alpha").reply([Block::tool_use("Bash", wait_go("alpha"))]),
        Rule::when("alpha-ok").reply([Block::text("alpha result: 7")]),
        Rule::when("child task beta").reply([Block::tool_use("Bash", wait_go("beta"))]),
        Rule::when("beta-ok").reply([Block::text("beta result: 11")]),
        // The parent, resumed by callbacks.
        Rule::when("<agent-callback").reply([Block::text("Noted the team's results.")]),
    ])
    .await
    .unwrap();

    let mut c = Coordinator::start(dir.path(), fast_env()).await;
    let _runner = claude_runner(&c.url, &dir.path().join("r"), &bin, &replay.base_url());
    let (st, b) = call(
        "POST",
        &format!("{}/runs", c.url),
        Some(json!({"type": "start_session",
                    "parameters": {"prompt": "please orchestrate the team"}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let parent = b["session_id"].as_str().unwrap().to_string();

    // Both children exist under the parent and are working (blocked in their tool).
    let kids: Vec<String> = wait_for("two running children", || async {
        let all = sessions(&c.url).await;
        let kids: Vec<String> = all
            .iter()
            .filter(|s| s["parent_session_id"] == parent.as_str() && s["status"] == "running")
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect();
        (kids.len() == 2).then_some(kids)
    })
    .await;
    wait_session(&c.url, &parent, "finished").await;

    // Crash the coordinator mid-flight; the runner and its agents carry on.
    c.kill9().await;
    c.restart().await;
    std::fs::write(&go, "").unwrap();

    for k in &kids {
        wait_session(&c.url, k, "finished").await;
    }
    // The parent is resumed (once or twice: a callback waits while the parent is busy)
    // until both results have reached its model.
    let delivered = wait_for("both callbacks delivered and answered", || async {
        let runs = runs_of(&c.url, &parent).await;
        let done = runs.iter().skip(1).all(|r| r["status"] == "completed");
        let prompts: String = runs
            .iter()
            .skip(1)
            .filter_map(|r| r["parameters"]["prompt"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (done && prompts.contains("alpha result: 7") && prompts.contains("beta result: 11"))
            .then_some(prompts)
    })
    .await;
    for (k, text) in kids.iter().zip(["alpha result: 7", "beta result: 11"]) {
        let tag = format!("<agent-callback session=\"{k}\" status=\"finished\">\n");
        assert_eq!(delivered.matches(&tag).count(), 1, "{delivered}");
        assert_eq!(delivered.matches(text).count(), 1, "{delivered}");
    }
    wait_session(&c.url, &parent, "finished").await;

    // What the parent's model was sent on resume: the callback text, in a conversation
    // that still holds its first turn (the CLI resumed its Claude session).
    let resumed: Vec<_> = replay
        .turns()
        .into_iter()
        .filter(|r| r.latest_user_text().contains("<agent-callback"))
        .collect();
    assert!(!resumed.is_empty());
    for r in &resumed {
        assert!(
            r.conversation_text()
                .contains("please orchestrate the team"),
            "{}",
            r.conversation_text()
        );
    }
    let heard: String = resumed
        .iter()
        .map(|r| r.latest_user_text())
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(heard.matches("alpha result: 7").count(), 1, "{heard}");
    assert_eq!(heard.matches("beta result: 11").count(), 1, "{heard}");
    // The parent's own events show the MCP calls it made.
    let evs = events(&c.url, &parent).await;
    let calls = evs
        .iter()
        .filter(|e| e["event_type"] == "pre_tool" && e["tool_name"] == START)
        .count();
    assert_eq!(calls, 2, "{evs:#?}");
}
