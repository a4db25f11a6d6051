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
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], "shop.example");
    assert_eq!(seen["x-end-to-end"], "kept");
    assert!(!seen.contains_key("x-private-hop"));
    assert!(!seen.contains_key("proxy-authorization"));
}
