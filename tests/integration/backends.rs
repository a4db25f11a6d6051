//! Backends by URL scheme: `h2c://` (cleartext HTTP/2: a few multiplexed connections, not one
//! per request; bodies both ways; health checks in HTTP/2) and `https://` (TLS with ALPN, the
//! backend's certificate verified against its `ca`, refused with a 502 and a log line naming
//! why when it is not trusted), served here by hyper and by nginx.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{
    LbxProcess, Nginx, PatternBody, TempDir, TestBackend, TestCa, TestProxy, admin_get,
    config_for_urls, eventually, free_port, get, http1_client, send,
};

fn h2c(backend: &TestBackend) -> String {
    format!("h2c://{}", backend.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_backend_serves_many_concurrent_requests_over_few_connections() {
    let backend = TestBackend::slow("a", Duration::from_millis(50)).await;
    let proxy = TestProxy::start(&config_for_urls(None, &[h2c(&backend)], "")).await;
    // 64 requests at once from HTTP/1.1 clients: over HTTP/1.1 to the backend that would be 64
    // connections; over HTTP/2 they share one (or a few).
    let url = proxy.url("/");
    let answers: Vec<_> = (0..64)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for answer in answers {
        let (status, _, body) = answer.await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (200, "a"));
    }
    assert!(
        backend.connections() <= 4,
        "{} connections for 64 requests: HTTP/2 was not multiplexed",
        backend.connections()
    );
    assert_eq!(backend.requests(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_cross_between_http1_clients_and_http2_backends_intact() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config_for_urls(None, &[h2c(&backend)], "")).await;
    let length = 3 * 1024 * 1024 + 17;
    // HTTP/1.1 client, chunked upload (no length known up front).
    let upload = Request::post(proxy.url("/sum"))
        .body(PatternBody::new(length).boxed())
        .unwrap();
    let (status, _, sum) = send(&http1_client(), upload).await;
    assert_eq!(status, 200);
    assert_eq!(sum, PatternBody::expected_sum(length));
    // HTTP/2 client, download.
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let response = client
        .get(proxy.url(&format!("/bytes/{length}")).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len() as u64, length);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_speak_http2_to_an_h2c_backend() {
    let backend = TestBackend::named("a").await;
    let toml = config_for_urls(
        None,
        &[h2c(&backend)],
        "[health]\npath = \"/healthz\"\ninterval = \"100ms\"\nrise = 1\nfall = 1\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let backends = proxy.admin_url("/admin/backends");
    // The backend would answer HTTP/1.1 too: the probes' version is what shows they spoke
    // HTTP/2. Wait for a few, so the first is not the only one checked.
    let probes = eventually(Duration::from_secs(5), || async {
        let versions = backend.health_check_versions();
        (versions.len() >= 3).then_some(versions)
    })
    .await
    .expect("fewer than 3 health checks reached the backend in 5 s");
    assert!(
        probes.iter().all(|v| *v == http::Version::HTTP_2),
        "health checks to an h2c:// backend: {probes:?}"
    );
    // Healthy probes keep it usable; a failing status takes it down.
    assert!(admin_get(&backends).await.1.contains("\"down\": false"));
    backend.set_health(503);
    let down = eventually(Duration::from_secs(5), || {
        let backends = backends.clone();
        async move {
            admin_get(&backends)
                .await
                .1
                .contains("\"down\": true")
                .then_some(())
        }
    })
    .await;
    assert!(down.is_some(), "the HTTP/2 health check never saw the 503");
}

/// An HTTP/2 backend that takes one request per connection and closes the connection
/// gracefully (GOAWAY, as a server being restarted or recycling its connections does) while it
/// still answers that request, which takes `answer_after`. Returns its address and how many
/// connections it accepted.
async fn h2c_one_stream_per_connection(
    answer_after: Duration,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                if let Some(Ok((request, mut respond))) = connection.accept().await {
                    connection.graceful_shutdown();
                    // The stream is answered while the connection is driven below.
                    tokio::spawn(async move {
                        let mut body = request.into_body();
                        let mut length = 0;
                        while let Some(Ok(data)) = body.data().await {
                            length += data.len();
                            let _ = body.flow_control().release_capacity(data.len());
                        }
                        tokio::time::sleep(answer_after).await;
                        let response = http::Response::new(());
                        if let Ok(mut stream) = respond.send_response(response, false) {
                            let _ = stream.send_data(Bytes::from(format!("{length}")), true);
                        }
                    });
                }
                while let Some(Ok(_)) = connection.accept().await {}
            });
        }
    });
    (addr, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_meeting_an_h2c_connection_that_is_going_away_is_sent_on_a_new_one() {
    let (addr, connections) = h2c_one_stream_per_connection(Duration::from_millis(300)).await;
    // No retries: the second request must not need one.
    let toml = config_for_urls(
        None,
        &[format!("h2c://{addr}")],
        "[retry]\nmax_attempts = 1\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let post = |url: String, length: usize| async move {
        let upload = Request::post(url)
            .body(Full::new(Bytes::from(vec![b'x'; length])).boxed())
            .unwrap();
        send(&http1_client(), upload).await
    };
    for round in 0..3 {
        // The first request's connection has had GOAWAY while the first is still answered; the
        // second, a POST (never sent twice), comes to that connection, which refuses a new
        // stream before anything goes out: it must go on a new connection, not fail.
        let first = tokio::spawn(post(proxy.url("/"), 10));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (status, _, body) = post(proxy.url("/"), 20).await;
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "20"),
            "round {round}"
        );
        let (status, _, body) = first.await.unwrap();
        assert_eq!(
            (status.as_u16(), body.as_str()),
            (200, "10"),
            "round {round}"
        );
    }
    assert_eq!(connections.load(Ordering::SeqCst), 6);
}

