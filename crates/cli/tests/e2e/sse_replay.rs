//! SSE replay: a client that drops and reconnects with Last-Event-ID while writers keep
//! posting sees every event exactly once, in cursor order.

use std::collections::BTreeSet;

use serde_json::json;

use crate::harness::*;

const WRITERS: usize = 4;
const PER_WRITER: usize = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_last_event_id_has_no_gap_and_no_duplicate() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = c.url.clone();
    // Sessions without a runner: their runs stay pending, we write events ourselves.
    let mut sessions = Vec::new();
    for i in 0..WRITERS {
        sessions.push(start_run(&url, &format!("s{i}")).await.1);
    }

    let writers: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|sid| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut acked = Vec::new();
                for n in 0..PER_WRITER {
                    let ev = json!({"event_type": "message", "session_id": sid,
                        "timestamp": "2026-01-01T00:00:00+00:00", "role": "assistant",
                        "content": [{"type": "text", "text": format!("{sid}-{n}")}]});
                    let (st, b) =
                        call("POST", &format!("{url}/sessions/{sid}/events"), Some(ev)).await;
                    assert_eq!(st, 201, "{b}");
                    acked.push(b["id"].as_i64().unwrap());
                }
                acked
            })
        })
        .collect();

    // The reader: start from the beginning, drop the connection every 37 frames.
    let total = WRITERS * PER_WRITER;
    let mut seen_ids: Vec<i64> = Vec::new();
    let mut texts = BTreeSet::new();
    let mut last = "0".to_string();
    let mut reconnects = 0;
    while texts.len() < total {
        let mut sse = Sse::open(&format!("{url}/sse/sessions"), Some(&last)).await;
        for _ in 0..37 {
            let Some(f) = sse.next().await else { break };
            let id: i64 = f.id.as_deref().unwrap().parse().unwrap();
            last = id.to_string();
            seen_ids.push(id);
            if f.event == "event" {
                let data: serde_json::Value = serde_json::from_str(&f.data).unwrap();
                if let Some(t) = data["data"]["content"][0]["text"].as_str() {
                    assert!(texts.insert(t.to_string()), "duplicate event {t}");
                }
            }
            if texts.len() == total {
                break;
            }
        }
        reconnects += 1;
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(reconnects > 3, "the reader reconnected {reconnects} times");
    // Strictly increasing ids: no duplicate and in commit order across reconnects.
    assert!(
        seen_ids.windows(2).all(|w| w[0] < w[1]),
        "ids not increasing"
    );
    // Every acknowledged event id was delivered.
    let seen: BTreeSet<i64> = seen_ids.iter().copied().collect();
    assert!(
        acked.iter().all(|id| seen.contains(id)),
        "an acknowledged event was not streamed"
    );
    assert_eq!(texts.len(), total);

    // Per-session sequences have no gaps.
    for sid in &sessions {
        let seqs: Vec<i64> = events(&url, sid)
            .await
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(seqs, (1..=PER_WRITER as i64).collect::<Vec<_>>());
    }

    // A filtered stream with Last-Event-ID replays only that session, then goes live.
    let sid = &sessions[0];
    let mut sse = Sse::open(&format!("{url}/sse/sessions?session_id={sid}"), Some("0")).await;
    let mut n = 0;
    while n < PER_WRITER + 1 {
        let f = sse.next().await.unwrap();
        let data: serde_json::Value = serde_json::from_str(&f.data).unwrap();
        match f.event.as_str() {
            "session_created" => assert_eq!(data["session"]["session_id"], sid.as_str()),
            "event" => assert_eq!(data["data"]["session_id"], sid.as_str()),
            other => panic!("unexpected {other}"),
        }
        n += 1;
    }
    let (st, _) = call(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(json!({"event_type": "live", "session_id": sid, "timestamp": "t"})),
    )
    .await;
    assert_eq!(st, 201);
    let f = sse.next().await.unwrap();
    assert_eq!(f.event, "event");
    assert!(f.data.contains("\"live\""));

    // A malformed Last-Event-ID is a clear 400, not a silent full replay.
    let (st, body) = call_h(
        "GET",
        &format!("{url}/sse/sessions"),
        None,
        &[("last-event-id", "abc")],
    )
    .await;
    assert_eq!(st, 400);
    assert_eq!(body["code"], "invalid_last_event_id");
}
