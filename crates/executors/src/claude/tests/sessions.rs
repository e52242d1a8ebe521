//! Per-session Claude state: each session's own config dir and MCP config, the real
//! CLI kept to its session's conversations, and running as the agent user.

use super::*;

/// Each session has its own private CLI config dir (0700) holding the run's MCP config
/// (0600, with the session token), removed after the run.
#[tokio::test]
async fn each_session_gets_a_private_config_dir_and_mcp_config() {
    let s = stand_in(&format!(
        "stat -c '%a' \"$CLAUDE_CONFIG_DIR\" > config-mode.txt\n\
         stat -c '%a' \"$mcp\" > mcp-mode.txt\n\
         dirname \"$mcp\" > mcp-dir.txt\n\
         cat <<'EOF'\n{}EOF",
        TRANSCRIPT
    ));
    let read = |f: &str| {
        std::fs::read_to_string(s.work.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    let mut dirs = Vec::new();
    for session in ["ses_a", "ses_b"] {
        let (mut c, rx) = cx(
            &s,
            CancellationToken::new(),
            &[("AOF_SESSION_TOKEN", session)],
        );
        c.session_dir = s.state.join(session);
        let mut j = job("p");
        j.session_id = session.into();
        let (outcome, _) = finish(executor(&s.script, None).start(j, c).await.unwrap(), rx).await;
        assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
        let env = read("env.txt");
        let config_dir = s.state.join(session).join("claude");
        assert!(
            env.contains(&format!("CLAUDE_CONFIG_DIR={}\n", config_dir.display())),
            "{env}"
        );
        assert_eq!(read("config-mode.txt"), "700");
        assert_eq!(read("mcp-mode.txt"), "600");
        assert_eq!(
            read("mcp-dir.txt"),
            s.state.join(session).display().to_string()
        );
        let mcp: Value = serde_json::from_str(&read("mcp.json")).unwrap();
        assert_eq!(
            mcp["mcpServers"]["agent-orchestrator"]["headers"]["Authorization"],
            format!("Bearer {session}")
        );
        // The token's file is gone with the run.
        let left: Vec<_> = std::fs::read_dir(s.state.join(session))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["claude"]);
        dirs.push(config_dir);
    }
    assert_ne!(dirs[0], dirs[1]);
}

/// The real CLI: a conversation lives in its session's config dir only, so another
/// session cannot resume (read) it; its own session can (the control).
#[tokio::test]
async fn a_conversation_cannot_be_resumed_from_another_session() {
    let Some(bin) = claude_bin() else { return };
    let server = ReplayServer::start([Rule::otherwise().reply([Block::text("secret plans")])])
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
    let run = |session: &'static str, resume: Option<String>| {
        let (mut c, rx) = cx(&s, CancellationToken::new(), &env);
        c.session_dir = s.state.join(session);
        let mut j = job("tell me the plans");
        j.session_id = session.into();
        j.resume = resume;
        (ex.start(j, c), rx)
    };
    let (start, rx) = run("ses_a", None);
    let (outcome, events) = finish(start.await.unwrap(), rx).await;
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
    let claude_session = events
        .iter()
        .find_map(|e| match e {
            ExecEvent::SessionId { id } => Some(id.clone()),
            _ => None,
        })
        .unwrap();
    // Same working directory, another session: the conversation is not there.
    let (start, rx) = run("ses_b", Some(claude_session.clone()));
    let (outcome, _) = finish(start.await.unwrap(), rx).await;
    assert!(
        failed(&outcome).contains("No conversation found"),
        "{outcome:?}"
    );
    // Its own session resumes it.
    let (start, rx) = run("ses_a", Some(claude_session));
    let (outcome, _) = finish(start.await.unwrap(), rx).await;
    assert!(matches!(outcome, Outcome::Completed { .. }), "{outcome:?}");
}

/// The real CLI as `runner.agent_user`: it runs, writes its own config dir and reads
/// the MCP config the runner made for it, and its tools run as that user.
#[tokio::test]
async fn the_real_cli_runs_as_the_agent_user() {
    let Some(bin) = claude_bin() else { return };
    let Some((uid, _)) = aof_testkit::agent_test_user() else {
        return;
    };
    let user = crate::AgentUser::resolve(aof_testkit::AGENT_TEST_USER).unwrap();
    let server = ReplayServer::start([
        Rule::when("who are you").reply([Block::tool_use(
            "Bash",
            json!({"command": "id -u > whoami.txt"}),
        )]),
        Rule::otherwise().reply([Block::text("checked")]),
    ])
    .await
    .unwrap();
    let s = stand_in("");
    // Workspaces and session dirs sit under a root the agent may enter, not list.
    let root = s.work.parent().unwrap();
    std::fs::create_dir(&s.state).unwrap();
    for dir in [root, &s.state] {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    }
    crate::isolation::private_dir(&s.work, Some(&user)).unwrap();
    crate::isolation::private_dir(&s.state.join("ses_1"), Some(&user)).unwrap();
    let env = [
        ("ANTHROPIC_BASE_URL", server.base_url()),
        ("ANTHROPIC_API_KEY", "sk-ant-replay".to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (mut c, rx) = cx(&s, CancellationToken::new(), &env);
    c.agent.user = Some(user);
    let (outcome, events) = finish(
        executor(&bin, None)
            .start(job("who are you?"), c)
            .await
            .unwrap(),
        rx,
    )
    .await;
    assert!(
        matches!(&outcome, Outcome::Completed { result_text: Some(t), .. } if t == "checked"),
        "{outcome:?} {events:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(s.work.join("whoami.txt"))
            .unwrap()
            .trim(),
        uid.to_string()
    );
    use std::os::unix::fs::MetadataExt;
    let config = s.state.join("ses_1").join("claude");
    assert_eq!(std::fs::metadata(&config).unwrap().uid(), uid);
    assert!(
        std::fs::read_dir(&config).unwrap().next().is_some(),
        "the CLI wrote nothing in its config dir"
    );
}

/// Before per-session dirs, every session's conversation was in `<state>/claude/config`:
/// a session resumed after the upgrade gets its own conversation (and only that) copied
/// into its new dir once.
#[test]
fn a_resumed_session_adopts_its_conversation_from_the_shared_dir() {
    let dir = tempfile::tempdir().unwrap();
    let legacy = dir.path().join("state/claude/config");
    let project = legacy.join("projects/-work-ses_1");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("mine.jsonl"), "my turns\n").unwrap();
    std::fs::write(project.join("other.jsonl"), "another session's turns\n").unwrap();
    let session = dir.path().join("ses_1");
    let mut j = job("p");
    j.resume = Some("mine".into());
    let files = SessionFiles::prepare(&session, &legacy, &j, b"{}", None).unwrap();
    let adopted = files.config_dir.join("projects/-work-ses_1");
    assert_eq!(
        std::fs::read_to_string(adopted.join("mine.jsonl")).unwrap(),
        "my turns\n"
    );
    assert!(!adopted.join("other.jsonl").exists());
    // Once: a dir that exists is the session's own and is left alone.
    std::fs::remove_file(adopted.join("mine.jsonl")).unwrap();
    SessionFiles::prepare(&session, &legacy, &j, b"{}", None).unwrap();
    assert!(!adopted.join("mine.jsonl").exists());
    // A hostile id names no path.
    let mut j = job("p");
    j.resume = Some("../../etc/passwd".into());
    let other = dir.path().join("ses_2");
    let files = SessionFiles::prepare(&other, &legacy, &j, b"{}", None).unwrap();
    assert!(!files.config_dir.join("projects").exists());
}
