//! `aof backup` while writers are busy gives a consistent store that `aof restore` puts
//! back and a coordinator serves: every session's events gap-free, nothing half-written.

use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use serde_json::json;
use tokio::process::Command;

use crate::harness::*;

async fn aof(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_load_then_restore_round_trip() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let mut sessions = Vec::new();
    for i in 0..3 {
        sessions.push(start_run(&c.url, &format!("b{i}")).await.1);
    }
    // Writers keep posting while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|sid| {
            let (url, stop) = (c.url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ev = json!({"event_type": "note", "session_id": sid, "timestamp": "t"});
                    let (st, _) =
                        call("POST", &format!("{url}/sessions/{sid}/events"), Some(ev)).await;
                    assert_eq!(st, 201);
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    wait_for("some events", || async {
        (events(&c.url, &sessions[0]).await.len() >= 20).then_some(())
    })
    .await;
    let out = dir.path().join("backup.db");
    let data_dir = c.data_dir.to_str().unwrap().to_string();
    let (code, err) = aof(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = 0;
    for w in writers {
        acked += w.await.unwrap();
    }
    assert_eq!(code, 0, "{err}");
    // Never overwrites.
    let (code, err) = aof(&[
        "backup",
        "--data-dir",
        &data_dir,
        "--out",
        out.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("exists"), "{err}");

    // Restore into a fresh data dir and serve it.
    let restored = tempdir();
    let rdir = restored.path().join("coord");
    let (code, err) = aof(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        rdir.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, err) = aof(&[
        "restore",
        "--from",
        out.to_str().unwrap(),
        "--data-dir",
        rdir.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 2, "restore must not replace without --force: {err}");
    let r = Coordinator::start(restored.path(), fast_env()).await;
    let mut total = 0;
    for sid in &sessions {
        let evs = events(&r.url, sid).await;
        let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=evs.len() as i64).collect::<Vec<_>>(),
            "gap-free per session"
        );
        total += evs.len() as u64;
    }
    assert!(
        total >= 20 && total <= acked,
        "restored {total} of {acked} acknowledged events"
    );
    // The restored store keeps working: new writes continue each session's sequence.
    let sid = &sessions[0];
    let before = events(&r.url, sid).await.len() as i64;
    let (st, b) = call(
        "POST",
        &format!("{}/sessions/{sid}/events", r.url),
        Some(json!({"event_type": "after", "session_id": sid, "timestamp": "t"})),
    )
    .await;
    assert_eq!((st, b["seq"].as_i64()), (201, Some(before + 1)));
}
