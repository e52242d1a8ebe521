//! Auth bodies: API key roles, key creation and listing (never with secrets after the
//! creation answer), browser login.

use serde::{Deserialize, Serialize};

/// What an API key (or an OIDC user) may do. A run's session token is not a key role:
/// it is minted by the coordinator per run, see SECURITY.md.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything except keys.
    Viewer,
    /// Viewer, plus: creates runs, stops and deletes sessions, edits agents.
    Operator,
    /// Registers runners, claims runs, writes to runs it holds. Reads nothing.
    Runner,
    /// Everything, including managing keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Runner, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Runner => "runner",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown role '{s}' (admin, operator, viewer or runner)"))
    }
}

/// `POST /auth/keys`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyCreate {
    pub role: Role,
    #[serde(default)]
    pub name: Option<String>,
}

/// A key as listed: the public prefix, never the secret nor its hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyInfo {
    pub id: String,
    pub name: Option<String>,
    pub role: Role,
    /// The public start of the key (`aof_<id>_`), to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// The answer to `POST /auth/keys`: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyCreated {
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The whole key. Store it now: only its hash is kept.
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// `POST /auth/login`: trades a key for an HttpOnly cookie.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct LoginRequest {
    pub key: String,
}

/// `GET /auth/me` and the login answer: who the caller is.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Whoami {
    /// admin, operator, viewer, runner, or `session` for a run's session token.
    pub role: String,
    /// Key id, OIDC subject, or the session id for a session token.
    pub subject: Option<String>,
    pub auth_enabled: bool,
}
