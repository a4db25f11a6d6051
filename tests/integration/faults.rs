//! Whose fault is it: a body that did not end cleanly is never completed upstream nor replayed,
//! a client's errors never count against a backend, and a backend's invalid framing does.

use std::time::{Duration, Instant};

use crate::support::{
    RawBackend, RawClient, TestProxy, admin_backend, admin_get, config_for_urls, eventually, metric,
};

const SECOND: Duration = Duration::from_secs(1);
/// How long a test waits for a state it expects: a bound on liveness, never on speed.
const LIVENESS: Duration = Duration::from_secs(30);

/// Two recording backends behind lbx with retries on and ejection after one failure, so any
/// retry or any failure counted against a backend would show.
async fn two_backends_quick_to_eject(extra: &str) -> (RawBackend, RawBackend, TestProxy) {
    let (a, b) = (RawBackend::recording().await, RawBackend::recording().await);
    let toml = config_for_urls(
        None,
        &[a.url(), b.url()],
        &format!(
            "[outlier]\nconsecutive_failures = 1\nbase_ejection = \"1m\"\n[retry]\nmax_attempts = 3\n{extra}"
        ),
    );
    (a, b, TestProxy::start(&toml).await)
}

/// Every request both backends received.
fn all_requests(a: &RawBackend, b: &RawBackend) -> Vec<crate::support::RawRequest> {
    let mut requests = a.requests();
    requests.extend(b.requests());
    requests
}

/// Wait until one of the backends has received `bytes` on some connection.
async fn received(a: &RawBackend, b: &RawBackend, bytes: &[u8]) {
    let arrived = eventually(LIVENESS, || async {
        let wire = [a.wire(), b.wire()].concat();
        wire.iter()
            .any(|c| c.windows(bytes.len()).any(|w| w == bytes))
            .then_some(())
    })
    .await;
    assert!(
        arrived.is_some(),
        "{:?} never reached a backend",
        String::from_utf8_lossy(bytes)
    );
}

/// Wait until lbx has closed an upstream connection and the backend recorded what it got on
/// it (it records a broken request when it sees the close); returns every request recorded.
async fn upstream_closed(a: &RawBackend, b: &RawBackend) -> Vec<crate::support::RawRequest> {
    eventually(LIVENESS, || async {
        let closed = a.closed_by_peer() + b.closed_by_peer() > 0;
        let requests = all_requests(a, b);
        (closed && !requests.is_empty()).then_some(requests)
    })
    .await
    .expect("lbx never closed the upstream connection")
}

/// Attempts lbx made on the two backends (retries included), as `/admin/backends` counts them.
async fn attempts(proxy: &TestProxy, a: &RawBackend, b: &RawBackend) -> u64 {
    let mut total = 0;
    for backend in [a, b] {
        let described = admin_backend(proxy.admin, &backend.addr.to_string()).await;
        total += described.expect("backend listed")["requests"]
            .as_u64()
            .unwrap();
    }
    total
}

/// Wait until lbx has no HTTP/1.1 client connection open: it is done with the request.
async fn client_connections_closed(proxy: &TestProxy) {
    let closed = eventually(LIVENESS, || async {
        let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
        let open = metric(
            &text,
            "lbx_client_connections{listener=\"http\",protocol=\"http1\"}",
        );
        (open == 0.0).then_some(())
    })
    .await;
    assert!(closed.is_some(), "lbx kept the client connection open");
}

/// The backend was blamed: the admin API shows it ejected.
async fn assert_backend_ejected(proxy: &TestProxy) {
    let (_, body) = admin_get(&proxy.admin_url("/admin/backends")).await;
    assert!(
        body.contains("\"ejected\": true"),
        "counted against the backend: {body}"
    );
}

