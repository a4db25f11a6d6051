//! Differential test against nginx (installed by scripts/setup.sh): the same requests go
//! through nginx and through lbx to the same raw backend — over plain HTTP/1.1, HTTP/2 and
//! HTTPS — and the request heads it receives are compared. Every difference must be on the allow-list below, with the reason it is allowed;
//! anything else fails the test.
//!
//! nginx runs with the configuration an operator would use to front an application the way lbx
//! does by default: HTTP/1.1 upstream, the client's Host passed on, `X-Forwarded-For` set to the
//! peer (lbx trusts no proxy unless configured), a request id in `X-Request-Id` (nginx's
//! `$request_id`, as operators set it for tracing), streaming request bodies.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::support::{
    Issued, Nginx, RawBackend, RawClient, RawRequest, TempDir, TestCa, TestProxy, free_port,
    https_get, tls_section,
};

/// A difference the test accepts, and why.
struct Allowed {
    /// Which request (its label).
    request: &'static str,
    /// The field that differs (lowercase), or `"<request line>"`, `"<framing>"`, `"<absent>"`.
    what: &'static str,
    /// Why lbx differs from nginx here.
    why: &'static str,
}

const ALLOWED: &[Allowed] = &[
    Allowed {
        request: "options-asterisk",
        what: "<absent>",
        why: "nginx answers `OPTIONS *` with 400 itself; RFC 9112 §3.2.4 defines asterisk-form \
              and lbx forwards it (checked against the RFC below instead)",
    },
    Allowed {
        request: "connection-listed",
        what: "x-secret",
        why: "nginx forwards a field the client named in Connection; RFC 9110 §7.6.1 requires a \
              proxy to remove it, and lbx does",
    },
    Allowed {
        request: "chunked-post",
        what: "<framing>",
        why: "nginx re-frames a chunked body it has read whole as Content-Length (dropping \
              trailers); lbx streams it chunked. The decoded bodies are compared and must match",
    },
];

/// Field lines as a multiset of (lowercase name, value). Order and name case are not compared:
/// each proxy writes its own fields first (RFC 9110 §5.3 lets order between different names
/// vary) and names are case-insensitive (§5.1).
fn fields(request: &RawRequest) -> BTreeMap<(String, String), usize> {
    let mut set = BTreeMap::new();
    for (name, value) in request.fields() {
        let name = name.to_ascii_lowercase();
        if matches!(name.as_str(), "content-length" | "transfer-encoding") {
            continue; // compared as `<framing>`
        }
        // Both proxies generate a fresh id per request (nginx 32 hex digits, lbx 16): the
        // values cannot match, so only that exactly one such field arrives is compared.
        let value = if name == "x-request-id" {
            "<generated id>".to_string()
        } else {
            value
        };
        *set.entry((name, value)).or_insert(0) += 1;
    }
    set
}

fn framing(request: &RawRequest) -> Vec<(String, String)> {
    request
        .fields()
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .filter(|(n, _)| n == "content-length" || n == "transfer-encoding")
        .collect()
}

/// Differences between what the backend got from nginx and from lbx, as (what, detail).
fn differences(nginx: Option<&RawRequest>, lbx: &RawRequest) -> Vec<(String, String)> {
    let Some(nginx) = nginx else {
        return vec![(
            "<absent>".into(),
            "nginx did not forward the request".into(),
        )];
    };
    let mut found = Vec::new();
    if nginx.request_line() != lbx.request_line() {
        found.push((
            "<request line>".into(),
            format!(
                "nginx {:?}, lbx {:?}",
                nginx.request_line(),
                lbx.request_line()
            ),
        ));
    }
    let (from_nginx, from_lbx) = (fields(nginx), fields(lbx));
    for (key, count) in &from_nginx {
        if from_lbx.get(key) != Some(count) {
            found.push((
                key.0.clone(),
                format!("nginx sent {}: {} (x{count})", key.0, key.1),
            ));
        }
    }
    for (key, count) in &from_lbx {
        if from_nginx.get(key) != Some(count) {
            found.push((
                key.0.clone(),
                format!("lbx sent {}: {} (x{count})", key.0, key.1),
            ));
        }
    }
    if framing(nginx) != framing(lbx) {
        found.push((
            "<framing>".into(),
            format!("nginx {:?}, lbx {:?}", framing(nginx), framing(lbx)),
        ));
    }
    assert_eq!(nginx.body, lbx.body, "the decoded bodies differ");
    assert!(nginx.complete && lbx.complete);
    found
}

/// nginx with the reference configuration, its plain, HTTP/2 and HTTPS ports.
struct ReferenceNginx {
    _nginx: Nginx,
    http1: SocketAddr,
    http2: SocketAddr,
    https: SocketAddr,
}

