use super::*;
use serde_json::json;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

fn sh(script: &str) -> CommandExecutor {
    CommandExecutor {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
    }
}

fn cx(dir: &std::path::Path, cancel: CancellationToken) -> (ExecCx, mpsc::Receiver<ExecEvent>) {
    let (tx, rx) = mpsc::channel(64);
    (
        ExecCx {
            workdir: dir.to_path_buf(),
            env: Default::default(),
            cancel,
            events: tx,
            stop_grace: Duration::from_millis(300),
            state_dir: dir.join("state"),
            session_dir: dir.join("session"),
            agent: Default::default(),
            approval: Default::default(),
        },
        rx,
    )
}

/// Run `ex` to the end; its outcome and every event it sent.
async fn run_to_end(ex: &CommandExecutor, job: Job) -> (Outcome, Vec<ExecEvent>) {
    let dir = tempfile::tempdir().unwrap();
    let (c, mut rx) = cx(dir.path(), CancellationToken::new());
    let execution = ex.start(job, c).await.unwrap();
    let outcome = execution.done.await.unwrap().unwrap();
    let mut events = Vec::new();
    while let Some(ev) = rx.recv().await {
        events.push(ev);
    }
    (outcome, events)
}

fn assistant(text: &str) -> ExecEvent {
    ExecEvent::Message {
        role: "assistant".into(),
        text: text.into(),
    }
}

/// stdout and stderr are read side by side, so only each stream's own order is fixed.
fn without_stderr(events: &[ExecEvent]) -> Vec<ExecEvent> {
    events
        .iter()
        .filter(|e| !matches!(e, ExecEvent::Stderr { .. }))
        .cloned()
        .collect()
}

