//! Who can reach the admin API: loopback Host (or an allowed one) only, no cross-site browser
//! requests, a bearer token on every request when one is configured, a header timeout, and no
//! start on a public address without a token.

use std::time::Duration;

use crate::support::{RawClient, TempDir, TestBackend, TestProxy, config, run_lbx_to_exit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_and_allowed_host_names_are_answered() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(
        None,
        &[&backend],
        "[admin]\nallowed_hosts = [\"lbx-admin.internal\"]\n",
    ))
    .await;
    for host in [
        "127.0.0.1",
        "localhost:9901",
        "[::1]",
        "lbx-admin.internal:9901",
    ] {
        let answer = RawClient::exchange(
            proxy.admin,
            &format!("GET /admin/backends HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{host}: {answer}"
        );
    }
    // A DNS name rebound to 127.0.0.1 arrives with its own Host.
    let answer = RawClient::exchange(
        proxy.admin,
        "GET /admin/backends HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(!answer.contains("backends\":"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_post_from_a_browser_is_refused() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(None, &[&backend], "")).await;
    let answer = RawClient::exchange(
        proxy.admin,
        "POST /admin/plugin/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://attacker.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_file_every_admin_request_needs_the_bearer_token() {
    let backend = TestBackend::named("a").await;
    let dir = TempDir::new("admin-token");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret-token-0123456789\n").unwrap();
    let proxy = TestProxy::start(&config(
        None,
        &[&backend],
        &format!("[admin]\ntoken_file = {:?}\n", token_file.to_str().unwrap()),
    ))
    .await;
    for path in ["/metrics", "/admin/backends"] {
        let answer = RawClient::exchange(
            proxy.admin,
            &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            answer.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{path}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer\r\n"),
            "{answer}"
        );
    }
    let wrong = RawClient::exchange(
        proxy.admin,
        "POST /admin/plugin/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(wrong.starts_with("HTTP/1.1 401 "), "{wrong}");
    let right = RawClient::exchange(
        proxy.admin,
        "POST /admin/plugin/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cret-token-0123456789\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(right.starts_with("HTTP/1.1 200 OK\r\n"), "{right}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_admin_client_is_cut_off_at_the_header_timeout() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(
        None,
        &[&backend],
        "[timeouts]\nrequest_headers = \"300ms\"\n",
    ))
    .await;
    let mut client = RawClient::connect(proxy.admin).await;
    client
        .send(b"GET /admin/plugin HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await;
    assert!(
        client.closed_within(Duration::from_secs(3)).await,
        "the slowloris stayed connected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_names_the_allowed_method() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(None, &[&backend], "")).await;
    let answer = RawClient::exchange(
        proxy.admin,
        "DELETE /admin/backends HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{answer}"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nallow: get, post\r\n"),
        "{answer}"
    );
    let answer = RawClient::exchange(
        proxy.admin,
        "GET /admin/plugin/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.to_ascii_lowercase().contains("\r\nallow: post\r\n"),
        "{answer}"
    );
}

#[test]
fn lbx_refuses_a_public_admin_address_without_a_token() {
    let (ok, stderr) = run_lbx_to_exit(&[
        "run",
        "--backend",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "0.0.0.0:0",
    ]);
    assert!(!ok, "lbx started a public admin API without a token");
    assert!(
        stderr.contains("admin.listen") && stderr.contains("token_file"),
        "{stderr}"
    );
}
