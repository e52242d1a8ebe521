//! Per-session working directories under the runner's workspace root: created private
//! (0700), optionally a git worktree on branch `aof/<session_id>`, reused when the
//! session resumes, removed by the cleanup policy or the age sweep. Nothing outside the
//! root is ever deleted: names are checked, symlinks are not followed, and every path is
//! canonicalized and checked to be inside the root before it is removed.
//!
//! Each session also gets a private state dir, `<root>/.sessions/<session_id>` (0700),
//! for what its agent reads besides its work (the Claude CLI's config and transcripts,
//! the run's MCP config with its session token); it is kept when the workspace goes.
//! With an agent user (`runner.agent_user`) both belong to that user, and the root and
//! `.sessions` are 0711: agents reach their own directory but cannot list the others.
//! Git runs hardened and, with an agent user, as that user (see `git`).

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, SystemTime},
};

use aof_executors::{isolation::private_dir, AgentUser};
use tokio::sync::Mutex;

mod git;
#[cfg(test)]
use git::git;
use git::{common_dir, git_as, worktree_git_dir};

/// Under the root: one private state dir per session (never a session id: those
/// cannot start with `.`).
const SESSIONS_DIR: &str = ".sessions";

/// When a session's workspace is removed after a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cleanup {
    /// Keep every workspace (the age sweep may still remove it).
    #[default]
    Never,
    /// Remove after a run that completed; keep failed and stopped ones for inspection.
    OnSuccess,
    /// Remove after every run, whatever its outcome.
    Always,
}

impl FromStr for Cleanup {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "never" => Ok(Cleanup::Never),
            "on_success" => Ok(Cleanup::OnSuccess),
            "always" => Ok(Cleanup::Always),
            other => Err(format!(
                "unknown cleanup policy {other:?}; expected never, on_success or always"
            )),
        }
    }
}

/// How a run ended, as far as cleanup cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunEnd {
    Completed,
    Failed,
    Stopped,
}

impl From<&aof_executors::Outcome> for RunEnd {
    fn from(o: &aof_executors::Outcome) -> RunEnd {
        match o {
            aof_executors::Outcome::Completed { .. } => RunEnd::Completed,
            aof_executors::Outcome::Failed { .. } => RunEnd::Failed,
            aof_executors::Outcome::Stopped => RunEnd::Stopped,
        }
    }
}

/// Workspace settings of a runner (see README "Workspaces").
#[derive(Debug, Clone, Default)]
pub struct WorkspaceSettings {
    /// A git repository: each session gets a worktree of it on branch `aof/<session_id>`.
    pub git_repo: Option<PathBuf>,
    /// What a new session's branch starts from (default `HEAD` of the repository).
    pub git_base: Option<String>,
    pub cleanup: Cleanup,
    /// Workspaces of sessions not running here and untouched this long are removed.
    pub max_age: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("session id {0:?} cannot name a workspace directory")]
    BadSessionId(String),
    #[error("workspace {0} is a symlink or resolves outside the workspace root; refusing it")]
    Escape(PathBuf),
    #[error("workspace {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("git {args}: {message}")]
    Git { args: String, message: String },
    #[error("workspace {path}: .git {reason}; refusing to run git there")]
    GitDir { path: PathBuf, reason: String },
    #[error("runner.agent_user: {0}")]
    AgentUser(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError + '_ {
    move |source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A session id usable as a directory and as part of a git branch name. Names starting
/// with `.` are the runner's own files (`.runner-instance`).
pub(crate) fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && !id.contains("..")
        && !id.ends_with(".lock")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A session's directories for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared {
    /// Where the agent works.
    pub workdir: PathBuf,
    /// Its private state (`ExecCx::session_dir`).
    pub session_dir: PathBuf,
}

pub(crate) struct Workspaces {
    /// Canonical.
    root: PathBuf,
    /// Canonical: the repository and its common git dir.
    git_repo: Option<(PathBuf, PathBuf)>,
    git_base: String,
    cleanup: Cleanup,
    pub max_age: Option<Duration>,
    /// Owner of every workspace and the user git runs as, when agents run as their own.
    user: Option<AgentUser>,
    /// Held while a workspace is prepared or swept, so the sweep never removes a
    /// directory a starting run has just claimed.
    lock: Mutex<()>,
}