fn stderr_lines(events: &[ExecEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ExecEvent::Stderr { text } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn stdout_lines_become_messages_and_exit_codes_map() {
    let (out, events) = run_to_end(
        &sh("read p; echo \"got $p\"; echo second; pwd >&2"),
        job("hello"),
    )
    .await;
    assert_eq!(
        out,
        Outcome::Completed {
            result_text: Some("got hello\nsecond".into()),
            result_data: None
        }
    );
    assert_eq!(
        without_stderr(&events),
        [assistant("got hello"), assistant("second")]
    );

    let (out, _) = run_to_end(&sh("echo broken >&2; exit 3"), job("")).await;
    assert_eq!(
        out,
        Outcome::Failed {
            error: "Process exited with code 3: broken".into()
        }
    );

    let dir = tempfile::tempdir().unwrap();
    let (c, _rx) = cx(dir.path(), CancellationToken::new());
    let missing = CommandExecutor {
        program: "/nonexistent/aof-x".into(),
        args: vec![],
    };
    assert!(matches!(
        missing.start(job(""), c).await,
        Err(ExecError::Unavailable(_))
    ));
}

#[tokio::test]
async fn json_lines_become_structured_events() {
    let script = r#"
echo plain
echo '{"event_type": "pre_tool", "tool_name": "ls", "tool_input": {"path": "."}}'
echo '{"no_event_type": true}'
echo '{"event_type": "post_tool", "tool_output": [1, 2]'
echo done
"#;
    let (out, events) = run_to_end(&sh(script), job("")).await;
    assert_eq!(
        events,
        [
            assistant("plain"),
            ExecEvent::Structured {
                event: json!({"event_type": "pre_tool", "tool_name": "ls", "tool_input": {"path": "."}})
            },
            assistant(r#"{"no_event_type": true}"#),
            // Not valid JSON: just text.
            assistant(r#"{"event_type": "post_tool", "tool_output": [1, 2]"#),
            assistant("done"),
        ]
    );
    // Structured lines are events, not part of the collected text.
    assert_eq!(
        out,
        Outcome::Completed {
            result_text: Some("plain\n{\"no_event_type\": true}\n{\"event_type\": \"post_tool\", \"tool_output\": [1, 2]\ndone".into()),
            result_data: None
        }
    );
}

#[tokio::test]
async fn a_result_line_sets_the_result() {
    let script = r#"
echo thinking
echo '{"event_type": "result", "result_text": "first"}'
echo '{"event_type": "result", "result_text": "final", "result_data": {"score": 3}}'
echo more text
"#;
    let (out, events) = run_to_end(&sh(script), job("")).await;
    assert_eq!(
        out,
        Outcome::Completed {
            result_text: Some("final".into()),
            result_data: Some(json!({"score": 3}))
        }
    );
    // The result is not an event of its own: the runner posts it with the outcome.
    assert_eq!(events, [assistant("thinking"), assistant("more text")]);

    // A failing exit wins over a result line.
    let (out, _) = run_to_end(
        &sh(r#"echo '{"event_type": "result", "result_text": "x"}'; exit 1"#),
        job(""),
    )
    .await;
    assert_eq!(
        out,
        Outcome::Failed {
            error: "Process exited with code 1".into()
        }
    );
}

#[tokio::test]
async fn stderr_lines_become_events_and_the_tail_explains_failure() {
    let (out, events) = run_to_end(
        &sh("echo warn1 >&2; echo out; echo warn2 >&2; exit 2"),
        job(""),
    )
    .await;
    assert_eq!(stderr_lines(&events), ["warn1", "warn2"]);
    assert_eq!(without_stderr(&events), [assistant("out")]);
    assert_eq!(
        out,
        Outcome::Failed {
            error: "Process exited with code 2: warn1\nwarn2".into()
        }
    );
}

#[tokio::test]
async fn job_env_reaches_the_program() {
    let mut j = job("p").with_blueprint(Some(json!({
        "name": "writer",
        "system_prompt": "be brief",
        "executor": {"kind": "command", "program": "sh"},
    })));
    j.parameters = json!({"prompt": "p", "n": 1});
    let script = r#"echo "$AOF_AGENT_NAME|$AOF_SYSTEM_PROMPT|$AOF_PARAMETERS|$AOF_RUN_ID"; echo "$AOF_BLUEPRINT""#;
    let (_, events) = run_to_end(&sh(script), j).await;
    let ExecEvent::Message { text, .. } = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(text, r#"writer|be brief|{"n":1,"prompt":"p"}|run_1"#);
    // The blueprint is one JSON line, which makes it a plain line here (no event_type).
    let ExecEvent::Message { text, .. } = &events[1] else {
        panic!("{events:?}")
    };
    let bp: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(bp["system_prompt"], "be brief");

    // Without a blueprint (or agent name) those variables are unset.
    let (_, events) = run_to_end(
        &sh(r#"echo "${AOF_SYSTEM_PROMPT-unset} ${AOF_BLUEPRINT-unset} ${AOF_AGENT_NAME-unset}""#),
        job(""),
    )
    .await;
    assert_eq!(events, [assistant("unset unset unset")]);
}

#[tokio::test]
async fn stop_terms_the_whole_group_then_kills_it() {
    let dir = tempfile::tempdir().unwrap();
    // A well-behaved program: exits on SIGTERM; its background child must die too.
    let cancel = CancellationToken::new();
    let (c, mut rx) = cx(dir.path(), cancel.clone());
    let ex = sh("sleep 300 & echo $!; trap 'exit 0' TERM; wait")
        .start(job(""), c)
        .await
        .unwrap();
    let Some(ExecEvent::Message { text, .. }) = rx.recv().await else {
        panic!("no pid line")
    };
    let grandchild: i32 = text.trim().parse().unwrap();
    assert!(alive(grandchild));
    cancel.cancel();
    assert_eq!(ex.done.await.unwrap().unwrap(), Outcome::Stopped);
    // SIGTERM went to the group: the background sleep is gone too (reaped by init).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(grandchild) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive(grandchild), "grandchild survived the stop");

    // A program that ignores SIGTERM is killed after the grace period.
    let cancel = CancellationToken::new();
    let (c, mut rx) = cx(dir.path(), cancel.clone());
    let ex = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done")
        .start(job(""), c)
        .await
        .unwrap();
    assert!(rx.recv().await.is_some());
    cancel.cancel();
    let out = tokio::time::timeout(Duration::from_secs(20), ex.done)
        .await
        .expect("killed in time");
    assert_eq!(out.unwrap().unwrap(), Outcome::Stopped);
}
