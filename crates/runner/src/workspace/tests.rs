use std::os::unix::fs::PermissionsExt;

use super::*;

async fn open(root: &Path, settings: WorkspaceSettings) -> Workspaces {
    Workspaces::open(root, &settings, None).await.unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// A real repository with one commit.
async fn repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]).await.unwrap();
    std::fs::write(repo.join("README"), "hello\n").unwrap();
    git(&repo, &["add", "README"]).await.unwrap();
    git(
        &repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "first",
        ],
    )
    .await
    .unwrap();
    repo
}

#[test]
fn session_ids_that_cannot_name_a_directory_are_refused() {
    for ok in ["ses_abc123", "a-b.c", "X"] {
        assert!(valid_session_id(ok), "{ok}");
    }
    let long = "x".repeat(129);
    for bad in [
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "/abs",
        ".runner-instance",
        "a..b",
        "x.lock",
        "a b",
        "é",
        &long,
    ] {
        assert!(!valid_session_id(bad), "{bad}");
    }
}

#[test]
fn cleanup_policies_parse() {
    assert_eq!("never".parse::<Cleanup>(), Ok(Cleanup::Never));
    assert_eq!("on_success".parse::<Cleanup>(), Ok(Cleanup::OnSuccess));
    assert_eq!(" always ".parse::<Cleanup>(), Ok(Cleanup::Always));
    assert!("sometimes"
        .parse::<Cleanup>()
        .unwrap_err()
        .contains("on_success"));
}

#[tokio::test]
async fn sessions_get_private_separate_dirs_reused_on_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = open(&tmp.path().join("root"), WorkspaceSettings::default()).await;
    let a = ws.prepare("ses_a").await.unwrap().workdir;
    let b = ws.prepare("ses_b").await.unwrap().workdir;
    assert_ne!(a, b);
    assert_eq!(a.parent(), b.parent());
    assert_eq!((mode(&a), mode(&b)), (0o700, 0o700));
    std::fs::write(a.join("note"), "kept").unwrap();
    assert_eq!(ws.prepare("ses_a").await.unwrap().workdir, a);
    assert_eq!(std::fs::read_to_string(a.join("note")).unwrap(), "kept");
    for bad in ["../escape", "a/b", ".."] {
        assert!(matches!(
            ws.prepare(bad).await,
            Err(WorkspaceError::BadSessionId(_))
        ));
    }
    assert!(!tmp.path().join("escape").exists());
}

#[tokio::test]
async fn symlinks_out_of_the_root_are_refused_and_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), "x").unwrap();
    let root = tmp.path().join("root");
    let ws = open(
        &root,
        WorkspaceSettings {
            cleanup: Cleanup::Always,
            max_age: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await;
    std::os::unix::fs::symlink(&outside, root.join("ses_evil")).unwrap();
    assert!(matches!(
        ws.prepare("ses_evil").await,
        Err(WorkspaceError::Escape(_))
    ));
    ws.finish("ses_evil", RunEnd::Completed, || false).await;
    // A symlink inside a workspace: removing the workspace removes the link only.
    let ok = ws.prepare("ses_ok").await.unwrap().workdir;
    std::os::unix::fs::symlink(&outside, ok.join("link")).unwrap();
    ws.finish("ses_ok", RunEnd::Completed, || false).await;
    assert!(!ok.exists());
    set_age(&root.join("ses_evil"), Duration::from_secs(3600));
    assert_eq!(ws.sweep(HashSet::new).await, 0);
    assert!(outside.join("precious").exists());
    assert!(root.join("ses_evil").is_symlink());
}

#[tokio::test]
async fn cleanup_on_success_keeps_failed_and_stopped_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = |cleanup| WorkspaceSettings {
        cleanup,
        ..Default::default()
    };
    let ws = open(tmp.path(), settings(Cleanup::OnSuccess)).await;
    let ok = ws.prepare("ses_ok").await.unwrap().workdir;
    let bad = ws.prepare("ses_bad").await.unwrap().workdir;
    let stopped = ws.prepare("ses_stopped").await.unwrap().workdir;
    ws.finish("ses_ok", RunEnd::Completed, || false).await;
    ws.finish("ses_bad", RunEnd::Failed, || false).await;
    ws.finish("ses_stopped", RunEnd::Stopped, || false).await;
    assert!(!ok.exists());
    assert!(bad.exists() && stopped.exists());

    let never = open(tmp.path(), settings(Cleanup::Never)).await;
    never.finish("ses_bad", RunEnd::Completed, || false).await;
    assert!(bad.exists());
    let always = open(tmp.path(), settings(Cleanup::Always)).await;
    always.finish("ses_bad", RunEnd::Failed, || false).await;
    assert!(!bad.exists());
}

