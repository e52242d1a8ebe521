//! Issue 3's promise: `aof agents apply` of a folder in AOF's format, then `aof run` of
//! one of its agents with the `command` executor streams the command's output.

use std::process::Stdio;

use tokio::process::Command;

use crate::harness::*;

async fn aof(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_aof_folders_then_run_a_command_agent() {
    let dir = tempdir();
    let up = Up::start(dir.path()).await;
    let url = up.url.clone();

    // Agent folders written the way AOF's config/agents are, plus our `executor` key.
    let agents = dir.path().join("my-agents");
    write(
        &agents.join("shouter/agent.json"),
        r#"{
  "name": "shouter",
  "description": "Repeats the prompt loudly",
  "tags": ["demo"],
  "executor": {"kind": "command", "program": "sh",
               "args": ["-c", "read p; echo \"system: $AOF_SYSTEM_PROMPT\"; echo \"$p\" | tr a-z A-Z; echo '{\"event_type\":\"result\",\"result_text\":\"shouted\"}'"]}
}
"#,
    );
    write(&agents.join("shouter/agent.system-prompt.md"), "Be loud.");
    write(
        &agents.join("quiet/agent.json"),
        r#"{"name": "quiet", "description": "Says nothing", "tags": ["demo", "calm"]}"#,
    );

    let (code, out, err) = aof(&["agents", "apply", agents.to_str().unwrap(), "--url", &url]).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let (code, out, _) = aof(&["agents", "list", "--json", "--url", &url]).await;
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["quiet", "shouter"]);

    let (code, out, err) = aof(&[
        "run",
        "shouter",
        "hello there",
        "--follow",
        "--url",
        &url,
        "--timeout",
        "60",
    ])
    .await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("[assistant] system: Be loud."), "{out}");
    assert!(out.contains("[assistant] HELLO THERE"), "{out}");
    assert!(out.contains("[result] shouted"), "{out}");

    // Applying again updates in place (no duplicate error).
    let (code, _, err) = aof(&[
        "agents",
        "apply",
        agents.join("quiet").to_str().unwrap(),
        "--url",
        &url,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
}
