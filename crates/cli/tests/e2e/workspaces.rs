//! Session workspaces under a real runner with the `command` executor: one private
//! directory per session, reused on resume; a git worktree per session on branch
//! `aof/<session_id>`, removed by the cleanup policy with its branch (and work) kept;
//! the age sweep; symlinks out of the root refused; rlimits seen by the agent.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Stdio,
};

use serde_json::{json, Value};
use tokio::process::Command;

use crate::harness::*;

/// The agent reports where it runs, on which branch, its open-file limit and the files
/// it sees; prompt `write` leaves a file, `fail` fails.
const AGENT: &str = r#"read p
echo "pwd $(pwd -P)"
echo "branch $(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo none)"
echo "nofile $(ulimit -n)"
echo "files $(ls | tr '\n' ' ')"
case "$p" in
  write) echo "work of $AOF_SESSION_ID" > work.txt;;
  fail) echo "told to fail" >&2; exit 3;;
esac
echo done"#;

async fn runner(url: &str, dir: &Path, name: &str, env: &[(&str, &str)]) -> Runner {
    let rdir = dir.join(name);
    std::fs::create_dir_all(&rdir).unwrap();
    let log = std::fs::File::create(rdir.join("runner.log")).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["runner", "--url", url, "--hostname", name])
        .arg("--workspace")
        .arg(rdir.join("ws"))
        .args(["--executor", "command", "--command"])
        .arg(format!("sh -c '{}'", AGENT.replace('\'', "'\\''")))
        .envs(env.iter().copied())
        .env("RUST_LOG", "info,aof_runner=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    Runner {
        child: cmd.spawn().expect("spawn runner"),
        dir: rdir,
    }
}

async fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    });
    (out.status.success(), text.into_owned())
}

async fn repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "first",
        ],
    ] {
        let (ok, out) = git(&repo, args).await;
        assert!(ok, "{out}");
    }
    std::fs::canonicalize(repo).unwrap()
}

/// The agent's report lines (`key value`) of a session, latest run last.
async fn reports(url: &str, sid: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key} ");
    events(url, sid)
        .await
        .iter()
        .filter_map(|e| {
            e["content"][0]["text"]
                .as_str()?
                .strip_prefix(&prefix)
                .map(str::to_string)
        })
        .collect()
}

