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
    let addr_file = dir.join("addr");
    let child = Command::new(env!("CARGO_BIN_EXE_aof"))
        .args([subcommand, "--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("AOF_API_KEY")
        .env_remove("AOF_DATABASE_URL")
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
