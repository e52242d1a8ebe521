//! The replay against the real Claude Code CLI (`AOF_CLAUDE_BIN`, installed by
//! `scripts/ci/claude.sh`): the CLI streams from it, runs the scripted Bash call for
//! real and finishes with the scripted answer.

use std::process::Stdio;

use aof_testkit::{claude_bin, Block, ReplayServer, Rule};
use serde_json::{json, Value};

#[tokio::test]
async fn the_real_cli_runs_a_replayed_tool_call() {
    let Some(bin) = claude_bin() else { return };
    let server = ReplayServer::start([
        Rule::when("make the proof").reply([
            Block::text("Writing it."),
            Block::tool_use(
                "Bash",
                json!({"command": "echo hi > proof.txt", "description": "write proof"}),
            ),
        ]),
        Rule::when("").reply([Block::text("The proof is written.")]),
    ])
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = tokio::process::Command::new(bin)
        .args([
            "-p",
            "please make the proof",
            "--output-format",
            "stream-json",
            "--verbose",
        ])
        .args(["--allowedTools", "Bash"])
        .current_dir(&work)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("CLAUDE_CONFIG_DIR", dir.path().join("state"))
        .env("ANTHROPIC_BASE_URL", server.base_url())
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(work.join("proof.txt")).unwrap(),
        "hi\n"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let result = lines.last().unwrap();
    assert_eq!(result["type"], "result");
    assert_eq!(result["result"], "The proof is written.");
    let turns = server.turns();
    assert_eq!(turns.len(), 2, "{turns:#?}");
    assert_eq!(turns[1].tool_results().len(), 1);
}
