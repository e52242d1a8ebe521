//! Attack 5 through the real path: a blueprint's `claude_code` settings, the runner's
//! policy (`executor_for`), the executor, and the real Claude Code CLI (wrapped to
//! record its argv) against the Messages API replay, which asks for tools the blueprint
//! named but the runner does not allow.

use std::{collections::BTreeMap, path::Path, sync::Arc, time::Duration};

use aof_executors::{
    claude::ClaudeCodeConfig, ExecCx, ExecEvent, Executor, ExecutorConfig, Job, Outcome,
};
use aof_testkit::{claude_bin, Block, ReplayServer, Rule};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::executor_for;

/// What one run through the policy and the real CLI did.
struct Ran {
    argv: Vec<String>,
    /// (tool name, its result text, is_error) as the CLI sent them back.
    results: Vec<(String, String, bool)>,
    offered: Vec<String>,
    bash_ran: bool,
    write_ran: bool,
}

async fn run(bin: &Path, allow_blueprint_executors: bool) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let replay = ReplayServer::start([
        Rule::when("try the tools")
            .reply([
                Block::tool_use("Bash", json!({"command": "echo ran > bash-ran.txt"})),
                Block::tool_use(
                    "Write",
                    json!({"file_path": work.join("write-ran.txt"), "content": "ran"}),
                ),
            ])
            .times(1),
        Rule::otherwise().reply([Block::text("done")]),
    ])
    .await
    .unwrap();
    // The real CLI, with its argv recorded on the way.
    let argv_file = dir.path().join("argv.txt");
    let wrapper = dir.path().join("claude");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nexec '{}' \"$@\"\n",
            argv_file.display(),
            bin.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // The runner's profile: Read and Edit pre-approved, Skill denied.
    let profile = ExecutorConfig::ClaudeCode(ClaudeCodeConfig {
        program: Some(wrapper.to_string_lossy().into_owned()),
        allowed_tools: vec!["Read".into(), "Edit".into()],
        disallowed_tools: vec!["Skill".into()],
        ..Default::default()
    });
    let default: Arc<dyn Executor> = aof_executors::build(&profile).unwrap().into();
    // The blueprint asks for Bash and Write on top, and denies Agent.
    let blueprint = json!({"name": "greedy", "executor": {"kind": "claude_code",
        "allowed_tools": ["Bash", "Write", "Read"], "disallowed_tools": ["Agent"]}});
    let (executor, _) = executor_for(
        allow_blueprint_executors,
        &default,
        &profile,
        Some(&blueprint),
    )
    .unwrap();

    let (tx, mut rx) = mpsc::channel(256);
    let env = [
        ("ANTHROPIC_BASE_URL", replay.base_url()),
        ("ANTHROPIC_API_KEY", "sk-ant-replay".to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
    ];
    let cx = ExecCx {
        workdir: work.clone(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
        cancel: CancellationToken::new(),
        events: tx,
        stop_grace: Duration::from_secs(2),
        state_dir: dir.path().join("state"),
        session_dir: dir.path().join("session"),
        agent: Default::default(),
        approval: Default::default(),
    };
    let job = Job {
        run_id: "run_1".into(),
        session_id: "ses_1".into(),
        agent_name: Some("greedy".into()),
        prompt: "please try the tools".into(),
        parameters: json!({}),
        project_dir: None,
        resume: None,
        blueprint: None,
        system_prompt: None,
        orchestrator_mcp_url: None,
        history: None,
    }
    .with_blueprint(Some(blueprint));
    let done = executor.start(job, cx).await.unwrap().done;
    let outcome = tokio::time::timeout(Duration::from_secs(120), done)
        .await
        .expect("the CLI ends")
        .unwrap()
        .unwrap();
    let mut events = Vec::new();
    while let Some(ev) = rx.recv().await {
        events.push(ev);
    }
    assert!(
        matches!(&outcome, Outcome::Completed { result_text: Some(t), .. } if t == "done"),
        "{outcome:?} {events:#?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, ExecEvent::SessionId { .. })));
    let turns = replay.turns();
    let argv = std::fs::read_to_string(&argv_file).unwrap();
    Ran {
        argv: argv.lines().map(str::to_string).collect(),
        results: turns.last().unwrap().tool_results(),
        offered: turns[0].tool_names(),
        bash_ran: work.join("bash-ran.txt").exists(),
        write_ran: work.join("write-ran.txt").exists(),
    }
}

fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    let at = argv.iter().position(|a| a == name)?;
    argv.get(at + 1).map(String::as_str)
}

#[tokio::test]
async fn a_locked_runner_only_narrows_the_real_clis_tools() {
    let Some(bin) = claude_bin() else { return };

    // allow_blueprint_executors off: allowed = runner ∩ blueprint, denied = runner ∪ blueprint.
    let locked = run(&bin, false).await;
    assert_eq!(
        flag(&locked.argv, "--allowedTools"),
        Some("Read"),
        "{:?}",
        locked.argv
    );
    assert_eq!(
        flag(&locked.argv, "--disallowedTools"),
        Some("Skill,Agent"),
        "{:?}",
        locked.argv
    );
    // The CLI did as told: the tools the blueprint wanted but the runner does not
    // pre-approve were refused, and ran nothing.
    assert!(
        !locked.bash_ran && !locked.write_ran,
        "{:?}",
        locked.results
    );
    assert_eq!(locked.results.len(), 2, "{:?}", locked.results);
    assert!(
        locked.results.iter().all(|(_, _, is_error)| *is_error),
        "{:?}",
        locked.results
    );
    // Denied tools are not even offered to the model.
    for denied in ["Skill", "Agent"] {
        assert!(
            !locked.offered.iter().any(|t| t == denied),
            "{denied} offered: {:?}",
            locked.offered
        );
    }

    // The control, with blueprints allowed to choose: the blueprint's lists stand and
    // the same script runs Bash (so the test above can fail).
    let open = run(&bin, true).await;
    assert_eq!(
        flag(&open.argv, "--allowedTools"),
        Some("Bash,Write,Read"),
        "{:?}",
        open.argv
    );
    assert_eq!(flag(&open.argv, "--disallowedTools"), Some("Agent"));
    assert!(open.bash_ran, "{:?}", open.results);
    assert!(
        open.offered.iter().any(|t| t == "Skill"),
        "{:?}",
        open.offered
    );
    assert!(
        !open.offered.iter().any(|t| t == "Agent"),
        "{:?}",
        open.offered
    );
}
