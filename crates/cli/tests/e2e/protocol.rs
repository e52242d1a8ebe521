//! Protocol skew: coordinator and runner exchange a protocol version and each refuses,
//! clearly, a peer older than it can handle.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

fn reg_body_for(host: &str) -> Value {
    json!({"hostname": host, "project_dir": "/p", "executor_profile": "echo"})
}

fn reg_body() -> Value {
    reg_body_for("h-proto")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_refuses_a_runner_below_its_protocol_minimum() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = format!("{}/runner/register", c.url);

    let (st, body) = call_h("POST", &url, Some(reg_body()), &[("x-aof-protocol", "0")]).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], "protocol_unsupported", "{body}");
    let msg = body["detail"].as_str().unwrap_or_default();
    assert!(
        msg.contains("protocol 0") && msg.contains("upgrade the runner"),
        "{body}"
    );

    let (st, body) = call_h("POST", &url, Some(reg_body()), &[("x-aof-protocol", "v1")]).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], "invalid_protocol_version", "{body}");
    // Nothing was registered by the refused calls.
    let (_, runners) = call("GET", &format!("{}/runners", c.url), None).await;
    assert_eq!(
        runners["runners"].as_array().map(Vec::len),
        Some(0),
        "{runners}"
    );

    // Ours, a newer one (it decides itself whether it can speak down) and a reference
    // runner without the header are accepted; the answer names our version.
    let cases = [
        &[("x-aof-protocol", "1")][..],
        &[("x-aof-protocol", "99")],
        &[],
    ];
    for (i, headers) in cases.into_iter().enumerate() {
        let body = reg_body_for(&format!("h-ok-{i}"));
        let (st, body) = call_h("POST", &url, Some(body), headers).await;
        assert_eq!(st, 200, "{headers:?}: {body}");
        assert_eq!(body["protocol_version"], 1, "{body}");
    }

    // The long-poll checks too: the coordinator may be upgraded under a running runner.
    let (_, reg) = call("POST", &url, Some(reg_body())).await;
    let rid = reg["runner_id"].as_str().unwrap();
    let poll = format!("{}/runner/runs?runner_id={rid}", c.url);
    let (st, body) = call_h("GET", &poll, None, &[("x-aof-protocol", "0")]).await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], "protocol_unsupported", "{body}");
}

/// A stand-in for a coordinator from before protocol 1 (it answers version 0); every
/// request gets the same registration answer. Returns its URL.
async fn old_coordinator() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let body = json!({
            "runner_id": "lnch_old", "poll_endpoint": "/runner/runs",
            "poll_timeout_seconds": 1, "heartbeat_interval_seconds": 1,
            "protocol_version": 0
        })
        .to_string();
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_refuses_a_coordinator_below_its_protocol_minimum() {
    let dir = tempdir();
    let url = old_coordinator().await;
    let mut r = Runner::start(&url, dir.path(), "skew", &[]).await;
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), r.child.wait())
        .await
        .expect("the runner exits by itself")
        .unwrap();
    assert!(!status.success(), "exit status {status:?}");
    let log = r.log();
    assert!(
        log.contains("speaks protocol 0") && log.contains("upgrade the coordinator"),
        "{log}"
    );
}
