use super::*;

fn request(text: &str) -> Result<Option<ParsedRequest>, RequestError> {
    parse_request(&mut BytesMut::from(text.as_bytes()))
}

fn accepted(text: &str) -> ParsedRequest {
    request(text).unwrap().expect("a complete head")
}

fn refused(text: &str) -> RequestError {
    request(text).expect_err("the request should be refused")
}

fn response(text: &str, method: Method) -> Result<Option<ParsedResponse>, ResponseError> {
    parse_response(&mut BytesMut::from(text.as_bytes()), &method)
}

#[test]
fn an_origin_form_request_keeps_target_fields_order_and_case() {
    let parsed = accepted(
        "GET /a?b=1 HTTP/1.1\r\nHost: shop.example\r\nX-Mixed-Case: v\r\naccept: */*\r\n\r\n",
    );
    assert_eq!(parsed.head.method, Method::GET);
    assert_eq!(parsed.head.target, "/a?b=1");
    assert_eq!(parsed.authority.unwrap(), "shop.example");
    let names: Vec<_> = parsed.head.headers.iter().map(|h| h.name.clone()).collect();
    assert_eq!(names, ["Host", "X-Mixed-Case", "accept"]);
    assert_eq!(parsed.framing, Framing::Empty);
    assert!(parsed.keep_alive);
}

