//! Plain HTTP calls for the API and process test suites: status and JSON body back
//! (Null when the body is empty or not JSON), a panic naming the call when it cannot
//! be sent.

use std::time::Duration;

use serde_json::Value;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// One HTTP call; returns status and JSON body (Null when empty or not JSON).
pub async fn call(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    call_h(method, url, body, &[]).await
}

/// `call` with extra headers.
pub async fn call_h(
    method: &str,
    url: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut rb = client().request(method.parse().unwrap(), url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends raw bytes (for malformed-JSON cases).
pub async fn call_raw(method: &str, url: &str, body: &str) -> (u16, Value) {
    let resp = client()
        .request(method.parse().unwrap(), url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}
