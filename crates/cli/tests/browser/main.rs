//! The dashboard in a real headless chromium against real `aof` processes: forms,
//! live timelines over SSE (and their resume after the connection dies), stop,
//! follow-up, approvals, the folded timeline, the 10,000-event window, login with auth
//! on, the audit log, the standalone proxy.
//! Every page visited is checked with axe-core at 375 and 1280 px and screenshotted.
#![allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;
use harness::*;

mod approvals;
mod audit;
mod bench;
mod driver;
mod fleet;
mod flows;
mod login;
mod paging;
mod scale;
mod seed;
mod timeline;

use serde_json::{json, Value};

/// A protocol-speaking runner in the test (no executor): claims, reports and posts
/// events itself, for states the echo executor never produces (an idle session).
pub struct ManualRunner {
    pub url: String,
    pub id: String,
}

impl ManualRunner {
    /// Starts a session only this runner (tag `manual`) takes: its session id.
    pub async fn start_session(url: &str, prompt: &str) -> String {
        let (st, r) = call(
            "POST",
            &format!("{url}/runs"),
            Some(
                json!({"type": "start_session", "parameters": {"prompt": prompt},
                        "additional_demands": {"tags": ["manual"]}}),
            ),
        )
        .await;
        assert_eq!(st, 201, "{r}");
        r["session_id"].as_str().unwrap().to_string()
    }

    pub async fn register(url: &str, tags: &[&str]) -> ManualRunner {
        ManualRunner::register_as(url, tags, "manual", "manual").await
    }

    /// With the host name and executor profile it announces.
    pub async fn register_as(url: &str, tags: &[&str], host: &str, profile: &str) -> ManualRunner {
        let (st, b) = call(
            "POST",
            &format!("{url}/runner/register"),
            Some(json!({"hostname": host, "project_dir": "/manual",
                        "executor_profile": profile, "tags": tags,
                        "executor": {"type": "autonomous"}})),
        )
        .await;
        assert_eq!(st, 200, "{b}");
        ManualRunner {
            url: url.to_string(),
            id: b["runner_id"].as_str().unwrap().to_string(),
        }
    }

    /// Long-polls until a run arrives.
    pub async fn claim(&self) -> Value {
        wait_for("a run for the manual runner", || async {
            let (st, b) = call(
                "GET",
                &format!("{}/runner/runs?runner_id={}", self.url, self.id),
                None,
            )
            .await;
            (st == 200 && b.get("run").is_some()).then(|| b["run"].clone())
        })
        .await
    }

    pub async fn report(&self, run: &Value, what: &str, extra: Value) {
        let run_id = run["run_id"].as_str().unwrap();
        let token = run["lease_token"].as_str().unwrap();
        let mut body = json!({"runner_id": self.id});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (st, b) = call_h(
            "POST",
            &format!("{}/runner/runs/{run_id}/{what}", self.url),
            Some(body),
            &[("x-aof-lease-token", token), ("x-aof-run-id", run_id)],
        )
        .await;
        assert_eq!(st, 200, "{what}: {b}");
    }

    /// Posts one event of `run` as its runner (lease headers); fills in session and time.
    pub async fn post(&self, run: &Value, mut event: Value) {
        let sid = run["session_id"].as_str().unwrap();
        event["session_id"] = json!(sid);
        event["timestamp"] = json!(aof_wire::now_ts());
        let (st, b) = call_h(
            "POST",
            &format!("{}/sessions/{sid}/events", self.url),
            Some(event),
            &[
                ("x-aof-lease-token", run["lease_token"].as_str().unwrap()),
                ("x-aof-run-id", run["run_id"].as_str().unwrap()),
            ],
        )
        .await;
        assert_eq!(st, 201, "{b}");
    }

    pub async fn message(&self, run: &Value, text: &str) {
        let sid = run["session_id"].as_str().unwrap();
        let run_id = run["run_id"].as_str().unwrap();
        let token = run["lease_token"].as_str().unwrap();
        let (st, b) = call_h(
            "POST",
            &format!("{}/sessions/{sid}/events", self.url),
            Some(json!({"event_type": "message", "session_id": sid,
                        "timestamp": aof_wire::now_ts(), "role": "assistant",
                        "content": [{"type": "text", "text": text}]})),
            &[("x-aof-lease-token", token), ("x-aof-run-id", run_id)],
        )
        .await;
        assert_eq!(st, 201, "{b}");
    }
}

/// Ids of every stored event of a session, in order.
pub async fn event_ids(url: &str, sid: &str) -> Vec<i64> {
    events(url, sid)
        .await
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

/// Ids of the timeline rows in the page, in order.
pub async fn row_ids(b: &driver::Browser) -> Vec<i64> {
    let v = b
        .js("[...document.querySelectorAll('#timeline > li')].map(li => Number(li.dataset.id))")
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

pub async fn wait_runner(url: &str) {
    wait_for("a registered runner", || async {
        let (_, b) = call("GET", &format!("{url}/runners"), None).await;
        (!b["runners"].as_array()?.is_empty()).then_some(())
    })
    .await
}