impl Workspaces {
    /// Create the root and check the git repository, once at start. With an agent
    /// user: the root must be reachable by that user, and the repository its own.
    pub(crate) async fn open(
        root: &Path,
        settings: &WorkspaceSettings,
        user: Option<AgentUser>,
    ) -> Result<Workspaces, WorkspaceError> {
        tokio::fs::create_dir_all(root).await.map_err(io(root))?;
        let root = tokio::fs::canonicalize(root).await.map_err(io(root))?;
        let sessions = root.join(SESSIONS_DIR);
        tokio::fs::create_dir_all(&sessions)
            .await
            .map_err(io(&sessions))?;
        if let Some(u) = &user {
            use std::os::unix::fs::PermissionsExt;
            for dir in [&root, &sessions] {
                tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
                    .await
                    .map_err(io(dir))?;
            }
            if let Some(blocked) = u.blocked_on(&sessions) {
                return Err(WorkspaceError::AgentUser(format!(
                    "uid {} cannot enter {} on the way to the workspaces ({}); set \
                     runner.workspace (AOF_WORKSPACE) to a directory the agent user can reach, \
                     outside private ones such as the data dir (kept 0700), e.g. \
                     /var/lib/aof-workspaces, or give {} search permission (chmod o+x)",
                    u.uid,
                    blocked.display(),
                    root.display(),
                    blocked.display()
                )));
            }
        }
        let git_repo = match &settings.git_repo {
            None => None,
            Some(repo) => {
                let repo = tokio::fs::canonicalize(repo).await.map_err(io(repo))?;
                if let Some(u) = &user {
                    use std::os::unix::fs::MetadataExt;
                    let owner = tokio::fs::metadata(&repo).await.map_err(io(&repo))?.uid();
                    if owner != u.uid {
                        return Err(WorkspaceError::AgentUser(format!(
                            "runner.workspace_git_repo {} belongs to uid {owner}: with agents \
                             running as uid {} it must be theirs (they commit in its worktrees, \
                             and the runner runs its git as them)",
                            repo.display(),
                            u.uid
                        )));
                    }
                }
                let common = common_dir(&repo, user.as_ref()).await?;
                Some((repo, common))
            }
        };
        Ok(Workspaces {
            root,
            git_repo,
            git_base: settings.git_base.clone().unwrap_or_else(|| "HEAD".into()),
            cleanup: settings.cleanup,
            max_age: settings.max_age,
            user,
            lock: Mutex::new(()),
        })
    }