/// An HTTP/2 backend whose first connection answers one request and then goes silent — the
/// socket stays open but nothing is read or answered, PINGs included, as a hung process or a
/// lost peer behind a NAT looks — while later connections answer every request with their
/// number. Returns its address and how many connections it accepted.
async fn h2c_first_connection_hangs() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let number = accepted.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_, mut respond))) = connection.accept().await {
                    if let Ok(mut stream) = respond.send_response(http::Response::new(()), false) {
                        let _ = stream.send_data(Bytes::from(format!("{number}")), true);
                    }
                    if number == 1 {
                        // Let the answer go out, then hold the socket without a read.
                        let _ =
                            tokio::time::timeout(Duration::from_millis(100), connection.accept())
                                .await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_connection_whose_backend_stops_answering_pings_is_dropped_before_a_request_waits_on_it()
 {
    let (addr, connections) = h2c_first_connection_hangs().await;
    // PINGs every 200 ms; a request stuck on the hung connection would wait 10 s for its head.
    let toml = config_for_urls(
        None,
        &[format!("h2c://{addr}")],
        "[pool]\nidle_timeout = \"200ms\"\n[timeouts]\nresponse_headers = \"10s\"\n",
    );
    let proxy = TestProxy::start(&toml).await;
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "1"));
    // Two PING periods and some slack: the unanswered PING has marked the connection dead.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let started = std::time::Instant::now();
    let (status, _, body) = get(&proxy.url("/")).await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "2"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the request waited on the hung connection: {:?}",
        started.elapsed()
    );
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

/// nginx serving HTTPS with `cert` on two ports: one with HTTP/2 by ALPN, one HTTP/1.1 only;
/// each answers with the protocol it spoke and the SNI name it was sent.
async fn nginx_https(ca: &TestCa) -> (Nginx, u16, u16) {
    let cert = ca.issue("backend", &["backend.test"]);
    let (h2_port, h1_port) = (free_port(), free_port());
    let block = format!(
        "ssl_certificate {cert};\nssl_certificate_key {key};\n\
         server {{ listen 127.0.0.1:{h2_port} ssl http2; location / {{ return 200 \"$server_protocol $ssl_server_name\"; }} }}\n\
         server {{ listen 127.0.0.1:{h1_port} ssl; location / {{ return 200 \"$server_protocol $ssl_server_name\"; }} }}",
        cert = cert.cert.display(),
        key = cert.key.display(),
    );
    let nginx = Nginx::start(TempDir::new("nginx-https"), &block, h1_port).await;
    (nginx, h2_port, h1_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_nginx_backend_is_verified_against_its_ca_and_spoken_to_by_alpn() {
    let ca = TestCa::new("https-backend");
    let (_nginx, h2_port, h1_port) = nginx_https(&ca).await;
    let backend = |port: u16| {
        format!(
            "[[backend]]\nurl = \"https://127.0.0.1:{port}\"\nca = {:?}\nserver_name = \"backend.test\"\n",
            ca.ca_pem.to_str().unwrap()
        )
    };
    for (port, expected) in [
        (h2_port, "HTTP/2.0 backend.test"),
        (h1_port, "HTTP/1.1 backend.test"),
    ] {
        let proxy = TestProxy::start(&backend(port)).await;
        let (status, _, body) = get(&proxy.url("/")).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, expected));
        // Reused for the next request (HTTP/1.1 keep-alive or the HTTP/2 connection).
        let (status, _, body) = get(&proxy.url("/again")).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, expected));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_backend_signed_by_another_ca_gets_502_and_a_log_line_saying_why() {
    let ca = TestCa::new("real-ca");
    let (_nginx, h2_port, _) = nginx_https(&ca).await;
    let stranger = TestCa::new("wrong-ca");
    let dir = TempDir::new("wrong-ca-config");
    let config = dir.join("lbx.toml");
    std::fs::write(
        &config,
        format!(
            "[[backend]]\nurl = \"https://127.0.0.1:{h2_port}\"\nca = {:?}\nserver_name = \"backend.test\"\n",
            stranger.ca_pem.to_str().unwrap()
        ),
    )
    .unwrap();
    let lbx = LbxProcess::run(&["--config", config.to_str().unwrap()]);
    let (status, headers, body) = get(&format!("http://{}/", lbx.addr)).await;
    assert_eq!(status, 502);
    assert!(
        body.starts_with("502 Bad Gateway: the backend could not be reached"),
        "{body}"
    );
    let id = headers["x-request-id"].to_str().unwrap().to_string();
    let line = eventually(Duration::from_secs(5), || {
        let (log, id) = (lbx.log(), id.clone());
        async move { log.lines().find(|l| l.contains(&id)).map(str::to_string) }
    })
    .await
    .expect("a log line for the request");
    assert!(line.contains("TLS handshake failed"), "{line}");
    assert!(line.contains("UnknownIssuer"), "{line}");
}
