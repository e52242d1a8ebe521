//! `GET /sessions`, `GET /runs` and `GET /runners` by pages (`limit`, `cursor`) with server-side filters
//! (`status`, `agent`, `q`), and their bad input: a 422 naming the parameter, never a 500.

use serde_json::{json, Value};

use crate::{app::TestApp, client::*, helpers::*};

fn ids(b: &Value, list: &str, key: &str) -> Vec<String> {
    b[list]
        .as_array()
        .unwrap_or_else(|| panic!("{b}"))
        .iter()
        .map(|s| s[key].as_str().unwrap().to_string())
        .collect()
}

/// Every page of `path` (which has a `?`), following `next_cursor`.
async fn pages(u: &str, path: &str, list: &str, key: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut url = format!("{u}{path}");
    loop {
        let (st, b) = call("GET", &url, None).await;
        assert_eq!(st, 200, "{b}");
        out.push(ids(&b, list, key));
        match b.get("next_cursor") {
            Some(c) => url = format!("{u}{path}&cursor={}", c.as_str().unwrap()),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_runs_by_pages_with_filters() {
    let c = TestApp::spawn().await;
    let u = &c.url;
    let mut made = Vec::new();
    for i in 0..7 {
        let agent = if i % 2 == 0 {
            "even-agent"
        } else {
            "odd-agent"
        };
        let (st, b) = create(
            u,
            json!({"type": "start_session", "agent_name": agent,
                   "parameters": {"prompt": format!("p{i}")}}),
        )
        .await;
        assert_eq!(st, 201, "{b}");
        made.push(b["session_id"].as_str().unwrap().to_string());
    }
    let (st, b) = stop_session(u, &made[3]).await;
    assert_eq!(st, 200, "{b}");
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();

    // Without paging parameters: the whole list, as before, and no cursor.
    let (st, whole) = call("GET", &format!("{u}/sessions"), None).await;
    assert_eq!(st, 200);
    assert_eq!(ids(&whole, "sessions", "session_id"), newest_first);
    assert!(whole.get("next_cursor").is_none(), "{whole}");
    assert!(whole.get("feed_head").is_none(), "{whole}");
    // A page says where the feed stands, to follow changes from there.
    let (_, b) = call("GET", &format!("{u}/sessions?limit=1"), None).await;
    let head = b["feed_head"].as_i64().unwrap_or_else(|| panic!("{b}"));
    let patch = json!({"executor_session_id": "exec-x"});
    let url = format!("{u}/sessions/{}/metadata", made[0]);
    let (st, b) = call("PATCH", &url, Some(patch)).await;
    assert_eq!(st, 200, "{b}");
    let (_, b) = call("GET", &format!("{u}/sessions?limit=1"), None).await;
    assert!(b["feed_head"].as_i64().unwrap() > head, "{b}");

    let got = pages(u, "/sessions?limit=3", "sessions", "session_id").await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(got.concat(), newest_first, "every session once, in order");

    let stopped = pages(
        u,
        "/sessions?limit=5&status=stopped",
        "sessions",
        "session_id",
    )
    .await;
    assert_eq!(stopped, [vec![made[3].clone()]]);
    let odd = pages(
        u,
        "/sessions?limit=2&agent=odd-agent",
        "sessions",
        "session_id",
    )
    .await;
    assert_eq!(odd.concat(), [made[5].as_str(), &made[3], &made[1]]);
    // Text: a case-insensitive piece of the agent name, or of an id.
    let text = pages(u, "/sessions?limit=50&q=EVEN-", "sessions", "session_id").await;
    assert_eq!(
        text.concat(),
        [made[6].as_str(), &made[4], &made[2], &made[0]]
    );
    let tail = &made[2][made[2].len() - 8..];
    let one = pages(
        u,
        &format!("/sessions?limit=50&q={tail}"),
        "sessions",
        "session_id",
    )
    .await;
    assert_eq!(one, [vec![made[2].clone()]]);
    // A filter without paging: the whole filtered list.
    let (st, b) = call("GET", &format!("{u}/sessions?status=stopped"), None).await;
    assert_eq!(st, 200);
    assert_eq!(ids(&b, "sessions", "session_id"), [made[3].as_str()]);
    // Only `cursor`: the default page size.
    let first = &got[0];
    let (_, b) = call("GET", &format!("{u}/sessions?limit=1"), None).await;
    let cursor = b["next_cursor"].as_str().unwrap().to_string();
    let (st, b) = call("GET", &format!("{u}/sessions?cursor={cursor}"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(ids(&b, "sessions", "session_id"), newest_first[1..]);
    assert_eq!(first[0], newest_first[0]);

    for bad in [
        "status=bogus",
        "status=",
        "limit=0",
        "limit=501",
        "cursor=nonsense",
        "cursor=1.zz",
        "limit=3&cursor=-4.31",
    ] {
        let got = call("GET", &format!("{u}/sessions?{bad}"), None).await;
        let item = expect_422(got, "value_error");
        assert_eq!(
            item["loc"][1],
            bad.rsplit('&').next().unwrap().split('=').next().unwrap()
        );
    }
    expect_422(
        call("GET", &format!("{u}/sessions?limit=x"), None).await,
        "int_parsing",
    );
    let long = "a".repeat(257);
    expect_422(
        call("GET", &format!("{u}/sessions?q={long}"), None).await,
        "value_error",
    );

    // The counts the overview shows instead of listing everything.
    let (st, b) = call("GET", &format!("{u}/stats"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["sessions_by_status"], json!({"pending": 6, "stopped": 1}));
    assert_eq!(b["runs_by_status"], json!({"pending": 6, "stopped": 1}));
    assert_eq!(b["runners_online"], 0);

    // Runs: the same paging; one per session here, newest first.
    let runs = pages(u, "/runs?limit=4", "runs", "session_id").await;
    assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), [4, 3]);
    assert_eq!(runs.concat(), newest_first);
    let stopped = pages(u, "/runs?limit=4&status=stopped", "runs", "session_id").await;
    assert_eq!(stopped, [vec![made[3].clone()]]);
    let (st, whole) = call("GET", &format!("{u}/runs"), None).await;
    assert_eq!(st, 200);
    assert!(whole.get("next_cursor").is_none(), "{whole}");
    for bad in ["limit=3&status=bogus", "limit=0", "cursor=x", "cursor=-1"] {
        expect_422(
            call("GET", &format!("{u}/runs?{bad}"), None).await,
            "value_error",
        );
    }
    // Unpaged, an unknown status matches nothing (as the AOF reference answers).
    let (st, b) = call("GET", &format!("{u}/runs?status=bogus"), None).await;
    assert_eq!((st, b), (200, json!({"runs": []})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_by_pages_with_filters() {
    let c = TestApp::spawn().await;
    let u = &c.url;
    let hosts = [
        "gpu-box-0",
        "cpu-box-0",
        "gpu-box-1",
        "cpu-box-1",
        "gpu-box-2",
    ];
    let mut made = Vec::new();
    for h in hosts {
        made.push(register(u, h).await);
    }
    // Unpaged: the whole list as the AOF reference answers it, in registration order
    // (ties within a millisecond broken by id), without a cursor.
    let (st, whole) = call("GET", &format!("{u}/runners"), None).await;
    assert_eq!(st, 200, "{whole}");
    assert!(whole.get("next_cursor").is_none(), "{whole}");
    let all = ids(&whole, "runners", "runner_id");
    let mut sorted = all.clone();
    sorted.sort();
    made.sort();
    assert_eq!(sorted, made, "every runner listed once");

    let got = pages(u, "/runners?limit=2", "runners", "runner_id").await;
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
    assert_eq!(got.concat(), all, "every runner once, in the list's order");
    let gpu = pages(u, "/runners?limit=2&q=GPU-BOX", "runners", "hostname").await;
    assert_eq!(gpu.concat().len(), 3, "{gpu:?}");
    assert!(gpu.concat().iter().all(|h| h.starts_with("gpu-box-")));
    // Filters without paging: the whole filtered list.
    let (_, b) = call("GET", &format!("{u}/runners?q=cpu-box-1"), None).await;
    assert_eq!(ids(&b, "runners", "hostname"), ["cpu-box-1"]);
    let online = pages(u, "/runners?limit=50&status=online", "runners", "runner_id").await;
    assert_eq!(online, vec![all.clone()]);
    let (_, b) = call("GET", &format!("{u}/runners?status=stale"), None).await;
    assert_eq!(b, json!({"runners": []}));
    // Only `cursor`: the default page size, the rest of the list.
    let (_, b) = call("GET", &format!("{u}/runners?limit=1"), None).await;
    let cursor = b["next_cursor"].as_str().unwrap().to_string();
    let (st, b) = call("GET", &format!("{u}/runners?cursor={cursor}"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(ids(&b, "runners", "runner_id"), all[1..]);

    // A session list's cursor is not a runner list's.
    for _ in 0..2 {
        create(
            u,
            json!({"type": "start_session", "parameters": {"prompt": "p"}}),
        )
        .await;
    }
    let (_, s) = call("GET", &format!("{u}/sessions?limit=1"), None).await;
    let session_cursor = s["next_cursor"].as_str().unwrap().to_string();
    let long = "a".repeat(257);
    for bad in [
        "status=bogus".to_string(),
        "status=".into(),
        "limit=0".into(),
        "limit=501".into(),
        "cursor=nonsense".into(),
        "cursor=1.31".into(),
        "limit=3&cursor=31.zz".into(),
        format!("q={long}"),
        format!("cursor={session_cursor}"),
    ] {
        let got = call("GET", &format!("{u}/runners?{bad}"), None).await;
        let item = expect_422(got, "value_error");
        assert_eq!(
            item["loc"][1],
            bad.rsplit('&').next().unwrap().split('=').next().unwrap(),
            "{bad}"
        );
    }
    // Nothing was changed by the refused requests.
    let (_, again) = call("GET", &format!("{u}/runners"), None).await;
    assert_eq!(ids(&again, "runners", "runner_id"), all);
}