impl ReferenceNginx {
    async fn start(backend: SocketAddr, certificate: &Issued) -> Self {
        let (http1, http2, https) = (free_port(), free_port(), free_port());
        let block = format!(
            "ssl_certificate {cert};\nssl_certificate_key {key};\n\
             server {{\n  listen 127.0.0.1:{http1};\n  listen 127.0.0.1:{http2} http2;\n  listen 127.0.0.1:{https} ssl;\n  location / {{\n\
               proxy_pass http://{backend};\n    proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\";\n    proxy_set_header Host $http_host;\n\
               proxy_set_header X-Forwarded-For $remote_addr;\n\
               proxy_set_header X-Forwarded-Proto $scheme;\n\
               proxy_set_header X-Forwarded-Host $http_host;\n\
               proxy_set_header X-Request-Id $request_id;\n\
               proxy_request_buffering off;\n    proxy_buffering off;\n  }}\n}}",
            cert = certificate.cert.display(),
            key = certificate.key.display(),
        );
        let nginx = Nginx::start(TempDir::new("nginx"), &block, http2).await;
        Self {
            _nginx: nginx,
            http1: SocketAddr::from(([127, 0, 0, 1], http1)),
            http2: SocketAddr::from(([127, 0, 0, 1], http2)),
            https: SocketAddr::from(([127, 0, 0, 1], https)),
        }
    }
}

/// Send an HTTP/2 request for `shop.example` with two `cookie` fields.
async fn send_h2(addr: SocketAddr) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake::<_, _, Empty<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let request = Request::get("http://shop.example/h2?x=1")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("user-agent", "diff/1")
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    response.into_body().collect().await.unwrap();
}

const HTTP1_REQUESTS: &[(&str, &str)] = &[
    (
        "get-query",
        "GET /search?q=a%20b&x=1 HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: diff/1\r\nAccept: */*\r\nConnection: close\r\n\r\n",
    ),
    (
        "options-asterisk",
        "OPTIONS * HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n",
    ),
    (
        "head",
        "HEAD /page HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: diff/1\r\nConnection: close\r\n\r\n",
    ),
    (
        "chunked-post",
        "POST /upload HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ),
    (
        "xff-untrusted",
        "GET /who HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nConnection: close\r\n\r\n",
    ),
    (
        "connection-listed",
        "GET /hop HTTP/1.1\r\nHost: shop.example\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n\r\n",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lbx_forwards_what_nginx_forwards_except_where_the_rfcs_say_otherwise() {
    let backend = RawBackend::recording().await;
    let ca = TestCa::new("differential");
    let site = ca.issue("site", &["shop.example"]);
    let nginx = ReferenceNginx::start(backend.addr, &site).await;
    let lbx = TestProxy::in_front_of(backend.url(), &tls_section(&[&site])).await;

    let mut unexplained = Vec::new();
    let mut used = std::collections::HashSet::new();
    for (label, request) in HTTP1_REQUESTS {
        let before = backend.requests().len();
        RawClient::exchange(nginx.http1, request).await;
        let through_nginx = backend.requests().get(before).cloned();
        let before = backend.requests().len();
        let answer = RawClient::exchange(lbx.addr, request).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{label}: lbx answered {answer}"
        );
        let through_lbx = backend.requests()[before].clone();
        for (what, detail) in differences(through_nginx.as_ref(), &through_lbx) {
            match ALLOWED
                .iter()
                .position(|a| a.request == *label && a.what == what)
            {
                Some(i) => {
                    used.insert(i);
                }
                None => unexplained.push(format!("{label}: {detail}")),
            }
        }
        if *label == "options-asterisk" {
            assert_eq!(through_lbx.request_line(), "OPTIONS * HTTP/1.1");
        }
    }

    let before = backend.requests().len();
    send_h2(nginx.http2).await;
    let through_nginx = backend.requests().get(before).cloned();
    let before = backend.requests().len();
    send_h2(lbx.addr).await;
    let through_lbx = backend.requests()[before].clone();
    for (_, detail) in differences(through_nginx.as_ref(), &through_lbx) {
        unexplained.push(format!("h2-split-cookies: {detail}"));
    }
    assert_eq!(through_lbx.values("cookie"), ["a=1; b=2"]);

    // The same request over TLS: X-Forwarded-Proto says https through both.
    let config = ca.client_config(&[b"http/1.1"]);
    let before = backend.requests().len();
    https_get(nginx.https, "shop.example", &config, "/secure?x=1")
        .await
        .unwrap();
    let through_nginx = backend.requests().get(before).cloned();
    let before = backend.requests().len();
    https_get(lbx.tls.unwrap(), "shop.example", &config, "/secure?x=1")
        .await
        .unwrap();
    let through_lbx = backend.requests()[before].clone();
    for (_, detail) in differences(through_nginx.as_ref(), &through_lbx) {
        unexplained.push(format!("https-get: {detail}"));
    }
    assert_eq!(through_lbx.values("x-forwarded-proto"), ["https"]);

    // Each request reached the backend exactly once through each proxy (nginx answers
    // `OPTIONS *` itself): nothing was replayed or sent twice, and no comparison above was
    // made against another request's head.
    let refused_by_nginx = ALLOWED.iter().filter(|a| a.what == "<absent>").count();
    assert_eq!(
        backend.requests().len(),
        2 * (HTTP1_REQUESTS.len() + 2) - refused_by_nginx,
        "requests the backend received"
    );
    assert!(
        unexplained.is_empty(),
        "differences from nginx not on the allow-list:\n{}",
        unexplained.join("\n")
    );
    // Every allow-list entry must still be needed, so the list cannot rot.
    for (i, allowed) in ALLOWED.iter().enumerate() {
        assert!(
            used.contains(&i),
            "allow-list entry no longer needed: {} / {} ({})",
            allowed.request,
            allowed.what,
            allowed.why
        );
    }
}
