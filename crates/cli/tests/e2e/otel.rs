//! OpenTelemetry traces end to end: a real coordinator and runner export over OTLP/HTTP
//! (protobuf) to a real receiver on loopback, which decodes the protocol's own messages.
//! A run is one trace across both services; a child run its agent starts over MCP
//! joins it; without an endpoint nothing is exported and nothing is said about it.

use std::{
    collections::HashMap,
    path::Path,
    process::Stdio,
    sync::{Arc, Mutex},
};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::post, Router};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value::Value as AnyValue,
};
use prost::Message as _;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

use crate::{harness::*, mcp_client::tool};

/// One received span, flattened.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    attrs: HashMap<String, String>,
}

#[derive(Default)]
struct Received {
    requests: usize,
    spans: Vec<Got>,
}

type Shared = Arc<Mutex<Received>>;

/// An OTLP/HTTP trace receiver: `POST /v1/traces` with a protobuf body.
struct Collector {
    url: String,
    got: Shared,
    _server: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn start(addr: &str) -> std::io::Result<Collector> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let got = Shared::default();
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(got.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Ok(Collector {
            url,
            got,
            _server: server,
        })
    }

    fn spans(&self) -> Vec<Got> {
        self.got.lock().unwrap().spans.clone()
    }

    fn requests(&self) -> usize {
        self.got.lock().unwrap().requests
    }

    /// Waits for a span matching `f`.
    async fn span(&self, what: &str, f: impl Fn(&Got) -> bool) -> Got {
        wait_for(what, || async { self.spans().into_iter().find(|s| f(s)) }).await
    }
}

async fn receive(
    State(got): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/x-protobuf"
    );
    let req = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf trace request");
    let mut got = got.lock().unwrap();
    got.requests += 1;
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            got.spans.push(Got {
                service: service.clone(),
                name: span.name,
                trace: hex(&span.trace_id),
                id: hex(&span.span_id),
                parent: hex(&span.parent_span_id),
                attrs: span
                    .attributes
                    .iter()
                    .filter_map(|kv| {
                        Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?)?))
                    })
                    .collect(),
            });
        }
    }
    axum::http::StatusCode::OK
}

