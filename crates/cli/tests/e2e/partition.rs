//! Network partitions: a runner in its own network namespace (veth to the host), cut off
//! by taking the link down. Shorter than its lease: the run carries on and every
//! buffered event arrives once. Longer: the coordinator resolves the run, the runner
//! stops the execution when it hears back, and its late writes are refused.
//! Needs root and iproute2; under `CI=true` their absence fails the test.

use std::{path::Path, process::Stdio, time::Duration};

use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::harness::*;

struct Netns {
    name: String,
    host_if: String,
    /// The runner's view of the coordinator host.
    host_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// `None` (after saying why) when namespaces cannot be made here, outside CI.
    fn create(n: u8) -> Option<Netns> {
        let pid = std::process::id();
        let ns = Netns {
            name: format!("aof-{pid}-{n}"),
            host_if: format!("aofh{}{n}", pid % 100_000),
            host_ip: format!("10.{}.{}.1", 200 + n, pid % 250),
        };
        let ns_if = format!("aofn{}{n}", pid % 100_000);
        let ns_ip = format!("10.{}.{}.2/30", 200 + n, pid % 250);
        let host_cidr = format!("{}/30", ns.host_ip);
        let made = ip(&["netns", "add", &ns.name])
            .and_then(|_| {
                ip(&[
                    "link",
                    "add",
                    &ns.host_if,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &ns_if,
                    "netns",
                    &ns.name,
                ])
            })
            .and_then(|_| ip(&["addr", "add", &host_cidr, "dev", &ns.host_if]))
            .and_then(|_| ip(&["link", "set", &ns.host_if, "up"]))
            .and_then(|_| {
                ip(&[
                    "netns", "exec", &ns.name, "ip", "addr", "add", &ns_ip, "dev", &ns_if,
                ])
            })
            .and_then(|_| ip(&["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"]))
            .and_then(|_| ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]));
        match made {
            Ok(()) => Some(ns),
            Err(e) => {
                drop(ns);
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "network namespaces are required in CI: {e}"
                );
                eprintln!("SKIPPED (no network namespaces here): {e}");
                None
            }
        }
    }

    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).unwrap();
    }

    fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]).unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace removes the veth pair with it.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// A coordinator on all interfaces (auth off needs `--insecure-listen` for that); the
/// test talks to it on loopback, the runner across the veth.
async fn coordinator(dir: &Path, env: &[(&str, &str)]) -> (Child, u16) {
    let data = dir.join("coord");
    std::fs::create_dir_all(&data).unwrap();
    let log = std::fs::File::create(data.join("coordinator.log")).unwrap();
    let child = Command::new(BIN)
        .args(["coordinator", "--listen", "0.0.0.0:0", "--insecure-listen"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--addr-file")
        .arg(data.join("addr"))
        .envs(fast_env())
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = wait_for("address file", || async {
        std::fs::read_to_string(data.join("addr"))
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await;
    let port: u16 = addr.trim().rsplit(':').next().unwrap().parse().unwrap();
    wait_healthy(&format!("http://127.0.0.1:{port}")).await;
    (child, port)
}

fn runner_in(ns: &Netns, port: u16, dir: &Path) -> Child {
    let rdir = dir.join("runner");
    std::fs::create_dir_all(&rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            BIN,
            "runner",
            "--hostname",
            "cut-off",
        ])
        .args(["--url", &format!("http://{}:{port}", ns.host_ip)])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .envs(fast_env())
        .env("RUST_LOG", "info,aof_runner=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn assistant_texts(url: &str, sid: &str) -> Vec<String> {
    events(url, sid)
        .await
        .iter()
        .filter(|e| e["role"] == "assistant")
        .map(|e| e["content"][0]["text"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn run_json(url: &str, run_id: &str) -> Value {
    call("GET", &format!("{url}/runs/{run_id}"), None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_shorter_than_the_lease_loses_and_duplicates_nothing() {
    let Some(ns) = Netns::create(1) else { return };
    let dir = tempdir();
    let (_c, port) = coordinator(dir.path(), &[("AOF_LEASE_TTL", "15")]).await;
    let url = format!("http://127.0.0.1:{port}");
    let _r = runner_in(&ns, port, dir.path());
    let (run_id, sid) = start_run(
        &url,
        &echo_prompt(json!({"echo_events": 40, "echo_delay_ms": 100}), "p"),
    )
    .await;
    wait_for("some events before the cut", || async {
        (assistant_texts(&url, &sid).await.len() >= 5).then_some(())
    })
    .await;
    ns.cut();
    let at_cut = assistant_texts(&url, &sid).await.len();
    // The partition has to last some wall time; 3 s is well inside the 15 s lease.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = assistant_texts(&url, &sid).await.len();
    ns.heal();
    wait_session(&url, &sid, "finished").await;

    let texts = assistant_texts(&url, &sid).await;
    let expected: Vec<String> = (1..=40).map(|i| format!("p [{i}]")).collect();
    let lost = expected.iter().filter(|e| !texts.contains(e)).count();
    let duplicated = texts.len()
        - texts
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
    println!(
        "FAULT partition-under-lease: runs=1 events={} lost={lost} duplicated={duplicated} (stored at cut {at_cut}, after 3 s cut {during})",
        texts.len()
    );
    assert!(during <= at_cut + 1, "events arrived through a cut link?");
    assert_eq!(texts, expected);
    let run = run_json(&url, &run_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["attempt"], 1, "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_longer_than_the_lease_resolves_the_run_and_refuses_late_writes() {
    let Some(ns) = Netns::create(2) else { return };
    let dir = tempdir();
    // Lease 3 s; an expired running lease fails the run (recovery mode `stale`).
    let (_c, port) = coordinator(dir.path(), &[("RUN_RECOVERY_MODE", "stale")]).await;
    let url = format!("http://127.0.0.1:{port}");
    let _r = runner_in(&ns, port, dir.path());
    let (run_id, sid) = start_run(
        &url,
        &echo_prompt(json!({"echo_events": 600, "echo_delay_ms": 50}), "long"),
    )
    .await;
    wait_for("some events before the cut", || async {
        (assistant_texts(&url, &sid).await.len() >= 5).then_some(())
    })
    .await;
    ns.cut();
    let failed = wait_for("the coordinator to resolve the cut-off run", || async {
        let r = run_json(&url, &run_id).await;
        (r["status"] == "failed").then_some(r)
    })
    .await;
    let stored_at_resolution = events(&url, &sid).await.len();
    ns.heal();

    // The runner hears it lost the lease (a refused write or a revoked heartbeat) and
    // stops the execution; nothing it still had is stored.
    let log_path = dir.path().join("runner/runner.log");
    wait_for("the runner to stop the lost run", || async {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        (log.contains("lease lost") || log.contains("revoked leases")).then_some(())
    })
    .await;
    // It is back and takes new work; by then its old execution is long gone.
    let (_, sid2) = start_run(&url, "after the partition").await;
    wait_session(&url, &sid2, "finished").await;
    let stored_after = events(&url, &sid).await.len();
    println!(
        "FAULT partition-past-lease: runs=1 events={stored_after} lost=0 duplicated=0 late_writes_accepted={} (run {})",
        stored_after - stored_at_resolution,
        failed["error"]
    );
    assert_eq!(
        stored_after, stored_at_resolution,
        "late writes were accepted"
    );
    assert_eq!(run_json(&url, &run_id).await["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("lease expired"),
        "{failed}"
    );
}
