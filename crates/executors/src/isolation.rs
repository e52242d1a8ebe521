//! What an agent process may see of the runner: the one place that decides who agent
//! processes run as (`AgentUser`, `runner.agent_user`) and which environment they start
//! with (`environment`). Every process-based executor (`command`, `claude_code`) builds
//! its child through `process::command` and `environment`; `model_api` and `echo`
//! start no process.
//!
//! The environment is an allow-list: a small base (`BASE_ENV`, `LC_*`), what the
//! executor itself needs (e.g. the Claude CLI's `ANTHROPIC_*`), the variables the
//! runner's operator names (`runner.agent_env`), then the run's own (session token,
//! trace context, job). Never the runner's settings and credentials (`AOF_*`: the API
//! key, the database URL), nor anything else it inherited (cloud credentials…).
//!
//! Running agents as another user is what keeps them out of the runner's own process:
//! an agent of the runner's uid can read `/proc/<runner>/environ` (the runner's key)
//! whatever its environment holds. `AgentUser` makes every agent process switch to that
//! uid/gid at spawn (supplementary groups are dropped: std clears them when a uid is
//! set); the runner must start as root to do it and refuses to start otherwise.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use crate::ProcessLimits;

/// Variables of the runner's environment every agent process gets, by exact name.
pub const BASE_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Prefixes of the base (locale categories).
pub const BASE_ENV_PREFIX: &[&str] = &["LC_"];

/// The run's own variables, set by the runner and the executors; the only `AOF_*`
/// names an agent ever sees.
pub const SESSION_ENV: &[&str] = &[
    "AOF_SESSION_TOKEN",
    "AOF_SESSION_ID",
    "AOF_RUN_ID",
    "AOF_AGENT_NAME",
    "AOF_PROMPT",
    "AOF_PARAMETERS",
    "AOF_SYSTEM_PROMPT",
    "AOF_BLUEPRINT",
];

/// Whether a variable may never be passed from the runner's environment, whoever names
/// it: AOF's own settings carry the runner's credentials (`AOF_API_KEY`,
/// `AOF_DATABASE_URL`).
pub fn never_passed(name: &str) -> bool {
    name.starts_with("AOF_")
}

/// What one executor adds to the base allow-list.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ExecutorEnv {
    pub names: &'static [&'static str],
    pub prefixes: &'static [&'static str],
}

/// How this runner starts agent processes: their user, their limits and the runner
/// variables its operator lets them see. One per runner, in every `ExecCx`.
#[derive(Debug, Clone, Default)]
pub struct AgentProcess {
    pub limits: ProcessLimits,
    /// `runner.agent_user`: run every agent process as this user.
    pub user: Option<AgentUser>,
    /// `runner.agent_env`: variables of the runner's environment passed to agents
    /// besides the base allow-list (never `AOF_*`).
    pub pass_env: Vec<String>,
}

/// A user agent processes run as (`runner.agent_user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUser {
    pub uid: u32,
    pub gid: u32,
    /// From the password database, when the user has an entry.
    pub name: Option<String>,
    /// The user's home directory, when it has one that exists.
    pub home: Option<PathBuf>,
}

impl AgentUser {
    /// Resolve `spec` — a user name, `uid` or `uid:gid` — against the password database
    /// and check that this process may switch to it (it runs as root). Blocking (NSS
    /// lookups): call once at start, off the async threads. The error says what to do.
    pub fn resolve(spec: &str) -> Result<AgentUser, String> {
        use nix::unistd::{Uid, User};
        let spec = spec.trim();
        let bad = |m: String| format!("runner.agent_user {spec:?}: {m}");
        let entry = |u: Option<User>| {
            u.map(|u| {
                let home = Some(u.dir).filter(|d| d.is_dir());
                (u.name, u.uid.as_raw(), u.gid.as_raw(), home)
            })
        };
        let number = |s: &str| s.parse::<u32>().ok();
        let user = match spec.split_once(':') {
            Some((u, g)) => {
                let (Some(uid), Some(gid)) = (number(u), number(g)) else {
                    return Err(bad("expected a user name, `uid` or `uid:gid`".into()));
                };
                let known = entry(User::from_uid(Uid::from_raw(uid)).ok().flatten());
                AgentUser {
                    uid,
                    gid,
                    name: known.as_ref().map(|k| k.0.clone()),
                    home: known.and_then(|k| k.3),
                }
            }
            None => {
                let found = match number(spec) {
                    Some(uid) => User::from_uid(Uid::from_raw(uid)),
                    None if !spec.is_empty() => User::from_name(spec),
                    None => return Err(bad("is empty".into())),
                }
                .map_err(|e| bad(format!("cannot read the password database: {e}")))?;
                match (entry(found), number(spec)) {
                    (Some((name, uid, gid, home)), _) => AgentUser {
                        uid,
                        gid,
                        name: Some(name),
                        home,
                    },
                    // A bare uid without an entry: its own number as the group.
                    (None, Some(uid)) => AgentUser {
                        uid,
                        gid: uid,
                        name: None,
                        home: None,
                    },
                    (None, None) => return Err(bad("no such user".into())),
                }
            }
        };
        if user.uid == 0 || user.gid == 0 {
            return Err(bad(
                "agents must not run as root (uid or gid 0); name an unprivileged user".into(),
            ));
        }
        let me = nix::unistd::geteuid();
        if me.as_raw() == user.uid {
            return Err(bad(format!(
                "is the runner's own user (uid {}): agents could read the runner's environment \
                 (its API key) from /proc; name another user",
                user.uid
            )));
        }
        if !me.is_root() {
            return Err(bad(format!(
                "the runner runs as uid {} and cannot switch agent processes to uid {}: start \
                 `aof runner` as root (it drops each agent to runner.agent_user), or unset \
                 runner.agent_user and run each runner in its own container or as its own user",
                me.as_raw(),
                user.uid
            )));
        }
        user.probe().map_err(|e| {
            bad(format!(
                "the runner runs as root but cannot start a process as uid {}:{} ({e}); a \
                 container without CAP_SETUID/CAP_SETGID cannot switch users: unset \
                 runner.agent_user and run each runner in its own container instead",
                user.uid, user.gid
            ))
        })?;
        Ok(user)
    }

