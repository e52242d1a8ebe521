//! A typed client over `aof-wire` for the happy paths (create, claim, read back), and
//! raw calls for what a typed client cannot send: bad input, missing fields, wrong
//! headers. Both return what the coordinator answered, so tests assert on it.

use aof_wire::{
    api::StatusResponse,
    runner::{PollResponse, RegisterRequest, RegisterResponse},
    Run, RunCreate, RunCreateResponse,
};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

/// A refused typed call: the status and the error body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

/// Typed calls to one coordinator.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            http: client(),
            base: base.trim_end_matches('/').to_string(),
        }
    }

    /// `method path` with a JSON body; a 2xx body is read as `T`, anything else is
    /// [`Refused`].
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Refused> {
        let mut rb = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            serde_json::from_str(&text)
                .map_err(|e| panic!("{method} {path}: {status} {text}: not the wire type: {e}"))
        } else {
            Err(Refused {
                status,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
            })
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Refused> {
        self.send("GET", path, None::<&()>).await
    }

    pub async fn create_run(&self, body: &RunCreate) -> Result<RunCreateResponse, Refused> {
        self.send("POST", "/runs", Some(body)).await
    }

    pub async fn run(&self, run_id: &str) -> Result<Run, Refused> {
        self.get(&format!("/runs/{run_id}")).await
    }

    pub async fn session_status(&self, sid: &str) -> Result<StatusResponse, Refused> {
        self.get(&format!("/sessions/{sid}/status")).await
    }

    pub async fn register(&self, body: &RegisterRequest) -> Result<RegisterResponse, Refused> {
        self.send("POST", "/runner/register", Some(body)).await
    }

    /// One long-poll; `None` when it ended empty (204).
    pub async fn poll(&self, runner_id: &str) -> Result<Option<PollResponse>, Refused> {
        let resp = self
            .http
            .get(format!("{}/runner/runs?runner_id={runner_id}", self.base))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            204 => Ok(None),
            200 => Ok(Some(resp.json().await.expect("a PollResponse"))),
            status => Err(Refused {
                status,
                body: resp.json().await.unwrap_or(Value::Null),
            }),
        }
    }
}

pub use aof_testkit::http::{call, call_h, call_raw, client};

/// Starts a session (agent `t`, `prompt`); returns (run_id, session_id).
pub async fn start_run(url: &str, prompt: &str) -> (String, String) {
    let body: RunCreate = serde_json::from_value(
        json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": prompt}}),
    )
    .unwrap();
    let created = Client::new(url)
        .create_run(&body)
        .await
        .unwrap_or_else(|r| panic!("POST /runs: {r:?}"));
    (created.run_id, created.session_id)
}

/// A session's status, `""` when it cannot be read.
pub async fn session_status(url: &str, sid: &str) -> String {
    Client::new(url)
        .session_status(sid)
        .await
        .map(|s| s.status)
        .unwrap_or_default()
}

/// A session's events as sent (the tests look at their JSON, unknown fields included).
pub async fn events(url: &str, sid: &str) -> Vec<Value> {
    let (st, b) = call("GET", &format!("{url}/sessions/{sid}/events"), None).await;
    assert_eq!(st, 200, "{b}");
    b["events"].as_array().cloned().unwrap_or_default()
}

/// Registers a protocol-speaking test runner (a real HTTP client, no executor).
pub async fn register(url: &str, host: &str) -> String {
    let body = RegisterRequest {
        hostname: host.into(),
        project_dir: "/p".into(),
        executor_profile: "test".into(),
        executor: json!({"type": "autonomous"}).as_object().cloned(),
        ..RegisterRequest::default()
    };
    Client::new(url)
        .register(&body)
        .await
        .unwrap_or_else(|r| panic!("POST /runner/register: {r:?}"))
        .runner_id
}

pub use aof_testkit::sse::Sse;
