use serde_json::json;

use super::*;

fn claude(c: &ExecutorConfig) -> &ClaudeCodeConfig {
    match c {
        ExecutorConfig::ClaudeCode(c) => c,
        other => panic!("not claude_code: {other:?}"),
    }
}

#[test]
fn echo_and_claude_code_profiles_map_onto_our_executors() {
    let p = parse(
        "echo-exec",
        r#"{"type": "autonomous", "lifecycle": "persistent",
            "command": "executors/echo-executor/ao-echo-exec", "config": {}}"#,
    )
    .unwrap();
    assert_eq!(
        (p.name.as_str(), p.kind.as_str(), &p.executor),
        ("echo-exec", "autonomous", &ExecutorConfig::Echo)
    );
    assert_eq!(
        Value::Object(announce(&p.kind, &p.executor)),
        json!({"type": "autonomous", "command": "echo", "config": {}})
    );

    let p = parse(
        "careful",
        r#"{"type": "autonomous", "command": "executors/claude-code/ao-claude-code-exec",
            "config": {"permission_mode": "acceptEdits", "setting_sources": [],
                       "model": "sonnet", "allowed_tools": ["Read"]}}"#,
    )
    .unwrap();
    let c = claude(&p.executor);
    assert_eq!(c.model.as_deref(), Some("sonnet"));
    assert_eq!(c.permission_mode.as_deref(), Some("acceptEdits"));
    assert_eq!(c.setting_sources, Some(vec![]));
    assert_eq!(c.allowed_tools, ["Read"]);
    let a = Value::Object(announce(&p.kind, &p.executor));
    assert_eq!(a["type"], "autonomous");
    assert_eq!(
        a["config"],
        json!({"model": "sonnet", "permission_mode": "acceptEdits",
               "allowed_tools": ["Read"], "setting_sources": []})
    );
}

#[test]
fn what_aof_cannot_run_as_asked_is_refused_saying_why() {
    let claude_cmd = "executors/claude-code/ao-claude-code-exec";
    for (text, want) in [
        (
            json!({"type": "procedural", "command": "executors/procedural-executor/ao-procedural-exec",
                   "agents_dir": "scripts/agents", "config": {}}),
            "procedural executor",
        ),
        (
            json!({"type": "autonomous", "command": "bin/my-exec", "config": {}}),
            "AOF_EXECUTOR=command",
        ),
        (
            json!({"type": "interactive", "command": claude_cmd}),
            "unknown executor type \"interactive\"",
        ),
        (
            json!({"type": "autonomous", "command": claude_cmd, "lifecycle": "forever"}),
            "lifecycle \"forever\"",
        ),
        (
            json!({"type": "autonomous", "command": claude_cmd, "config": {"modle": "opus"}}),
            "config: unknown field `modle`",
        ),
        (
            json!({"type": "autonomous", "command": claude_cmd, "config": {"setting_sources": ["team"]}}),
            "\"team\" is not one of user, project, local",
        ),
        (
            json!({"type": "autonomous", "command": claude_cmd, "agents_dir": "a"}),
            "`agents_dir`",
        ),
        (
            json!({"type": "autonomous", "command": "x/ao-echo-exec", "config": {"delay": 1}}),
            "echo executor takes no `config`",
        ),
        (
            json!({"type": "autonomous", "command": claude_cmd, "env": {}}),
            "unknown field `env`",
        ),
        (json!({"type": "autonomous"}), "missing field `command`"),
    ] {
        let e = parse("p", &text.to_string()).unwrap_err();
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn a_name_is_read_from_the_profiles_dir_and_a_path_as_is() {
    let dir = std::env::temp_dir().join(format!("aof-profiles-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let echo = r#"{"type": "autonomous", "command": "executors/echo-executor/ao-echo-exec"}"#;
    std::fs::write(dir.join("quiet.json"), echo).unwrap();
    std::fs::write(dir.join("other.json"), echo).unwrap();
    let by_name = load("quiet", &dir).unwrap();
    assert_eq!(by_name.name, "quiet");
    let path = dir.join("quiet.json");
    let by_path = load(path.to_str().unwrap(), Path::new("/nonexistent")).unwrap();
    assert_eq!(by_path, by_name);
    let e = load("loud", &dir).unwrap_err();
    assert!(
        e.contains("loud.json") && e.contains("other, quiet") && e.contains("AOF_PROFILES_DIR"),
        "{e}"
    );
    std::fs::write(dir.join("broken.json"), "{").unwrap();
    let e = load("broken", &dir).unwrap_err();
    assert!(
        e.starts_with(&format!("profile {}", dir.join("broken.json").display())),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
