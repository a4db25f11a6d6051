//! HTTPS termination: certificates chosen by SNI (wildcards, a default), HTTP/1.1 and HTTP/2 by
//! ALPN on one port, session resumption, `X-Forwarded-Proto: https`, certificates replaced
//! while serving (and a bad pair refused), a redirect from plain HTTP, failed handshakes that
//! harm nothing. curl is the client where it can be.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;

use crate::support::{
    LbxProcess, RawBackend, TestCa, TestProxy, admin_get, admin_post, eventually, https_connect,
    https_get, metric, run_tool, tls_section,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// `curl -v <args> https://<name>:<port><path>` resolving `name` to 127.0.0.1; returns
/// (success, stdout, stderr).
async fn curl(tls: SocketAddr, name: &str, path: &str, args: &[&str]) -> (bool, String, String) {
    let mut all: Vec<String> = ["-sS", "-v", "--max-time", "10", "--resolve"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    all.push(format!("{name}:{}:127.0.0.1", tls.port()));
    all.extend(args.iter().map(|a| a.to_string()));
    all.push(format!("https://{name}:{}{path}", tls.port()));
    run_tool("curl", all).await
}

/// Send `request` on a kept-alive connection and read one answer from the recording backend
/// (a head, then the two-byte body `ok`).
async fn exchange_ok<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, request: &[u8]) {
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read_one = async {
        loop {
            let end = answer.windows(4).position(|w| w == b"\r\n\r\n");
            if end.is_some_and(|at| answer.len() >= at + 4 + 2) {
                break;
            }
            let mut byte = [0u8; 1];
            stream
                .read_exact(&mut byte)
                .await
                .expect("the connection broke");
            answer.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_one)
        .await
        .expect("no answer in 5 s");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\nok"),
        "{answer}"
    );
}

/// The leaf certificate a new connection to `site.test` made with `config` is shown.
async fn presented_certificate(
    tls: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> CertificateDer<'static> {
    https_get(tls, "site.test", config, "/").await.unwrap().leaf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sni_name_gets_its_certificate_and_an_unknown_name_the_default() {
    let ca = TestCa::new("sni");
    let a = ca.issue("a", &["a.test"]);
    let wildcard = ca.issue("wild", &["*.b.test"]);
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), &tls_section(&[&a, &wildcard])).await;
    let tls = proxy.tls.unwrap();
    let cacert = ca.ca_pem.to_str().unwrap();

    let (ok, body, log) = curl(tls, "a.test", "/", &["--cacert", cacert]).await;
    assert!(ok, "{log}");
    assert_eq!(body, "ok");
    assert!(log.contains("subject: CN=a.test"), "{log}");

    let (ok, _, log) = curl(tls, "x.b.test", "/", &["--cacert", cacert]).await;
    assert!(ok, "{log}");
    assert!(log.contains("subject: CN=*.b.test"), "{log}");
    // One label only: the wildcard does not cover y.x.b.test, so the default is presented,
    // and curl refuses it for that name.
    let (ok, _, log) = curl(tls, "y.x.b.test", "/", &["--cacert", cacert]).await;
    assert!(!ok, "{log}");
    assert!(log.contains("subject: CN=a.test"), "{log}");

    let (ok, _, log) = curl(tls, "unknown.test", "/", &["--insecure"]).await;
    assert!(ok, "{log}");
    assert!(
        log.contains("subject: CN=a.test"),
        "the first certificate is the default: {log}"
    );

    let requests = backend.requests();
    assert_eq!(requests[0].values("x-forwarded-proto"), ["https"]);
    assert_eq!(
        requests[0].values("host"),
        [format!("a.test:{}", tls.port())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_picks_http2_or_http1_on_the_same_port() {
    let ca = TestCa::new("alpn");
    let site = ca.issue("site", &["site.test"]);
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), &tls_section(&[&site])).await;
    let tls = proxy.tls.unwrap();
    let cacert = ca.ca_pem.to_str().unwrap();
    let (ok, body, log) = curl(tls, "site.test", "/h2", &["--cacert", cacert, "--http2"]).await;
    assert!(ok && body == "ok", "{log}");
    assert!(log.contains("ALPN: server accepted h2"), "{log}");
    assert!(log.contains("< HTTP/2 200"), "{log}");
    let (ok, _, log) = curl(tls, "site.test", "/h1", &["--cacert", cacert, "--http1.1"]).await;
    assert!(ok, "{log}");
    assert!(log.contains("ALPN: server accepted http/1.1"), "{log}");
    assert!(log.contains("< HTTP/1.1 200 OK"), "{log}");
    let requests = backend.requests();
    assert_eq!(requests[0].request_line(), "GET /h2 HTTP/1.1");
    assert_eq!(requests[0].values("x-forwarded-proto"), ["https"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_client_resumes_its_session() {
    let ca = TestCa::new("resume");
    let site = ca.issue("site", &["site.test"]);
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), &tls_section(&[&site])).await;
    let config = ca.client_config(&[b"http/1.1"]);
    let first = https_get(proxy.tls.unwrap(), "site.test", &config, "/")
        .await
        .unwrap();
    assert!(!first.resumed);
    assert!(
        first.response.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        first.response
    );
    let second = https_get(proxy.tls.unwrap(), "site.test", &config, "/")
        .await
        .unwrap();
    assert!(
        second.resumed,
        "the second connection should resume the session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_replaced_under_load_without_a_failed_request_and_a_bad_pair_is_refused() {
    let ca = TestCa::new("rotate");
    let old = ca.issue("old", &["site.test"]);
    let new = ca.issue("new", &["site.test"]);
    // The layout a Kubernetes secret volume has: files are links through `..data`, which is
    // replaced by an atomic rename to switch every file at once.
    let secret = ca.dir.join("secret");
    std::fs::create_dir_all(secret.join("..v1")).unwrap();
    std::fs::copy(&old.cert, secret.join("..v1/tls.crt")).unwrap();
    std::fs::copy(&old.key, secret.join("..v1/tls.key")).unwrap();
    std::os::unix::fs::symlink("..v1", secret.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tls.crt", secret.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", secret.join("tls.key")).unwrap();
    let toml = format!(
        "[tls]\nlisten = \"127.0.0.1:0\"\n[[tls.certificate]]\ncert = {:?}\nkey = {:?}\n",
        secret.join("tls.crt").to_str().unwrap(),
        secret.join("tls.key").to_str().unwrap()
    );
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), &toml).await;
    let tls = proxy.tls.unwrap();
    // Full handshakes: a resumed session presents no certificate.
    let config = ca.fresh_client_config(&[b"http/1.1"]);
    assert_eq!(presented_certificate(tls, &config).await, old.der);

    // A connection established before the rotation, kept alive across it.
    let mut established = https_connect(tls, "site.test", &config).await.unwrap();
    let keep_alive_get = b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n";
    exchange_ok(&mut established, keep_alive_get).await;

    // A few clients in a loop, each request on a new connection (a new handshake).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, config) = (stop.clone(), config.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match https_get(tls, "site.test", &config, "/").await {
                        Ok(answer) if answer.response.starts_with("HTTP/1.1 200 OK") => ok += 1,
                        Ok(answer) => failed.push(answer.response),
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    // The rotation happens under load: wait until the clients are being served.
    let loaded = eventually(Duration::from_secs(30), || async {
        (backend.requests().len() >= 20).then_some(())
    })
    .await;
    assert!(loaded.is_some(), "the clients were never served");

    std::fs::create_dir_all(secret.join("..v2")).unwrap();
    std::fs::copy(&new.cert, secret.join("..v2/tls.crt")).unwrap();
    std::fs::copy(&new.key, secret.join("..v2/tls.key")).unwrap();
    std::os::unix::fs::symlink("..v2", secret.join("..data_tmp")).unwrap();
    let flipped = Instant::now();
    std::fs::rename(secret.join("..data_tmp"), secret.join("..data")).unwrap();
    // A liveness bound only: a debug build sharing its cores with the suite says nothing about
    // how fast a release build picks the pair up.
    let seen = eventually(Duration::from_secs(30), || {
        let config = config.clone();
        let new = new.der.clone();
        async move {
            let answer = https_get(tls, "site.test", &config, "/").await.ok()?;
            (answer.leaf == new).then_some(())
        }
    })
    .await;
    assert!(seen.is_some(), "the new certificate was never presented");
    eprintln!(
        "new certificate presented {:?} after the rename",
        flipped.elapsed()
    );

    // A key that is not the certificate's: refused, the current pair keeps serving.
    let refused_before = metric(
        &admin_get(&proxy.admin_url("/metrics")).await.1,
        "lbx_reloads_total{what=\"certificates\",result=\"refused\"}",
    );
    std::fs::copy(&old.key, secret.join("..v2/tls.key")).unwrap();
    let refused = eventually(Duration::from_secs(5), || {
        let url = proxy.admin_url("/metrics");
        async move {
            let text = admin_get(&url).await.1;
            let n = metric(
                &text,
                "lbx_reloads_total{what=\"certificates\",result=\"refused\"}",
            );
            (n > refused_before).then_some(())
        }
    })
    .await;
    assert!(refused.is_some(), "the mismatched pair was not refused");
    assert_eq!(presented_certificate(tls, &config).await, new.der);

    // The connection from before both changes is untouched: it still serves.
    exchange_ok(&mut established, keep_alive_get).await;

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, Vec::new());
    for client in clients {
        let (o, f) = client.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    assert!(ok > 20, "only {ok} requests completed");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let (_, plugin) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    assert!(
        plugin.contains("does not match"),
        "the refusal names why: {plugin}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https_when_asked() {
    let ca = TestCa::new("redirect");
    let site = ca.issue("site", &["site.test"]);
    let backend = RawBackend::recording().await;
    let toml = tls_section(&[&site]).replace("[tls]\n", "[tls]\nredirect_http = true\n");
    let proxy = TestProxy::in_front_of(backend.url(), &toml).await;
    let mut client = crate::support::RawClient::connect(proxy.addr).await;
    client
        .send(b"GET /a?b=1 HTTP/1.1\r\nHost: site.test:8080\r\n\r\n")
        .await;
    let answer = client.read_until("\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 308 Permanent Redirect\r\n"),
        "{answer}"
    );
    let location = format!(
        "Location: https://site.test:{}/a?b=1\r\n",
        proxy.tls.unwrap().port()
    );
    assert!(answer.contains(&location), "{answer}");
    assert_eq!(backend.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_handshake_is_counted_and_harms_nothing() {
    let ca = TestCa::new("badhello");
    let site = ca.issue("site", &["site.test"]);
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), &tls_section(&[&site])).await;
    let tls = proxy.tls.unwrap();
    // Plain HTTP to the HTTPS port, and a client that does not trust the certificate.
    let mut plain = crate::support::RawClient::connect(tls).await;
    plain
        .send(b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n")
        .await;
    assert!(plain.closed_within(Duration::from_secs(5)).await);
    let untrusting = TestCa::new("other").client_config(&[b"http/1.1"]);
    assert!(https_get(tls, "site.test", &untrusting, "/").await.is_err());

    let answer = https_get(tls, "site.test", &ca.client_config(&[b"http/1.1"]), "/")
        .await
        .unwrap();
    assert!(
        answer.response.starts_with("HTTP/1.1 200 OK\r\n"),
        "{}",
        answer.response
    );
    let text = admin_get(&proxy.admin_url("/metrics")).await.1;
    assert!(
        metric(&text, "lbx_tls_handshakes_total{result=\"failed\"}") >= 2.0,
        "{text}"
    );
    assert!(
        metric(&text, "lbx_tls_handshakes_total{result=\"ok\"}") >= 1.0,
        "{text}"
    );
}

/// `openssl s_client` to `addr` with `args`; returns what it printed.
async fn s_client(addr: SocketAddr, args: &[&str]) -> String {
    let mut all = vec!["s_client".to_string(), "-connect".into(), addr.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    let (_, stdout, stderr) = run_tool("openssl", all).await;
    format!("{stdout}{stderr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_flags_start_an_https_listener_that_speaks_only_tls_1_2_and_1_3() {
    let ca = TestCa::new("cli");
    let site = ca.issue("site", &["site.test"]);
    let backend = RawBackend::recording().await;
    let lbx = LbxProcess::run(&[
        "--backend",
        &backend.url(),
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        site.cert.to_str().unwrap(),
        "--tls-key",
        site.key.to_str().unwrap(),
    ]);
    let tls = lbx.tls.expect("an HTTPS listener");
    let (ok, body, log) = curl(
        tls,
        "site.test",
        "/",
        &["--cacert", ca.ca_pem.to_str().unwrap()],
    )
    .await;
    assert!(ok && body == "ok", "{log}");
    // TLS 1.1, offered by an openssl allowed to (security level 0), is refused.
    let old = s_client(tls, &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"]).await;
    assert!(
        old.contains("alert handshake failure") || old.contains("alert protocol version"),
        "{old}"
    );
    assert!(
        !old.contains("Protocol  : TLSv1.1\n    Cipher    : ECDHE"),
        "{old}"
    );
    let v12 = s_client(tls, &["-tls1_2", "-servername", "site.test"]).await;
    assert!(v12.contains("New, TLSv1.2, Cipher is"), "{v12}");
    let v13 = s_client(tls, &["-tls1_3", "-servername", "site.test"]).await;
    assert!(v13.contains("New, TLSv1.3, Cipher is"), "{v13}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_through_the_admin_api_with_watching_off() {
    let ca = TestCa::new("admin-reload");
    let old = ca.issue("old", &["site.test"]);
    let new = ca.issue("new", &["site.test"]);
    let live_cert = ca.dir.join("live.pem");
    let live_key = ca.dir.join("live.key");
    std::fs::copy(&old.cert, &live_cert).unwrap();
    std::fs::copy(&old.key, &live_key).unwrap();
    let toml = format!(
        "[reload]\nwatch = false\n[tls]\nlisten = \"127.0.0.1:0\"\n[[tls.certificate]]\ncert = {:?}\nkey = {:?}\n",
        live_cert.to_str().unwrap(),
        live_key.to_str().unwrap()
    );
    let backend = RawBackend::recording().await;
    let proxy = TestProxy::in_front_of(backend.url(), &toml).await;
    let tls = proxy.tls.unwrap();
    let config = ca.fresh_client_config(&[b"http/1.1"]);
    assert_eq!(presented_certificate(tls, &config).await, old.der);
    std::fs::copy(&new.cert, &live_cert).unwrap();
    std::fs::copy(&new.key, &live_key).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Not watched: still the old one until asked.
    assert_eq!(presented_certificate(tls, &config).await, old.der);
    let (status, body) = admin_post(&proxy.admin_url("/admin/reload")).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("certificate"), "{body}");
    assert_eq!(presented_certificate(tls, &config).await, new.der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_tls_from_the_config_needs_a_restart_and_the_running_listener_keeps_its_certificate()
 {
    let ca = TestCa::new("keep");
    let site = ca.issue("site", &["site.test"]);
    let backend = RawBackend::recording().await;
    let dir = crate::support::TempDir::new("keep-tls");
    let file = dir.join("lbx.toml");
    let without_tls =
        crate::support::config_for_urls(None, &[backend.url()], "[reload]\nwatch = false\n");
    std::fs::write(&file, format!("{without_tls}{}", tls_section(&[&site]))).unwrap();
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let tls = lbx.tls.expect("an HTTPS listener");
    let config = ca.fresh_client_config(&[b"http/1.1"]);
    assert_eq!(presented_certificate(tls, &config).await, site.der);

    std::fs::write(&file, &without_tls).unwrap();
    let (status, body) = admin_post(&format!("http://{}/admin/reload", lbx.admin)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tls.listen"), "{body}");
    // A reload does not stop the listener, and it must not leave it without certificates.
    assert_eq!(presented_certificate(tls, &config).await, site.der);
    let (status, body) = admin_post(&format!("http://{}/admin/reload", lbx.admin)).await;
    assert_eq!(status, 200, "a second reload: {body}");
    assert_eq!(presented_certificate(tls, &config).await, site.der);
}
