use super::*;
use crate::config::Cidr;
use crate::message::RequestHead;
use http::{Method, Version};

fn meta(fields: &[(&'static str, &'static str)], client: &str) -> RequestMeta {
    let mut headers = Headers::default();
    for (name, value) in fields {
        headers.push(*name, *value);
    }
    RequestMeta {
        authority: headers.get("host").cloned(),
        head: RequestHead {
            method: Method::GET,
            target: Bytes::from_static(b"/a?b=1"),
            version: Version::HTTP_11,
            headers,
        },
        client: client.parse().unwrap(),
        secure: false,
        body_prefix: None,
    }
}

fn upstream(meta: &RequestMeta, proxy: &ProxyConfig, body: RequestBody, expect: bool) -> String {
    let mut out = BytesMut::new();
    let backend: Authority = "10.0.0.9:8080".parse().unwrap();
    let plugin = [(
        HeaderName::from_static("x-routed"),
        HeaderValue::from_static("1"),
    )];
    write_upstream_head(
        meta,
        &RequestId::given(&Bytes::from_static(b"rid-1")).unwrap(),
        &backend,
        &plugin,
        proxy,
        UpstreamFraming {
            body,
            expect_continue: expect,
            upgrade: None,
            rewrite: None,
        },
        &mut out,
    );
    String::from_utf8(out.to_vec()).unwrap()
}

