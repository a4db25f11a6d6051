//! What lbx puts on the wire, checked as bytes: the request line and fields a backend receives
//! (RFC 9112 §3.2 target forms, Host, hop-by-hop fields, X-Forwarded-*, HTTP/2 cookies), and
//! the interim responses, trailers and framing a client receives.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::support::{RawBackend, RawClient, TestProxy};

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_receives_origin_form_with_host_first_and_the_clients_fields_in_order() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"GET /a?b=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: raw/1\r\nX-Mixed-Case: v\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(
        backend.only_request().head,
        "GET /a?b=1 HTTP/1.1\r\n\
         Host: shop.example\r\n\
         User-Agent: raw/1\r\n\
         X-Mixed-Case: v\r\n\
         X-Forwarded-For: 127.0.0.1\r\n\
         X-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: shop.example\r\n\
         \r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_asterisk_and_absolute_form_targets_reach_the_backend_in_the_form_rfc_9112_requires()
 {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let mut client = RawClient::connect(proxy.addr).await;
    client
        .send(b"OPTIONS * HTTP/1.1\r\nHost: shop.example\r\n\r\n")
        .await;
    client.read_until("ok").await;
    client
        .send(b"GET http://other.example:8080/p?q=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n")
        .await;
    client.read_to_close(5 * SECOND).await;
    let requests = backend.requests();
    assert_eq!(requests[0].request_line(), "OPTIONS * HTTP/1.1");
    // §3.2.2: the absolute-form authority replaces Host; the backend gets origin-form.
    assert_eq!(requests[1].request_line(), "GET /p?q=1 HTTP/1.1");
    assert_eq!(requests[1].values("host"), ["other.example:8080"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_answered_501_and_never_forwarded() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains(
            "\r\n\r\n501 Not Implemented: this server is not a forward proxy\nrequest id: "
        ),
        "{answer}"
    );
    assert_eq!(backend.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_missing_duplicate_or_invalid_host_get_400_and_are_not_forwarded() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    for head in [
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a.example/evil\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\n\r\n",
    ] {
        let answer = RawClient::exchange(proxy.addr, head.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{head:?}: {answer}"
        );
        assert!(answer.contains("Connection: close\r\n"), "{answer}");
    }
    assert_eq!(backend.connections(), 0, "nothing reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_request_without_host_is_sent_with_the_backends_authority() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(proxy.addr, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    let request = backend.only_request();
    assert_eq!(request.request_line(), "GET /old HTTP/1.1");
    assert_eq!(request.values("host"), [backend.addr.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_fields_and_those_connection_names_are_removed_but_te_trailers_is_kept() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    RawClient::exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n\
          Keep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nUpgrade: websocket\r\n\
          TE: trailers, deflate\r\nX-Kept: 1\r\n\r\n",
    )
    .await;
    let request = backend.only_request();
    let names: Vec<String> = request.fields().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "Host",
            "X-Kept",
            "X-Forwarded-For",
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "TE"
        ]
    );
    assert_eq!(request.values("te"), ["trailers"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_clients_forwarded_for_is_replaced_and_a_trusted_proxys_lines_are_merged() {
    let backend = RawBackend::recording().await;
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7, 8.8.8.8\r\n\
                 X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";

    let untrusting = TestProxy::in_front_of(backend.url(), "").await;
    RawClient::exchange(untrusting.addr, head).await;

    let trusting = TestProxy::in_front_of(
        backend.url(),
        "[proxy]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    )
    .await;
    RawClient::exchange(trusting.addr, head).await;

    let requests = backend.requests();
    assert_eq!(requests[0].values("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(requests[0].values("x-forwarded-proto"), ["http"]);
    assert_eq!(
        requests[1].values("x-forwarded-for"),
        ["6.6.6.6, 7.7.7.7, 8.8.8.8, 127.0.0.1"]
    );
    assert_eq!(requests[1].values("x-forwarded-proto"), ["https"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_clients_cookie_fields_reach_an_http1_backend_as_one_line() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = Request::get(format!("http://{}/h2", proxy.addr))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "ok"
    );
    let request = backend.only_request();
    assert_eq!(request.request_line(), "GET /h2 HTTP/1.1");
    assert_eq!(request.values("cookie"), ["a=1; b=2"]);
    assert_eq!(request.values("host"), [proxy.addr.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_reaches_the_backend_chunked_with_its_trailers() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let request = backend.only_request();
    assert!(request.complete);
    assert_eq!(request.body, b"hello world");
    assert_eq!(request.values("transfer-encoding"), ["chunked"]);
    assert!(
        request.wire_body.ends_with(b"0\r\nX-Sum: 11\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&request.wire_body)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_reach_an_http1_client_before_the_final_response() {
    let backend = RawBackend::start(|mut conn| async move {
        conn.read_request().await;
        conn.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with(
            "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
        ),
        "{answer}"
    );
    assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_client_is_sent_no_interim_response() {
    let backend = RawBackend::start(|mut conn| async move {
        conn.read_request().await;
        conn.write(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    })
    .await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(proxy.addr, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_is_answered_by_the_backend_before_the_body_moves() {
    let backend = RawBackend::start(|mut conn| async move {
        let head = conn.read_head().await.unwrap();
        assert!(head.contains("\r\nExpect: 100-continue\r\n"), "{head}");
        conn.write(b"HTTP/1.1 100 Continue\r\n\r\n").await;
        let request = conn.read_body(&head).await;
        assert!(request.complete);
        conn.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let answer = upload_waiting_for_continue(&backend).await;
    assert!(answer.contains("HTTP/1.1 201 Created\r\n"), "{answer}");
    assert_eq!(backend.only_request().body, b"hello");
}

/// PUT a 5-byte body the way curl does: head with `Expect: 100-continue`, wait for
/// `100 Continue` (failing if anything else comes first), then the body. Returns what followed.
async fn upload_waiting_for_continue(backend: &RawBackend) -> String {
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let mut client = RawClient::connect(proxy.addr).await;
    client
        .send(b"PUT /doc HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .await;
    let interim = client.read_until("\r\n\r\n").await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    client.send(b"hello").await;
    client.read_to_close(5 * SECOND).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_refusing_an_expect_request_answers_before_any_body_is_sent() {
    let backend = RawBackend::start(|mut conn| async move {
        conn.read_head().await.unwrap();
        conn.write(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
            .await;
        conn.wait_closed().await;
    })
    .await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"PUT /big HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 413 Content Too Large\r\n"),
        "{answer}"
    );
    assert!(!answer.contains("100 Continue"), "{answer}");
    // The body was never read, so the connection cannot carry another request.
    assert!(answer.contains("Connection: close\r\n"), "{answer}");
    assert!(
        backend.wire()[0].ends_with(b"\r\n\r\n"),
        "no body bytes reached the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_ignoring_expect_gets_the_body_after_lbx_tells_the_client_to_continue() {
    let backend = RawBackend::recording().await;
    let answer = upload_waiting_for_continue(&backend).await;
    assert!(answer.contains("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(backend.only_request().body, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_trailers_reach_an_http1_client() {
    let backend = RawBackend::answering(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 42\r\n\r\n",
    )
    .await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.contains("Transfer-Encoding: chunked\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Trailer: X-Checksum\r\n"), "{answer}");
    assert!(
        answer.ends_with("\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: 42\r\n\r\n"),
        "{answer}"
    );
    assert_eq!(backend.only_request().values("te"), ["trailers"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_without_date_gets_one() {
    let backend = RawBackend::answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let date = answer
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("date").then(|| value.trim())
        })
        .expect("a Date field");
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbxs_own_error_answer_to_head_has_no_body_and_the_connection_stays_usable() {
    let dead = crate::support::RefusingPort::reserve();
    let proxy = TestProxy::in_front_of(dead.url(), "[outlier]\nconsecutive_failures = 100\n").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (first, rest) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        first.starts_with("HTTP/1.1 502 Bad Gateway\r\n"),
        "{answer}"
    );
    // The next bytes are the second response, not the first one's body.
    assert!(rest.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{answer}");
    assert_eq!(
        answer
            .matches("502 Bad Gateway: the backend could not be reached")
            .count(),
        1,
        "only the GET's answer has a body: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let backend = RawBackend::start(|mut conn| async move {
        while let Some(request) = conn.read_request().await {
            let path = request
                .request_line()
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}",
                path.len()
            );
            conn.write(answer.as_bytes()).await;
        }
    })
    .await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let answer = RawClient::exchange(
        proxy.addr,
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let bodies: Vec<&str> = answer
        .split("HTTP/1.1 200 OK\r\n")
        .skip(1)
        .map(|r| r.split("\r\n\r\n").nth(1).unwrap_or(""))
        .collect();
    assert_eq!(bodies, ["/one", "/two", "/three"], "{answer}");
    assert_eq!(backend.requests()[1].body, b"abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_client_asking_for_keep_alive_gets_it() {
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), "").await;
    let mut client = RawClient::connect(proxy.addr).await;
    client
        .send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let first = client.read_until("ok").await;
    assert!(first.contains("Connection: keep-alive\r\n"), "{first}");
    assert!(first.contains("Content-Length: 2\r\n"), "{first}");
    client.send(b"GET /b HTTP/1.0\r\n\r\n").await;
    let both = client.read_to_close(5 * SECOND).await;
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
    assert_eq!(backend.requests().len(), 2);
}
