//! A real MCP tool server (rmcp, streamable HTTP at `/mcp`) for executor tests: `add`
//! adds two integers; `wait_forever` never answers (for stop tests). Every call is
//! recorded, with the request's `x-test-token` header, so tests can assert that the
//! blueprint's headers reached the server.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use rmcp::{
    handler::server::{tool::Extension, wrapper::Parameters},
    schemars::{self, JsonSchema},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ServerHandler,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// One tool call the server received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub tool: String,
    pub arguments: Value,
    /// The `x-test-token` header of the request, if any.
    pub token: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// First addend.
    pub a: i64,
    /// Second addend.
    pub b: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct WaitArgs {}

#[derive(Clone)]
pub struct Calculator {
    calls: Arc<Mutex<Vec<Call>>>,
}

fn token(parts: &http::request::Parts) -> Option<String> {
    parts
        .headers
        .get("x-test-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tool_router]
impl Calculator {
    #[tool(description = "Add two integers a and b and return their sum.")]
    async fn add(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(p): Parameters<AddArgs>,
    ) -> String {
        self.calls.lock().expect("not poisoned").push(Call {
            tool: "add".into(),
            arguments: json!({"a": p.a, "b": p.b}),
            token: token(&parts),
        });
        (p.a + p.b).to_string()
    }

    #[tool(description = "Wait for an event that never comes (for stop tests).")]
    async fn wait_forever(
        &self,
        Extension(parts): Extension<http::request::Parts>,
        Parameters(_): Parameters<WaitArgs>,
    ) -> String {
        self.calls.lock().expect("not poisoned").push(Call {
            tool: "wait_forever".into(),
            arguments: json!({}),
            token: token(&parts),
        });
        std::future::pending::<()>().await;
        String::new()
    }
}

#[tool_handler(name = "calculator", instructions = "Integer arithmetic.")]
impl ServerHandler for Calculator {}

/// A running calculator MCP server on `127.0.0.1`; stops when dropped.
pub struct ToolServer {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ToolServer {
    pub async fn start() -> std::io::Result<ToolServer> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        let service = StreamableHttpService::new(
            move || Ok(Calculator { calls: c.clone() }),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ToolServer { addr, calls, task })
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("not poisoned").clone()
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
