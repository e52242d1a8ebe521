//! The token cache against a local token endpoint.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc, Mutex,
};

use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
use serde_json::{json, Value};

use super::*;
use crate::ApiKey;

/// One token request's form fields.
type Form = Vec<(String, String)>;

#[derive(Clone, Default)]
struct Endpoint {
    calls: Arc<AtomicUsize>,
    forms: Arc<Mutex<Vec<Form>>>,
    expires_in: Option<f64>,
    status: Option<u16>,
}

async fn token(
    State(ep): State<Endpoint>,
    axum::Form(form): axum::Form<Form>,
) -> (StatusCode, Json<Value>) {
    let n = ep.calls.fetch_add(1, Ordering::SeqCst) + 1;
    ep.forms.lock().unwrap().push(form);
    if let Some(s) = ep.status {
        return (
            StatusCode::from_u16(s).unwrap(),
            Json(json!({"error": "access_denied"})),
        );
    }
    let mut body = json!({"access_token": format!("tok-{n}"), "token_type": "Bearer"});
    if let Some(e) = ep.expires_in {
        body["expires_in"] = json!(e);
    }
    (StatusCode::OK, Json(body))
}

async fn serve(ep: Endpoint) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth/token", l.local_addr().unwrap());
    let app = Router::new()
        .route("/oauth/token", post(token))
        .with_state(ep);
    tokio::spawn(async move { axum::serve(l, app).await });
    url
}

fn creds(url: &str) -> ClientCredentials {
    ClientCredentials {
        token_url: url.into(),
        client_id: "cid".into(),
        client_secret: ApiKey("s3cret".into()),
        audience: "https://aof.test/api".into(),
    }
}

async fn concurrent_bearers(tokens: &Arc<Tokens>) -> Vec<String> {
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let t = tokens.clone();
            tokio::spawn(async move { t.bearer().await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().to_str().unwrap().to_string());
    }
    out
}

#[tokio::test]
async fn one_token_is_shared_until_it_is_due_or_refused() {
    let ep = Endpoint::default();
    let tokens = Arc::new(Tokens::new(creds(&serve(ep.clone()).await)).unwrap());
    // Concurrent first requests wait for one fetch.
    let got = concurrent_bearers(&tokens).await;
    assert!(got.iter().all(|h| h == "Bearer tok-1"), "{got:?}");
    assert_eq!(ep.calls.load(Ordering::SeqCst), 1);
    let form = ep.forms.lock().unwrap()[0].clone();
    for (k, v) in [
        ("grant_type", "client_credentials"),
        ("client_id", "cid"),
        ("client_secret", "s3cret"),
        ("audience", "https://aof.test/api"),
    ] {
        assert!(form.contains(&(k.to_string(), v.to_string())), "{form:?}");
    }
    // A refusal of another token changes nothing; of this one, fetches anew.
    tokens
        .refused(&HeaderValue::from_static("Bearer old"))
        .await;
    assert_eq!(tokens.bearer().await.unwrap(), "Bearer tok-1");
    tokens.refused(&tokens.bearer().await.unwrap()).await;
    assert_eq!(tokens.bearer().await.unwrap(), "Bearer tok-2");
    assert_eq!(ep.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_is_renewed_before_it_expires() {
    // Lives 0.4 s: renewed after half of that, so a token is never used near expiry.
    let ep = Endpoint {
        expires_in: Some(0.4),
        ..Default::default()
    };
    let tokens = Tokens::new(creds(&serve(ep.clone()).await)).unwrap();
    assert_eq!(tokens.bearer().await.unwrap(), "Bearer tok-1");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(tokens.bearer().await.unwrap(), "Bearer tok-2");
    // Without `expires_in` a token is assumed to live an hour.
    let ep = Endpoint::default();
    let tokens = Tokens::new(creds(&serve(ep.clone()).await)).unwrap();
    tokens.bearer().await.unwrap();
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(tokens.bearer().await.unwrap(), "Bearer tok-1");
}

#[tokio::test]
async fn refusals_and_outages_say_whether_to_retry() {
    let refused = Endpoint {
        status: Some(401),
        ..Default::default()
    };
    let e = Tokens::new(creds(&serve(refused).await))
        .unwrap()
        .bearer()
        .await
        .unwrap_err();
    assert!(!e.retryable);
    let shown = e.to_string();
    assert!(
        shown.contains("401") && shown.contains("access_denied"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");
    let down = Endpoint {
        status: Some(503),
        ..Default::default()
    };
    let e = Tokens::new(creds(&serve(down).await))
        .unwrap()
        .bearer()
        .await
        .unwrap_err();
    assert!(e.retryable);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/oauth/token", l.local_addr().unwrap());
    drop(l);
    let e = Tokens::new(creds(&dead))
        .unwrap()
        .bearer()
        .await
        .unwrap_err();
    assert!(e.retryable, "{e}");
}