/// No backend was blamed: the admin API shows none ejected.
async fn assert_no_backend_ejected(proxy: &TestProxy) {
    let (status, body) = admin_get(&proxy.admin_url("/admin/backends")).await;
    assert_eq!(status, 200);
    assert!(
        !body.contains("\"ejected\": true"),
        "a client's fault ejected a backend: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_upload_gets_400_and_is_neither_completed_nor_replayed() {
    let (a, b, proxy) = two_backends_quick_to_eject("").await;
    let mut client = RawClient::connect(proxy.addr).await;
    client
        .send(b"PUT /doc HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await;
    // The first chunk reaches the backend before the bad one arrives.
    received(&a, &b, b"hello").await;
    client.send(b"zz\r\nworld\r\n0\r\n\r\n").await;
    let answer = client.read_to_close(5 * SECOND).await;
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("400 Bad Request: the request body is malformed\n"),
        "{answer}"
    );

    // lbx answered only once it had given up on the request: every attempt it made is counted.
    assert_eq!(
        attempts(&proxy, &a, &b).await,
        1,
        "sent once, never replayed"
    );
    let requests = upstream_closed(&a, &b).await;
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let upload = &requests[0];
    assert!(!upload.complete, "the backend saw a complete body");
    assert_eq!(upload.body, b"hello");
    assert!(
        !upload.wire_body.windows(3).any(|w| w == b"0\r\n"),
        "no last chunk was sent"
    );
    assert_eq!(
        a.closed_by_peer() + b.closed_by_peer(),
        1,
        "the upstream connection was closed"
    );
    assert_no_backend_ejected(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_upload_leaves_the_backend_an_incomplete_body() {
    for reset in [false, true] {
        let (a, b, proxy) = two_backends_quick_to_eject("").await;
        let mut client = RawClient::connect(proxy.addr).await;
        client
            .send(b"PUT /doc HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
        received(&a, &b, b"0123456789").await;
        client.abort(reset).await;
        // Once lbx is done with the client's connection it makes no more attempts.
        client_connections_closed(&proxy).await;
        assert_eq!(attempts(&proxy, &a, &b).await, 1, "reset={reset}: replayed");
        let requests = upstream_closed(&a, &b).await;
        assert_eq!(requests.len(), 1, "reset={reset}: {requests:#?}");
        assert!(!requests[0].complete, "reset={reset}");
        assert_eq!(requests[0].body, b"0123456789");
        assert_eq!(a.closed_by_peer() + b.closed_by_peer(), 1);
        assert_no_backend_ejected(&proxy).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_never_eject_the_only_backend() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(
        backend.url(),
        "[outlier]\nconsecutive_failures = 2\nbase_ejection = \"1m\"\n",
    )
    .await;
    for _ in 0..5 {
        let answer = RawClient::exchange(
            proxy.addr,
            b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    }
    let answer = RawClient::exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n"),
        "the backend was ejected: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_gets_408_after_client_body_not_504_and_blames_no_backend() {
    // The backend timeout is shorter than the client-body one: a stalled client must still be
    // told it was too slow, not that the backend was.
    let (a, b, proxy) = two_backends_quick_to_eject(
        "[timeouts]\nclient_body = \"400ms\"\nresponse_headers = \"150ms\"\n",
    )
    .await;
    let mut client = RawClient::connect(proxy.addr).await;
    let started = Instant::now();
    client
        .send(b"PUT /doc HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01")
        .await;
    let answer = client.read_to_close(5 * SECOND).await;
    let took = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_millis(400) && took < 3 * SECOND,
        "{took:?}"
    );
    // The backend records the broken request when it sees lbx close that connection, which
    // may come a moment after the client's answer on a busy machine.
    let _ = crate::support::eventually(5 * SECOND, || async {
        (!all_requests(&a, &b).is_empty()).then_some(())
    })
    .await;
    let requests = all_requests(&a, &b);
    assert_eq!(requests.len(), 1);
    assert!(!requests[0].complete);
    assert_no_backend_ejected(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_moving_upload_is_not_cut_off() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(
        backend.url(),
        "[timeouts]\nclient_body = \"300ms\"\nresponse_headers = \"200ms\"\nrequest = \"300ms\"\n",
    )
    .await;
    let mut client = RawClient::connect(proxy.addr).await;
    client
        .send(b"PUT /doc HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
        .await;
    // 10 bytes over ~1 s: longer than every timeout, but never idle for as long as one.
    for byte in b"0123456789" {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client.send(&[*byte]).await;
    }
    let answer = client.read_to_close(5 * SECOND).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(backend.only_request().body, b"0123456789");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_content_length_and_chunked_is_a_502_the_backend_is_blamed_for() {
    let backend = RawBackend::start(|mut conn| async move {
        conn.read_request().await;
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").await;
        conn.wait_closed().await;
    })
    .await;
    let proxy = TestProxy::in_front_of(
        backend.url(),
        "[outlier]\nconsecutive_failures = 1\nbase_ejection = \"1m\"\n",
    )
    .await;
    let mut client = RawClient::connect(proxy.addr).await;
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let answer = client.read_until("request id").await;
    assert!(
        answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("502 Bad Gateway: the backend sent an invalid response\n"),
        "{answer}"
    );
    assert!(!answer.contains("hello"), "{answer}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        backend.closed_by_peer(),
        1,
        "lbx closed the upstream connection"
    );
    assert_backend_ejected(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_truncates_its_body_leaves_the_client_an_incomplete_response() {
    let backend = RawBackend::start(|mut conn| async move {
        conn.read_request().await;
        conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            .await;
        // Closes here, without the last chunk.
    })
    .await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(proxy.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with("5\r\nhello\r\n"),
        "relayed so far: {answer}"
    );
    assert!(
        !answer.contains("\r\n0\r\n"),
        "lbx must not end a body the backend broke off: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stalls_mid_body_is_cut_off_after_backend_idle_and_blamed() {
    let backend = RawBackend::start(|mut conn| async move {
        conn.read_request().await;
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            .await;
        // Then silence, with the connection open.
        conn.wait_closed().await;
    })
    .await;
    let proxy = TestProxy::in_front_of(
        backend.url(),
        "[timeouts]\nbackend_idle = \"300ms\"\n[outlier]\nconsecutive_failures = 1\nbase_ejection = \"1m\"\n",
    )
    .await;
    let mut client = RawClient::connect(proxy.addr).await;
    let started = Instant::now();
    client.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let answer = client.read_to_close(5 * SECOND).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("\r\nContent-Length: 100\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n0123456789"),
        "relayed so far, then closed: {answer}"
    );
    assert!(
        took >= Duration::from_millis(300) && took < 3 * SECOND,
        "{took:?}"
    );
    assert_backend_ejected(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_but_moving_response_is_never_cut_off() {
    let backend = RawBackend::start(|mut conn| async move {
        conn.read_request().await;
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
            .await;
        for byte in b"0123456789" {
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn.write(&[*byte]).await;
        }
    })
    .await;
    let proxy = TestProxy::in_front_of(
        backend.url(),
        "[timeouts]\nbackend_idle = \"300ms\"\nresponse_headers = \"300ms\"\nrequest = \"300ms\"\n",
    )
    .await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("\r\n\r\n0123456789"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upload_to_an_http2_backend_is_reset_never_completed() {
    let backend = crate::support::TestBackend::named("a").await;
    let proxy = TestProxy::in_front_of(format!("h2c://{}", backend.addr), "").await;
    for (label, body) in [
        ("malformed", &b"5\r\nhello\r\nzz\r\n"[..]),
        ("truncated", &b"5\r\nhello\r\n"[..]),
    ] {
        let mut client = RawClient::connect(proxy.addr).await;
        client
            .send(b"PUT /sum HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        client.send(body).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if label == "truncated" {
            client.abort(false).await;
        } else {
            let answer = client.read_to_close(5 * SECOND).await;
            assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        }
    }
    // Each upload either never reached the backend (cancelled before its stream opened) or
    // reached it and was reset: every request it saw is a broken upload, none is complete.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let settled = crate::support::eventually(5 * SECOND, || async {
        let (_, broken) = backend.uploads();
        (broken == backend.requests()).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "{} requests, uploads (complete, broken): {:?}",
        backend.requests(),
        backend.uploads()
    );
    assert!(
        backend.requests() >= 1,
        "the truncated upload's stream was opened"
    );
    assert_eq!(
        backend.uploads().0,
        0,
        "a broken upload reached the HTTP/2 backend complete"
    );
    assert_no_backend_ejected(&proxy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_backend_that_stops_taking_the_upload_times_out_instead_of_hanging() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Answers after a minute, never reading the body: the stream's flow-control window fills
    // and stays full.
    let backend = crate::support::TestBackend::slow("a", 60 * SECOND).await;
    let proxy = TestProxy::in_front_of(
        format!("h2c://{}", backend.addr),
        "[timeouts]\nresponse_headers = \"500ms\"\n",
    )
    .await;
    const LEN: usize = 32 << 20;
    let stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    tokio::spawn(async move {
        let head = format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {LEN}\r\n\r\n");
        write.write_all(head.as_bytes()).await?;
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..LEN / chunk.len() {
            write.write_all(&chunk).await?;
        }
        std::io::Result::Ok(write)
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(10 * SECOND, async {
        let mut buf = [0u8; 4096];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 504 "),
        "after {:?}: {answer:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < 5 * SECOND, "{:?}", started.elapsed());
}