    /// The session's directories, created (or reused) and ready for a run.
    pub(crate) async fn prepare(&self, session_id: &str) -> Result<Prepared, WorkspaceError> {
        let _guard = self.lock.lock().await;
        let dir = self.dir_of(session_id)?;
        let exists = match tokio::fs::symlink_metadata(&dir).await {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(WorkspaceError::Escape(dir))
            }
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io(&dir)(e)),
        };
        if !exists {
            self.private(&dir).await?;
        }
        match &self.git_repo {
            Some((repo, _)) if !is_worktree(&dir).await => {
                if !is_empty(&dir).await? {
                    // git refuses a non-empty target; say why instead of its message.
                    return Err(WorkspaceError::Git {
                        args: "worktree add".into(),
                        message: format!(
                            "{} exists and is not a worktree (made before git workspaces were configured?)",
                            dir.display()
                        ),
                    });
                }
                self.add_worktree(repo, session_id, &dir).await?;
            }
            _ => {}
        }
        set_private(&dir).await?;
        self.check_inside(&dir).await?;
        self.give_to_agent(&dir).await?;
        let session_dir = self.root.join(SESSIONS_DIR).join(session_id);
        self.private(&session_dir).await?;
        touch(&dir).await;
        Ok(Prepared {
            workdir: dir,
            session_dir,
        })
    }

    /// Create a 0700 directory (the agent user's) whose parent is the runner's.
    async fn private(&self, dir: &Path) -> Result<(), WorkspaceError> {
        let (d, user) = (dir.to_path_buf(), self.user.clone());
        tokio::task::spawn_blocking(move || private_dir(&d, user.as_ref()))
            .await
            .map_err(|e| io(dir)(std::io::Error::other(e)))?
            .map_err(io(dir))
    }

    /// A workspace made before agents ran as their own user (or by the runner) is
    /// handed over whole, so the agent can work in it.
    async fn give_to_agent(&self, dir: &Path) -> Result<(), WorkspaceError> {
        use std::os::unix::fs::MetadataExt;
        let Some(user) = self.user.clone() else {
            return Ok(());
        };
        let meta = tokio::fs::symlink_metadata(dir).await.map_err(io(dir))?;
        if meta.uid() == user.uid {
            return Ok(());
        }
        let d = dir.to_path_buf();
        tokio::task::spawn_blocking(move || user.chown_tree(&d))
            .await
            .map_err(|e| io(dir)(std::io::Error::other(e)))?
            .map_err(io(dir))
    }

    /// Apply the cleanup policy after a run of `session_id`. Errors are logged: the
    /// run's outcome is already decided.
    /// `in_use` says (under the lock) whether another run of the session has started
    /// here meanwhile; its workspace then stays.
    pub(crate) async fn finish(&self, session_id: &str, end: RunEnd, in_use: impl Fn() -> bool) {
        let remove = match self.cleanup {
            Cleanup::Never => false,
            Cleanup::OnSuccess => end == RunEnd::Completed,
            Cleanup::Always => true,
        };
        let _guard = self.lock.lock().await;
        let result = if remove && !in_use() {
            self.remove(session_id).await
        } else {
            // Finishing counts as use, for the age sweep.
            if let Ok(dir) = self.dir_of(session_id) {
                touch(&dir).await;
            }
            Ok(())
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, session_id, "workspace cleanup failed; kept");
        }
    }

    /// Remove workspaces older than `max_age` whose session is not in `active`
    /// (read under the lock, so a run starting meanwhile is not swept). Returns how
    /// many were removed.
    pub(crate) async fn sweep(&self, active: impl Fn() -> HashSet<String>) -> usize {
        let Some(max_age) = self.max_age else {
            return 0;
        };
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the workspace root");
                return 0;
            }
        };
        let mut removed = 0;
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if !valid_session_id(&name) {
                continue;
            }
            let _guard = self.lock.lock().await;
            // `DirEntry::metadata` does not follow symlinks.
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            if !meta.is_dir() {
                continue;
            }
            let age = meta
                .modified()
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .unwrap_or_default();
            if age < max_age || active().contains(&name) {
                continue;
            }
            match self.remove(&name).await {
                Ok(()) => {
                    tracing::info!(session_id = %name, age_s = age.as_secs(), "old workspace removed");
                    removed += 1;
                }
                Err(e) => tracing::warn!(error = %e, session_id = %name, "old workspace kept"),
            }
        }
        removed
    }

    fn dir_of(&self, session_id: &str) -> Result<PathBuf, WorkspaceError> {
        if !valid_session_id(session_id) {
            return Err(WorkspaceError::BadSessionId(session_id.into()));
        }
        Ok(self.root.join(session_id))
    }

    /// `dir` resolves to a directory directly inside the root.
    async fn check_inside(&self, dir: &Path) -> Result<(), WorkspaceError> {
        let real = tokio::fs::canonicalize(dir).await.map_err(io(dir))?;
        if real.parent() != Some(self.root.as_path()) {
            return Err(WorkspaceError::Escape(dir.to_path_buf()));
        }
        Ok(())
    }

    /// Remove a session's workspace. A worktree's uncommitted work is first committed
    /// on its branch, and the branch is kept, so removing loses nothing. A worktree
    /// whose `.git` does not point into the repository is refused (kept, no git run).
    async fn remove(&self, session_id: &str) -> Result<(), WorkspaceError> {
        let dir = self.dir_of(session_id)?;
        match tokio::fs::symlink_metadata(&dir).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(&dir)(e)),
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(WorkspaceError::Escape(dir))
            }
            Ok(_) => {}
        }
        self.check_inside(&dir).await?;
        let worktree = match &self.git_repo {
            Some((repo, common)) => worktree_git_dir(&dir, common)
                .await?
                .map(|git_dir| (repo, git_dir)),
            None => None,
        };
        if let Some((repo, git_dir)) = &worktree {
            let user = self.user.as_ref();
            let (gd, wt) = (git_dir.to_string_lossy(), dir.to_string_lossy());
            let at = ["--git-dir", &gd, "--work-tree", &wt];
            let with = |args: &[&'static str]| [&at[..], args].concat();
            let status = git_as(&dir, &with(&["status", "--porcelain"]), user).await?;
            if !status.trim().is_empty() {
                git_as(&dir, &with(&["add", "-A"]), user).await?;
                let msg =
                    format!("aof: uncommitted work of session {session_id} at workspace cleanup");
                let mut commit = with(&[
                    "-c",
                    "user.name=aof",
                    "-c",
                    "user.email=aof@localhost",
                    "commit",
                    "-q",
                    "--no-verify",
                    "-m",
                ]);
                commit.push(&msg);
                git_as(&dir, &commit, user).await?;
            }
            // Removed here rather than by `git worktree remove`: the agent user may not
            // write the root. std's remove_dir_all does not follow symlinks.
            tokio::fs::remove_dir_all(&dir).await.map_err(io(&dir))?;
            git_as(repo, &["worktree", "prune"], user).await?;
            return Ok(());
        }
        tokio::fs::remove_dir_all(&dir).await.map_err(io(&dir))
    }

    /// `git worktree add` for the session into its (empty) directory: on its existing
    /// branch when it has one (a workspace removed earlier, its work kept there), else
    /// a new branch from the base.
    async fn add_worktree(
        &self,
        repo: &Path,
        session_id: &str,
        dir: &Path,
    ) -> Result<(), WorkspaceError> {
        let user = self.user.as_ref();
        let branch = format!("aof/{session_id}");
        // A worktree whose directory vanished still holds its branch; forget it.
        git_as(repo, &["worktree", "prune"], user).await?;
        let d = dir.to_string_lossy();
        let has_branch = git_as(
            repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ],
            user,
        )
        .await
        .is_ok();
        if has_branch {
            git_as(repo, &["worktree", "add", &d, &branch], user).await?;
        } else {
            git_as(
                repo,
                &["worktree", "add", "-b", &branch, &d, &self.git_base],
                user,
            )
            .await?;
        }
        tracing::info!(%branch, dir = %dir.display(), reused_branch = has_branch, "git worktree added");
        Ok(())
    }
}

