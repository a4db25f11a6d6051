//! The log as a person or a log shipper reads it. It never holds up a request: lines are
//! written by a thread of their own, and a destination that cannot keep up loses lines —
//! counted — instead of stalling the proxy. `[log] format = "json"` makes every line one JSON
//! object, switched by a reload. A failed attempt that a retry rescues is still told.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    LbxProcess, RawClient, RefusingPort, TempDir, TestBackend, admin_get, admin_post, eventually,
    metric,
};

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

/// The `x-request-id` of a raw response.
fn request_id(answer: &str) -> String {
    answer
        .split("\r\n")
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("x-request-id"))
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_else(|| panic!("no x-request-id in {answer}"))
}

/// The first line of `log` that contains every one of `needles`.
fn line_with<'a>(log: &'a str, needles: &[&str]) -> Option<&'a str> {
    log.lines().find(|l| needles.iter().all(|n| l.contains(n)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_format_every_line_is_a_json_object_and_a_reload_switches_back_to_text() {
    // Every request to a backend that refuses connections is a warning, besides its access line.
    let refusing = RefusingPort::reserve();
    let config = |format: &str| {
        format!(
            "[log]\nformat = \"{format}\"\n[retry]\nmax_attempts = 1\n[[backend]]\nurl = \"{}\"\n",
            refusing.url()
        )
    };
    let dir = TempDir::new("json-log");
    let file = dir.join("lbx.toml");
    std::fs::write(&file, config("json")).unwrap();
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let get = || {
        RawClient::exchange(
            lbx.addr,
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
    };
    let answer = get().await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let id = request_id(&answer);
    let log = eventually(Duration::from_secs(5), || async {
        let log = lbx.log();
        let warned = line_with(&log, &["backend error", &id]).is_some();
        let accessed = line_with(&log, &["lbx::access", &id]).is_some();
        (warned && accessed).then_some(log)
    })
    .await
    .unwrap_or_else(|| panic!("no warning and access line for {id}: {}", lbx.log()));

    // Every line, from the first (the listening lines) on: one object with the same keys.
    for line in log.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}\n{log}"));
        for key in ["timestamp", "level", "target"] {
            assert!(value[key].is_string(), "no {key}: {line}");
        }
    }
    let warning: Value = serde_json::from_str(line_with(&log, &["backend error", &id]).unwrap())
        .expect("checked above");
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert_eq!(warning["message"], "backend error", "{warning}");
    assert_eq!(
        warning["request_id"],
        id.as_str(),
        "fields at the top: {warning}"
    );
    assert_eq!(warning["status"], 502, "{warning}");
    let listening = line_with(&log, &["lbx listening"]).expect("a listening line");
    let listening: Value = serde_json::from_str(listening).expect("checked above");
    assert_eq!(listening["listen"], lbx.addr.to_string(), "{listening}");

    // Back to text by a reload, no restart.
    std::fs::write(&file, config("text")).unwrap();
    let (status, body) = admin_post(&format!("http://{}/admin/reload", lbx.admin)).await;
    assert_eq!(status, 200, "{body}");
    let id = request_id(&get().await);
    let warning = eventually(Duration::from_secs(5), || async {
        line_with(&lbx.log(), &["backend error", &id]).map(str::to_string)
    })
    .await
    .unwrap_or_else(|| panic!("no warning for {id}: {}", lbx.log()));
    assert!(
        !warning.starts_with('{') && warning.contains(" WARN ") && warning.contains("status=502"),
        "{warning}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_that_a_retry_rescues_is_logged_at_warn_with_the_request_id() {
    let refusing = RefusingPort::reserve();
    let good = TestBackend::named("good").await;
    let refusing_id = refusing.addr.to_string();
    let lbx = LbxProcess::run(&["--backend", &refusing.url(), "--backend", &good.url()]);
    // The built-in choice rotates its starting backend: within a few requests one tries the
    // refusing backend first and is rescued by the other.
    let mut answered = Vec::new();
    for _ in 0..4 {
        let answer = RawClient::exchange(
            lbx.addr,
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "every request is rescued: {answer}"
        );
        answered.push(request_id(&answer));
    }
    let rescued = eventually(Duration::from_secs(5), || async {
        let log = lbx.log();
        answered.iter().find_map(|id| {
            line_with(&log, &["attempt failed; retrying on another backend", id])
                .map(str::to_string)
        })
    })
    .await
    .unwrap_or_else(|| panic!("no rescued attempt logged: {}", lbx.log()));
    assert!(rescued.contains(" WARN "), "{rescued}");
    for field in [
        format!("backend={refusing_id}"),
        "attempt=1".to_string(),
        "fault=\"backend\"".to_string(),
        "reason=".to_string(),
    ] {
        assert!(rescued.contains(&field), "{field} missing: {rescued}");
    }
}
