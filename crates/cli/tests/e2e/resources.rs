//! The resource commands (`aof sessions|runs|runners|agents …`, `aof run --resume`,
//! `aof config`) against a real coordinator and runner: tables, `--json`, stop, delete,
//! `events --follow`, and exit codes with one-line messages for bad input.

use std::{path::Path, process::Stdio};

use serde_json::{json, Value};
use tokio::process::Command;

use crate::harness::*;

/// Runs `aof ARGS` with extra env; returns (exit code, stdout, stderr).
async fn aof(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("AOF_CONFIG")
        .env_remove("AOF_URL")
        .env_remove("AGENT_ORCHESTRATOR_API_URL")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("aof {args:?} did not finish"))
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `aof ARGS --url URL`, expecting exit 0; returns stdout.
async fn ok(url: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--url", url]);
    let (code, out, err) = aof(&all, &[]).await;
    assert_eq!(code, 0, "aof {all:?}\nstdout: {out}\nstderr: {err}");
    out
}

async fn ok_json(url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(url, &all).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("aof {all:?}: not JSON ({e}): {out}"))
}

/// Exit `code` with exactly one stderr line containing every `needle`.
fn one_line(code: i32, want: i32, err: &str, needles: &[&str]) {
    assert_eq!(code, want, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "want one line, got:\n{err}");
    for n in needles {
        assert!(err.contains(n), "missing {n:?} in {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_runs_runners_commands_end_to_end() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let _runner = Runner::start(&url, dir.path(), "r1", &[]).await;

    // A short session, followed to the end.
    let out = ok(
        &url,
        &["run", "t", "first words", "--follow", "--timeout", "60"],
    )
    .await;
    assert!(out.contains("[assistant] first words"), "{out}");
    let sessions = ok_json(&url, &["sessions", "list"]).await;
    let sid = sessions["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Resume it and follow only the new run: exit 0, the old prompt is not replayed.
    let out = ok(
        &url,
        &[
            "run",
            "t",
            "more words",
            "--resume",
            &sid,
            "--follow",
            "--timeout",
            "60",
        ],
    )
    .await;
    assert!(out.contains("[assistant] more words"), "{out}");
    assert!(!out.contains("first words"), "{out}");
    // Non-follow events print the whole history; --follow on an ended session returns.
    let out = ok(&url, &["sessions", "events", &sid]).await;
    assert!(
        out.contains("[user] first words") && out.contains("[assistant] more words"),
        "{out}"
    );
    let out = ok(&url, &["sessions", "events", &sid, "--follow"]).await;
    assert!(out.contains("[assistant] more words"), "{out}");
    let events = ok_json(&url, &["sessions", "events", &sid]).await;
    assert!(events["events"].as_array().unwrap().len() >= 6, "{events}");

    // Tables for people, JSON for scripts.
    let table = ok(&url, &["sessions", "list"]).await;
    assert!(table.starts_with("SESSION"), "{table}");
    assert!(
        table.contains(&sid) && table.contains("finished"),
        "{table}"
    );
    let shown = ok_json(&url, &["sessions", "show", &sid]).await;
    assert_eq!(shown["session"]["session_id"], json!(sid));
    let shown = ok(&url, &["sessions", "show", &sid]).await;
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("status") && l.ends_with("finished")),
        "{shown}"
    );
    let runs = ok_json(&url, &["runs", "list"]).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
    let run_id = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
    let run = ok_json(&url, &["runs", "show", &run_id]).await;
    assert_eq!(run["run_id"], json!(run_id));
    assert!(ok(&url, &["runs", "list", "--status", "completed"])
        .await
        .contains(&run_id));
    let runners = ok_json(&url, &["runners", "list"]).await;
    let runner_id = runners["runners"][0]["runner_id"]
        .as_str()
        .unwrap()
        .to_string();
    let table = ok(&url, &["runners", "list"]).await;
    assert!(
        table.starts_with("RUNNER") && table.contains(&runner_id),
        "{table}"
    );

    // A long session: `events --follow` streams it live; `sessions stop` ends it and
    // the follower exits 1 (stopped, not finished).
    let long = echo_prompt(json!({"echo_events": 2000, "echo_delay_ms": 20}), "tick");
    let long_sid = ok(&url, &["run", "t", &long]).await.trim().to_string();
    let follow_out = dir.path().join("follow.out");
    let mut follower = Command::new(BIN)
        .args(["sessions", "events", &long_sid, "--follow", "--url", &url])
        .stdout(std::fs::File::create(&follow_out).unwrap())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("the follower to print live events", || async {
        let text = std::fs::read_to_string(&follow_out).unwrap_or_default();
        (text.matches("[assistant] tick").count() >= 3).then_some(())
    })
    .await;
    let out = ok(&url, &["sessions", "stop", &long_sid]).await;
    assert!(out.is_empty(), "stop prints its message to stderr: {out}");
    let status = tokio::time::timeout(PATIENCE, follower.wait())
        .await
        .expect("follower ends after the stop")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    wait_session(&url, &long_sid, "stopped").await;

    // Delete, then the session is gone: exit 1 and one line with the API's code.
    ok(&url, &["sessions", "delete", &sid]).await;
    let (code, out, err) = aof(&["sessions", "show", &sid, "--url", &url], &[]).await;
    assert!(out.is_empty(), "{out}");
    one_line(code, 1, &err, &["aof: rejected (404", "session_not_found"]);
    let (code, _, err) = aof(&["runs", "stop", "run_nope", "--url", &url], &[]).await;
    one_line(code, 1, &err, &["404", "run_not_found"]);
    let (code, _, err) = aof(
        &["run", "t", "x", "--resume", "ses_missing", "--url", &url],
        &[],
    )
    .await;
    one_line(code, 1, &err, &["404", "ses_missing"]);

    let (code, out, err) = aof(&["runners", "remove", &runner_id, "--url", &url], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty() && err.contains(&runner_id), "{out}\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_connection_and_config_errors_exit_2() {
    let dir = tempdir();
    // Usage: clap's message, exit 2.
    let (code, _, err) = aof(&["sessions", "show"], &[]).await;
    assert_eq!(code, 2, "{err}");
    // Nothing listening: a connection error.
    let (code, _, err) = aof(&["sessions", "list", "--url", "http://127.0.0.1:9"], &[]).await;
    one_line(
        code,
        2,
        &err,
        &["cannot reach the coordinator at http://127.0.0.1:9"],
    );
    let (code, _, err) = aof(&["runs", "list"], &[("AOF_URL", "ftp://x")]).await;
    one_line(code, 2, &err, &["AOF_URL=ftp://x", "http://"]);
    // Config: a missing file, an unknown key, a bad value, auth off beyond loopback.
    let (code, _, err) = aof(
        &["config", "show"],
        &[("AOF_CONFIG", "/nonexistent/aof.toml")],
    )
    .await;
    one_line(
        code,
        2,
        &err,
        &["cannot read config file /nonexistent/aof.toml"],
    );
    let file = dir.path().join("aof.toml");
    std::fs::write(&file, "[coordinator]\nlistn = \"127.0.0.1:0\"\n").unwrap();
    let path = file.to_str().unwrap();
    let (code, _, err) = aof(&["--config", path, "config", "show"], &[]).await;
    one_line(code, 2, &err, &["unknown key `coordinator.listn`"]);
    let (code, _, err) = aof(
        &["coordinator", "--listen", "127.0.0.1:0"],
        &[("RUNNER_POLL_TIMEOUT", "soon")],
    )
    .await;
    one_line(code, 2, &err, &["RUNNER_POLL_TIMEOUT=soon"]);
    let (code, _, err) = aof(&["coordinator", "--listen", "0.0.0.0:0"], &[]).await;
    one_line(
        code,
        2,
        &err,
        &["refusing to listen on 0.0.0.0:0", "--insecure-listen"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_show_reports_sources_and_masks_secrets() {
    let dir = tempdir();
    let file = dir.path().join("aof.toml");
    std::fs::write(
        &file,
        "[coordinator]\npoll_timeout = 11\nlisten = \"127.0.0.1:1\"\n[runner]\ntags = [\"a\", \"b\"]\n",
    )
    .unwrap();
    let (code, out, err) = aof(
        &["config", "show", "--json", "--url", "http://flag:1"],
        &[
            ("AOF_CONFIG", file.to_str().unwrap()),
            ("RUNNER_POLL_TIMEOUT", "12"),
            ("AOF_POLL_TIMEOUT", "13"),
            ("AOF_API_KEY", "s3cret-value"),
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("s3cret-value"), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let s = &v["settings"];
    assert_eq!(s["coordinator.poll_timeout"]["value"], json!("13"));
    assert_eq!(
        s["coordinator.poll_timeout"]["source"],
        json!("env AOF_POLL_TIMEOUT (over RUNNER_POLL_TIMEOUT)")
    );
    assert_eq!(
        s["coordinator.listen"]["source"],
        json!(format!("file {}", file.display()))
    );
    assert_eq!(s["runner.tags"]["value"], json!("a,b"));
    assert_eq!(s["api.url"]["source"], json!("flag --url"));
    assert_eq!(s["api.key"]["value"], json!("****"));
    assert_eq!(s["coordinator.max_body_bytes"]["source"], json!("default"));

    // `aof config table` is what the README embeds.
    let (code, table, _) = aof(&["config", "table"], &[]).await;
    assert_eq!(code, 0);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    assert!(readme.contains(&format!(
        "<!-- config-table:start -->\n{table}<!-- config-table:end -->"
    )));
}

/// `aof agents …` needs the coordinator's `/agents` routes, which land separately: the
/// test checks them when the coordinator has them and says so when it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_apply_list_show_delete() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), vec![]).await;
    let url = coord.url.clone();
    let (status, _) = call("GET", &format!("{url}/agents"), None).await;
    if status == 404 {
        eprintln!("SKIPPED: this coordinator has no /agents route yet");
        return;
    }
    let agents = dir.path().join("agents");
    for (name, desc) in [("alpha", "First"), ("beta", "Second")] {
        let d = agents.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("agent.json"),
            json!({"name": name, "description": desc, "tags": ["t"]}).to_string(),
        )
        .unwrap();
    }
    std::fs::write(agents.join("alpha/agent.system-prompt.md"), "Be brief.").unwrap();
    let dir_arg = agents.to_str().unwrap();
    let (code, _, err) = aof(&["agents", "apply", dir_arg, "--url", &url], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("created agent alpha") && err.contains("created agent beta"),
        "{err}"
    );
    // Applying again updates; a removed prompt file clears the prompt.
    std::fs::remove_file(agents.join("alpha/agent.system-prompt.md")).unwrap();
    let (code, _, err) = aof(
        &[
            "agents",
            "apply",
            &format!("{dir_arg}/alpha"),
            "--url",
            &url,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("updated agent alpha"), "{err}");
    let shown = ok_json(&url, &["agents", "show", "alpha"]).await;
    assert_eq!(shown["description"], json!("First"));
    assert!(
        shown
            .get("system_prompt")
            .is_none_or(|p| p.is_null() || p == ""),
        "{shown}"
    );
    let table = ok(&url, &["agents", "list"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("alpha") && table.contains("beta"),
        "{table}"
    );
    ok(&url, &["agents", "delete", "beta"]).await;
    let (code, _, err) = aof(&["agents", "show", "beta", "--url", &url], &[]).await;
    one_line(code, 1, &err, &["404"]);
    // A folder without agents is a usage error; nothing is sent.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = aof(
        &["agents", "apply", empty.to_str().unwrap(), "--url", &url],
        &[],
    )
    .await;
    one_line(code, 2, &err, &["holds no agent"]);
}
