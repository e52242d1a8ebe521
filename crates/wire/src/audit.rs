//! The audit log on the wire: `GET /audit` entries. An entry says who did what to which
//! resource and how it ended; it never holds a secret or a request body.

use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// What kind of credential acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// An API key (`actor_id` is the key id, `actor_name` its name).
    Key,
    /// An OIDC token (`actor_id` is its subject).
    Oidc,
    /// A run's session token (`actor_id` is the session id).
    Session,
    /// The runner inside `aof up`, with its in-memory key.
    Internal,
    /// No credential: auth is off, or the request was refused before one was accepted.
    Anonymous,
    /// The coordinator itself: an approval it closed (timeout, the run's end).
    Coordinator,
}

impl ActorKind {
    pub const ALL: [ActorKind; 6] = [
        ActorKind::Key,
        ActorKind::Oidc,
        ActorKind::Session,
        ActorKind::Internal,
        ActorKind::Anonymous,
        ActorKind::Coordinator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Key => "key",
            ActorKind::Oidc => "oidc",
            ActorKind::Session => "session",
            ActorKind::Internal => "internal",
            ActorKind::Anonymous => "anonymous",
            ActorKind::Coordinator => "coordinator",
        }
    }
}

impl std::str::FromStr for ActorKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActorKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown actor kind '{s}'"))
    }
}

/// One audited request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Increasing; pass the last one seen as `before` for the next (older) page.
    pub id: i64,
    /// When the request was answered (RFC 3339, UTC).
    pub at: String,
    pub actor_kind: ActorKind,
    /// Key id, OIDC subject or session id; absent for anonymous and internal actors.
    pub actor_id: Option<String>,
    /// The key's name, when it has one.
    pub actor_name: Option<String>,
    /// The role the actor acted with (absent for session tokens and unauthenticated requests).
    pub role: Option<Role>,
    /// Stable name derived from the route, e.g. `run.create`, `key.revoke`, `runner.register`.
    pub action: String,
    /// The resource: the route's id (run, session, key, agent…) or the one created.
    pub target: Option<String>,
    /// The HTTP status of the answer (401/403: refused).
    pub status: u16,
    /// The `x-request-id` of the request (echoed in the response header).
    pub request_id: String,
    /// Peer address of the connection (a proxy's address when behind one).
    pub remote_addr: Option<String>,
}

/// `GET /audit`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}