/// Sweep at start and then every `max_age / 4` (between 1 s and 1 h), until `stop`.
pub(crate) async fn sweep_loop(
    shared: std::sync::Arc<crate::Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(max_age) = shared.workspaces.max_age else {
        return;
    };
    let every = (max_age / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600));
    loop {
        shared.workspaces.sweep(|| shared.active.sessions()).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// A linked worktree has a `.git` file (not a directory) naming its repository.
async fn is_worktree(dir: &Path) -> bool {
    tokio::fs::symlink_metadata(dir.join(".git"))
        .await
        .is_ok_and(|m| m.is_file())
}

async fn is_empty(dir: &Path) -> Result<bool, WorkspaceError> {
    let mut rd = tokio::fs::read_dir(dir).await.map_err(io(dir))?;
    Ok(rd.next_entry().await.map_err(io(dir))?.is_none())
}

async fn set_private(dir: &Path) -> Result<(), WorkspaceError> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(io(dir))
}

/// Mark the workspace as used now (its mtime is what the age sweep reads).
async fn touch(dir: &Path) {
    let d = dir.to_path_buf();
    let res = tokio::task::spawn_blocking(move || {
        std::fs::File::open(&d)?.set_modified(SystemTime::now())
    })
    .await;
    if let Ok(Err(e)) = res {
        tracing::debug!(error = %e, dir = %dir.display(), "cannot touch workspace");
    }
}

#[cfg(test)]
mod tests;
