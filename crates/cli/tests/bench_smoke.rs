//! `aof bench --smoke` end to end: the real binary, its in-process coordinator, one JSON
//! line on stdout. Checks correctness only (no losses, no errors); never timing.

use std::process::Command;

use serde_json::Value;

/// Runs `aof bench SCENARIO --smoke` and returns its JSON line.
fn bench(scenario: &str) -> Value {
    bench_with(scenario, &[])
}

/// `bench` with extra arguments.
fn bench_with(scenario: &str, extra: &[&str]) -> Value {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_aof"))
        .args(["bench", scenario, "--smoke"])
        .args(extra)
        .current_dir(tmp.path())
        .env_remove("AOF_API_KEY")
        .env_remove("AOF_SQLITE_SYNCHRONOUS")
        .output()
        .expect("run aof bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "aof bench {scenario} --smoke exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one JSON line, got:\n{stdout}");
    let v: Value = serde_json::from_str(lines[0]).expect("stdout is JSON");
    assert_eq!(v["scenario"], scenario);
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["parameters"].is_object(), "{v}");
    assert!(v["bench_cpu_s"].is_number(), "{v}");
    if !extra.contains(&"--url") {
        assert_eq!(v["durability"], "sqlite synchronous=NORMAL (WAL)", "{v}");
        // In-process, the bench's CPU already includes the coordinator's.
        assert!(v["coordinator_cpu_s"].is_null(), "{v}");
    }
    v
}

/// Starts `aof <subcommand>` on a free port in `dir`; returns it and its URL.
fn spawn(subcommand: &str, dir: &std::path::Path) -> (std::process::Child, String) {
    spawn_with(subcommand, dir, None)
}

/// `spawn`, on PostgreSQL database `db` when given (SQLite in `dir` otherwise).
fn spawn_with(
    subcommand: &str,
    dir: &std::path::Path,
    db: Option<&str>,
) -> (std::process::Child, String) {
    let addr_file = dir.join("addr");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_aof"));
    cmd.args([subcommand, "--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("AOF_API_KEY")
        .env_remove("AOF_DATABASE_URL");
    if let Some(db) = db {
        cmd.env("AOF_DATABASE_URL", db);
    }
    let child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start aof");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let addr = loop {
        match std::fs::read_to_string(&addr_file) {
            Ok(a) if !a.trim().is_empty() => break a.trim().to_string(),
            _ if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => panic!("aof {subcommand} wrote no address within 60 s"),
        }
    };
    (child, format!("http://{addr}"))
}

/// Against another coordinator (`--url`, `--pid`): its own process, measured from outside.
#[test]
fn lifecycle_smoke_against_an_external_coordinator_reports_its_cpu_and_rss() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut coordinator, url) = spawn("coordinator", dir.path());
    let pid = coordinator.id().to_string();
    let v = bench_with("lifecycle", &["--url", &url, "--pid", &pid]);
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    assert_eq!(v["durability"], "unknown (external)", "{v}");
    assert_eq!(v["cpu_scope"], "bench client only", "{v}");
    let n = v["parameters"]["runs"].as_u64().expect("runs parameter");
    assert_eq!(v["runs_completed"].as_u64(), Some(n), "{v}");
    // The coordinator did the work of every run, so its clock moved (ticks are 10 ms).
    assert!(
        v["coordinator_cpu_s"].as_f64().is_some_and(|s| s > 0.0),
        "{v}"
    );
    assert!(
        v["coordinator_peak_rss_kb"]
            .as_u64()
            .is_some_and(|kb| kb > 1024),
        "{v}"
    );
}