fn set_age(dir: &Path, age: Duration) {
    let f = std::fs::File::open(dir).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn the_sweep_removes_old_idle_workspaces_only() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = open(
        tmp.path(),
        WorkspaceSettings {
            max_age: Some(Duration::from_secs(600)),
            ..Default::default()
        },
    )
    .await;
    let old = ws.prepare("ses_old").await.unwrap().workdir;
    let busy = ws.prepare("ses_busy").await.unwrap().workdir;
    let fresh = ws.prepare("ses_fresh").await.unwrap().workdir;
    std::fs::write(tmp.path().join(".runner-instance"), "x").unwrap();
    set_age(&old, Duration::from_secs(3600));
    set_age(&busy, Duration::from_secs(3600));
    let removed = ws.sweep(|| HashSet::from(["ses_busy".to_string()])).await;
    assert_eq!(removed, 1);
    assert!(!old.exists());
    assert!(busy.exists() && fresh.exists());
    assert!(tmp.path().join(".runner-instance").exists());
}

#[tokio::test]
async fn git_worktree_per_session_kept_branch_and_reattached() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let ws = open(
        &tmp.path().join("root"),
        WorkspaceSettings {
            git_repo: Some(repo.clone()),
            cleanup: Cleanup::Always,
            ..Default::default()
        },
    )
    .await;
    let dir = ws.prepare("ses_g").await.unwrap().workdir;
    assert_eq!(mode(&dir), 0o700);
    let head = git(&dir, &["rev-parse", "--abbrev-ref", "HEAD"])
        .await
        .unwrap();
    assert_eq!(head.trim(), "aof/ses_g");
    assert_eq!(
        std::fs::read_to_string(dir.join("README")).unwrap(),
        "hello\n"
    );
    // Resume: the same worktree, work in progress intact.
    std::fs::write(dir.join("work.txt"), "agent output\n").unwrap();
    assert_eq!(ws.prepare("ses_g").await.unwrap().workdir, dir);
    assert!(dir.join("work.txt").exists());

    // Cleanup commits the leftover work on the branch, removes the worktree, keeps the branch.
    ws.finish("ses_g", RunEnd::Failed, || false).await;
    assert!(!dir.exists());
    let list = git(&repo, &["worktree", "list", "--porcelain"])
        .await
        .unwrap();
    assert!(!list.contains("ses_g"), "{list}");
    let kept = git(&repo, &["show", "aof/ses_g:work.txt"]).await.unwrap();
    assert_eq!(kept, "agent output\n");

    // A later run of the session gets its branch back in a fresh worktree.
    let again = ws.prepare("ses_g").await.unwrap().workdir;
    assert_eq!(
        std::fs::read_to_string(again.join("work.txt")).unwrap(),
        "agent output\n"
    );

    // A directory that is not a worktree is not silently overwritten.
    let plain = tmp.path().join("root").join("ses_plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("f"), "x").unwrap();
    let e = ws.prepare("ses_plain").await.unwrap_err().to_string();
    assert!(e.contains("not a worktree"), "{e}");
}

