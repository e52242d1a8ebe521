//! The bridge's settings: one TOML file (`aof matrix-bridge --config FILE`), secrets
//! from files or env, never from the TOML text itself and never logged.
//!
//! ```toml
//! [matrix]
//! homeserver = "https://matrix.example.org"
//! user_id = "@aof:example.org"
//! access_token_file = "/run/secrets/matrix-token"   # or env AOF_MATRIX_ACCESS_TOKEN
//!
//! [aof]
//! url = "http://127.0.0.1:8765"
//! api_key_file = "/run/secrets/aof-operator-key"     # or env AOF_API_KEY
//!
//! [bridge]
//! state_dir = "/var/lib/aof-matrix-bridge"
//! agents = ["echo", "coder"]        # the agents chat may address; empty: none
//!
//! [[users]]
//! matrix_id = "@alice:example.org"
//! role = "operator"                 # viewer | operator | admin
//! agents = ["coder"]                # optional: a subset of bridge.agents
//! ```

use std::{
    fmt,
    path::{Path, PathBuf},
};

use aof_wire::auth::Role;
use serde::Deserialize;

/// Env names of the two secrets (used when the file setting is absent).
pub const MATRIX_TOKEN_ENV: &str = "AOF_MATRIX_ACCESS_TOKEN";
pub const AOF_KEY_ENV: &str = "AOF_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Parse(PathBuf, String),
    #[error("{0}")]
    Invalid(String),
}

/// A secret: `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    matrix: MatrixFile,
    #[serde(default)]
    aof: AofFile,
    bridge: BridgeFile,
    #[serde(default)]
    users: Vec<UserFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    homeserver: String,
    user_id: String,
    access_token_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct AofFile {
    url: Option<String>,
    api_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BridgeFile {
    state_dir: PathBuf,
    #[serde(default)]
    agents: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    matrix_id: String,
    role: Role,
    agents: Option<Vec<String>>,
}

/// Who a Matrix user is to AOF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatUser {
    pub role: Role,
    /// The agents this user may address (already narrowed to the bridge's list).
    pub agents: Vec<String>,
}

impl ChatUser {
    /// May start, resume and stop sessions and decide approvals (as the API's operator).
    pub fn may_act(&self) -> bool {
        matches!(self.role, Role::Operator | Role::Admin)
    }
}

#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub homeserver: String,
    pub user_id: String,
    pub access_token: Secret,
    pub aof_url: String,
    pub aof_key: Option<Secret>,
    pub state_dir: PathBuf,
    pub agents: Vec<String>,
    pub users: Vec<(String, ChatUser)>,
}

