//! Exponential backoff with jitter, and the retry loop every coordinator write uses.
//!
//! The jitter keeps many runners that lost the coordinator at the same moment from
//! coming back in lockstep when it returns.

use std::{future::Future, time::Duration};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::client::ClientError;

/// First delay after a failure.
pub(crate) const BASE: Duration = Duration::from_millis(100);
/// Longest delay; a returning coordinator is noticed within this.
pub(crate) const CAP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BASE, CAP)
    }
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// Upper bound of the next delay: `base * 2^attempt`, at most `cap`.
    fn ceiling(&self) -> Duration {
        // Past 2^20 the cap has long been reached; the clamp keeps the multiply from overflowing.
        let factor = 1u32 << self.attempt.min(20);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next try, in `[ceiling/2, ceiling]` ("equal jitter"): half
    /// fixed so retries never hammer, half random so runners spread out.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rand::thread_rng().gen_range(0..=spread))
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Sleep the next delay; `false` if `cancel` fired first.
    pub(crate) async fn wait(&mut self, cancel: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = cancel.cancelled() => false,
        }
    }
}

/// How a retried request ended.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    Done(T),
    /// The coordinator answered with an error that will not change on retry.
    Rejected(ClientError),
    /// `interrupt` fired: the lease is gone or the runner gave up on delivery.
    Interrupted,
}

/// Run `op` until it succeeds, fails for good, or `interrupt` fires. Transport errors
/// and 5xx are retried with backoff, forever: a coordinator may be down for a while
/// and executions must not lose what they have to say.
pub(crate) async fn retry<T, F, Fut>(
    what: &'static str,
    interrupt: &CancellationToken,
    mut op: F,
) -> Attempt<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClientError>>,
{
    let mut backoff = Backoff::default();
    loop {
        let res = tokio::select! {
            biased;
            _ = interrupt.cancelled() => return Attempt::Interrupted,
            r = op() => r,
        };
        match res {
            Ok(v) => return Attempt::Done(v),
            Err(e) if e.is_retryable() => {
                tracing::warn!(request = what, error = %e, attempt = backoff.attempt + 1, "request failed; retrying");
                if !backoff.wait(interrupt).await {
                    return Attempt::Interrupted;
                }
            }
            Err(e) => return Attempt::Rejected(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds_and_cap() {
        let mut b = Backoff::default();
        let mut ceiling = BASE;
        for _ in 0..40 {
            let d = b.next_delay();
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "{d:?} outside [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            ceiling = (ceiling * 2).min(CAP);
        }
        // Long after the cap is reached, delays stay at most the cap.
        for _ in 0..1000 {
            assert!(b.next_delay() <= CAP);
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::default();
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= BASE);
    }

    #[test]
    fn jitter_varies() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(1), CAP);
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 1);
    }

    #[tokio::test]
    async fn retry_stops_on_interrupt_and_rejection() {
        let interrupt = CancellationToken::new();
        interrupt.cancel();
        let r: Attempt<()> = retry("t", &interrupt, || async { Ok(()) }).await;
        assert!(matches!(r, Attempt::Interrupted));

        let live = CancellationToken::new();
        let mut calls = 0;
        let r: Attempt<u32> = retry("t", &live, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(ClientError::status(503, None))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert!(matches!(r, Attempt::Done(3)));

        let r: Attempt<()> =
            retry("t", &live, || async { Err(ClientError::status(404, None)) }).await;
        assert!(matches!(r, Attempt::Rejected(e) if e.status_code() == Some(404)));
    }
}
