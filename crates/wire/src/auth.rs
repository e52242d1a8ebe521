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
    /// AOF-RS, runner keys only: its runners may carry only these tags, and it claims
    /// only runs whose demanded tags are all among them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// AOF-RS, runner keys only: it claims only runs of these agents.
    #[serde(default)]
    pub agents: Vec<String>,
}

impl KeyCreate {
    /// The scope asked for, not yet validated.
    pub fn scope(&self) -> KeyScope {
        KeyScope {
            tags: self.tags.clone(),
            agents: self.agents.clone(),
        }
    }
}

/// What a `runner` key may serve (AOF-RS). An empty list is no limit. `tags`: its runners
/// may carry only these tags (registration with any other is refused) and it claims only
/// runs whose demanded tags are all among them. `agents`: it claims only runs of these
/// agents (a run without an agent too is left for other runners).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct KeyScope {
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub agents: Vec<String>,
}

/// At most this many tags and this many agents in a key's scope.
pub const MAX_SCOPE_ENTRIES: usize = 100;

impl KeyScope {
    pub fn is_unlimited(&self) -> bool {
        self.tags.is_empty() && self.agents.is_empty()
    }

    /// May a key with this scope serve a run of `agent` demanding `tags`?
    pub fn allows(&self, agent: Option<&str>, tags: &[String]) -> bool {
        let agent_ok =
            self.agents.is_empty() || agent.is_some_and(|a| self.agents.iter().any(|x| x == a));
        agent_ok
            && tags
                .iter()
                .all(|t| self.tags.is_empty() || self.tags.contains(t))
    }

    /// Tags a runner registered with this key may not carry (empty: all allowed).
    pub fn foreign_tags<'a>(&self, runner_tags: &'a [String]) -> Vec<&'a str> {
        if self.tags.is_empty() {
            return Vec::new();
        }
        runner_tags
            .iter()
            .filter(|t| !self.tags.contains(t))
            .map(String::as_str)
            .collect()
    }

    /// Checks a scope for a key of `role`, trimming and de-duplicating its entries.
    pub fn validated(self, role: Role) -> Result<KeyScope, String> {
        if self.is_unlimited() {
            return Ok(self);
        }
        if role != Role::Runner {
            return Err(format!(
                "tags and agents limit runner keys only, not {role} keys"
            ));
        }
        let clean = |what: &str, list: Vec<String>| -> Result<Vec<String>, String> {
            let mut out: Vec<String> = Vec::new();
            for v in list {
                let v = v.trim().to_string();
                if v.is_empty() || v.len() > 200 {
                    return Err(format!("each of {what} must be 1 to 200 characters"));
                }
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            if out.len() > MAX_SCOPE_ENTRIES {
                return Err(format!("at most {MAX_SCOPE_ENTRIES} {what}"));
            }
            Ok(out)
        };
        Ok(KeyScope {
            tags: clean("tags", self.tags)?,
            agents: clean("agents", self.agents)?,
        })
    }
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
    /// AOF-RS: a runner key's tags (see `KeyScope`; empty: no limit).
    #[serde(default)]
    pub tags: Vec<String>,
    /// AOF-RS: a runner key's agents (empty: no limit).
    #[serde(default)]
    pub agents: Vec<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(tags: &[&str], agents: &[&str]) -> KeyScope {
        KeyScope {
            tags: tags.iter().map(|s| s.to_string()).collect(),
            agents: agents.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_scope_allows_only_its_agents_and_tags() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let any = KeyScope::default();
        assert!(any.allows(None, &tags(&["x"])));
        let s = scope(&["gpu"], &["a", "b"]);
        assert!(s.allows(Some("a"), &[]));
        assert!(s.allows(Some("b"), &tags(&["gpu"])));
        assert!(!s.allows(Some("c"), &[]), "agent outside the scope");
        assert!(!s.allows(None, &[]), "a run without an agent");
        assert!(!s.allows(Some("a"), &tags(&["gpu", "eu"])), "tag outside");
        assert_eq!(s.foreign_tags(&tags(&["gpu", "eu"])), ["eu"]);
        assert!(any.foreign_tags(&tags(&["eu"])).is_empty());
    }

    #[test]
    fn only_runner_keys_take_a_scope() {
        let s = scope(&[" gpu", "gpu"], &[]);
        assert_eq!(s.clone().validated(Role::Runner).unwrap().tags, ["gpu"]);
        for role in [Role::Admin, Role::Operator, Role::Viewer] {
            assert!(s.clone().validated(role).is_err(), "{role}");
            assert!(KeyScope::default().validated(role).is_ok(), "{role}");
        }
        assert!(scope(&[""], &[]).validated(Role::Runner).is_err());
        let body: KeyCreate = serde_json::from_str(r#"{"role":"runner","agents":["a"]}"#).unwrap();
        assert_eq!(body.scope(), scope(&[], &["a"]));
    }
}
