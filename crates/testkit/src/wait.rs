//! Waiting in tests for something another process or task does: poll until it is there,
//! or fail naming what never came. Written once for every suite.

use std::{future::Future, time::Duration};

/// Polls `f` every `every` until it returns `Some`, or panics after `limit` naming `what`.
pub async fn poll_until<T, F, Fut>(what: &str, limit: Duration, every: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}
