//! WebSocket and HTTP/1.1 Upgrade, with PyPI's websockets as server and client: the plugin
//! chooses the backend for the upgrade request (so sticky sessions hold for sockets), `101` is
//! relayed, then bytes flow both ways until either side closes; the socket counts as in flight
//! on its backend for its whole life; an idle socket is closed; an upgrade the backend refuses
//! is answered as the backend answered. The bytes that go through a tunnel are counted, for
//! its access line and the backend's byte counters.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    LbxProcess, PeerServer, RawBackend, RawClient, TestBackend, TestProxy, admin_get, config,
    config_for_urls, eventually, metric, plugins, run_peer,
};

const HANDSHAKE: &[u8] =
    b"GET /ws HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

/// A client's text frame "who" (masked, with a zero key), which ws_server.py answers with its
/// name in an unmasked text frame: `\x81\x03one` from the server named "one".
const WHO_FRAME: &[u8] = b"\x81\x83\0\0\0\0who";

fn ws_url(proxy: &TestProxy) -> String {
    format!("ws://{}/ws", proxy.addr)
}

async fn client(proxy: &TestProxy, scenario: &str, arg: Option<&str>) -> Value {
    let mut args = vec![ws_url(proxy), scenario.to_string()];
    args.extend(arg.map(str::to_string));
    let stdout = run_peer("ws_client.py", args).await;
    serde_json::from_str(stdout.trim()).unwrap()
}

/// A WebSocket opened by hand through lbx: the handshake sent, the `101` read.
async fn open_socket(proxy: &TestProxy) -> (RawClient, String) {
    let mut socket = RawClient::connect(proxy.addr).await;
    socket.send(HANDSHAKE).await;
    let answer = socket.read_until("\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{answer}"
    );
    (socket, answer)
}