/// A program that records it ran by creating `marker`.
fn marker_script(dir: &Path, name: &str, marker: &Path) -> PathBuf {
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Plain git, as an agent or a user would run it: nothing hardened.
fn plain_git(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

/// Attack 6: an agent plants an fsmonitor program and a post-commit hook in its
/// worktree's repository; the cleanup's git (status, add, commit) runs neither. Plain
/// git in the same workspace runs both (so the test can fail).
#[tokio::test]
async fn planted_fsmonitor_and_hooks_do_not_run_at_cleanup() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let ws = open(
        &tmp.path().join("root"),
        WorkspaceSettings {
            git_repo: Some(repo.clone()),
            cleanup: Cleanup::Always,
            ..Default::default()
        },
    )
    .await;
    let dir = ws.prepare("ses_h").await.unwrap().workdir;
    let fsmonitor_ran = tmp.path().join("fsmonitor-ran");
    let hook_ran = tmp.path().join("hook-ran");
    let fsmonitor = marker_script(tmp.path(), "fsmonitor.sh", &fsmonitor_ran);
    let out = plain_git(
        &dir,
        &["config", "core.fsmonitor", fsmonitor.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let hooks = repo.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    marker_script(&hooks, "post-commit", &hook_ran);

    // The plants work: plain git runs them.
    assert!(plain_git(&dir, &["status", "--porcelain"]).status.success());
    assert!(fsmonitor_ran.exists(), "plain git status ran no fsmonitor");
    let out = plain_git(
        &dir,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--no-verify",
            "--allow-empty",
            "-m",
            "probe",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        hook_ran.exists(),
        "plain git commit ran no post-commit hook"
    );
    std::fs::remove_file(&fsmonitor_ran).unwrap();
    std::fs::remove_file(&hook_ran).unwrap();

    // Cleanup with uncommitted work: status, add and commit run, the plants do not.
    std::fs::write(dir.join("work.txt"), "agent output\n").unwrap();
    ws.finish("ses_h", RunEnd::Completed, || false).await;
    assert!(!dir.exists(), "the workspace was not cleaned up");
    assert!(!fsmonitor_ran.exists(), "cleanup ran the planted fsmonitor");
    assert!(!hook_ran.exists(), "cleanup ran the planted hook");
    let kept = git(&repo, &["show", "aof/ses_h:work.txt"]).await.unwrap();
    assert_eq!(kept, "agent output\n");
    let list = git(&repo, &["worktree", "list", "--porcelain"])
        .await
        .unwrap();
    assert!(!list.contains("ses_h"), "{list}");
}

/// Attack 6: a workspace whose `.git` points at a repository of the agent's making
/// (a `gitdir:` elsewhere, another session's worktree, a symlink) is refused: no git
/// runs there and the workspace is kept. Plain git follows the same `.git`.
#[tokio::test]
async fn a_git_file_pointing_elsewhere_is_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo(tmp.path()).await;
    let root = tmp.path().join("root");
    let ws = open(
        &root,
        WorkspaceSettings {
            git_repo: Some(repo.clone()),
            cleanup: Cleanup::Always,
            ..Default::default()
        },
    )
    .await;
    let ran = tmp.path().join("evil-ran");
    let fsmonitor = marker_script(tmp.path(), "fsmonitor.sh", &ran);
    let evil = tmp.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    assert!(plain_git(&evil, &["init", "-q"]).status.success());
    assert!(plain_git(
        &evil,
        &["config", "core.fsmonitor", fsmonitor.to_str().unwrap()]
    )
    .status
    .success());
    let other = ws.prepare("ses_other").await.unwrap().workdir;
    let other_git_dir = std::fs::read_to_string(other.join(".git")).unwrap();

    let dir = ws.prepare("ses_x").await.unwrap().workdir;
    std::fs::write(dir.join("work.txt"), "x\n").unwrap();
    // What the agent leaves as `.git`, by name.
    type Plant<'a> = (&'a str, Box<dyn Fn(&Path) + 'a>);
    let plants: [Plant; 4] = [
        (
            "gitdir elsewhere",
            Box::new(|d: &Path| {
                std::fs::write(
                    d.join(".git"),
                    format!("gitdir: {}\n", evil.join(".git").display()),
                )
                .unwrap()
            }),
        ),
        (
            "another session's worktree",
            Box::new(|d: &Path| std::fs::write(d.join(".git"), &other_git_dir).unwrap()),
        ),
        (
            "symlink",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join(".git")).unwrap();
                std::os::unix::fs::symlink(evil.join(".git"), d.join(".git")).unwrap();
            }),
        ),
        (
            "directory",
            Box::new(|d: &Path| {
                std::fs::remove_file(d.join(".git")).unwrap();
                std::fs::create_dir(d.join(".git")).unwrap();
            }),
        ),
    ];
    let original = std::fs::read_to_string(dir.join(".git")).unwrap();
    for (what, plant) in plants {
        let _ = std::fs::remove_file(dir.join(".git"));
        let _ = std::fs::remove_dir_all(dir.join(".git"));
        std::fs::write(dir.join(".git"), &original).unwrap();
        plant(&dir);
        if what == "gitdir elsewhere" {
            // Plain git follows it into the planted repository.
            plain_git(&dir, &["status"]);
            assert!(ran.exists(), "plain git did not follow the planted .git");
            std::fs::remove_file(&ran).unwrap();
        }
        let err = ws.remove("ses_x").await.unwrap_err();
        assert!(
            matches!(err, WorkspaceError::GitDir { .. }),
            "{what}: {err}"
        );
        assert!(err.to_string().contains("refusing to run git"), "{err}");
        ws.finish("ses_x", RunEnd::Completed, || false).await;
        assert!(dir.join("work.txt").exists(), "{what}: workspace removed");
        assert!(!ran.exists(), "{what}: git ran in the planted repository");
    }
    // The other session's worktree is untouched: nothing was committed on its branch.
    let log = git(&repo, &["log", "--oneline", "aof/ses_other"])
        .await
        .unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
}

