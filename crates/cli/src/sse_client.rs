//! A small SSE reader over reqwest: frames with id, event and data lines.

use futures::StreamExt;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// Incremental parser: feed bytes, take complete frames.
#[derive(Default)]
pub struct Parser {
    buf: String,
    cur: Frame,
}

impl Parser {
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Frame> {
        self.buf.push_str(&String::from_utf8_lossy(chunk));
        let mut out = Vec::new();
        while let Some(pos) = self.buf.find('\n') {
            let line: String = self.buf.drain(..=pos).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.cur.data.is_empty() || !self.cur.event.is_empty() {
                    out.push(std::mem::take(&mut self.cur));
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // comment / keep-alive
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "id" => self.cur.id = Some(value.to_string()),
                "event" => self.cur.event = value.to_string(),
                "data" => {
                    if !self.cur.data.is_empty() {
                        self.cur.data.push('\n');
                    }
                    self.cur.data.push_str(value);
                }
                _ => {}
            }
        }
        out
    }
}

/// Opens an SSE stream and calls `on_frame` for each frame until it returns `false`
/// or the stream ends. Returns whether `on_frame` asked to stop.
pub async fn follow(
    client: &reqwest::Client,
    url: &str,
    last_event_id: Option<&str>,
    mut on_frame: impl FnMut(Frame) -> bool,
) -> anyhow::Result<bool> {
    let mut req = client.get(url).header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = req.send().await?;
    if !resp.status().is_success() {
        anyhow::bail!("{url} answered {}", resp.status());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_frames_and_skips_comments() {
        let mut p = Parser::default();
        assert!(p.feed(b"id: 3\nevent: ev").is_empty());
        let frames = p.feed(b"ent\ndata: {\"a\":1}\n\n: heartbeat\n\nid: 4\ndata: x\ndata: y\n\n");
        assert_eq!(
            frames,
            vec![
                Frame {
                    id: Some("3".into()),
                    event: "event".into(),
                    data: "{\"a\":1}".into()
                },
                Frame {
                    id: Some("4".into()),
                    event: String::new(),
                    data: "x\ny".into()
                },
            ]
        );
    }
}
