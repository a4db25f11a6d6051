//! The one timer a request waiting on a backend keeps, over HTTP/1.1 and HTTP/2 alike (and
//! the one a client connection waiting for its next request head keeps).
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

/// A timer that waits for whatever deadline applies when it is polled, tagged with what it
/// stands for (`T`: which wait ran out).
///
/// Re-arming a tokio timer is a timer-wheel removal and insertion. A deadline that moves later
/// — a keep-alive connection restarting its header timeout on every request — does not re-arm
/// it: the timer stays armed at the earlier time and, when it fires early, is re-armed to the
/// deadline then in force. Only a deadline that moves earlier re-arms it at once.
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
    pub fn poll<T: Copy>(
        &mut self,
        cx: &mut Context<'_>,
        deadline: Option<(Instant, T)>,
    ) -> Poll<T> {
        let Some((at, tag)) = deadline else {
            return Poll::Pending;
        };
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if self.armed_at.is_none_or(|armed| at < armed) {
            sleep.as_mut().reset(at);
            self.armed_at = Some(at);
        }
        loop {
            std::task::ready!(sleep.as_mut().poll(cx));
            if Instant::now() >= at {
                return Poll::Ready(tag);
            }
            // Armed for an earlier deadline that has since moved on.
            sleep.as_mut().reset(at);
            self.armed_at = Some(at);
        }
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

        // Moved later after it was armed: it fires at the later time, not the first.
        let mut timer = DeadlineTimer::new();
        let start = Instant::now();
        let mut at = start + Duration::from_millis(20);
        std::future::poll_fn(|cx| {
            let polled = timer.poll(cx, Some((at, ())));
            at = start + Duration::from_millis(60);
            polled
        })
        .await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(50) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}
