//! The open-loop sender: each planned request goes out at its offset whether or not earlier
//! ones have been answered — a slow server faces the same arrivals as a fast one, as real users
//! would present them, instead of being offered less load because it is slow (the closed-loop
//! benchmark's "coordinated omission").
//!
//! Outstanding requests are bounded by `max_outstanding`; an arrival beyond it is not sent and
//! is counted as dropped by the generator. After the last arrival the run lasts at least until
//! `duration` has passed, then waits for the answers still streaming (each bounded by
//! `timeout`).

use std::sync::Arc;

use http::{Method, Request, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

use super::body::render;
use super::exchange::{HttpClient, Outcome, exchange};
use super::settings::Settings;
use super::workload::Workload;

/// What a run produced, for the report.
#[derive(Debug)]
pub struct Run {
    /// Every request sent, in the order they finished.
    pub outcomes: Vec<Outcome>,
    /// Requests the schedule held.
    pub scheduled: u64,
    /// Arrivals not sent because `max_outstanding` requests were in flight.
    pub dropped: u64,
    /// From the start to the later of `duration` and the last answer's end.
    pub elapsed: Duration,
}

/// The header naming the conversation, so a hash policy can key on it.
pub const SESSION_HEADER: &str = "x-session-id";

/// Send `workload` to `endpoint` on schedule and collect every outcome.
pub async fn drive(settings: &Settings, endpoint: Uri, workload: Workload) -> Run {
    let mut connector = HttpConnector::new();
    // Small writes (a request, a token) must not wait for Nagle's algorithm.
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let permits = Arc::new(Semaphore::new(settings.max_outstanding));
    let mut in_flight = JoinSet::new();
    let mut outcomes = Vec::new();
    let mut scheduled = 0;
    let mut dropped = 0;
    let start = Instant::now();

    for planned in workload {
        let due = start + planned.offset;
        tokio::time::sleep_until(due).await;
        scheduled += 1;
        while let Some(done) = in_flight.try_join_next() {
            outcomes.push(joined(done));
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            dropped += 1;
            continue;
        };
        let request = Request::builder()
            .method(Method::POST)
            .uri(endpoint.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "text/event-stream")
            .header(SESSION_HEADER, planned.session_id())
            .body(Full::new(render(settings.api, &settings.model, &planned)))
            .expect("a valid request");
        let estimate = planned.prompt_tokens();
        let client = client.clone();
        let timeout = settings.timeout;
        in_flight.spawn(async move {
            let outcome = exchange(&client, request, estimate, due, timeout).await;
            drop(permit);
            outcome
        });
    }
    tokio::time::sleep_until(start + settings.duration).await;
    while let Some(done) = in_flight.join_next().await {
        outcomes.push(joined(done));
    }
    Run {
        outcomes,
        scheduled,
        dropped,
        elapsed: start.elapsed(),
    }
}

/// A finished exchange's outcome; an exchange that panicked panics here (a bug, not a result).
fn joined(done: Result<Outcome, tokio::task::JoinError>) -> Outcome {
    match done {
        Ok(outcome) => outcome,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
