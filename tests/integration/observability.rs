//! Metrics, access log and request ids, observed from outside over real sockets: what
//! `/metrics` and `/admin/backends` count after real traffic, what the access log writes
//! (`[log]`), and how `X-Request-Id` and W3C trace context travel.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    LbxProcess, RawBackend, RawClient, RefusingPort, TempDir, TestCa, TestProxy, admin_get,
    admin_post, eventually, https_get, metric, tls_section,
};

/// A backend answering `500` with `fail` to paths starting `/fail`, and `200` with `ok` to
/// everything else (after reading the whole request body).
async fn ok_or_fail_backend() -> RawBackend {
    RawBackend::start(|mut conn| async move {
        while let Some(request) = conn.read_request().await {
            if !request.complete {
                return;
            }
            let answer: &[u8] = if request.request_line().starts_with("GET /fail")
                || request.request_line().starts_with("POST /fail")
            {
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            };
            conn.write(answer).await;
        }
    })
    .await
}

/// One request on a connection of its own; the response text.
async fn request(lbx: &TestProxy, head: &str) -> String {
    RawClient::exchange(lbx.addr, head).await
}

/// The value of header `name` in a raw response.
fn header<'a>(response: &'a str, name: &str) -> Option<&'a str> {
    response
        .split("\r\n\r\n")
        .next()?
        .split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