/// Two coordinators at once (`--url`/`--pid` twice): runs spread over both, each with
/// its runners and a live SSE subscriber. Separate SQLite coordinators share no data, so
/// each subscriber is held to its own coordinator's runs (`store_shared` false).
/// `--pg-pid` is given this test's own PID: a process tree holding both coordinators, so
/// its CPU covers theirs.
#[test]
fn lifecycle_smoke_against_two_coordinators_reports_each_and_checks_events() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut ca, url_a) = spawn("coordinator", a.path());
    let (mut cb, url_b) = spawn("coordinator", b.path());
    let (pa, pb, me) = (
        ca.id().to_string(),
        cb.id().to_string(),
        std::process::id().to_string(),
    );
    let v = bench_with(
        "lifecycle",
        &[
            "--url", &url_a, "--pid", &pa, "--url", &url_b, "--pid", &pb, "--pg-pid", &me,
        ],
    );
    for c in [&mut ca, &mut cb] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let n = v["parameters"]["runs"].as_u64().expect("runs parameter");
    assert_eq!(v["coordinators"], 2, "{v}");
    assert_eq!(v["parameters"]["coordinators"], 2, "{v}");
    assert_eq!(v["runs_completed"].as_u64(), Some(n), "{v}");
    // Created in turn, and (no shared queue) claimed where created.
    assert_eq!(
        v["runs_created_each"],
        serde_json::json!([n / 2, n - n / 2]),
        "{v}"
    );
    assert_eq!(v["runs_claimed_each"], v["runs_created_each"], "{v}");
    assert_eq!(v["runs_claimed_elsewhere"], 0, "{v}");
    assert_eq!(v["store_shared"], false, "{v}");
    assert_integrity(&v, n);
    let each = v["coordinator_cpu_s_each"]
        .as_array()
        .expect("per coordinator");
    assert_eq!(each.len(), 2, "{v}");
    assert!(each.iter().all(|c| c.as_f64().is_some()), "{v}");
    let total = v["coordinator_cpu_s"].as_f64().expect("coordinator CPU");
    assert!(total > 0.0, "{v}");
    let tree = v["pg_cpu_s"].as_f64().expect("--pg-pid tree CPU");
    // Both coordinators are in the tree (10 ms ticks, read at nearly the same instants).
    assert!(tree + 0.05 >= total, "{v}");
    assert!(v["cpu_ms_per_run"]["pg"].is_number(), "{v}");
    assert!(v["cpu_ms_per_run"]["coordinators"].is_number(), "{v}");
}

/// The same on one PostgreSQL database (`AOF_TEST_DATABASE_URL`; skipped without it
/// outside CI): one shared queue and feed, so every subscriber must deliver every event.
#[test]
fn lifecycle_smoke_against_two_coordinators_on_one_postgres_sees_every_event_live() {
    let Some(base) = aof_store_postgres::testing::base_url() else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt
        .block_on(aof_store_postgres::testing::fresh_database(&base))
        .expect("create a test database");
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut ca, url_a) = spawn_with("coordinator", a.path(), Some(&db));
    let (mut cb, url_b) = spawn_with("coordinator", b.path(), Some(&db));
    let v = bench_with("lifecycle", &["--url", &url_a, "--url", &url_b]);
    for c in [&mut ca, &mut cb] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let n = v["parameters"]["runs"].as_u64().expect("runs parameter");
    assert_eq!(v["runs_completed"].as_u64(), Some(n), "{v}");
    assert_eq!(v["store_shared"], true, "{v}");
    let claimed: u64 = (v["runs_claimed_each"].as_array().expect("claims"))
        .iter()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(claimed, n, "{v}");
    assert_integrity(&v, n);
}

/// Every run's events stored once, in order, and (two subscribers) delivered live.
fn assert_integrity(v: &Value, runs: u64) {
    let per_run = v["parameters"]["events_per_run"].as_u64().expect("E");
    assert_eq!(v["runs_checked"].as_u64(), Some(runs), "{v}");
    assert_eq!(v["events_checked"].as_u64(), Some(runs * per_run), "{v}");
    assert_eq!(v["sse_subscribers"], 2, "{v}");
    // Each subscriber saw at least its own runs' events.
    assert!(
        v["sse_frames"]
            .as_u64()
            .is_some_and(|f| f >= runs * per_run),
        "{v}"
    );
    for k in ["events", "sse"] {
        for what in ["lost", "duplicated", "reordered"] {
            assert_eq!(v[format!("{k}_{what}")], 0, "{k}_{what}: {v}");
        }
    }
    assert_eq!(v["check_errors"], 0, "{v}");
}

