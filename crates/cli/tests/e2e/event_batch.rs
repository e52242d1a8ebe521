//! `POST /sessions/{id}/events/batch` over real HTTP: order and seq, all-or-nothing
//! validation, idempotent retries, lease fencing and live SSE delivery. Runs on SQLite
//! and (scripts/test.sh) on PostgreSQL.

use serde_json::{json, Value};

use crate::harness::*;

fn message(sid: &str, text: &str) -> Value {
    json!({"event_type": "message", "session_id": sid, "timestamp": "2026-01-01T00:00:00+00:00",
           "role": "assistant", "content": [{"type": "text", "text": text}]})
}

fn batch(sid: &str, texts: &[&str]) -> Value {
    json!({"events": texts.iter().map(|t| message(sid, t)).collect::<Vec<_>>()})
}

fn texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event_type"] == "message")
        .map(|e| e["content"][0]["text"].as_str().unwrap().to_string())
        .collect()
}

async fn post(url: &str, sid: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events/batch"),
        Some(body),
        headers,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_in_order_and_each_event_goes_live() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = &c.url;
    let (_, sid) = start_run(url, "batch").await;
    let (st, one) = call(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(message(&sid, "single")),
    )
    .await;
    assert_eq!(st, 201, "{one}");
    let mut sse = Sse::open(&format!("{url}/sse/sessions?session_id={sid}"), None).await;

    let sent = ["b0", "b1", "b2", "b3", "b4"];
    let (st, b) = post(url, &sid, batch(&sid, &sent), &[]).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["ok"], true);
    let posted = b["events"].as_array().unwrap();
    assert_eq!(posted.len(), sent.len(), "{b}");
    let ids: Vec<i64> = posted.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    let seqs: Vec<i64> = posted.iter().map(|p| p["seq"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    assert!(ids[0] > one["id"].as_i64().unwrap());
    let first = one["seq"].as_i64().unwrap() + 1;
    assert_eq!(seqs, (first..first + 5).collect::<Vec<_>>(), "seq gap-free");

    // Stored in the order sent, after the single event, with the ids and seqs answered.
    let all = events(url, &sid).await;
    assert_eq!(texts(&all), ["single", "b0", "b1", "b2", "b3", "b4"]);
    let tail: Vec<(i64, i64)> = all[all.len() - 5..]
        .iter()
        .map(|e| (e["id"].as_i64().unwrap(), e["seq"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        tail,
        ids.iter()
            .copied()
            .zip(seqs.iter().copied())
            .collect::<Vec<_>>()
    );

    // A subscriber that was live gets each event of the batch as its own frame, in order.
    let mut live = Vec::new();
    while live.len() < sent.len() {
        let f = sse.next().await.expect("SSE stream open");
        if f.event != "event" {
            continue;
        }
        let data: Value = serde_json::from_str(&f.data).unwrap();
        let id: i64 = f.id.as_deref().unwrap().parse().unwrap();
        live.push((id, data["data"]["content"][0]["text"].clone()));
    }
    let want: Vec<(i64, Value)> = ids.iter().copied().zip(sent.map(|t| json!(t))).collect();
    assert_eq!(live, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_batch_stores_nothing_and_says_why() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = &c.url;
    let (_, sid) = start_run(url, "batch").await;
    let before = events(url, &sid).await.len();

    let mut bad_type = batch(&sid, &["ok0", "bad", "ok2"]);
    bad_type["events"][1]["event_type"] = json!("");
    let mut other_session = batch(&sid, &["ok0", "ok1", "other"]);
    other_session["events"][2]["session_id"] = json!("ses_other");
    let mut big = batch(&sid, &["ok0", "big"]);
    big["events"][1]["content"][0]["text"] = json!("x".repeat(1 << 20));
    let too_many = batch(&sid, &["m"; 1001]);
    let cases = [
        (bad_type, 400, "invalid_event_type", Some("events[1]")),
        (other_session, 400, "session_id_mismatch", Some("events[2]")),
        (big, 413, "event_too_large", Some("events[1]")),
        (json!({"events": []}), 400, "empty_batch", None),
        (too_many, 413, "too_many_events", None),
        (json!({}), 422, "validation_error", None),
        (json!({"events": "no"}), 422, "validation_error", None),
    ];
    for (body, status, code, names) in cases {
        let (st, b) = post(url, &sid, body, &[]).await;
        assert_eq!((st, b["code"].as_str()), (status, Some(code)), "{b}");
        if let Some(index) = names {
            assert!(b.to_string().contains(index), "names {index}: {b}");
        }
    }
    // A malformed event: the 422 points at its index.
    let mut missing = batch(&sid, &["ok0", "ok1"]);
    missing["events"][1]
        .as_object_mut()
        .unwrap()
        .remove("event_type");
    let (st, b) = post(url, &sid, missing, &[]).await;
    assert_eq!(st, 422, "{b}");
    assert_eq!(
        b["detail"][0]["loc"],
        json!(["body", "events", 1, "event_type"])
    );
    let (st, b) = post(
        url,
        &sid,
        batch(&sid, &["k"]),
        &[("idempotency-key", &"k".repeat(201))],
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
    let (st, b) = post(url, "ses_nope", batch("ses_nope", &["x"]), &[]).await;
    assert_eq!((st, b["code"].as_str()), (404, Some("session_not_found")));

    let after = events(url, &sid).await;
    assert_eq!(after.len(), before, "nothing stored: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_stores_each_event_once() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = &c.url;
    let (_, sid) = start_run(url, "batch").await;
    let key = [("idempotency-key", "batch-1")];
    let (st, first) = post(url, &sid, batch(&sid, &["i0", "i1", "i2"]), &key).await;
    assert_eq!(st, 201, "{first}");
    assert!(first["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"].is_i64() && e.get("duplicate").is_none()));
    // The retry (a lost answer, say): every event reported as a duplicate, none stored.
    let (st, again) = post(url, &sid, batch(&sid, &["i0", "i1", "i2"]), &key).await;
    assert_eq!(st, 201, "{again}");
    assert_eq!(
        again["events"],
        json!([{"ok": true, "duplicate": true}, {"ok": true, "duplicate": true},
               {"ok": true, "duplicate": true}])
    );
    // A longer retry stores only what is new; event i is keyed `batch-1/i`.
    let (st, longer) = post(url, &sid, batch(&sid, &["i0", "i1", "i2", "i3"]), &key).await;
    assert_eq!(st, 201, "{longer}");
    let dup: Vec<bool> = longer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["duplicate"] == true)
        .collect();
    assert_eq!(dup, [true, true, true, false]);
    let (st, single) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(message(&sid, "i1 again")),
        &[("idempotency-key", "batch-1/1")],
    )
    .await;
    assert_eq!((st, &single["duplicate"]), (201, &json!(true)), "{single}");
    assert_eq!(texts(&events(url, &sid).await), ["i0", "i1", "i2", "i3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_stale_lease_is_refused_whole() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = &c.url;
    let runner = register(url, "runner-a").await;
    let (run_id, sid) = start_run(url, "fenced").await;
    let (st, polled) = call(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{polled}");
    assert_eq!(polled["run"]["run_id"], run_id.as_str());
    let token = polled["run"]["lease_token"].as_str().unwrap().to_string();
    let before = events(url, &sid).await.len();

    let stale = [
        ("x-aof-lease-token", "not-the-token"),
        ("x-aof-run-id", run_id.as_str()),
    ];
    let (st, b) = post(url, &sid, batch(&sid, &["s0", "s1", "s2"]), &stale).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("lease_conflict")),
        "{b}"
    );
    let (st, b) = post(
        url,
        &sid,
        batch(&sid, &["s0"]),
        &[("x-aof-lease-token", &token)],
    )
    .await;
    assert_eq!(st, 400, "a token needs its run id: {b}");
    assert_eq!(events(url, &sid).await.len(), before, "nothing stored");

    let held = [
        ("x-aof-lease-token", token.as_str()),
        ("x-aof-run-id", run_id.as_str()),
    ];
    let (st, b) = post(url, &sid, batch(&sid, &["h0", "h1"]), &held).await;
    assert_eq!(st, 201, "{b}");
    let stored = events(url, &sid).await;
    assert_eq!(texts(&stored), ["h0", "h1"]);
    assert!(stored
        .iter()
        .filter(|e| e["event_type"] == "message")
        .all(|e| e["run_id"] == run_id.as_str()));
}

/// The batch body may be 8 × `AOF_MAX_BODY_BYTES`: a batch larger than one ordinary
/// body is fine, one over its own cap is refused with `body_too_large`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_body_cap_is_eight_times_the_body_cap() {
    let dir = tempdir();
    let mut env = fast_env();
    env.push(("AOF_MAX_BODY_BYTES".into(), "4096".into()));
    let c = Coordinator::start(dir.path(), env).await;
    let url = &c.url;
    let (_, sid) = start_run(url, "batch").await;
    let text = "t".repeat(100);
    let body = |n: usize| batch(&sid, &vec![text.as_str(); n]);
    let size = |v: &Value| v.to_string().len();
    let fits = body(50);
    assert!((4096..8 * 4096).contains(&size(&fits)), "{}", size(&fits));
    let (st, b) = post(url, &sid, fits, &[]).await;
    assert_eq!(st, 201, "{b}");
    let over = body(300);
    assert!(size(&over) > 8 * 4096);
    let (st, b) = post(url, &sid, over, &[]).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (413, Some("body_too_large")),
        "{b}"
    );
    assert_eq!(texts(&events(url, &sid).await).len(), 50);
}
