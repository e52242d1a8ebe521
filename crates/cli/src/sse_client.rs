//! A small SSE reader over reqwest: frames with id, event and data lines.

use futures::StreamExt;

pub use aof_wire::sse::parse::{Frame, Parser};

/// Opens an SSE stream and calls `on_frame` for each frame until it returns `false`
/// or the stream ends. Returns whether `on_frame` asked to stop.
pub async fn follow(
    client: &reqwest::Client,
    url: &str,
    last_event_id: Option<&str>,
    on_frame: impl FnMut(Frame) -> bool,
) -> anyhow::Result<bool> {
    read(open(client, url, last_event_id).await?, on_frame).await
}

/// Opens an SSE stream: once this returns, the server has answered and is sending.
pub async fn open(
    client: &reqwest::Client,
    url: &str,
    last_event_id: Option<&str>,
) -> anyhow::Result<reqwest::Response> {
    let mut req = client.get(url).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        anyhow::bail!("{url} answered {}", resp.status());
    }
    Ok(resp)
}

/// Reads an opened stream; see [`follow`].
pub async fn read(
    resp: reqwest::Response,
    mut on_frame: impl FnMut(Frame) -> bool,
) -> anyhow::Result<bool> {
    let mut stream = resp.bytes_stream();
    let mut parser = Parser::default();
    while let Some(chunk) = stream.next().await {
        for frame in parser.feed(&chunk?) {
            if !on_frame(frame) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
