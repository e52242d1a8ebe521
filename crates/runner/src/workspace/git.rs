//! Git for workspaces. A workspace belongs to its agent, which can plant anything git
//! would run: an `fsmonitor` program or hooks in the repository's config, a `.git` file
//! pointing at a repository of its own making. So the runner's git:
//! - never reads system or global config (`GIT_CONFIG_NOSYSTEM`, `GIT_CONFIG_GLOBAL`),
//!   starts from an empty environment (no inherited `GIT_DIR`…), and turns off what runs
//!   programs or reaches out on its own (`HARDEN`);
//! - runs in a worktree only through the checked git dir (`worktree_git_dir`), never by
//!   following the workspace's `.git`;
//! - runs as the agent user when the runner has one, so whatever the repository's own
//!   config (the agent's, too: it commits there) makes git do, the agent could do itself.

use std::path::{Path, PathBuf};

use aof_executors::AgentUser;
use tokio::process::Command;

use super::WorkspaceError;

/// `-c` options on every git call: no fsmonitor daemon or hook program, no `file://`
/// transport (a submodule or alternate pulling in another local repository), no
/// signing program.
const HARDEN: &[&str] = &[
    "-c",
    "core.fsmonitor=",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.file.allow=never",
    "-c",
    "commit.gpgSign=false",
];

/// Run git in `dir`, as `user` when given; its stdout, or its stderr as the error.
pub(crate) async fn git_as(
    dir: &Path,
    args: &[&str],
    user: Option<&AgentUser>,
) -> Result<String, WorkspaceError> {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .arg("-C")
        .arg(dir)
        .args(HARDEN)
        .args(args)
        .kill_on_drop(true);
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
    let out = cmd.output().await.map_err(|e| WorkspaceError::Git {
        args: args.join(" "),
        message: format!("cannot run git: {e}"),
    })?;
    if !out.status.success() {
        return Err(WorkspaceError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `git_as` as the runner's own user.
#[cfg(test)]
pub(crate) async fn git(dir: &Path, args: &[&str]) -> Result<String, WorkspaceError> {
    git_as(dir, args, None).await
}

/// The repository's common git dir (`.git` of the main worktree), canonical.
pub(crate) async fn common_dir(
    repo: &Path,
    user: Option<&AgentUser>,
) -> Result<PathBuf, WorkspaceError> {
    let out = git_as(
        repo,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        user,
    )
    .await?;
    let dir = PathBuf::from(out.trim());
    tokio::fs::canonicalize(&dir)
        .await
        .map_err(|source| WorkspaceError::Io { path: dir, source })
}

/// The git dir of the linked worktree in `dir`, checked before any git runs there:
/// `.git` must be a regular file (not a symlink, not a directory) reading
/// `gitdir: <path>` whose target is a directory directly inside the repository's
/// `<common>/worktrees/` and links back to this `.git`. `Ok(None)`: `dir` has no
/// `.git` (not a worktree).
pub(crate) async fn worktree_git_dir(
    dir: &Path,
    common: &Path,
) -> Result<Option<PathBuf>, WorkspaceError> {
    let dot_git = dir.join(".git");
    let refuse = |reason: String| WorkspaceError::GitDir {
        path: dir.to_path_buf(),
        reason,
    };
    let meta = match tokio::fs::symlink_metadata(&dot_git).await {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(WorkspaceError::Io {
                path: dot_git,
                source,
            })
        }
    };
    if !meta.file_type().is_file() {
        return Err(refuse(
            "is not a regular file (a symlink or a directory)".into(),
        ));
    }
    if meta.len() > 4096 {
        return Err(refuse(
            "is too large for a worktree's `gitdir:` file".into(),
        ));
    }
    let text = tokio::fs::read_to_string(&dot_git)
        .await
        .map_err(|source| WorkspaceError::Io {
            path: dot_git.clone(),
            source,
        })?;
    let Some(target) = text.trim_end().strip_prefix("gitdir: ") else {
        return Err(refuse("does not start with `gitdir: `".into()));
    };
    let target = dir.join(target);
    let real = tokio::fs::canonicalize(&target)
        .await
        .map_err(|e| refuse(format!("points to {}: {e}", target.display())))?;
    if real.parent() != Some(common.join("worktrees").as_path()) || !real.is_dir() {
        return Err(refuse(format!(
            "points to {}, outside the repository's worktrees ({})",
            real.display(),
            common.join("worktrees").display()
        )));
    }
    // And that worktree is this one (not another session's): git's back link.
    let back = tokio::fs::read_to_string(real.join("gitdir"))
        .await
        .unwrap_or_default();
    let back = tokio::fs::canonicalize(Path::new(back.trim_end()))
        .await
        .ok();
    let here = tokio::fs::canonicalize(&dot_git).await.ok();
    if back.is_none() || back != here {
        return Err(refuse(format!(
            "points to {}, the git dir of another worktree",
            real.display()
        )));
    }
    Ok(Some(real))
}
