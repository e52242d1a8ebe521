//! The audit log against a real coordinator with auth on: admin, operator and runner
//! keys act; refusals are recorded with the refused key's name; only admins read the
//! log; filters and pages work; no entry, answer or log line carries a secret.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::*;

/// The key id behind a key (its `GET /auth/me` subject).
async fn key_id(url: &str, key: &str) -> String {
    let (st, me) = req("GET", &format!("{url}/auth/me"), Some(key), None, &[]).await;
    assert_eq!(st, 200, "{me}");
    me["subject"].as_str().unwrap().to_string()
}

async fn audit(url: &str, key: &str, query: &str) -> Value {
    let (st, b) = req("GET", &format!("{url}/audit?{query}"), Some(key), None, &[]).await;
    assert_eq!(st, 200, "{query}: {b}");
    b
}

fn actions(list: &Value) -> Vec<String> {
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_and_refusals_are_recorded_and_only_admins_read_them() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let operator_id = key_id(&url, &keys.operator).await;

    // A runner registers and heartbeats; an operator starts and stops a run (with a
    // request id of its own); an admin makes a key.
    let (st, reg) = req(
        "POST",
        &format!("{url}/runner/register"),
        Some(&keys.runner),
        Some(json!({"hostname": "h1", "project_dir": "/p", "executor_profile": "echo", "executor": {"type": "autonomous"}})),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{reg}");
    let runner_id = reg["runner_id"].as_str().unwrap().to_string();
    let (st, _) = req(
        "POST",
        &format!("{url}/runner/heartbeat"),
        Some(&keys.runner),
        Some(json!({"runner_id": runner_id})),
        &[],
    )
    .await;
    assert_eq!(st, 200);
    let resp = client()
        .post(format!("{url}/runs"))
        .bearer_auth(&keys.operator)
        .header("x-request-id", "audit-test-1")
        .json(&json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "p"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.headers()["x-request-id"], "audit-test-1", "echoed");
    let run: Value = resp.json().await.unwrap();
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let (st, _) = req(
        "POST",
        &format!("{url}/runs/{run_id}/stop"),
        Some(&keys.operator),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200);
    let (st, made) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(&keys.admin),
        Some(json!({"role": "viewer", "name": "ci-bot"})),
        &[],
    )
    .await;
    assert_eq!(st, 201);
    let made_key = made["key"].as_str().unwrap().to_string();
    let made_id = made["id"].as_str().unwrap().to_string();

    // Refused: an operator's admin action (403), no credential (401), a bad key (401).
    let (st, _) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(&keys.operator),
        Some(json!({"role": "admin"})),
        &[],
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = req("GET", &format!("{url}/runs"), None, None, &[]).await;
    assert_eq!(st, 401);
    let (st, _) = req(
        "GET",
        &format!("{url}/runs"),
        Some("aof_nope_nope"),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 401);
    // Reads are not recorded.
    let (st, _) = req("GET", &format!("{url}/runs"), Some(&keys.viewer), None, &[]).await;
    assert_eq!(st, 200);
    // The runner leaves.
    let (st, _) = req(
        "DELETE",
        &format!("{url}/runners/{runner_id}"),
        Some(&keys.runner),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200);

    // Only admins read the log; an operator's attempt is itself recorded.
    for k in [&keys.operator, &keys.viewer, &keys.runner] {
        let (st, b) = req("GET", &format!("{url}/audit"), Some(k), None, &[]).await;
        assert_eq!((st, b["code"].as_str()), (403, Some("forbidden")));
    }
    let all = audit(&url, &keys.admin, "").await;
    let got = actions(&all);
    let expected_newest_first = [
        "audit.list",
        "audit.list",
        "audit.list",
        "runner.deregister",
        "run.list",
        "run.list",
        "key.create",
        "key.create",
        "run.stop",
        "run.create",
        "runner.register",
    ];
    assert_eq!(got, expected_newest_first, "{all:#}");
    let e = |i: usize| &all["entries"][i];
    // The refused key creation names the operator's key and role.
    assert_eq!(
        (
            e(6)["actor_name"].as_str(),
            e(6)["actor_id"].as_str(),
            e(6)["role"].as_str(),
            e(6)["status"].as_u64()
        ),
        (
            Some("operator"),
            Some(operator_id.as_str()),
            Some("operator"),
            Some(403)
        )
    );
    assert_eq!(
        (
            e(7)["actor_name"].as_str(),
            e(7)["target"].as_str(),
            e(7)["status"].as_u64()
        ),
        (Some("admin"), Some(made_id.as_str()), Some(201)),
        "a created key is the target"
    );
    assert_eq!(
        (e(9)["target"].as_str(), e(9)["request_id"].as_str()),
        (Some(run_id.as_str()), Some("audit-test-1"))
    );
    assert_eq!(e(8)["target"].as_str(), Some(run_id.as_str()));
    assert_eq!(
        (
            e(10)["actor_name"].as_str(),
            e(10)["role"].as_str(),
            e(10)["target"].as_str()
        ),
        (Some("runner"), Some("runner"), Some(runner_id.as_str()))
    );
    assert_eq!(e(3)["target"].as_str(), Some(runner_id.as_str()));
    for i in [4, 5] {
        assert_eq!(
            (
                e(i)["actor_kind"].as_str(),
                e(i)["role"].as_str(),
                e(i)["status"].as_u64()
            ),
            (Some("anonymous"), None, Some(401))
        );
    }
    for entry in all["entries"].as_array().unwrap() {
        let rid = entry["request_id"].as_str().unwrap();
        assert!(!rid.is_empty() && rid.len() <= 128);
        assert!(
            entry["remote_addr"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"),
            "{entry}"
        );
    }

    // Filters.
    let op = audit(&url, &keys.admin, "actor=operator").await;
    assert_eq!(
        actions(&op),
        ["audit.list", "key.create", "run.stop", "run.create"]
    );
    let by_id = audit(&url, &keys.admin, &format!("actor={operator_id}")).await;
    assert_eq!(actions(&by_id), actions(&op), "key id or key name");
    let keys_only = audit(&url, &keys.admin, "action=key.*").await;
    assert_eq!(actions(&keys_only), ["key.create", "key.create"]);
    let on_run = audit(&url, &keys.admin, &format!("target={run_id}")).await;
    assert_eq!(actions(&on_run), ["run.stop", "run.create"]);
    let denied = audit(&url, &keys.admin, "outcome=denied&action=audit.list").await;
    assert_eq!(actions(&denied).len(), 3);
    let created = audit(&url, &keys.admin, "outcome=201").await;
    assert_eq!(actions(&created), ["key.create", "run.create"]);
    let future = audit(&url, &keys.admin, "since=2999-01-01T00:00:00Z").await;
    assert_eq!(actions(&future), Vec::<String>::new());
    let past = audit(&url, &keys.admin, "until=2000-01-01T00:00:00Z").await;
    assert_eq!(actions(&past), Vec::<String>::new());
    for bad in [
        "since=yesterday",
        "limit=0",
        "limit=5000",
        "limit=x",
        "outcome=maybe",
        "before=x",
        "actor=",
    ] {
        let (st, b) = req(
            "GET",
            &format!("{url}/audit?{bad}"),
            Some(&keys.admin),
            None,
            &[],
        )
        .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (422, Some("validation_error")),
            "{bad}: {b}"
        );
    }

    // Pages of 3 walk the whole log once, newest first, then stop.
    let whole: Vec<i64> = audit(&url, &keys.admin, "limit=1000").await["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let mut walked = Vec::new();
    let mut q = "limit=3".to_string();
    loop {
        let page = audit(&url, &keys.admin, &q).await;
        let ids: Vec<i64> = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect();
        assert!(ids.len() <= 3);
        walked.extend(ids);
        match page["next_before"].as_i64() {
            Some(b) => q = format!("limit=3&before={b}"),
            None => break,
        }
    }
    // The walk itself adds audit.list entries, all newer than `whole`.
    let walked: Vec<i64> = walked.into_iter().filter(|id| *id <= whole[0]).collect();
    assert_eq!(walked, whole);
    assert_eq!(whole.iter().collect::<BTreeSet<_>>().len(), whole.len());

    // The CLI: a table and JSON for admins, refused for others.
    let admin_env = [
        ("AOF_URL", url.as_str()),
        ("AOF_API_KEY", keys.admin.as_str()),
    ];
    let (code, table, err) = aof(
        &["audit", "--actor", "operator", "--since", "1h"],
        &admin_env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        table.contains("run.create")
            && table.contains("operator")
            && !table.contains("runner.register"),
        "{table}"
    );
    let (code, out, err) = aof(
        &["audit", "--json", "--action", "run.*", "--outcome", "ok"],
        &admin_env,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(actions(&v), ["run.stop", "run.create"]);
    let (code, _, err) = aof(&["audit", "--since", "soon"], &admin_env).await;
    assert_eq!(code, 2, "clap refuses a bad --since: {err}");
    let op_env = [
        ("AOF_URL", url.as_str()),
        ("AOF_API_KEY", keys.operator.as_str()),
    ];
    let (code, _, err) = aof(&["audit"], &op_env).await;
    assert_eq!(code, 1, "{err}");

    // No secret anywhere: not in the log's answers, not in the coordinator's log.
    let everything = audit(&url, &keys.admin, "limit=1000").await.to_string();
    let secrets = [
        keys.admin.as_str(),
        keys.operator.as_str(),
        keys.viewer.as_str(),
        keys.runner.as_str(),
        made_key.as_str(),
    ];
    assert_no_secret("audit log", &everything, &secrets);
    assert_no_secret("coordinator log", &coord.log(), &secrets);
}