fn text(v: &AnyValue) -> Option<String> {
    match v {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        AnyValue::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The spans from `id` up through its parents (as far as they were received).
fn chain(spans: &[Got], id: &str) -> Vec<Got> {
    let mut out = Vec::new();
    let mut cur = id.to_string();
    while let Some(s) = spans.iter().find(|s| s.id == cur) {
        out.push(s.clone());
        cur = s.parent.clone();
    }
    out
}

/// The agent: prints its `TRACEPARENT`, then (prompt `wait`) waits for `go` in `dir`.
fn agent_args(dir: &Path) -> Vec<String> {
    let script = format!(
        r#"read p; echo "tp $TRACEPARENT"; case "$p" in wait*) while [ ! -f "{d}/go" ]; do sleep 0.05; done;; esac; echo "done: $p""#,
        d = dir.display()
    );
    vec![
        "--executor".into(),
        "command".into(),
        "--command".into(),
        format!("sh -c '{}'", script.replace('\'', "'\\''")),
    ]
}

/// OTel settings from the environment the tests run in must not leak into the processes.
const OTEL_VARS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "AOF_OTEL_ENDPOINT",
    "AOF_OTEL_TRACES_ENDPOINT",
    "AOF_OTEL_SERVICE_NAME",
];

fn otel_env(collector: Option<&str>) -> Vec<(String, String)> {
    let mut env = fast_env();
    if let Some(url) = collector {
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT".into(), url.into()));
        // Export batches quickly; the default waits 5 s.
        env.push(("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()));
    }
    env
}

fn runner(url: &str, dir: &Path, env: &[(String, String)]) -> Child {
    let rdir = dir.join("r1");
    std::fs::create_dir_all(&rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["runner", "--url", url, "--hostname", "r1"])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .args(agent_args(dir))
        .envs(env.iter().cloned())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    for v in OTEL_VARS {
        if !env.iter().any(|(k, _)| k == v) {
            cmd.env_remove(v);
        }
    }
    cmd.spawn().expect("spawn runner")
}

async fn coordinator(dir: &Path, env: Vec<(String, String)>) -> Coordinator {
    // The harness passes our env on; clear inherited OTel settings the env does not set.
    let mut env = env;
    for v in OTEL_VARS {
        if !env.iter().any(|(k, _)| k == *v) {
            env.push((v.to_string(), String::new()));
        }
    }
    Coordinator::start(dir, env).await
}

async fn start_plain(url: &str, prompt: &str) -> (String, String) {
    let (st, b) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "parameters": {"prompt": prompt}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    (
        b["run_id"].as_str().unwrap().to_string(),
        b["session_id"].as_str().unwrap().to_string(),
    )
}

/// The `TRACEPARENT` line the agent printed.
async fn agent_traceparent(url: &str, sid: &str) -> String {
    wait_for("the agent's TRACEPARENT line", || async {
        events(url, sid).await.iter().find_map(|e| {
            e["content"][0]["text"]
                .as_str()?
                .strip_prefix("tp")
                .map(|t| t.trim().to_string())
        })
    })
    .await
}

/// An MCP client acting as session `sid`, optionally sending `traceparent`.
async fn mcp_as(url: &str, sid: &str, traceparent: Option<&str>) -> crate::mcp_client::Mcp {
    use rmcp::{
        transport::{
            streamable_http_client::StreamableHttpClientTransportConfig,
            StreamableHttpClientTransport,
        },
        ServiceExt,
    };
    let mut headers = HashMap::new();
    headers.insert(
        http::HeaderName::from_static("x-agent-session-id"),
        http::HeaderValue::from_str(sid).unwrap(),
    );
    if let Some(tp) = traceparent {
        headers.insert(
            http::HeaderName::from_static("traceparent"),
            http::HeaderValue::from_str(tp).unwrap(),
        );
    }
    let cfg =
        StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).custom_headers(headers);
    ().serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .expect("MCP initialize")
}

async fn start_child(mcp: &crate::mcp_client::Mcp, prompt: &str) -> (String, String) {
    let (err, v) = tool(
        mcp,
        "start_agent_session",
        json!({"prompt": prompt, "mode": "async_poll"}),
    )
    .await;
    assert!(!err, "{v}");
    (
        v["run_id"].as_str().unwrap().to_string(),
        v["session_id"].as_str().unwrap().to_string(),
    )
}

fn no_otel_complaints(log: &str) {
    for line in log.lines() {
        let l = line.to_ascii_lowercase();
        assert!(
            !(l.contains("opentelemetry") || l.contains("otlp"))
                || !(l.contains("warn") || l.contains("error")),
            "unexpected OpenTelemetry complaint: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_and_the_child_its_agent_starts_are_one_trace_across_services() {
    let dir = tempdir();
    let collector = Collector::start("127.0.0.1:0").await.unwrap();
    let env = otel_env(Some(&collector.url));
    let c = coordinator(dir.path(), env.clone()).await;
    let mut r = runner(&c.url, dir.path(), &env);

    let (run_id, sid) = start_plain(&c.url, "wait").await;
    // The agent got its execution's context in TRACEPARENT.
    let agent_tp = agent_traceparent(&c.url, &sid).await;
    let fields: Vec<&str> = agent_tp.split('-').collect();
    assert_eq!(fields.len(), 4, "{agent_tp:?}");
    let (trace, agent_parent) = (fields[1].to_string(), fields[2].to_string());
    // Two children while the parent runs: one whose MCP request carries the agent's
    // traceparent, one without (an agent that does not propagate): both join the trace.
    let (child_run, child_sid) =
        start_child(&mcp_as(&c.url, &sid, Some(&agent_tp)).await, "child").await;
    let (plain_run, plain_sid) = start_child(&mcp_as(&c.url, &sid, None).await, "plain").await;
    wait_session(&c.url, &child_sid, "finished").await;
    wait_session(&c.url, &plain_sid, "finished").await;
    std::fs::write(dir.path().join("go"), "").unwrap();
    wait_session(&c.url, &sid, "finished").await;

    // The parent run: coordinator's creation, under the POST /runs request span …
    let create = collector
        .span("the coordinator's run.create span", |s| {
            s.name == "run.create" && s.attrs.get("aof.run.id") == Some(&run_id)
        })
        .await;
    assert_eq!(create.service, "aof-coordinator");
    assert_eq!(
        create.trace, trace,
        "the agent's context is the run's trace"
    );
    let request = collector
        .span("the POST /runs request span", |s| s.id == create.parent)
        .await;
    assert_eq!(request.name, "POST /runs");
    assert_eq!(request.service, "aof-coordinator");
    // … then the runner's execution span, a child of the creation, whose context the
    // agent received.
    let exec = collector
        .span("the runner's run span", |s| {
            s.name == "run" && s.attrs.get("aof.run.id") == Some(&run_id)
        })
        .await;
    assert_eq!(exec.service, "aof-runner");
    assert_eq!(
        (exec.trace.as_str(), exec.parent.as_str()),
        (trace.as_str(), create.id.as_str())
    );
    assert_eq!(exec.id, agent_parent);
    // The runner's reports carry the context: the coordinator's request spans for them
    // are in the trace, under the execution span.
    let started = collector
        .span("the coordinator's span for the runner's `started`", |s| {
            s.name == "POST /runner/runs/{run_id}/started" && s.trace == trace
        })
        .await;
    assert_eq!(started.parent, exec.id);

    // The child started with the agent's traceparent: its creation is under the
    // agent's execution span, and its own execution under its creation.
    for (run, what) in [(&child_run, "propagated"), (&plain_run, "not propagated")] {
        let child_create = collector
            .span("the child's run.create span", |s| {
                s.name == "run.create" && s.attrs.get("aof.run.id") == Some(run)
            })
            .await;
        assert_eq!(
            child_create.trace, trace,
            "child ({what}) in the parent's trace"
        );
        let child_exec = collector
            .span("the child's run span", |s| {
                s.name == "run" && s.attrs.get("aof.run.id") == Some(run)
            })
            .await;
        assert_eq!(child_exec.trace, trace);
        assert_eq!(child_exec.parent, child_create.id);
        let spans = collector.spans();
        let up: Vec<String> = chain(&spans, &child_exec.id)
            .iter()
            .map(|s| s.id.clone())
            .collect();
        if what == "propagated" {
            assert!(
                up.contains(&exec.id),
                "{what}: {up:?} reaches the parent's execution"
            );
        } else {
            // Without a propagated context the coordinator puts it under the parent
            // run's creation.
            assert_eq!(child_create.parent, create.id, "{what}");
        }
        assert!(
            up.contains(&create.id),
            "{what}: {up:?} reaches the parent's creation"
        );
    }
    assert!(collector
        .spans()
        .iter()
        .all(|s| s.service == "aof-coordinator" || s.service == "aof-runner"));

    // Shutdown flushes: the runner's long-lived heartbeat span ends only then.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(r.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(PATIENCE, r.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    collector
        .span("the runner's heartbeat span, flushed at shutdown", |s| {
            s.service == "aof-runner" && s.name == "heartbeat"
        })
        .await;
    no_otel_complaints(&c.log());
    no_otel_complaints(&std::fs::read_to_string(dir.path().join("r1/runner.log")).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_nothing_is_exported_or_propagated_and_nothing_said() {
    let dir = tempdir();
    // On the SDK's default port, so a process exporting by default would be seen; if
    // something else holds that port, the other checks still stand.
    let collector = Collector::start("127.0.0.1:4318").await.ok();
    let env = otel_env(None);
    let c = coordinator(dir.path(), env.clone()).await;
    let _r = runner(&c.url, dir.path(), &env);

    let (run_id, sid) = start_plain(&c.url, "hello").await;
    assert_eq!(agent_traceparent(&c.url, &sid).await, "", "no TRACEPARENT");
    wait_session(&c.url, &sid, "finished").await;
    let (_, run) = call("GET", &format!("{}/runs/{run_id}", c.url), None).await;
    assert_eq!(run.get("traceparent"), None::<&Value>);
    if let Some(col) = &collector {
        assert_eq!(col.requests(), 0, "nothing exported");
    }
    for log in [
        c.log(),
        std::fs::read_to_string(dir.path().join("r1/runner.log")).unwrap(),
    ] {
        assert!(!log.contains("exporting traces"), "{log}");
        no_otel_complaints(&log);
    }
}