/// Against `aof up`, whose own runner polls the same queue: the bench's runs demand a
/// tag only the bench's runners carry, so every one is claimed and completed by the bench
/// (before the tag, `aof up`'s runner took a third of them and the run failed).
#[test]
fn lifecycle_smoke_against_aof_up_completes_every_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut up, url) = spawn("up", dir.path());
    let pid = up.id().to_string();
    let v = bench_with("lifecycle", &["--url", &url, "--pid", &pid]);
    let runners = {
        let body = Command::new(env!("CARGO_BIN_EXE_aof"))
            .args(["runners", "list", "--json", "--url", &url])
            .env_remove("AOF_API_KEY")
            .output()
            .expect("aof runners list");
        serde_json::from_slice::<Value>(&body.stdout).expect("runners JSON")
    };
    let _ = up.kill();
    let _ = up.wait();
    let n = v["parameters"]["runs"].as_u64().expect("runs parameter");
    assert_eq!(v["runs_completed"].as_u64(), Some(n), "{v}");
    // `aof up`'s own runner was there all along (the bench's have deregistered).
    assert!(
        runners["runners"].as_array().is_some_and(|r| !r.is_empty()),
        "{runners}"
    );
}

#[test]
fn lifecycle_smoke_completes_every_run() {
    let v = bench("lifecycle");
    let n = v["parameters"]["runs"].as_u64().expect("runs parameter");
    assert!(n > 0);
    assert_eq!(v["runs_created"].as_u64(), Some(n), "{v}");
    assert_eq!(v["runs_completed"].as_u64(), Some(n), "{v}");
    assert!(v["dispatch_p50_ms"].is_number(), "{v}");
    assert!(v["e2e_p99_ms"].is_number(), "{v}");
}

#[test]
fn fanout_smoke_delivers_every_event_once() {
    let v = bench("fanout");
    let subs = v["parameters"]["subscribers"]
        .as_u64()
        .expect("subscribers");
    let msgs = v["parameters"]["messages"].as_u64().expect("messages");
    assert_eq!(v["subscribers_connected"].as_u64(), Some(subs), "{v}");
    assert_eq!(v["events_posted"].as_u64(), Some(msgs), "{v}");
    assert_eq!(v["missing"], 0, "{v}");
    assert_eq!(v["duplicated"], 0, "{v}");
    assert_eq!(v["deliveries"].as_u64(), Some(subs * msgs), "{v}");
}

#[test]
fn ingest_smoke_posts_single_events() {
    let v = bench("ingest");
    assert_eq!(v["parameters"]["batch"], Value::Null, "{v}");
    let events = v["events"].as_u64().expect("events");
    assert!(events > 0, "{v}");
    assert_eq!(v["requests"].as_u64(), Some(events), "{v}");
    assert!(v["latency_p99_ms"].is_number(), "{v}");
}

/// `--batch N`: every request stores N events (the scenario fails a request whose
/// answer lists fewer), so events = N × requests.
#[test]
fn ingest_smoke_posts_batches() {
    let v = bench_with("ingest", &["--batch", "50"]);
    assert_eq!(v["parameters"]["batch"], 50, "{v}");
    let requests = v["requests"].as_u64().expect("requests");
    assert!(requests > 0, "{v}");
    assert_eq!(v["events"].as_u64(), Some(50 * requests), "{v}");
    assert!(v["requests_per_s"].is_number(), "{v}");
    assert!(v["latency_p50_ms"].is_number(), "{v}");
}
