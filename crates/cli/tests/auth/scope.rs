//! Issue #20, attack 4: a runner key's scope. `aof keys create --role runner --tags T
//! --agents A` limits the runners a key registers (tags within T) and the runs they
//! claim (agent in A, demanded tags within T); a key acts only as its own runner ids.
//! Each test performs the attack, checks the refusal and that nothing changed.

use super::*;

async fn register(url: &str, key: &str, host: &str, tags: &[&str]) -> (u16, Value) {
    req(
        "POST",
        &format!("{url}/runner/register"),
        Some(key),
        Some(
            json!({"hostname": host, "project_dir": "/p", "executor_profile": "echo",
                    "executor": {"type": "autonomous"}, "tags": tags}),
        ),
        &[],
    )
    .await
}

/// The ids of the registered runners (their heartbeat ages change; the set must not).
async fn runner_ids(url: &str, viewer: &str) -> Vec<String> {
    let (st, b) = req("GET", &format!("{url}/runners"), Some(viewer), None, &[]).await;
    assert_eq!(st, 200, "{b}");
    let mut ids: Vec<String> = b["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runner_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn create_run(url: &str, operator: &str, agent: &str) -> String {
    let (st, b) = req(
        "POST",
        &format!("{url}/runs"),
        Some(operator),
        Some(json!({"type": "start_session", "agent_name": agent, "parameters": {"prompt": "p"}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    b["run_id"].as_str().unwrap().to_string()
}

async fn run(url: &str, viewer: &str, run_id: &str) -> Value {
    let (st, b) = req(
        "GET",
        &format!("{url}/runs/{run_id}"),
        Some(viewer),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");
    b
}

/// One long-poll as `runner_id`: the run it was handed, or `None` after the poll timeout.
async fn poll(url: &str, key: &str, runner_id: &str) -> Option<Value> {
    let (st, b) = req(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner_id}"),
        Some(key),
        None,
        &[],
    )
    .await;
    match st {
        200 => Some(b["run"].clone()),
        204 => None,
        _ => panic!("poll: {st} {b}"),
    }
}

async fn keys_list(url: &str, admin: &str) -> Value {
    let (st, b) = req("GET", &format!("{url}/auth/keys"), Some(admin), None, &[]).await;
    assert_eq!(st, 200, "{b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_runner_key_cannot_register_outside_its_tags() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let admin = [
        ("AOF_URL", url.as_str()),
        ("AOF_API_KEY", keys.admin.as_str()),
    ];
    let (code, out, err) = aof(
        &[
            "keys", "create", "--role", "runner", "--name", "gpu-box", "--tags", "gpu", "--agents",
            "a,b", "--json",
        ],
        &admin,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&made["tags"], &made["agents"]),
        (&json!(["gpu"]), &json!(["a", "b"]))
    );
    let scoped = made["key"].as_str().unwrap().to_string();
    // Listed with its scope, by the API and by the CLI.
    let listed = keys_list(&url, &keys.admin).await;
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == made["id"])
        .cloned()
        .unwrap();
    assert_eq!(
        (&entry["tags"], &entry["agents"]),
        (&json!(["gpu"]), &json!(["a", "b"]))
    );
    let (code, table, _) = aof(&["keys", "list"], &admin).await;
    assert_eq!(code, 0);
    let line = table.lines().find(|l| l.contains("gpu-box")).unwrap();
    assert!(line.contains("gpu") && line.contains("a,b"), "{table}");

    let before = runner_ids(&url, &keys.viewer).await;
    for tags in [&["gpu", "eu"][..], &["eu"][..]] {
        let (st, b) = register(&url, &scoped, "h1", tags).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (403, Some("runner_out_of_scope")),
            "{tags:?}: {b}"
        );
    }
    assert_eq!(runner_ids(&url, &keys.viewer).await, before);
    // Not even the runner id was bound: another key may register that identity.
    let (st, b) = register(&url, &keys.runner, "h1", &["eu"]).await;
    assert_eq!(st, 200, "{b}");

    // Within its tags (or none) it registers.
    for (host, tags) in [("h2", &["gpu"][..]), ("h3", &[][..])] {
        let (st, b) = register(&url, &scoped, host, tags).await;
        assert_eq!(st, 200, "{tags:?}: {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_runner_key_claims_only_its_agents() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (st, made) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(&keys.admin),
        Some(json!({"role": "runner", "name": "ab", "agents": ["a", "b"]})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{made}");
    let scoped = made["key"].as_str().unwrap().to_string();
    let (st, reg) = register(&url, &scoped, "hs", &[]).await;
    assert_eq!(st, 200, "{reg}");
    let scoped_runner = reg["runner_id"].as_str().unwrap().to_string();

    // The older run is for agent c: the scoped runner passes over it.
    let run_c = create_run(&url, &keys.operator, "c").await;
    let run_a = create_run(&url, &keys.operator, "a").await;
    let got = poll(&url, &scoped, &scoped_runner).await.expect("run a");
    assert_eq!(got["run_id"].as_str(), Some(run_a.as_str()));
    let c_before = run(&url, &keys.viewer, &run_c).await;
    assert!(
        poll(&url, &scoped, &scoped_runner).await.is_none(),
        "c is not for this key"
    );
    let c_after = run(&url, &keys.viewer, &run_c).await;
    assert_eq!(c_after, c_before, "run c untouched");
    assert_eq!(
        (c_after["status"].as_str(), &c_after["runner_id"]),
        (Some("pending"), &Value::Null)
    );

    // An unscoped runner takes it later.
    let (st, reg) = register(&url, &keys.runner, "hu", &[]).await;
    assert_eq!(st, 200, "{reg}");
    let other = reg["runner_id"].as_str().unwrap().to_string();
    let got = poll(&url, &keys.runner, &other).await.expect("run c");
    assert_eq!(got["run_id"].as_str(), Some(run_c.as_str()));
    assert_eq!(
        run(&url, &keys.viewer, &run_c).await["runner_id"].as_str(),
        Some(other.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_key_cannot_act_as_another_keys_runner_id() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (st, made) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(&keys.admin),
        Some(json!({"role": "runner"})),
        &[],
    )
    .await;
    assert_eq!(st, 201);
    let key_b = made["key"].as_str().unwrap().to_string();
    let (runner_a, run) = claim_one(&url, &keys.runner, &keys.operator, "ha").await;
    let sid = run["session_id"].as_str().unwrap().to_string();
    let rid = run["run_id"].as_str().unwrap().to_string();
    let lease = run["lease_token"].as_str().unwrap().to_string();
    let (_, runs_before) = req("GET", &format!("{url}/runs"), Some(&keys.viewer), None, &[]).await;
    let (_, session_before) = req(
        "GET",
        &format!("{url}/sessions/{sid}"),
        Some(&keys.viewer),
        None,
        &[],
    )
    .await;
    let runners_before = runner_ids(&url, &keys.viewer).await;

    // Key B as runner A, on every runner route (with A's lease where one is asked for).
    let lease_h = [
        ("x-aof-lease-token", lease.as_str()),
        ("x-aof-run-id", rid.as_str()),
    ];
    let as_a = json!({"runner_id": runner_a});
    let attempts: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/runner/runs?runner_id={runner_a}"), None),
        (
            "POST",
            "/runner/heartbeat".into(),
            Some(json!({"runner_id": runner_a, "leases": [{"run_id": rid, "lease_token": lease}]})),
        ),
        (
            "POST",
            format!("/runner/runs/{rid}/started"),
            Some(as_a.clone()),
        ),
        (
            "POST",
            format!("/runner/runs/{rid}/completed"),
            Some(as_a.clone()),
        ),
        (
            "POST",
            format!("/runner/runs/{rid}/failed"),
            Some(json!({"runner_id": runner_a, "error": "x"})),
        ),
        (
            "POST",
            format!("/runner/runs/{rid}/stopped"),
            Some(json!({"runner_id": runner_a, "signal": "x"})),
        ),
        (
            "POST",
            format!("/runner/runs/{rid}/release"),
            Some(as_a.clone()),
        ),
        (
            "POST",
            format!("/runner/sessions/{sid}/status"),
            Some(json!({"runner_id": runner_a, "status": "failed"})),
        ),
        ("DELETE", format!("/runners/{runner_a}?self=true"), None),
        ("DELETE", format!("/runners/{runner_a}"), None),
        // Registering A's identity would bind A's id to key B.
        (
            "POST",
            "/runner/register".into(),
            Some(
                json!({"hostname": "ha", "project_dir": "/p", "executor_profile": "echo", "executor": {"type": "autonomous"}}),
            ),
        ),
    ];
    for (method, path, body) in attempts {
        let (st, b) = req(
            method,
            &format!("{url}{path}"),
            Some(&key_b),
            body,
            &lease_h,
        )
        .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (403, Some("runner_not_bound")),
            "{method} {path}: {b}"
        );
    }
    let (_, runs_after) = req("GET", &format!("{url}/runs"), Some(&keys.viewer), None, &[]).await;
    let (_, session_after) = req(
        "GET",
        &format!("{url}/sessions/{sid}"),
        Some(&keys.viewer),
        None,
        &[],
    )
    .await;
    assert_eq!(runs_after, runs_before);
    assert_eq!(session_after, session_before);
    assert_eq!(runner_ids(&url, &keys.viewer).await, runners_before);
    // Runner A is still key A's.
    let (st, b) = req(
        "POST",
        &format!("{url}/runner/heartbeat"),
        Some(&keys.runner),
        Some(json!({"runner_id": runner_a})),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_runner_role_scope_is_rejected() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let before = keys_list(&url, &keys.admin).await;
    for body in [
        json!({"role": "admin", "tags": ["gpu"]}),
        json!({"role": "operator", "agents": ["a"]}),
        json!({"role": "viewer", "tags": ["gpu"], "agents": ["a"]}),
        json!({"role": "runner", "tags": [""]}),
        json!({"role": "runner", "agents": ["  "]}),
    ] {
        let (st, b) = req(
            "POST",
            &format!("{url}/auth/keys"),
            Some(&keys.admin),
            Some(body.clone()),
            &[],
        )
        .await;
        assert_eq!(
            (st, b["code"].as_str()),
            (400, Some("invalid_key_scope")),
            "{body}: {b}"
        );
    }
    // The CLI refuses the same (a usage error: exit 2), online and offline.
    let admin = [
        ("AOF_URL", url.as_str()),
        ("AOF_API_KEY", keys.admin.as_str()),
    ];
    let (code, out, err) = aof(
        &["keys", "create", "--role", "operator", "--tags", "gpu"],
        &admin,
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("runner keys only"), "{err}");
    let data = coord.data_dir.to_str().unwrap().to_string();
    let store = store_env(&coord.data_dir);
    let offline: Vec<(&str, &str)> = store
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (code, out, err) = aof(
        &[
            "keys",
            "create",
            "--role",
            "viewer",
            "--agents",
            "a",
            "--data-dir",
            &data,
        ],
        &offline,
    )
    .await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("runner keys only") && !out.contains("aof_"),
        "{err}"
    );
    assert_eq!(keys_list(&url, &keys.admin).await, before);
}
