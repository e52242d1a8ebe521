//! The orchestrator MCP server at `/mcp` (streamable HTTP): agents list blueprints and
//! start, resume, watch and stop other agents' sessions. Tool names follow the AOF
//! reference, so agents written for it work unchanged. `approval_prompt` is the Claude
//! CLI's permission prompt (issue #25, `crate::approvals::prompt`).
//!
//! Who calls: the auth middleware has already put a `Principal` on the request. A run's
//! session token acts as its session (children it starts get it as parent; it may only
//! look at and steer its own children). Other callers may name their session in
//! `X-Agent-Session-Id` (how runners identify the agent when auth is off).

mod tools;

use aof_wire::error::ErrorCode;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::Principal,
    error::{ApiError, ApiResult},
    AppState,
};

/// Header naming the calling agent's session when there is no session token.
pub const SESSION_HEADER: &str = "x-agent-session-id";

/// The tower service mounted at `/mcp`.
pub fn service(
    st: AppState,
    shutdown: CancellationToken,
) -> StreamableHttpService<tools::Orchestrator, LocalSessionManager> {
    // rmcp's own DNS-rebinding check stays on, with the hosts our Host check allows on
    // `/mcp` (`auth::browser`, which refuses first, with a JSON error): loopback plus
    // `coordinator.allowed_hosts`. Where agents reach us by another name or IP
    // (`coordinator` in compose, the Service in Kubernetes), it must be listed there.
    let hosts = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(str::to_string)
        .chain(st.cfg.allowed_hosts.iter().cloned());
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown)
        .with_allowed_hosts(hosts);
    StreamableHttpService::new(
        move || Ok(tools::Orchestrator::new(st.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// The caller as the tools see it.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub principal: Principal,
    /// The session the caller acts as, if any (parent of what it starts).
    pub session: Option<String>,
}

impl Caller {
    pub fn from_parts(parts: &http::request::Parts) -> Caller {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .unwrap_or(Principal::Open);
        let session = match &principal {
            Principal::Session { session_id, .. } => Some(session_id.clone()),
            _ => parts
                .headers
                .get(SESSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| crate::runs::valid_id(v))
                .map(str::to_string),
        };
        Caller { principal, session }
    }

    fn is_session_token(&self) -> bool {
        matches!(self.principal, Principal::Session { .. })
    }

    /// A session token may only look at and steer its own children. Same answer for
    /// "not yours" and "absent": a token learns nothing of other sessions.
    pub fn check_owns(&self, session: &aof_wire::Session) -> ApiResult<()> {
        if !self.is_session_token() || session.parent_session_id == self.session {
            Ok(())
        } else {
            Err(ApiError::NotFound(
                format!(
                    "Session '{}' not found among this session's children",
                    session.session_id
                ),
                ErrorCode::SessionNotFound,
            ))
        }
    }
}