async fn resume(url: &str, sid: &str, prompt: &str) {
    let (st, body) = call(
        "POST",
        &format!("{url}/runs"),
        Some(
            json!({"type": "resume_session", "session_id": sid, "parameters": {"prompt": prompt}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{body}");
}

async fn start_with_id(url: &str, sid: &str, prompt: &str) -> Value {
    let (st, body) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "session_id": sid, "agent_name": "t", "parameters": {"prompt": prompt}})),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_get_private_worktrees_reused_on_resume_under_rlimits() {
    let dir = tempdir();
    let repo = repo(dir.path()).await;
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let r = runner(
        &c.url,
        dir.path(),
        "ws",
        &[
            ("AOF_WORKSPACE_GIT_REPO", repo.to_str().unwrap()),
            ("AOF_RUN_RLIMIT_NOFILE", "97"),
        ],
    )
    .await;
    let root = std::fs::canonicalize(r.dir.join("ws")).unwrap_or(r.dir.join("ws"));

    let (_, a) = start_run(&c.url, "write").await;
    wait_session(&c.url, &a, "finished").await;
    let (_, b) = start_run(&c.url, "hello").await;
    wait_session(&c.url, &b, "finished").await;
    let root = std::fs::canonicalize(&root).unwrap();
    let (pa, pb) = (
        reports(&c.url, &a, "pwd").await,
        reports(&c.url, &b, "pwd").await,
    );
    assert_eq!(pa, [root.join(&a).display().to_string()]);
    assert_eq!(pb, [root.join(&b).display().to_string()]);
    for sid in [&a, &b] {
        let mode = std::fs::metadata(root.join(sid))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{sid}");
        assert_eq!(reports(&c.url, sid, "branch").await, [format!("aof/{sid}")]);
        // The limit reached the agent process (through prlimit).
        assert_eq!(reports(&c.url, sid, "nofile").await, ["97"]);
    }

    // Resume: the same directory and worktree, the uncommitted file still there.
    resume(&c.url, &a, "look").await;
    wait_for("the resumed run's report", || async {
        (reports(&c.url, &a, "pwd").await.len() == 2).then_some(())
    })
    .await;
    wait_session(&c.url, &a, "finished").await;
    let pa = reports(&c.url, &a, "pwd").await;
    assert_eq!(pa[0], pa[1]);
    let files = reports(&c.url, &a, "files").await;
    assert!(
        !files[0].contains("work.txt") && files[1].contains("work.txt"),
        "{files:?}"
    );
    let (_, list) = git(&repo, &["worktree", "list", "--porcelain"]).await;
    assert!(
        list.contains(&format!("branch refs/heads/aof/{a}")),
        "{list}"
    );
    assert!(
        list.contains(&format!("branch refs/heads/aof/{b}")),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_on_success_removes_worktrees_keeps_branches_and_failed_runs() {
    let dir = tempdir();
    let repo = repo(dir.path()).await;
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let r = runner(
        &c.url,
        dir.path(),
        "ws",
        &[
            ("AOF_WORKSPACE_GIT_REPO", repo.to_str().unwrap()),
            ("AOF_WORKSPACE_CLEANUP", "on_success"),
        ],
    )
    .await;
    let ws = r.dir.join("ws");

    let (_, a) = start_run(&c.url, "write").await;
    wait_session(&c.url, &a, "finished").await;
    wait_for("the completed session's worktree to be removed", || async {
        (!ws.join(&a).exists()).then_some(())
    })
    .await;
    // The branch stays, with the agent's uncommitted work committed on it.
    let (ok, work) = git(&repo, &["show", &format!("aof/{a}:work.txt")]).await;
    assert!(ok, "{work}");
    assert_eq!(work.trim(), format!("work of {a}"));
    // The directory goes first, then `git worktree prune` (run in the repository, never
    // in the agent's workspace): the registration follows a moment later.
    wait_for("the worktree to be pruned from the repository", || async {
        let (_, list) = git(&repo, &["worktree", "list", "--porcelain"]).await;
        (!list.contains(&format!("aof/{a}"))).then_some(())
    })
    .await;

    let (_, b) = start_run(&c.url, "fail").await;
    wait_session(&c.url, &b, "failed").await;
    // One run at a time on this runner: once the next session's workspace is gone,
    // the failed run's cleanup decision has certainly been made.
    let (_, d) = start_run(&c.url, "hello").await;
    wait_session(&c.url, &d, "finished").await;
    wait_for("the next worktree to be removed", || async {
        (!ws.join(&d).exists()).then_some(())
    })
    .await;
    assert!(
        ws.join(&b).join(".git").is_file(),
        "the failed run's worktree is kept"
    );

    // Resuming the cleaned-up session re-attaches its branch: the work is back.
    resume(&c.url, &a, "look").await;
    wait_for("the resumed run's report", || async {
        (reports(&c.url, &a, "files").await.len() == 2).then_some(())
    })
    .await;
    let files = reports(&c.url, &a, "files").await;
    assert!(files[1].contains("work.txt"), "{files:?}");
    assert_eq!(reports(&c.url, &a, "branch").await[1], format!("aof/{a}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_workspaces_are_swept_and_symlinks_out_of_the_root_refused() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), "keep me").unwrap();
    let ws = dir.path().join("ws").join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::os::unix::fs::symlink(&outside, ws.join("ses_evil")).unwrap();
    let _r = runner(
        &c.url,
        dir.path(),
        "ws",
        &[
            ("AOF_WORKSPACE_MAX_AGE", "1"),
            ("AOF_WORKSPACE_CLEANUP", "always"),
        ],
    )
    .await;

    // A session whose workspace name is taken by a symlink out of the root fails clearly.
    let run = start_with_id(&c.url, "ses_evil", "write").await;
    wait_session(&c.url, "ses_evil", "failed").await;
    let (_, run) = call(
        "GET",
        &format!("{}/runs/{}", c.url, run["run_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert!(run["error"].as_str().unwrap().contains("symlink"), "{run}");
    assert!(!outside.join("work.txt").exists());

    // The sweep removes a session's idle workspace once older than the max age...
    let (_, a) = start_run(&c.url, "hello").await;
    wait_session(&c.url, &a, "finished").await;
    let kept = ws.join("ses_kept");
    std::fs::create_dir_all(&kept).unwrap();
    wait_for("the idle workspace to be swept", || async {
        (!kept.exists()).then_some(())
    })
    .await;
    // ...and never follows the symlink out of the root.
    assert!(ws.join("ses_evil").is_symlink());
    assert_eq!(
        std::fs::read_to_string(outside.join("precious")).unwrap(),
        "keep me"
    );
    assert!(ws.join(".runner-instance").exists());
}

/// The output of a runner expected to refuse its settings and exit; one that keeps
/// running instead (retrying the unreachable coordinator) fails the test, not hangs it.
async fn refused(cmd: &mut Command) -> std::process::Output {
    let out = cmd.kill_on_drop(true).output();
    tokio::time::timeout(PATIENCE, out)
        .await
        .expect("the runner should have refused to start")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_workspace_settings_stop_the_runner_with_a_clear_error() {
    let dir = tempdir();
    for (env, want) in [
        (("AOF_WORKSPACE_CLEANUP", "sometimes"), "on_success"),
        (("AOF_RUN_RLIMIT_NOFILE", "lots"), "AOF_RUN_RLIMIT_NOFILE"),
        (
            ("AOF_WORKSPACE_GIT_REPO", "/nonexistent/repo"),
            "/nonexistent/repo",
        ),
    ] {
        let out = refused(
            Command::new(BIN)
                .args(["runner", "--url", "http://127.0.0.1:9"])
                .arg("--workspace")
                .arg(dir.path().join("ws"))
                .env(env.0, env.1),
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{env:?}: {err}"
        );
    }
    // Limits configured but no prlimit to apply them: refuse rather than run unlimited.
    let out = refused(
        Command::new(BIN)
            .args(["runner", "--url", "http://127.0.0.1:9"])
            .arg("--workspace")
            .arg(dir.path().join("ws"))
            .env("AOF_RUN_RLIMIT_NOFILE", "64")
            .env("PATH", dir.path()),
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("prlimit"), "{err}");
}