/// With `runner.agent_user`, workspaces and session dirs are the agent's, the root lets
/// it in without listing the others, git runs as the agent, and a repository or root
/// the agent cannot use stops the runner at start with a clear message.
#[tokio::test]
async fn an_agent_users_workspaces_are_its_own() {
    use std::os::unix::fs::MetadataExt;
    let Some((uid, _)) = aof_testkit::agent_test_user() else {
        return;
    };
    let user = AgentUser::resolve(aof_testkit::AGENT_TEST_USER).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let settings = |repo: Option<PathBuf>| WorkspaceSettings {
        git_repo: repo,
        cleanup: Cleanup::Always,
        ..Default::default()
    };
    // Under a 0700 directory of root's the agent could not reach its workspaces.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let err = Workspaces::open(
        &tmp.path().join("root"),
        &settings(None),
        Some(user.clone()),
    )
    .await
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("cannot enter"), "{err}");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o711)).unwrap();

    // A repository that is not the agent's: refused.
    let repo = repo(tmp.path()).await;
    let root = tmp.path().join("root");
    let err = Workspaces::open(&root, &settings(Some(repo.clone())), Some(user.clone()))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("must be theirs"), "{err}");
    user.chown_tree(&repo).unwrap();
    let ws = Workspaces::open(&root, &settings(Some(repo.clone())), Some(user.clone()))
        .await
        .unwrap();
    assert_eq!(mode(&root), 0o711);
    assert_eq!(mode(&root.join(".sessions")), 0o711);

    let dirs = ws.prepare("ses_u").await.unwrap();
    for dir in [&dirs.workdir, &dirs.session_dir] {
        let meta = std::fs::metadata(dir).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o700), "{dir:?}");
    }
    assert_eq!(
        std::fs::metadata(dirs.workdir.join("README"))
            .unwrap()
            .uid(),
        uid
    );
    let work = dirs.workdir.join("work.txt");
    std::fs::write(&work, "agent output\n").unwrap();
    user.chown(&work).unwrap();
    ws.finish("ses_u", RunEnd::Completed, || false).await;
    assert!(!dirs.workdir.exists());
    // The agent's git committed the work on its branch.
    let kept = git_as(&repo, &["show", "aof/ses_u:work.txt"], Some(&user))
        .await
        .unwrap();
    assert_eq!(kept, "agent output\n");
    // The session's private dir stays (its conversation, for a resume).
    assert!(dirs.session_dir.exists());
}