    /// Start `true` as this user: proves the switch works here (capabilities, no
    /// `no_new_privs` surprises) before any agent depends on it.
    fn probe(&self) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let status = std::process::Command::new("true")
            .uid(self.uid)
            .gid(self.gid)
            .current_dir("/")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("`true` exited with {status}"))
        }
    }

    /// Make `cmd` start as this user (primary group `gid`, no supplementary groups).
    pub(crate) fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.uid(self.uid).gid(self.gid);
    }

    /// Give `path` (not following a symlink) to this user.
    pub fn chown(&self, path: &Path) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }

    /// Give `path` and everything under it to this user, never following symlinks.
    /// Blocking.
    pub fn chown_tree(&self, path: &Path) -> std::io::Result<()> {
        self.chown(path)?;
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(path)? {
                self.chown_tree(&entry?.path())?;
            }
        }
        Ok(())
    }

    /// Whether this user may enter `dir` and every directory above it (search
    /// permission by owner, group or others), judged from the mode bits. The first one
    /// it may not enter, if any.
    pub fn blocked_on(&self, dir: &Path) -> Option<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let dir = std::fs::canonicalize(dir).ok()?;
        dir.ancestors()
            .find(|d| {
                std::fs::metadata(d).is_ok_and(|m| {
                    let bit = if m.uid() == self.uid {
                        0o100
                    } else if m.gid() == self.gid {
                        0o010
                    } else {
                        0o001
                    };
                    m.mode() & bit == 0
                })
            })
            .map(Path::to_path_buf)
    }
}

/// Create `dir` (and its parents) if missing, make it 0700 and, with an agent user,
/// that user's: a directory only this session's agent may enter. Blocking.
pub fn private_dir(dir: &Path, user: Option<&AgentUser>) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::symlink_metadata(dir)?.file_type().is_symlink() {
        return Err(std::io::Error::other(format!(
            "{} is a symlink; refusing it",
            dir.display()
        )));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    match user {
        Some(u) => u.chown(dir),
        None => Ok(()),
    }
}

/// The environment of an agent process: the allow-listed part of `inherited` (the
/// runner's environment: the base, what `executor` needs, `agent.pass_env`), the agent
/// user's identity when it has one (`HOME`, `USER`, `LOGNAME`; `HOME` falls back to
/// `session_dir`), then `run_env` (the run's variables from the runner). Executors add
/// the job's own variables after this. `AOF_*` from `inherited` never gets through.
pub(crate) fn environment(
    inherited: impl IntoIterator<Item = (String, String)>,
    executor: ExecutorEnv,
    agent: &AgentProcess,
    session_dir: &Path,
    run_env: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let allowed = |k: &str| {
        BASE_ENV.contains(&k)
            || BASE_ENV_PREFIX.iter().any(|p| k.starts_with(p))
            || executor.names.contains(&k)
            || executor.prefixes.iter().any(|p| k.starts_with(p))
            || agent.pass_env.iter().any(|n| n == k)
    };
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, _)| allowed(k) && !never_passed(k))
        .collect();
    if let Some(user) = &agent.user {
        let home = user.home.as_deref().unwrap_or(session_dir);
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
        match &user.name {
            Some(name) => {
                env.insert("USER".into(), name.clone());
                env.insert("LOGNAME".into(), name.clone());
            }
            None => {
                env.remove("USER");
                env.remove("LOGNAME");
            }
        }
    }
    // The runner's own run variables: only the session's (never its key).
    env.extend(
        run_env
            .iter()
            .filter(|(k, _)| !never_passed(k) || SESSION_ENV.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    env
}

#[cfg(test)]
mod tests;
