//! Keys made offline and online, revocation; runner and CLI with keys; no secret in logs.

use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;

use super::*;

// ---------------------------------------------------------------------------------------
// (2) Keys offline, then online; revocation.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_listed_and_revoked_with_the_cli() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let admin = [
        ("AOF_URL", url.as_str()),
        ("AOF_API_KEY", keys.admin.as_str()),
    ];

    let (code, key, err) = aof(
        &["keys", "create", "--role", "operator", "--name", "ci"],
        &admin,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let key = key.trim().to_string();
    assert!(
        key.starts_with("aof_") && err.contains("shown only now"),
        "{err}"
    );
    let (st, me) = req("GET", &format!("{url}/auth/me"), Some(&key), None, &[]).await;
    assert_eq!((st, me["role"].as_str()), (200, Some("operator")));

    // Listed without secrets, online and offline alike.
    let (code, list, _) = aof(&["keys", "list", "--json"], &admin).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["keys"].as_array().unwrap().len(), 5);
    assert_no_secret("key list", &list.to_string(), &[&key, &keys.admin]);
    let data = coord.data_dir.to_str().unwrap().to_string();
    let store = store_env(&coord.data_dir);
    let store: Vec<(&str, &str)> = store
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (code, table, _) = aof(&["keys", "list", "--data-dir", &data], &store).await;
    assert_eq!(code, 0);
    assert!(
        table.contains("ci") && table.contains("operator"),
        "{table}"
    );
    assert_no_secret("offline key list", &table, &[&key]);

    // Non-admins may not manage keys.
    let (code, _, err) = aof(
        &["keys", "list"],
        &[("AOF_URL", &url), ("AOF_API_KEY", &key)],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("403") && err.contains("forbidden"), "{err}");

    // Revoked: 401 from then on.
    let id = key.split('_').nth(1).unwrap();
    let (code, _, err) = aof(&["keys", "revoke", id], &admin).await;
    assert_eq!(code, 0, "{err}");
    let (st, b) = req("GET", &format!("{url}/sessions"), Some(&key), None, &[]).await;
    assert_eq!((st, b["code"].as_str()), (401, Some("unauthenticated")));
    let (code, _, err) = aof(&["keys", "revoke", "000000000000"], &admin).await;
    assert_eq!(code, 1, "{err}");

    assert_no_secret("coordinator log", &coord.log(), &[&key, &keys.admin]);
}

// ---------------------------------------------------------------------------------------
// (3)+(4) Runner and CLI with keys complete a session; no secret in any log.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_and_cli_work_with_keys_and_logs_hold_no_secret() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();

    let rdir = dir.path().join("runner");
    std::fs::create_dir_all(&rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    let _runner = Command::new(BIN)
        .args(["runner", "--url", &url, "--hostname", "r1"])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .arg("--project-dir")
        .arg(&rdir)
        .envs(fast_env())
        .env("AOF_API_KEY", &keys.runner)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let op = [("AOF_API_KEY", keys.operator.as_str())];
    let (code, out, err) = aof(
        &[
            "run",
            "anything",
            "hi",
            "--follow",
            "--url",
            &url,
            "--timeout",
            "60",
        ],
        &op,
    )
    .await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("[result] hi"), "{out}");
    // Without a key the CLI is refused, with a one-line reason.
    let (code, _, err) = aof(&["sessions", "list", "--url", &url], &[]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("401") && err.contains("unauthenticated"),
        "{err}"
    );

    let runner_log = std::fs::read_to_string(rdir.join("runner.log")).unwrap();
    let all = [&keys.admin, &keys.operator, &keys.viewer, &keys.runner];
    assert_no_secret("runner log", &runner_log, &all.map(|s| s.as_str()));
    assert_no_secret("coordinator log", &coord.log(), &all.map(|s| s.as_str()));
    assert_no_secret(
        "cli output",
        &format!("{out}{err}"),
        &all.map(|s| s.as_str()),
    );
    // The session token handed out at the claim is not in any log either.
    let (_, runs) = req("GET", &format!("{url}/runs"), Some(&keys.viewer), None, &[]).await;
    assert_eq!(runs["runs"][0]["status"], "completed");
    assert!(
        runner_log.contains("aof_runner"),
        "the runner logged at debug"
    );
    assert!(!runner_log.contains("aofs_") && !coord.log().contains("aofs_"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aof_up_with_auth_needs_no_runner_key() {
    let dir = tempdir();
    let data = dir.path().join(".agent-orchestrator");
    std::fs::create_dir_all(&data).unwrap();
    let operator = offline_key(&data, "operator");
    let addr_file = dir.path().join("addr");
    let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
    let _up = Command::new(BIN)
        .current_dir(dir.path())
        .args(["up", "--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .envs(auth_env(&[]))
        .envs(store_env(&data))
        .env_remove("AOF_API_KEY")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = wait_for("addr file", || async {
        std::fs::read_to_string(&addr_file)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await;
    let url = format!("http://{addr}");
    wait_healthy(&url).await;
    let (code, out, err) = aof(
        &[
            "run",
            "anything",
            "hi",
            "--follow",
            "--url",
            &url,
            "--timeout",
            "60",
        ],
        &[("AOF_API_KEY", &operator)],
    )
    .await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let up_log = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    assert!(
        !up_log.contains("aofi_") && !up_log.contains(&operator),
        "secret in up.log"
    );
}
