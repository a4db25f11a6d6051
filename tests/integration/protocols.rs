//! What clients and backends see of the hop through lbx: HTTP/2 from clients, forwarded
//! headers, preserved Host, hop-by-hop headers removed.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{TestBackend, TestProxy, config, http1_client, plugins, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cleartext_client_gets_correct_responses() {
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a, &b], "")).await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();

    let mut bodies = Vec::new();
    for _ in 0..4 {
        let response = client.get(proxy.url("/").parse().unwrap()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        bodies.push(String::from_utf8(body.to_vec()).unwrap());
    }
    assert_eq!(bodies, ["a", "b", "a", "b"]);
    // The backend speaks HTTP/1.1 and gets the client's authority as Host.
    assert_eq!(a.last_headers()["host"], proxy.addr.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_requests_reuse_one_keep_alive_connection_to_the_backend() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(Some(plugins::LEAST_CONN), &[&backend], "")).await;
    for path in ["/", "/bytes/100000", "/", "/bytes/0"] {
        for _ in 0..10 {
            let (status, _, _) = crate::support::get(&proxy.url(path)).await;
            assert_eq!(status, 200);
        }
    }
    assert_eq!(backend.requests(), 40);
    assert_eq!(
        backend.connections(),
        1,
        "lbx should reuse its backend connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_sees_forwarded_headers_and_original_host_but_no_hop_by_hop_headers() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(Some(plugins::LEAST_CONN), &[&backend], "")).await;
    let request = Request::get(proxy.url("/"))
        .header("host", "shop.example")
        .header("connection", "x-private-hop")
        .header("x-private-hop", "secret")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-end-to-end", "kept")
        .body(Empty::new().boxed())
        .unwrap();
    let (status, _, _) = send(&http1_client(), request).await;
    assert_eq!(status, 200);

    let seen = backend.last_headers();
    assert_eq!(seen["host"], "shop.example");
    // The client is not a trusted proxy: its own X-Forwarded-For is replaced, not extended.
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "shop.example");
    assert_eq!(seen["x-end-to-end"], "kept");
    assert!(!seen.contains_key("x-private-hop"));
    assert!(!seen.contains_key("proxy-authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_even_while_it_answers_pings() {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(
        None,
        &[&backend],
        "[timeouts]\nrequest_headers = \"300ms\"\n",
    ))
    .await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(std::time::Duration::from_millis(50))
        .keep_alive_while_idle(true)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(format!("http://{}/", proxy.addr))
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
    // Now only PINGs flow; lbx must still close the connection once it has been idle.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(3), connection).await;
    assert!(ended.is_ok(), "the idle HTTP/2 connection stayed open");
}

/// A client that resets its stream (RST_STREAM CANCEL) while lbx waits for the backend
/// cancels the request, as closing an HTTP/1.1 connection does: it is no longer counted in
/// flight long before the backend would have answered, and other streams on the same
/// connection carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_reset_by_the_client_cancels_its_request_only() {
    use std::time::Duration;
    let slow = TestBackend::slow("slow", Duration::from_secs(30)).await;
    let proxy = TestProxy::start(&config(Some(plugins::LEAST_CONN), &[&slow], "")).await;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = || {
        Request::get(format!("http://{}/", proxy.addr))
            .body(())
            .unwrap()
    };
    let (cancelled, _) = client.send_request(request(), true).unwrap();
    let (kept, _) = client.send_request(request(), true).unwrap();
    let id = slow.addr.to_string();
    let in_flight_becomes = |n: u64, limit: Duration| {
        let id = &id;
        crate::support::eventually(limit, move || async move {
            let backend = crate::support::admin_backend(proxy.admin, id).await?;
            (backend["in_flight"] == n).then_some(())
        })
    };
    let both_in_flight = in_flight_becomes(2, Duration::from_secs(10)).await;
    assert!(
        both_in_flight.is_some(),
        "the two requests never reached the backend"
    );

    drop(cancelled); // h2 resets a stream whose response nobody waits for
    let one_left = in_flight_becomes(1, Duration::from_secs(5)).await;
    assert!(
        one_left.is_some(),
        "the reset stream's request stayed in flight"
    );
    // The other stream is still waiting for its answer, not reset with the first.
    let still_waiting = tokio::time::timeout(Duration::from_millis(300), kept).await;
    assert!(
        still_waiting.is_err(),
        "the other stream ended: {still_waiting:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pythons_http_server_behind_lbx_serves_its_files() {
    let dir = crate::support::TempDir::new("python-http-server");
    std::fs::write(dir.join("hello.txt"), "hello from python\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(&dir.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 (installed by scripts/setup.sh)");
    let up = crate::support::eventually(std::time::Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    assert!(up.is_some(), "python's http.server did not start");
    let url = format!("http://127.0.0.1:{port}");
    let proxy = TestProxy::start(&crate::support::config_for_urls(None, &[url], "")).await;

    let (status, _, body) = crate::support::get(&proxy.url("/hello.txt?cache=1")).await;
    // python's server routes on the raw request target: an absolute-form target would 404.
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, "hello from python\n")
    );
    let (status, _, _) = crate::support::get(&proxy.url("/missing.txt")).await;
    assert_eq!(status, 404);
    let _ = server.kill();
    let _ = server.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_uploads_with_expect_100_continue_without_waiting_for_its_own_timeout() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(None, &[&backend], "")).await;
    let dir = crate::support::TempDir::new("curl-upload");
    let file = dir.join("upload.bin");
    let payload: Vec<u8> = (0..2 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &payload).unwrap();
    let url = proxy.url("/sum");
    let started = std::time::Instant::now();
    // curl sends `Expect: 100-continue` for an upload this size and waits up to 1 s for it.
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("curl")
            .args(["-sS", "-v", "--expect100-timeout", "5", "-T"])
            .arg(&file)
            .arg(&url)
            .output()
            .expect("curl (installed by scripts/setup.sh)")
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("> Expect: 100-continue"), "{stderr}");
    assert!(stderr.contains("< HTTP/1.1 100 Continue"), "{stderr}");
    assert!(
        took < std::time::Duration::from_secs(4),
        "curl waited for its expect timeout: {took:?}"
    );
    let mut hasher = std::hash::DefaultHasher::new();
    std::hash::Hasher::write(&mut hasher, &payload);
    let expected = format!("{} {:x}", payload.len(), std::hash::Hasher::finish(&hasher));
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}