impl BridgeConfig {
    /// Reads `path`; secrets come from the files it names, else from `env`.
    pub fn load(
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<BridgeConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| ConfigError::Parse(path.to_owned(), e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let secret = |file: &Option<PathBuf>, var: &str| -> Result<Option<Secret>, ConfigError> {
            let raw = match file {
                Some(f) => {
                    let f = base.join(f);
                    Some(std::fs::read_to_string(&f).map_err(|e| ConfigError::Read(f, e))?)
                }
                None => env(var),
            };
            Ok(raw
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(Secret))
        };
        let access_token =
            secret(&file.matrix.access_token_file, MATRIX_TOKEN_ENV)?.ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "no Matrix access token: set matrix.access_token_file or {MATRIX_TOKEN_ENV}"
                ))
            })?;
        let aof_key = secret(&file.aof.api_key_file, AOF_KEY_ENV)?;
        if !file.matrix.user_id.starts_with('@') || !file.matrix.user_id.contains(':') {
            return Err(ConfigError::Invalid(format!(
                "matrix.user_id '{}' is not a Matrix user id (@name:server)",
                file.matrix.user_id
            )));
        }
        let mut users = Vec::new();
        for u in file.users {
            if u.role == Role::Runner {
                return Err(ConfigError::Invalid(format!(
                    "users: {} has role runner; chat users are viewer, operator or admin",
                    u.matrix_id
                )));
            }
            let agents = match u.agents {
                None => file.bridge.agents.clone(),
                Some(list) => {
                    if let Some(bad) = list.iter().find(|a| !file.bridge.agents.contains(a)) {
                        return Err(ConfigError::Invalid(format!(
                            "users: {} may address '{bad}', which is not in bridge.agents",
                            u.matrix_id
                        )));
                    }
                    list
                }
            };
            if users.iter().any(|(id, _)| id == &u.matrix_id) {
                return Err(ConfigError::Invalid(format!(
                    "users: {} is listed twice",
                    u.matrix_id
                )));
            }
            users.push((
                u.matrix_id,
                ChatUser {
                    role: u.role,
                    agents,
                },
            ));
        }
        Ok(BridgeConfig {
            homeserver: file.matrix.homeserver,
            user_id: file.matrix.user_id,
            access_token,
            aof_url: file
                .aof
                .url
                .unwrap_or_else(|| "http://127.0.0.1:8765".into())
                .trim_end_matches('/')
                .to_string(),
            aof_key,
            state_dir: base.join(file.bridge.state_dir),
            agents: file.bridge.agents,
            users,
        })
    }

    /// The allow-list entry of a Matrix user; none for a stranger.
    pub fn user(&self, matrix_id: &str) -> Option<&ChatUser> {
        self.users
            .iter()
            .find(|(id, _)| id == matrix_id)
            .map(|(_, u)| u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<BridgeConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bridge.toml");
        std::fs::write(&path, toml).unwrap();
        std::fs::write(dir.path().join("token"), "syt_secret\n").unwrap();
        BridgeConfig::load(&path, |k| {
            env.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    const BASE: &str = r#"
[matrix]
homeserver = "http://127.0.0.1:8008"
user_id = "@aof:localhost"
access_token_file = "token"
[bridge]
state_dir = "state"
agents = ["echo", "coder"]
[[users]]
matrix_id = "@alice:localhost"
role = "operator"
[[users]]
matrix_id = "@vic:localhost"
role = "viewer"
agents = ["echo"]
"#;

    #[test]
    fn reads_users_and_keeps_the_token_out_of_debug() {
        let c = load(BASE, &[("AOF_API_KEY", "sekrit-aof")]).unwrap();
        assert_eq!(c.access_token.expose(), "syt_secret");
        assert_eq!(c.aof_key.as_ref().unwrap().expose(), "sekrit-aof");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("syt_secret") && !dbg.contains("sekrit-aof"),
            "{dbg}"
        );
        let alice = c.user("@alice:localhost").unwrap();
        assert!(alice.may_act());
        assert_eq!(alice.agents, ["echo", "coder"]);
        let vic = c.user("@vic:localhost").unwrap();
        assert!(!vic.may_act());
        assert_eq!(vic.agents, ["echo"]);
        assert!(c.user("@mallory:localhost").is_none());
    }

    #[test]
    fn refuses_what_would_widen_or_leak() {
        let no_token = BASE.replace("access_token_file = \"token\"\n", "");
        assert!(load(&no_token, &[])
            .unwrap_err()
            .to_string()
            .contains("access token"));
        let from_env = load(&no_token, &[(MATRIX_TOKEN_ENV, "syt_env")]).unwrap();
        assert_eq!(from_env.access_token.expose(), "syt_env");
        let runner = BASE.replace("role = \"viewer\"", "role = \"runner\"");
        assert!(load(&runner, &[])
            .unwrap_err()
            .to_string()
            .contains("runner"));
        let wider = BASE.replace("agents = [\"echo\"]", "agents = [\"root-shell\"]");
        assert!(load(&wider, &[])
            .unwrap_err()
            .to_string()
            .contains("root-shell"));
        let unknown = format!("{BASE}\nextra = 1\n");
        assert!(matches!(load(&unknown, &[]), Err(ConfigError::Parse(..))));
        let bad_id = BASE.replace("@aof:localhost", "aof");
        assert!(load(&bad_id, &[])
            .unwrap_err()
            .to_string()
            .contains("user id"));
    }
}
