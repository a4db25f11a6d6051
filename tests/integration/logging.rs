//! The access log never holds up a request: lines are written by a thread of their own, and a
//! destination that cannot keep up loses lines — counted — instead of stalling the proxy.

use std::time::{Duration, Instant};

use crate::support::{LbxProcess, RawClient, TestBackend, admin_get, metric};

/// Requests per connection, pipelined.
const PIPELINED: usize = 2_500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_destination_that_stops_reading_never_stalls_requests_and_drops_are_counted() {
    let backend = TestBackend::named("a").await;
    // Its log is a pipe nobody reads: after a few hundred access lines it is full.
    let lbx = LbxProcess::run_with_a_log_nobody_reads(&["--backend", &backend.url()]);
    let started = Instant::now();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let addr = lbx.addr;
            tokio::spawn(async move {
                let mut client = RawClient::connect(addr).await;
                let request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n".repeat(PIPELINED);
                client.send(request.as_bytes()).await;
                client
                    .read_until_count("HTTP/1.1 200 OK\r\n", PIPELINED, Duration::from_secs(60))
                    .await
            })
        })
        .collect();
    for client in clients {
        assert_eq!(
            client.await.unwrap(),
            PIPELINED,
            "answers on one connection"
        );
    }
    let took = started.elapsed();
    // Far more lines than the pipe and the writer's queue hold: some were dropped, and said so.
    let (status, text) = admin_get(&format!("http://{}/metrics", lbx.admin)).await;
    assert_eq!(status, 200);
    assert!(
        metric(&text, "lbx_log_lines_dropped_total") > 0.0,
        "after {took:?}: {text}"
    );
}
