//! Streamed responses through lbx: server-sent events (an LLM's tokens, a live feed) reach
//! HTTP/1.1 and HTTP/2 clients as the backend sends them, never held to fill a buffer; and the
//! time to the body's first byte — an LLM's time to first token, which the response head may
//! precede by seconds — is recorded apart from the time to the head and the total, in the
//! access log and in the outcome a plugin hears.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::support::RawBackend;
use crate::support::{LbxProcess, TempDir, config_for_urls, eventually, plugins};

/// Time between two events, and before the first (after the head).
const GAP: Duration = Duration::from_millis(300);
const EVENTS: usize = 4;

/// A backend that answers every request with an event stream: the head at once, then
/// `EVENTS` events `GAP` apart (the first `GAP` after the head), then the end.
async fn event_stream_backend() -> RawBackend {
    RawBackend::start(|mut conn| async move {
        while let Some(request) = conn.read_request().await {
            if !request.complete {
                return;
            }
            conn.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                  Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
            )
            .await;
            for i in 0..EVENTS {
                tokio::time::sleep(GAP).await;
                let event = format!("data: {{\"token\":{i}}}\n\n");
                conn.write_chunk(&event).await;
            }
            conn.write(b"0\r\n\r\n").await;
        }
    })
    .await
}

/// lbx over `backend` with the test router recording outcomes and JSON access lines.
fn lbx_over(backend: &RawBackend) -> (LbxProcess, TempDir) {
    let dir = TempDir::new("streaming");
    let path = dir.join("lbx.toml");
    let toml = config_for_urls(
        Some(plugins::TEST_ROUTER),
        &[backend.url()],
        "[plugin.config]\noutcomes = \"record\"\n[log]\nformat = \"json\"\n",
    );
    std::fs::write(&path, toml).unwrap();
    let lbx = LbxProcess::run(&["--config", path.to_str().unwrap()]);
    (lbx, dir)
}

/// GET `url` and note when each event of the body arrived, from the request's start.
async fn event_arrivals(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
) -> (http::Version, Vec<Duration>) {
    let started = Instant::now();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let version = response.version();
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut arrivals = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            let expected = format!("data: {{\"token\":{}}}\n\n", arrivals.len());
            assert_eq!(String::from_utf8_lossy(&event), expected);
            arrivals.push(started.elapsed());
        }
    }
    assert!(pending.is_empty(), "a partial event at the end");
    (version, arrivals)
}

/// Each event arrived about `GAP` after the one before: none was held back to be sent with
/// the next (a buffering proxy delivers them together, at the end).
fn assert_streamed(arrivals: &[Duration], client: &str) {
    assert_eq!(arrivals.len(), EVENTS, "{client}: {arrivals:?}");
    for pair in arrivals.windows(2) {
        assert!(
            pair[1] - pair[0] >= GAP / 2,
            "{client}: events arrived together, not as sent: {arrivals:?}"
        );
    }
    assert!(
        arrivals[0] < arrivals[EVENTS - 1] - GAP * 2,
        "{client}: the first event waited for the last: {arrivals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sent_events_reach_http1_and_http2_clients_as_they_are_sent() {
    let backend = event_stream_backend().await;
    let (lbx, _dir) = lbx_over(&backend);
    let url = format!("http://{}/v1/chat/completions", lbx.addr);

    let http1: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let (version, arrivals) = event_arrivals(&http1, &url).await;
    assert_eq!(version, http::Version::HTTP_11);
    assert_streamed(&arrivals, "HTTP/1.1");

    let http2: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let (version, arrivals) = event_arrivals(&http2, &url).await;
    assert_eq!(version, http::Version::HTTP_2);
    assert_streamed(&arrivals, "HTTP/2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_to_the_first_body_byte_is_recorded_apart_from_the_head_and_the_end() {
    let backend = event_stream_backend().await;
    let (lbx, _dir) = lbx_over(&backend);
    let url = format!("http://{}/stream", lbx.addr);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let (_, arrivals) = event_arrivals(&client, &url).await;
    assert_eq!(arrivals.len(), EVENTS);

    // The access line: head at once, first byte a gap later, the end after every event.
    let line = eventually(Duration::from_secs(5), || async {
        lbx.log()
            .lines()
            .find(|l| l.contains("lbx::access") && l.contains("/stream"))
            .map(str::to_string)
    })
    .await
    .expect("an access line for the stream");
    let line: Value = serde_json::from_str(&line).unwrap();
    let ms = |field: &str| {
        line[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: {line}"))
    };
    let gap_ms = GAP.as_secs_f64() * 1000.0;
    assert!(
        ms("first_byte_ms") - ms("upstream_ms") >= gap_ms / 2.0,
        "the first byte came a gap after the head: {line}"
    );
    assert!(
        ms("total_ms") - ms("first_byte_ms") >= gap_ms * 2.0,
        "the end came after the remaining events: {line}"
    );

    // The outcome the plugin heard carries the same three times, in microseconds.
    let heard = eventually(Duration::from_secs(5), || async {
        let response = client
            .get(format!("http://{}/stream", lbx.addr).parse().unwrap())
            .await
            .ok()?;
        let last = response
            .headers()
            .get("x-test-last-outcome")?
            .to_str()
            .ok()?;
        let last: Value = serde_json::from_str(last).ok()?;
        response.into_body().collect().await.ok()?;
        Some(last)
    })
    .await
    .expect("the plugin heard the first stream's outcome");
    let us = |field: &str| {
        heard[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: {heard}"))
    };
    let gap_us = GAP.as_secs_f64() * 1e6;
    assert!(
        us("first_byte_us") - us("ttfb_us") >= gap_us / 2.0,
        "{heard}"
    );
    assert!(
        us("total_us") - us("first_byte_us") >= gap_us * 2.0,
        "{heard}"
    );
}
