//! [`Sse`]: an open `text/event-stream` response read frame by frame, for tests of the
//! coordinator's live feed (`GET /sse/sessions`) in the API and the process suites.

use std::{collections::VecDeque, time::Duration};

use aof_wire::sse::parse::{Frame, Parser};
use futures::StreamExt;

/// How long [`Sse::next`] waits for a frame (the suites' patience on a loaded machine).
const PATIENCE: Duration = Duration::from_secs(30);

/// An open SSE stream, read frame by frame.
pub struct Sse {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: Parser,
    pending: VecDeque<Frame>,
}

impl Sse {
    /// `GET url` (with `Last-Event-ID` when given); asserts 200.
    pub async fn open(url: &str, last_event_id: Option<&str>) -> Sse {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut rb = client.get(url);
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let resp = rb.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        Sse {
            stream: resp.bytes_stream().boxed(),
            parser: Parser::default(),
            pending: Default::default(),
        }
    }

    /// The next frame; None when the stream ended. Panics after 30 s without bytes.
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Some(f);
            }
            let chunk = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("SSE frame within patience")?
                .ok()?;
            self.pending.extend(self.parser.feed(&chunk));
        }
    }
}