async fn in_flight(proxy: &TestProxy) -> u64 {
    let (_, body) = admin_get(&proxy.admin_url("/admin/backends")).await;
    let json: Value = serde_json::from_str(&body).unwrap();
    json["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["in_flight"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_up_to_a_mebibyte_make_the_round_trip_intact() {
    let server = PeerServer::start("ws_server.py", "one");
    let proxy = TestProxy::in_front_of(server.url(), "").await;
    let result = client(&proxy, "echo", None).await;
    assert_eq!(result["sent"], 1000, "{result}");
    assert_eq!(result["intact"], 1000, "{result}");
    assert!(
        result["bytes"].as_u64().unwrap() > 100 * 1024 * 1024,
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_from_the_server_reaches_the_client() {
    let server = PeerServer::start("ws_server.py", "one");
    let proxy = TestProxy::in_front_of(server.url(), "").await;
    let result = client(&proxy, "close", None).await;
    assert_eq!(result["code"], 4000, "{result}");
    assert_eq!(result["reason"], "asked", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sticky_cookie_every_socket_lands_on_the_cookies_backend() {
    let (one, two) = (
        PeerServer::start("ws_server.py", "one"),
        PeerServer::start("ws_server.py", "two"),
    );
    let proxy = TestProxy::start(&config_for_urls(
        Some(plugins::STICKY_COOKIE),
        &[one.url(), two.url()],
        "",
    ))
    .await;
    let result = client(&proxy, "who", Some("6")).await;
    let servers: Vec<&str> = result["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(result["cookie"].as_str().unwrap().contains('='), "{result}");
    assert!(servers.iter().all(|s| *s == servers[0]), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_in_flight_while_open_and_closing_it_closes_the_backend_side() {
    let server = PeerServer::start("ws_server.py", "one");
    let proxy = TestProxy::in_front_of(server.url(), "").await;
    let (mut socket, answer) = open_socket(&proxy).await;
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nupgrade: websocket\r\n"),
        "{answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: upgrade\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{answer}"
    );
    // A message there and back through the tunnel: the exchange of the 101 is over by then,
    // so a request released with it would no longer count.
    socket.send(WHO_FRAME).await;
    let echoed = socket.read_until("\x03one").await;
    assert!(
        echoed.contains("\x03one"),
        "no answer through the tunnel: {echoed:?}"
    );
    assert_eq!(
        in_flight(&proxy).await,
        1,
        "the open socket counts as in flight"
    );
    socket.abort(false).await;
    let released = eventually(Duration::from_secs(5), || async {
        (in_flight(&proxy).await == 0).then_some(())
    })
    .await;
    assert!(released.is_some(), "the tunnel did not end with the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_socket_is_closed_after_tunnel_idle() {
    let server = PeerServer::start("ws_server.py", "one");
    let proxy = TestProxy::in_front_of(server.url(), "[timeouts]\ntunnel_idle = \"300ms\"\n").await;
    let (mut socket, _) = open_socket(&proxy).await;
    assert!(
        socket.closed_within(Duration::from_secs(3)).await,
        "the idle socket stayed open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_the_backend_refuses_is_answered_as_it_answered_and_http_goes_on() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(None, &[&backend], "")).await;
    let mut client = RawClient::connect(proxy.addr).await;
    client.send(HANDSHAKE).await;
    let first = client.read_until("\r\n\r\na").await;
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    client
        .send(b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    let both = client.read_to_close(Duration::from_secs(5)).await;
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shutdown_an_open_socket_gets_the_drain_period_then_is_closed() {
    let server = PeerServer::start("ws_server.py", "one");
    let proxy = TestProxy::in_front_of(server.url(), "").await;
    let (mut socket, _) = open_socket(&proxy).await;
    let stopped = std::time::Instant::now();
    drop(proxy); // stop, with the test proxy's 1 s drain
    assert!(socket.closed_within(Duration::from_secs(5)).await);
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed before the drain period: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_line_and_byte_counters_show_what_went_through_the_tunnel() {
    // Upstream: 3000 bytes written after the 101 once the client's 1004 bytes arrived, then
    // closed when the client is done.
    const FROM_CLIENT: usize = 1004;
    const FROM_BACKEND: usize = 3000;
    let backend = RawBackend::start(|mut conn| async move {
        if conn.read_head().await.is_none() {
            return;
        }
        conn.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await;
        // The client's bytes end with a blank line, so the head reader reads them whole.
        if conn.read_head().await.is_some() {
            conn.write(&[b'b'; FROM_BACKEND]).await;
        }
        conn.wait_closed().await;
    })
    .await;
    let lbx = LbxProcess::run(&["--backend", &backend.url()]);
    let mut socket = RawClient::connect(lbx.addr).await;
    socket.send(HANDSHAKE).await;
    let answer = socket.read_until("\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    let mut payload = vec![b'c'; FROM_CLIENT - 4];
    payload.extend_from_slice(b"\r\n\r\n");
    socket.send(&payload).await;
    let received = socket.read_until(&"b".repeat(FROM_BACKEND)).await;
    assert!(received.ends_with(&"b".repeat(FROM_BACKEND)), "{received}");
    socket.abort(false).await;

    let line = eventually(Duration::from_secs(5), || async {
        lbx.log()
            .lines()
            .find(|l| l.contains("lbx::access") && l.contains("path=/ws"))
            .map(str::to_string)
    })
    .await
    .unwrap_or_else(|| panic!("no access line for the socket: {}", lbx.log()));
    assert!(line.contains(" status=101 "), "{line}");
    assert!(
        line.contains(&format!(
            " bytes_in={FROM_CLIENT} bytes_out={FROM_BACKEND} "
        )),
        "{line}"
    );
    let (_, text) = admin_get(&format!("http://{}/metrics", lbx.admin)).await;
    let series = |name: &str| format!("{name}{{backend=\"{}\"}}", backend.addr);
    assert_eq!(
        metric(&text, &series("lbx_backend_request_body_bytes_total")),
        FROM_CLIENT as f64,
        "{text}"
    );
    assert_eq!(
        metric(&text, &series("lbx_backend_response_body_bytes_total")),
        FROM_BACKEND as f64,
        "{text}"
    );
}