#[test]
fn the_backend_gets_origin_form_host_first_and_the_clients_fields_in_order() {
    let meta = meta(
        &[
            ("Host", "shop.example"),
            ("User-Agent", "t/1"),
            ("connection", "keep-alive, X-Secret"),
            ("X-Secret", "s"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic x"),
            ("TE", "trailers, deflate"),
            ("Content-Length", "5"),
            ("Accept", "*/*"),
        ],
        "192.0.2.1:5000",
    );
    let head = upstream(
        &meta,
        &ProxyConfig::default(),
        RequestBody::Length(5),
        false,
    );
    assert_eq!(
        head,
        "GET /a?b=1 HTTP/1.1\r\n\
         Host: shop.example\r\n\
         User-Agent: t/1\r\n\
         Accept: */*\r\n\
         X-Forwarded-For: 192.0.2.1\r\n\
         X-Forwarded-Proto: http\r\n\
         X-Forwarded-Host: shop.example\r\n\
         X-Request-Id: rid-1\r\n\
         x-routed: 1\r\n\
         Content-Length: 5\r\n\
         TE: trailers\r\n\
         \r\n"
    );
}

#[test]
fn the_backend_gets_the_requests_id_once_and_trace_context_as_sent() {
    let meta = meta(
        &[
            ("Host", "a"),
            ("X-Request-Id", "from-client"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("tracestate", "congo=t61rcWkgMzE"),
        ],
        "192.0.2.1:5000",
    );
    let head = upstream(&meta, &ProxyConfig::default(), RequestBody::None, false);
    assert!(head.contains("\r\nX-Request-Id: rid-1\r\n"), "{head}");
    assert!(!head.contains("from-client"), "{head}");
    assert!(
        head.contains(
            "\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
             tracestate: congo=t61rcWkgMzE\r\n"
        ),
        "{head}"
    );
}

#[test]
fn the_clients_response_carries_the_requests_id_instead_of_the_backends() {
    let mut head = ResponseHead::new(StatusCode::OK);
    head.headers.push("X-Request-Id", "backend-made");
    let id = RequestId::next();
    let out = client_response_head(head, Some(&id), Vec::new(), true);
    assert_eq!(out.headers.count("x-request-id"), 1);
    assert_eq!(out.headers.get("x-request-id").unwrap(), id.as_bytes());
}

#[test]
fn an_untrusted_clients_forwarding_headers_are_replaced() {
    let meta = meta(
        &[
            ("Host", "a"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-For", "7.7.7.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
        ],
        "192.0.2.1:5000",
    );
    let head = upstream(&meta, &ProxyConfig::default(), RequestBody::None, false);
    assert!(head.contains("X-Forwarded-For: 192.0.2.1\r\n"), "{head}");
    assert!(head.contains("X-Forwarded-Proto: http\r\n"), "{head}");
    assert!(head.contains("X-Forwarded-Host: a\r\n"), "{head}");
    assert!(
        !head.contains("6.6.6.6") && !head.contains("evil"),
        "{head}"
    );
}

#[test]
fn a_trusted_proxys_chain_is_kept_with_every_line_merged() {
    let meta = meta(
        &[
            ("Host", "a"),
            ("X-Forwarded-For", "203.0.113.5, 10.0.0.2"),
            ("X-Forwarded-For", "10.0.0.3"),
            ("X-Forwarded-Proto", "https"),
        ],
        "10.0.0.4:5000",
    );
    let proxy = ProxyConfig {
        trusted_proxies: vec!["10.0.0.0/8".parse::<Cidr>().unwrap()],
    };
    let head = upstream(&meta, &proxy, RequestBody::None, false);
    assert!(
        head.contains("X-Forwarded-For: 203.0.113.5, 10.0.0.2, 10.0.0.3, 10.0.0.4\r\n"),
        "{head}"
    );
    assert_eq!(head.matches("X-Forwarded-For").count(), 1);
    assert!(head.contains("X-Forwarded-Proto: https\r\n"), "{head}");
}

#[test]
fn framing_and_expect_are_lbxs_choice() {
    let meta = meta(
        &[
            ("Host", "a"),
            ("Transfer-Encoding", "chunked"),
            ("Expect", "100-continue"),
        ],
        "192.0.2.1:1",
    );
    let head = upstream(&meta, &ProxyConfig::default(), RequestBody::Streaming, true);
    assert!(
        head.ends_with("Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"),
        "{head}"
    );
    assert_eq!(head.matches("Transfer-Encoding").count(), 1);
    let head = upstream(
        &meta,
        &ProxyConfig::default(),
        RequestBody::Streaming,
        false,
    );
    assert!(!head.contains("Expect"), "{head}");
}

#[test]
fn without_host_the_backends_authority_is_used() {
    let mut meta = meta(&[], "192.0.2.1:1");
    meta.head.version = Version::HTTP_10;
    let head = upstream(&meta, &ProxyConfig::default(), RequestBody::None, false);
    assert!(
        head.starts_with("GET /a?b=1 HTTP/1.1\r\nHost: 10.0.0.9:8080\r\n"),
        "{head}"
    );
    assert!(!head.contains("X-Forwarded-Host"), "{head}");
}

#[test]
fn responses_lose_hop_by_hop_fields_and_gain_a_date() {
    let mut head = ResponseHead::new(StatusCode::OK);
    head.headers.push("Connection", "close, X-Hop");
    head.headers.push("X-Hop", "1");
    head.headers.push("Transfer-Encoding", "chunked");
    head.headers.push("Content-Length", "9");
    head.headers.push("Trailer", "grpc-status");
    head.headers.push("X-Kept", "1");
    let plugin = vec![(
        HeaderName::from_static("set-cookie"),
        HeaderValue::from_static("s=1"),
    )];
    let out = client_response_head(head.clone(), None, plugin, true);
    let names: Vec<_> = out
        .headers
        .iter()
        .map(|f| String::from_utf8(f.name.to_vec()).unwrap())
        .collect();
    assert_eq!(names, ["Trailer", "X-Kept", "set-cookie", "Date"]);

    // HEAD: Content-Length describes the resource, so it stays.
    let out = client_response_head(head, None, Vec::new(), false);
    assert_eq!(out.headers.get("content-length").unwrap(), "9");
}

#[test]
fn a_date_from_the_backend_is_kept() {
    let mut head = ResponseHead::new(StatusCode::OK);
    head.headers.push("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    let out = client_response_head(head, None, Vec::new(), true);
    assert_eq!(out.headers.count("date"), 1);
    assert_eq!(
        out.headers.get("date").unwrap(),
        "Sun, 06 Nov 1994 08:49:37 GMT"
    );
}

#[test]
fn http2_cookie_fields_are_joined_into_one() {
    let mut headers = Headers::default();
    headers.push("cookie", "a=1");
    headers.push("accept", "*/*");
    headers.push("cookie", "b=2");
    join_cookies(&mut headers);
    assert_eq!(headers.count("cookie"), 1);
    assert_eq!(headers.get("cookie").unwrap(), "a=1; b=2");
}

#[test]
fn client_addresses_are_written_as_display_writes_them() {
    for ip in [
        "0.0.0.0",
        "9.10.99.100",
        "127.0.0.1",
        "255.255.255.255",
        "10.200.3.45",
        "::1",
        "2001:db8::8:800:200c:417a",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        let mut out = Vec::new();
        write_ip(ip, &mut out);
        assert_eq!(out, ip.to_string().into_bytes());
    }
}

#[test]
fn a_plugins_rewrite_replaces_the_target_and_nothing_else() {
    let meta = meta(&[("Host", "shop.example"), ("X-A", "1")], "10.0.0.1:4000");
    let backend: Authority = "10.0.0.9:8080".parse().unwrap();
    let framing = UpstreamFraming {
        body: RequestBody::None,
        expect_continue: false,
        upgrade: None,
        rewrite: Some(Bytes::from_static(b"/users?page=2")),
    };
    let mut out = BytesMut::new();
    write_upstream_head(
        &meta,
        &RequestId::given(&Bytes::from_static(b"rid-1")).unwrap(),
        &backend,
        &[],
        &ProxyConfig::default(),
        framing.clone(),
        &mut out,
    );
    let head = String::from_utf8(out.to_vec()).unwrap();
    assert!(
        head.starts_with("GET /users?page=2 HTTP/1.1\r\nHost: shop.example\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nX-A: 1\r\n"), "{head}");

    let h2 = upstream_h2_request(
        &meta,
        &RequestId::given(&Bytes::from_static(b"rid-1")).unwrap(),
        &backend,
        http::uri::Scheme::HTTP,
        &[],
        &ProxyConfig::default(),
        framing,
    )
    .unwrap()
    .body(())
    .unwrap();
    assert_eq!(h2.uri().path_and_query().unwrap().as_str(), "/users?page=2");
}
