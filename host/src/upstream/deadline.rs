//! The one timer a request waiting on a backend keeps, over HTTP/1.1 and HTTP/2 alike.
//!
//! What is being waited on changes while a request is in flight — the backend not taking the
//! body, then the response head after the body ended, and the request's overall deadline once
//! the client is done — so the deadline is recomputed on every poll and the timer re-armed
//! only when it moved. Computing it once before waiting would miss a change that happens
//! while waiting (a stream that stops taking the body), and the request would wait forever.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// Which timer ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// The backend made no progress in `response_headers`.
    Backend,
    /// The request's overall deadline passed.
    Request,
}

/// The earlier of the backend's progress deadline and the request's overall one.
pub fn earliest(backend: Option<Instant>, request: Option<Instant>) -> Option<(Instant, Waited)> {
    match (backend, request) {
        (Some(b), Some(r)) if r < b => Some((r, Waited::Request)),
        (Some(b), _) => Some((b, Waited::Backend)),
        (None, r) => r.map(|r| (r, Waited::Request)),
    }
}

/// A timer re-armed to whatever deadline applies when it is polled.
#[derive(Debug)]
pub struct DeadlineTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    armed_at: Option<Instant>,
}

impl DeadlineTimer {
    /// A timer with nothing to wait for yet.
    pub fn new() -> Self {
        Self {
            sleep: None,
            armed_at: None,
        }
    }

    /// Wait for `deadline` (none: nothing is due, the caller is woken by something else).
    pub fn poll(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<(Instant, Waited)>,
    ) -> Poll<Waited> {
        let Some((at, waited)) = deadline else {
            return Poll::Pending;
        };
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if self.armed_at != Some(at) {
            sleep.as_mut().reset(at);
            self.armed_at = Some(at);
        }
        sleep.as_mut().poll(cx).map(|()| waited)
    }
}

impl Default for DeadlineTimer {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_earlier_deadline_wins_and_a_tie_blames_the_backend() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        assert_eq!(earliest(None, None), None);
        assert_eq!(earliest(Some(now), None), Some((now, Waited::Backend)));
        assert_eq!(earliest(None, Some(now)), Some((now, Waited::Request)));
        assert_eq!(
            earliest(Some(later), Some(now)),
            Some((now, Waited::Request))
        );
        assert_eq!(
            earliest(Some(now), Some(later)),
            Some((now, Waited::Backend))
        );
        assert_eq!(earliest(Some(now), Some(now)), Some((now, Waited::Backend)));
    }

    #[tokio::test]
    async fn a_deadline_that_moves_while_waiting_is_the_one_that_fires() {
        let mut timer = DeadlineTimer::new();
        let start = Instant::now();
        let mut deadline = None;
        let fired = std::future::poll_fn(|cx| {
            // Nothing due at first; from the second poll on, 50 ms from the start.
            let polled = timer.poll(cx, deadline);
            if deadline.is_none() {
                deadline = Some((start + Duration::from_millis(50), Waited::Backend));
                cx.waker().wake_by_ref();
            }
            polled
        })
        .await;
        assert_eq!(fired, Waited::Backend);
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