#[test]
fn the_head_is_taken_from_the_buffer_and_a_pipelined_request_stays() {
    let mut buf = BytesMut::from(&b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n"[..]);
    let first = parse_request(&mut buf).unwrap().unwrap();
    assert_eq!(first.head.target, "/1");
    assert_eq!(&buf[..], b"GET /2 HTTP/1.1\r\n");
    assert!(
        parse_request(&mut buf).unwrap().is_none(),
        "second head incomplete"
    );
}

#[test]
fn host_is_required_once_and_valid_in_http_1_1() {
    assert_eq!(
        refused("GET / HTTP/1.1\r\n\r\n"),
        RequestError::Bad("HTTP/1.1 request without Host")
    );
    assert_eq!(
        refused("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
        RequestError::Bad("more than one Host field")
    );
    for bad in [
        "a b", "", "a/b", "user@a", "a:port", "[::1", "a:123456", "\"a\"",
    ] {
        let text = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        assert_eq!(
            refused(&text),
            RequestError::Bad("invalid Host field"),
            "Host: {bad}"
        );
    }
    for good in [
        "a",
        "a.example:8080",
        "127.0.0.1",
        "[::1]:80",
        "[2001:db8::1]",
        "xn--bcher-kva.example",
    ] {
        let text = format!("GET / HTTP/1.1\r\nHost: {good}\r\n\r\n");
        assert_eq!(accepted(&text).authority.unwrap(), good);
    }
}

#[test]
fn a_percent_sign_in_a_host_starts_two_hex_digits() {
    // RFC 3986 §2.1 and §3.2.2: pct-encoded = "%" HEXDIG HEXDIG. Found by the differential
    // test: lbx took `http://%.example/` (hyper's Uri refuses it) and `Host: %.example`.
    for bad in ["%.example", "a%2", "a%zz.example", "a%.example:80"] {
        let text = format!("GET / HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        assert_eq!(
            refused(&text),
            RequestError::Bad("invalid Host field"),
            "Host: {bad}"
        );
        let text = format!("GET http://{bad}/ HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(refused(&text), RequestError::Bad(_)), "{bad}");
    }
    let parsed = accepted("GET http://a%2Eb/ HTTP/1.1\r\nHost: a%2eb:80\r\n\r\n");
    assert_eq!(parsed.authority.unwrap(), "a%2Eb");
}

#[test]
fn an_http_1_0_request_may_omit_host() {
    let parsed = accepted("GET / HTTP/1.0\r\n\r\n");
    assert_eq!(parsed.authority, None);
    assert!(!parsed.keep_alive, "HTTP/1.0 closes unless asked");
    assert!(accepted("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
}

#[test]
fn an_absolute_form_target_becomes_origin_form_and_its_authority_replaces_host() {
    let parsed =
        accepted("GET http://other.example:81/p?q=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n");
    assert_eq!(parsed.head.target, "/p?q=1");
    assert_eq!(parsed.authority.unwrap(), "other.example:81");
    let parsed = accepted("GET HTTPS://other.example?q HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(parsed.head.target, "/?q");
    assert_eq!(
        accepted("GET http://o.example HTTP/1.1\r\nHost: x\r\n\r\n")
            .head
            .target,
        "/"
    );
    for bad in ["ftp://a/", "http://u@a/", "http:/a", "http://a\"b/", "a/b"] {
        let text = format!("GET {bad} HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(matches!(refused(&text), RequestError::Bad(_)), "{bad}");
    }
}

#[test]
fn asterisk_form_is_only_for_options() {
    let parsed = accepted("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(parsed.head.target, "*");
    assert!(matches!(
        refused("GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
        RequestError::Bad(_)
    ));
}

#[test]
fn connect_is_not_implemented() {
    let error = refused("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n");
    assert_eq!(error, RequestError::Connect);
    assert_eq!(error.status(), StatusCode::NOT_IMPLEMENTED);
}

#[test]
fn request_framing_follows_rfc_9112_section_6() {
    let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(accepted(chunked).framing, Framing::Chunked);
    let mixed_case = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD\r\n\r\n";
    assert_eq!(accepted(mixed_case).framing, Framing::Chunked);
    let length = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n";
    assert_eq!(accepted(length).framing, Framing::Length(42));
    let repeated_same =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n";
    assert_eq!(accepted(repeated_same).framing, Framing::Length(7));
    assert_eq!(
        accepted("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").framing,
        Framing::Empty
    );

    let both =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(
        refused(both),
        RequestError::Bad("both Content-Length and Transfer-Encoding")
    );
    let twice = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(matches!(refused(twice), RequestError::Bad(_)));
    let not_last = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n";
    assert!(matches!(refused(not_last), RequestError::Bad(_)));
    let identity = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n";
    assert!(matches!(refused(identity), RequestError::Bad(_)));
    let gzip = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(refused(gzip), RequestError::UnsupportedTransferCoding);
    let old = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(matches!(refused(old), RequestError::Bad(_)));
    for bad in [
        "-1",
        "+5",
        "1 2",
        "0x10",
        "",
        "5, 6",
        "99999999999999999999",
    ] {
        let text = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {bad}\r\n\r\n");
        assert!(
            matches!(refused(&text), RequestError::Bad(_)),
            "Content-Length: {bad}"
        );
    }
    let conflicting =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    assert!(matches!(refused(conflicting), RequestError::Bad(_)));
}

#[test]
fn expect_100_continue_is_noted_and_other_expectations_refused() {
    let text = "PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-Continue\r\n\r\n";
    assert!(accepted(text).expect_continue);
    let old = "PUT / HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n";
    assert!(!accepted(old).expect_continue, "ignored for HTTP/1.0");
    let other = "PUT / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n";
    assert_eq!(refused(other), RequestError::Expectation);
}

#[test]
fn bad_syntax_gets_the_right_status() {
    assert_eq!(
        refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n").status(),
        StatusCode::HTTP_VERSION_NOT_SUPPORTED
    );
    assert_eq!(
        refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n").status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        refused("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n folded\r\n\r\n").status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        refused("GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n").status(),
        StatusCode::BAD_REQUEST
    );
    let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE));
    assert_eq!(refused(&long_line).status(), StatusCode::URI_TOO_LONG);
    let many = format!(
        "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
        "X: 1\r\n".repeat(MAX_HEADERS)
    );
    assert_eq!(
        refused(&many).status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
    let big = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n",
        "a".repeat(MAX_HEAD_BYTES)
    );
    assert_eq!(
        refused(&big).status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}

#[test]
fn response_framing_follows_rfc_9112_section_6_3() {
    let parsed = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(parsed.framing, Framing::Length(5));
    assert!(parsed.keep_alive);
    assert_eq!(parsed.head.reason, "OK");

    let chunked = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert_eq!(chunked.framing, Framing::Chunked);

    let until_close = response("HTTP/1.1 200 OK\r\n\r\n", Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(until_close.framing, Framing::UntilClose);
    assert!(!until_close.keep_alive);

    let head = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        Method::HEAD,
    )
    .unwrap()
    .unwrap();
    assert_eq!(head.framing, Framing::Empty);
    for status in [
        "204 No Content",
        "304 Not Modified",
        "103 Early Hints",
        "100 Continue",
    ] {
        let text = format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n");
        assert_eq!(
            response(&text, Method::GET).unwrap().unwrap().framing,
            Framing::Empty,
            "{status}"
        );
    }

    let old = response("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", Method::GET)
        .unwrap()
        .unwrap();
    assert!(!old.keep_alive);
    let old_kept = response(
        "HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert!(old_kept.keep_alive);
    let closing = response(
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n",
        Method::GET,
    )
    .unwrap()
    .unwrap();
    assert!(!closing.keep_alive);
}

#[test]
fn contradictory_response_framing_is_a_backend_error() {
    let cases = [
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n  folded\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/2 200\r\n\r\n",
    ];
    for case in cases {
        assert!(
            response(case, Method::GET).is_err(),
            "{case:?} should be refused"
        );
    }
    // Refused even where no body is expected: the backend's framing cannot be trusted.
    let head = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(response(head, Method::HEAD).is_err());
}

#[test]
fn a_response_without_a_reason_phrase_is_accepted() {
    let parsed = response("HTTP/1.1 204 \r\n\r\n", Method::GET)
        .unwrap()
        .unwrap();
    assert_eq!(parsed.head.status, StatusCode::NO_CONTENT);
    assert_eq!(parsed.head.reason, "");
}

#[test]
fn an_upgrade_needs_both_fields_and_http_1_1() {
    let websocket = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert_eq!(accepted(websocket).upgrade.unwrap(), "websocket");
    let no_connection = "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n";
    assert_eq!(accepted(no_connection).upgrade, None);
    let old = "GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    assert_eq!(accepted(old).upgrade, None);
}