async fn scrape(lbx: &TestProxy) -> String {
    let (status, text) = admin_get(&lbx.admin_url("/metrics")).await;
    assert_eq!(status, 200);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_responses_by_class_latencies_and_bytes_per_backend() {
    let backend = ok_or_fail_backend().await;
    let lbx = TestProxy::in_front_of(backend.url(), "").await;
    let id = backend.addr.to_string();
    for _ in 0..3 {
        let answer = request(
            &lbx,
            "POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    for _ in 0..2 {
        let answer = request(
            &lbx,
            "GET /fail HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    }

    let series = |name: &str| format!("{name}{{backend=\"{id}\"}}");
    // The total time is recorded as the response's relay ends, just after the client has it.
    let text = eventually(Duration::from_secs(5), || async {
        let text = scrape(&lbx).await;
        (metric(&text, &series("lbx_backend_total_latency_seconds_count")) == 5.0).then_some(text)
    })
    .await
    .expect("five total latencies recorded");
    let class = |c: &str| {
        metric(
            &text,
            &format!("lbx_backend_responses_total{{backend=\"{id}\",class=\"{c}\"}}"),
        )
    };
    assert_eq!(
        (class("2xx"), class("5xx"), class("4xx")),
        (3.0, 2.0, 0.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, &series("lbx_backend_upstream_latency_seconds_count")),
        5.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("lbx_backend_upstream_latency_seconds_bucket{{le=\"+Inf\",backend=\"{id}\"}}")
        ),
        5.0,
        "cumulative buckets end at the count"
    );
    assert_eq!(
        metric(&text, &series("lbx_backend_request_body_bytes_total")),
        30.0
    );
    assert_eq!(
        metric(&text, &series("lbx_backend_response_body_bytes_total")),
        3.0 * 2.0 + 2.0 * 4.0
    );
    assert_eq!(metric(&text, &series("lbx_backend_errors_total")), 0.0);

    // The admin API shows the same figures, in the dashboard's shape.
    let (status, body) = admin_get(&lbx.admin_url("/admin/backends")).await;
    assert_eq!(status, 200);
    let backends: Value = serde_json::from_str(&body).unwrap();
    let traffic = &backends["backends"][0]["traffic"];
    assert_eq!(traffic["responses"]["2xx"], 3, "{traffic}");
    assert_eq!(traffic["responses"]["5xx"], 2);
    assert_eq!(traffic["bytes_in"], 30);
    assert_eq!(traffic["bytes_out"], 14);
    let bounds = traffic["latency_bounds_seconds"].as_array().unwrap().len();
    for histogram in ["upstream_latency_counts", "total_latency_counts"] {
        let counts = traffic[histogram].as_array().unwrap();
        assert_eq!(counts.len(), bounds + 1, "{histogram}");
        assert_eq!(counts.iter().map(|c| c.as_u64().unwrap()).sum::<u64>(), 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_cannot_be_reached_shows_as_errors_and_5xx_answers() {
    let refusing = RefusingPort::reserve();
    let lbx = TestProxy::in_front_of(refusing.url(), "[retry]\nmax_attempts = 1\n").await;
    let answer = request(
        &lbx,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let text = scrape(&lbx).await;
    let id = refusing.url().trim_start_matches("http://").to_string();
    assert_eq!(
        metric(
            &text,
            &format!("lbx_backend_errors_total{{backend=\"{id}\"}}")
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!("lbx_backend_responses_total{{backend=\"{id}\",class=\"5xx\"}}")
        ),
        1.0
    );
    // lbx's own error answer carries the id its body names.
    let id = header(&answer, "x-request-id").expect("X-Request-Id on the 502");
    assert!(answer.contains(&format!("request id: {id}\n")), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_connections_gauge_goes_up_and_down() {
    let backend = ok_or_fail_backend().await;
    let lbx = TestProxy::in_front_of(backend.url(), "").await;
    let open = |text: &str| {
        metric(
            text,
            "lbx_client_connections{listener=\"http\",protocol=\"http1\"}",
        )
    };
    let mut clients = Vec::new();
    for _ in 0..2 {
        let mut client = RawClient::connect(lbx.addr).await;
        client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(
            client
                .read_until("\r\n\r\nok")
                .await
                .starts_with("HTTP/1.1 200")
        );
        clients.push(client);
    }
    assert_eq!(open(&scrape(&lbx).await), 2.0);
    drop(clients);
    let closed = eventually(Duration::from_secs(5), || async {
        (open(&scrape(&lbx).await) == 0.0).then_some(())
    })
    .await;
    assert!(
        closed.is_some(),
        "the gauge returns to 0 when the clients leave"
    );
}

/// The backend's single `X-Request-Id`.
fn forwarded_id(backend: &RawBackend, index: usize) -> String {
    let values = backend.requests()[index].values("x-request-id");
    assert_eq!(
        values.len(),
        1,
        "exactly one X-Request-Id upstream: {values:?}"
    );
    values[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_peers_request_id_is_kept_and_an_untrusted_ones_replaced() {
    let backend = RawBackend::recording().await;
    let trusting = TestProxy::in_front_of(
        backend.url(),
        "[proxy]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    )
    .await;
    let wary = TestProxy::in_front_of(backend.url(), "").await;
    let with_id = |id: &str| {
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n")
    };

    let answer = request(&trusting, &with_id("edge-7f3a/1")).await;
    assert_eq!(
        header(&answer, "x-request-id"),
        Some("edge-7f3a/1"),
        "{answer}"
    );
    assert_eq!(forwarded_id(&backend, 0), "edge-7f3a/1");

    let answer = request(&wary, &with_id("edge-7f3a/1")).await;
    let replaced = forwarded_id(&backend, 1);
    assert_ne!(replaced, "edge-7f3a/1");
    assert_eq!(replaced.len(), 16, "a generated id: {replaced}");
    assert_eq!(header(&answer, "x-request-id"), Some(replaced.as_str()));

    // Even a trusted peer's id must be a sane token.
    let answer = request(&trusting, &with_id(&"x".repeat(201))).await;
    assert_eq!(forwarded_id(&backend, 2).len(), 16);
    assert_eq!(
        header(&answer, "x-request-id").map(str::len),
        Some(16),
        "{answer}"
    );

    // Without one, lbx makes one: the same upstream and to the client.
    let answer = request(
        &wary,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        header(&answer, "x-request-id"),
        Some(forwarded_id(&backend, 3).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w3c_trace_context_reaches_the_backend_byte_for_byte() {
    let backend = RawBackend::recording().await;
    let lbx = TestProxy::in_front_of(backend.url(), "").await;
    let trace = "TraceParent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\
                 tracestate: rojo=00f067aa0ba902b7,congo=t61rcWkgMzE\r\n";
    let answer = request(
        &lbx,
        &format!("GET /t HTTP/1.1\r\nHost: a\r\n{trace}Connection: close\r\n\r\n"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let wire = backend.wire().concat();
    let wire = String::from_utf8_lossy(&wire);
    assert!(wire.contains(&format!("\r\n{trace}")), "{wire}");
}

/// `lbx run` with a config file holding `toml` (backends included); the process and the file's
/// directory (kept for as long as the process runs).
fn lbx_with_config(toml: &str) -> (LbxProcess, TempDir) {
    let dir = TempDir::new("observability");
    let path = dir.join("lbx.toml");
    std::fs::write(&path, toml).unwrap();
    let lbx = LbxProcess::run(&["--config", path.to_str().unwrap()]);
    (lbx, dir)
}

/// Access lines logged so far.
fn access_lines(lbx: &LbxProcess) -> Vec<String> {
    lbx.log()
        .lines()
        .filter(|line| line.contains("lbx::access"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_access_line_is_valid_json_with_every_field() {
    let backend = RawBackend::recording().await;
    let (lbx, _dir) = lbx_with_config(&format!(
        "[log]\nformat = \"json\"\n[[backend]]\nurl = \"{}\"\n",
        backend.url()
    ));
    let answer = RawClient::exchange(
        lbx.addr,
        "POST /a\"b\\c?q=%22 HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let id = header(&answer, "x-request-id").unwrap().to_string();
    let line = eventually(Duration::from_secs(5), || async {
        access_lines(&lbx).into_iter().find(|l| l.contains(&id))
    })
    .await
    .expect("an access line for the request");
    let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let keys: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "timestamp",
        "level",
        "target",
        "request_id",
        "client",
        "method",
        "host",
        "path",
        "status",
        "backend",
        "attempts",
        "upstream_ms",
        "total_ms",
        "bytes_in",
        "bytes_out",
        "decision_us",
        "decided_by",
        "complete",
        "first_byte_ms",
    ]
    .into();
    assert_eq!(keys, expected, "{line}");
    assert_eq!(value["request_id"], id.as_str());
    assert_eq!(value["path"], "/a\"b\\c?q=%22");
    assert_eq!(value["host"], "shop.example");
    assert_eq!(value["method"], "POST");
    assert_eq!(value["status"], 200);
    assert_eq!(value["backend"], backend.addr.to_string());
    assert_eq!(value["attempts"], 1);
    assert_eq!(
        (value["bytes_in"].as_u64(), value["bytes_out"].as_u64()),
        (Some(3), Some(2))
    );
    let ms = |field: &str| value[field].as_f64().unwrap();
    assert!(ms("upstream_ms") <= ms("first_byte_ms") && ms("first_byte_ms") <= ms("total_ms"));
    assert!(value["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    // No plugin configured: the built-in choice, not a fallback from anything.
    assert_eq!(value["decided_by"], "builtin");
    assert_eq!(value["complete"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_false_silences_access_lines_only_and_a_reload_switches_it() {
    // A backend that refuses: each request is answered 502 and logged as a backend error
    // (a warning), besides its access line.
    let refusing = RefusingPort::reserve();
    let config = |access: bool| {
        format!(
            "[log]\naccess = {access}\n[retry]\nmax_attempts = 1\n[[backend]]\nurl = \"{}\"\n",
            refusing.url()
        )
    };
    let (lbx, dir) = lbx_with_config(&config(false));
    let addr = lbx.addr;
    let get = || {
        RawClient::exchange(
            addr,
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
    };
    let answer = get().await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let failed = header(&answer, "x-request-id").unwrap().to_string();
    let warned = eventually(Duration::from_secs(5), || async {
        lbx.log()
            .lines()
            .any(|l| l.contains("backend error") && l.contains(&failed))
            .then_some(())
    })
    .await;
    assert!(warned.is_some(), "other lines still appear: {}", lbx.log());
    assert_eq!(access_lines(&lbx), Vec::<String>::new());

    // Switched on by a config reload, no restart.
    std::fs::write(dir.join("lbx.toml"), config(true)).unwrap();
    let (status, body) = admin_post(&format!("http://{}/admin/reload", lbx.admin)).await;
    assert_eq!(status, 200, "{body}");
    let answer = get().await;
    let id = header(&answer, "x-request-id").unwrap().to_string();
    let logged = eventually(Duration::from_secs(5), || async {
        access_lines(&lbx)
            .into_iter()
            .find(|l| l.contains(&format!("request_id={id} ")))
    })
    .await;
    let line = logged.unwrap_or_else(|| panic!("no access line for {id}: {}", lbx.log()));
    assert!(line.contains(" status=502 "), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_grafana_dashboard_queries_exists() {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/grafana/lbx-dashboard.json"
        ))
        .expect("the dashboard file"),
    )
    .expect("the dashboard is JSON");
    let mut queried = BTreeSet::new();
    collect_metric_names(&dashboard, &mut queried);
    assert!(
        queried.len() >= 10,
        "the dashboard queries lbx metrics: {queried:?}"
    );

    // Every component's metrics are registered: TLS too, and traffic through a backend.
    let backend = ok_or_fail_backend().await;
    let ca = TestCa::new("dashboard");
    let site = ca.issue("site", &["shop.example"]);
    let lbx = TestProxy::in_front_of(backend.url(), &tls_section(&[&site])).await;
    request(
        &lbx,
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    https_get(
        lbx.tls.unwrap(),
        "shop.example",
        &ca.client_config(&[b"http/1.1"]),
        "/",
    )
    .await
    .unwrap();
    let exposed = exposed_names(&scrape(&lbx).await);
    let missing: Vec<_> = queried.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "queried but not exposed by lbx: {missing:?}"
    );
}

/// Every `lbx_…` name in the `expr` of the dashboard's queries.
fn collect_metric_names(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) => {
            for (key, value) in object {
                match (key.as_str(), value) {
                    ("expr", Value::String(expr)) => names.extend(metric_names_in(expr)),
                    _ => collect_metric_names(value, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_metric_names(v, names)),
        _ => {}
    }
}

fn metric_names_in(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while let Some(at) = expr[i..].find("lbx_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = expr[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(expr.len(), |n| start + n);
        if !preceded {
            names.push(expr[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Series names in Prometheus text: every sample's name, and for each declared family the
/// names its samples take (`_total` for counters; `_bucket`, `_sum`, `_count` for histograms)
/// even when it has no sample yet.
fn exposed_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let mut parts = declared.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            match kind {
                "counter" => {
                    names.insert(format!("{name}_total"));
                }
                "histogram" => {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{suffix}"));
                    }
                }
                _ => {
                    names.insert(name.to_string());
                }
            }
        } else if !line.starts_with('#') {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}
