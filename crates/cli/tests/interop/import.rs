//! A reference data volume: the database the real reference coordinator wrote (sessions
//! run by a runner, a failed one, a blueprint) is refused in place by our coordinator
//! with the way out, left byte for byte as it was, and imported by
//! `aof import --from-reference`: the same sessions, runs and events as the reference
//! served them, once, however often the import runs. On SQLite and (with
//! AOF_TEST_STORE=postgres) PostgreSQL.

use std::path::Path;

use serde_json::{json, Value};

use crate::harness::*;
use crate::reference::{RefCoordinator, RefPaths};

/// What a user compares after moving: every session's fields and its events' contents.
async fn history(url: &str) -> Vec<Value> {
    let (st, b) = call("GET", &format!("{url}/sessions"), None).await;
    assert_eq!(st, 200, "{b}");
    let mut sessions = b["sessions"].as_array().unwrap().clone();
    sessions.sort_by_key(|s| s["session_id"].as_str().unwrap().to_string());
    let mut out = Vec::new();
    for s in sessions {
        let sid = s["session_id"].as_str().unwrap();
        let evs: Vec<Value> = events(url, sid)
            .await
            .iter()
            .map(|e| {
                json!([
                    e["event_type"],
                    e["timestamp"],
                    e["role"],
                    e["content"],
                    e["result_text"],
                    e["error"],
                    e["exit_code"],
                    e["reason"]
                ])
            })
            .collect();
        let runs: Vec<Value> = runs_of(url, sid)
            .await
            .iter()
            .map(|r| {
                json!([
                    r["run_id"],
                    r["type"],
                    r["status"],
                    r["runner_id"],
                    r["parameters"],
                    r["created_at"],
                    r["completed_at"]
                ])
            })
            .collect();
        out.push(json!({
            "session": [s["session_id"], s["status"], s["created_at"], s["agent_name"],
                        s["executor_session_id"], s["executor_profile"], s["hostname"]],
            "events": evs,
            "runs": runs,
        }));
    }
    out
}

fn sha256_of(path: &Path) -> (Vec<u8>, u32) {
    use std::os::unix::fs::PermissionsExt;
    let bytes = std::fs::read(path).unwrap();
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    (bytes, mode)
}

/// `aof ARGS`: exit code and all it printed.
async fn aof(args: &[&str], env: &[(String, String)]) -> (i32, String) {
    let (code, out, err) = aof_cli(args, env).await;
    (code, out + &err)
}

#[tokio::test]
async fn reference_volume_is_refused_in_place_and_imported_whole() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();

    // The reference coordinator writes a few sessions, run by our runner (which joins it).
    let mut refc = RefCoordinator::start(&p, dir.path()).await;
    let (st, b) = call(
        "POST",
        &format!("{}/agents", refc.url),
        Some(
            json!({"name": "imported-agent", "description": "made on the reference",
                    "system_prompt": "Answer briefly."}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let _runner = Runner::start(&refc.url, dir.path(), "r1", &[]).await;
    let (_, ok) = start_run(
        &refc.url,
        &echo_prompt(json!({"echo_events": 2}), "first question"),
    )
    .await;
    wait_session(&refc.url, &ok, "finished").await;
    let (_, bad) = start_run(
        &refc.url,
        &echo_prompt(json!({"echo_fail": "boom"}), "doomed"),
    )
    .await;
    wait_session(&refc.url, &bad, "failed").await;
    let before = history(&refc.url).await;
    assert_eq!(before.len(), 2, "{before:#?}");
    assert!(
        before
            .iter()
            .all(|s| !s["events"].as_array().unwrap().is_empty()),
        "the reference stored events: {before:#?}"
    );
    refc.stop().await;
    let refdb = refc.db_path();
    let original = sha256_of(&refdb);

    // Our coordinator on that volume: refuses, says how to import, changes nothing.
    let volume = refdb.parent().unwrap().to_str().unwrap().to_string();
    let (code, out) = aof(
        &[
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &volume,
        ],
        &[],
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("AOF reference") && out.contains("aof import --from-reference"),
        "{out}"
    );
    assert_eq!(
        sha256_of(&refdb),
        original,
        "the reference file was changed"
    );

    // Import into a new data dir (or the PostgreSQL database the test store names).
    let new_dir = dir.path().join("coord");
    let env = store_env(&new_dir);
    let ref_path = refdb.to_str().unwrap();
    let new_str = new_dir.to_str().unwrap();
    let args = [
        "import",
        "--from-reference",
        ref_path,
        "--data-dir",
        new_str,
    ];
    // A root-owned volume imported as root for an image running as another user: the
    // new data dir is handed over (SQLite only; PostgreSQL has no files of ours).
    let owner = ["--owner", "4242:4243"];
    let first: Vec<&str> = if postgres_mode() {
        args.to_vec()
    } else {
        args.iter().chain(owner.iter()).copied().collect()
    };
    let (code, out) = aof(&first, &env).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("imported 2 sessions"), "{out}");
    assert!(out.contains("agents: copied 1"), "{out}");
    if !postgres_mode() {
        use std::os::unix::fs::MetadataExt;
        for f in [
            new_dir.join("observability.db"),
            new_dir.join("agents/imported-agent/agent.json"),
        ] {
            let m = std::fs::metadata(&f).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4243), "{}", f.display());
        }
    }
    let (code, again) = aof(&args, &env).await;
    assert_eq!(code, 0, "{again}");
    assert!(
        again.contains("imported 0 sessions") && again.contains("skipped 2"),
        "{again}"
    );
    assert_eq!(
        sha256_of(&refdb),
        original,
        "the import wrote to the reference file"
    );

    assert!(again.contains("kept 1"), "{again}");

    // Served by our coordinator: the same history as the reference served, and its
    // blueprint.
    let ours = Coordinator::start(dir.path(), vec![]).await;
    let after = history(&ours.url).await;
    assert_eq!(after, before);
    let (st, b) = call("GET", &format!("{}/agents/imported-agent", ours.url), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["description"], "made on the reference", "{b}");
    // Imported sessions are history, not work: nothing is pending for a runner.
    let (_, runs) = call("GET", &format!("{}/runs?status=pending", ours.url), None).await;
    assert_eq!(runs["runs"], json!([]), "{runs}");
}

#[tokio::test]
async fn import_refuses_what_is_not_a_reference_database() {
    let dir = tempdir();
    // An AOF database (SQLite, whatever the test store) is not a reference one.
    let own_dir = dir.path().join("own");
    let own_str = own_dir.to_str().unwrap();
    let (code, out) = aof(&["keys", "--data-dir", own_str, "list"], &[]).await;
    assert_eq!(code, 0, "{out}");
    let own = own_dir.join("observability.db");
    assert!(own.exists());
    let target = dir.path().join("target");
    let env = store_env(&target);
    let (code, out) = aof(
        &[
            "import",
            "--from-reference",
            own.to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("is not a database of the AOF reference"),
        "{out}"
    );
    // A missing file: a clear error, nothing created.
    let missing = dir.path().join("nope.db");
    let (code, out) = aof(
        &[
            "import",
            "--from-reference",
            missing.to_str().unwrap(),
            "--data-dir",
            target.to_str().unwrap(),
        ],
        &env,
    )
    .await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("nope.db"), "{out}");
    assert!(!target.join("observability.db").exists());
}
