//! Test harness: backends on 127.0.0.1:0 that record what they see, lbx started in-process or
//! as the real binary, HTTP/1.1 and HTTP/2 clients, and deterministic streaming bodies.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::Hasher;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use lbx::Config;
use lbx::shutdown::{self, StopSender};
use tokio::net::TcpListener;

/// Paths of the real plugins, built by host/build.rs.
pub mod plugins {
    /// plugins/round_robin.
    pub const ROUND_ROBIN: &str = env!("LBX_PLUGIN_ROUND_ROBIN");
    /// plugins/least_conn.
    pub const LEAST_CONN: &str = env!("LBX_PLUGIN_LEAST_CONN");
    /// plugins/random.
    pub const RANDOM: &str = env!("LBX_PLUGIN_RANDOM");
    /// plugins/header_router.
    pub const HEADER_ROUTER: &str = env!("LBX_PLUGIN_HEADER_ROUTER");
    /// plugins/sticky_cookie.
    pub const STICKY_COOKIE: &str = env!("LBX_PLUGIN_STICKY_COOKIE");
    /// plugins/weighted_round_robin.
    pub const WEIGHTED_ROUND_ROBIN: &str = env!("LBX_PLUGIN_WEIGHTED_ROUND_ROBIN");
    /// plugins/consistent_hash.
    pub const CONSISTENT_HASH: &str = env!("LBX_PLUGIN_CONSISTENT_HASH");
    /// plugins/p2c_ewma.
    pub const P2C_EWMA: &str = env!("LBX_PLUGIN_P2C_EWMA");
    /// plugins/llm_router.
    pub const LLM_ROUTER: &str = env!("LBX_PLUGIN_LLM_ROUTER");
    /// tests/plugins/test_router: counts, loops, grows or panics as configured.
    pub const TEST_ROUTER: &str = env!("LBX_PLUGIN_TEST_ROUTER");
    /// tests/plugins/not_a_router: a component of another world.
    pub const NOT_A_ROUTER: &str = env!("LBX_PLUGIN_NOT_A_ROUTER");
    /// Plugins built for `lbx:router@0.1.0` before 0.2 existed (checked in, never rebuilt):
    /// every 0.1 plugin in the field must keep working.
    pub const V0_1_LEAST_CONN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/contract-0.1/least_conn.wasm"
    );
    /// The 0.1 header router (reads headers and paths, parses a configuration).
    pub const V0_1_HEADER_ROUTER: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/contract-0.1/header_router.wasm"
    );
    /// The 0.1 sticky-cookie router (sets a downstream header, uses the key-value store).
    pub const V0_1_STICKY_COOKIE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/contract-0.1/sticky_cookie.wasm"
    );
}

/// The lbx binary under test.
pub const LBX_BIN: &str = env!("CARGO_BIN_EXE_lbx");

type TestBody = BoxBody<Bytes, Infallible>;

/// What a test backend saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    health_status: AtomicU16,
    health_versions: Mutex<Vec<http::Version>>,
    headers: Mutex<Vec<HeaderMap>>,
    complete_uploads: AtomicUsize,
    broken_uploads: AtomicUsize,
}

/// A backend on 127.0.0.1:0. Routes:
/// - `/healthz`: answers the status set with [`TestBackend::set_health`] (200 at first),
///   without counting as a request, recording its HTTP version;
/// - `/sum`: reads the body, answers `<length> <hash>`;
/// - `/bytes/<n>`: streams `n` pattern bytes (see [`PatternBody`]);
/// - anything else: answers the backend's name (after its delay, if any).
pub struct TestBackend {
    /// Its address.
    pub addr: SocketAddr,
    seen: Arc<Seen>,
    stop: StopSender,
}

impl TestBackend {
    /// A backend answering `name`.
    pub async fn named(name: &str) -> Self {
        Self::start(name, Duration::ZERO).await
    }

    /// A backend answering `name` after `delay`.
    pub async fn slow(name: &str, delay: Duration) -> Self {
        Self::start(name, delay).await
    }

    async fn start(name: &str, delay: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        seen.health_status.store(200, Ordering::SeqCst);
        let (stop, mut stopped) = shutdown::channel();
        let name = Bytes::from(name.to_string());
        let task_seen = seen.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap().0,
                    _ = shutdown::stopped(&mut stopped) => return,
                };
                task_seen.connections.fetch_add(1, Ordering::SeqCst);
                let seen = task_seen.clone();
                let name = name.clone();
                let service = service_fn(move |request: Request<Incoming>| {
                    let seen = seen.clone();
                    let name = name.clone();
                    async move { Ok::<_, Infallible>(answer(request, &seen, name, delay).await) }
                });
                tokio::spawn(
                    auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
            }
        });
        Self { addr, seen, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// Make `/healthz` answer `status` from now on.
    pub fn set_health(&self, status: u16) {
        self.seen.health_status.store(status, Ordering::SeqCst);
    }

    /// The HTTP version of each `/healthz` request so far, oldest first.
    pub fn health_check_versions(&self) -> Vec<http::Version> {
        self.seen.health_versions.lock().unwrap().clone()
    }

    /// `/sum` uploads whose body ended cleanly, and those that broke off.
    pub fn uploads(&self) -> (usize, usize) {
        (
            self.seen.complete_uploads.load(Ordering::SeqCst),
            self.seen.broken_uploads.load(Ordering::SeqCst),
        )
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    /// Headers of the most recent request.
    pub fn last_headers(&self) -> HeaderMap {
        self.seen
            .headers
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn answer(
    request: Request<Incoming>,
    seen: &Seen,
    name: Bytes,
    delay: Duration,
) -> Response<TestBody> {
    if request.uri().path() == "/healthz" {
        seen.health_versions.lock().unwrap().push(request.version());
        let status = seen.health_status.load(Ordering::SeqCst);
        let mut response = Response::new(full(String::new()));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        return response;
    }
    seen.requests.fetch_add(1, Ordering::SeqCst);
    seen.headers.lock().unwrap().push(request.headers().clone());
    let path = request.uri().path().to_string();
    if path == "/sum" {
        let mut body = request.into_body();
        let mut hasher = std::hash::DefaultHasher::new();
        let mut length = 0u64;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                // The body did not end cleanly (reset, connection lost): not an upload.
                seen.broken_uploads.fetch_add(1, Ordering::SeqCst);
                return Response::new(full(String::new()));
            };
            if let Ok(chunk) = frame.into_data() {
                length += chunk.len() as u64;
                hasher.write(&chunk);
            }
        }
        seen.complete_uploads.fetch_add(1, Ordering::SeqCst);
        return Response::new(full(format!("{length} {:x}", hasher.finish())));
    }
    if let Some(n) = path.strip_prefix("/bytes/") {
        let n: u64 = n.parse().unwrap();
        return Response::new(PatternBody::new(n).boxed());
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Response::new(Full::new(name).boxed())
}

fn full(text: String) -> TestBody {
    Full::new(Bytes::from(text)).boxed()
}

/// A deterministic stream of `len` bytes in 64 KiB chunks, generated on the fly so the test
/// itself never holds the whole body.
pub struct PatternBody {
    remaining: u64,
    state: u64,
}

impl PatternBody {
    const CHUNK: u64 = 64 * 1024;

    /// `len` bytes of the pattern.
    pub fn new(len: u64) -> Self {
        Self {
            remaining: len,
            state: 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// Length and hash of the whole pattern of `len` bytes, as `/sum` reports them.
    pub fn expected_sum(len: u64) -> String {
        let mut body = Self::new(len);
        let mut hasher = std::hash::DefaultHasher::new();
        while let Some(chunk) = body.next_chunk() {
            hasher.write(&chunk);
        }
        format!("{len} {:x}", hasher.finish())
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(Self::CHUNK) as usize;
        let mut chunk = Vec::with_capacity(n);
        while chunk.len() < n {
            // xorshift64: cheap bytes that are not all the same.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            chunk.extend_from_slice(&self.state.to_le_bytes()[..(n - chunk.len()).min(8)]);
        }
        self.remaining -= n as u64;
        Some(Bytes::from(chunk))
    }
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.next_chunk().map(|chunk| Ok(Frame::data(chunk))))
    }
}

/// lbx running inside the test process; stopped when dropped.
pub struct TestProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// The HTTPS listener, when the config has one.
    pub tls: Option<SocketAddr>,
    /// The admin API.
    pub admin: SocketAddr,
    stop: StopSender,
}

impl TestProxy {
    /// Start lbx from TOML text (its `listen` and admin `listen` are replaced with
    /// 127.0.0.1:0).
    pub async fn start(toml: &str) -> Self {
        let config = Self::local_config(toml);
        Self::serve(lbx::Server::bind(&config).await.unwrap())
    }

    /// Like [`TestProxy::start`], routing with a plugin compiled into the binary (as `lbx demo`
    /// does) instead of the config's `[plugin] path`.
    pub async fn start_embedded(toml: &str, name: &'static str, bytes: &'static [u8]) -> Self {
        let config = Self::local_config(toml);
        Self::serve(
            lbx::Server::bind_embedded(&config, name, bytes)
                .await
                .unwrap(),
        )
    }

    fn local_config(toml: &str) -> Config {
        let mut config = Config::parse(toml, None).unwrap();
        config.listen = "127.0.0.1:0".into();
        config.admin.listen = "127.0.0.1:0".into();
        if config.tls.listen.is_some() {
            config.tls.listen = Some("127.0.0.1:0".into());
        }
        config
    }

    fn serve(server: lbx::Server) -> Self {
        let addr = server.local_addr();
        let tls = server.tls_addr();
        let admin = server.admin_addr().expect("admin API enabled");
        let (stop, stopped) = shutdown::channel();
        tokio::spawn(server.with_drain(Duration::from_secs(1)).run(stopped));
        Self {
            addr,
            tls,
            admin,
            stop,
        }
    }

    /// lbx without a plugin in front of the one backend at `url`, with the config lines of
    /// `extra` (see [`config_for_urls`]).
    pub async fn in_front_of(url: String, extra: &str) -> Self {
        Self::start(&config_for_urls(None, &[url], extra)).await
    }

    /// `http://<proxy><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://<admin><path>`.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// TOML for a proxy over `backends`, with `plugin` if given, plus extra lines.
pub fn config(plugin: Option<&str>, backends: &[&TestBackend], extra: &str) -> String {
    let urls: Vec<String> = backends.iter().map(|b| b.url()).collect();
    config_for_urls(plugin, &urls, extra)
}

/// TOML for a proxy over backends at `urls`, with `plugin` if given, plus extra lines. With a
/// plugin, the lines of `extra` before its first `[table]` are settings of `[plugin]`, and the
/// decision deadline is 1 s unless they set one.
pub fn config_for_urls(plugin: Option<&str>, urls: &[String], extra: &str) -> String {
    let mut toml = String::new();
    let mut tables = extra;
    if let Some(path) = plugin {
        let split = if extra.starts_with('[') {
            0
        } else {
            extra.find("\n[").map_or(extra.len(), |i| i + 1)
        };
        toml.push_str(&format!("[plugin]\npath = {path:?}\n{}", &extra[..split]));
        // Production's 5 ms decision deadline is for a release build; a debug build sharing
        // two cores with the rest of the suite can be preempted for longer. Tests about the
        // deadline set their own.
        if !extra[..split].contains("deadline") {
            toml.push_str("deadline = \"1s\"\n");
        }
        tables = &extra[split..];
    }
    for url in urls {
        toml.push_str(&format!("[[backend]]\nurl = {url:?}\n"));
    }
    toml.push_str(tables);
    toml
}

/// GET `path` with extra headers; returns status, response headers and body.
pub async fn get_with(
    proxy: &TestProxy,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let mut request = http::Request::get(proxy.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(http_body_util::Empty::new().boxed()).unwrap();
    let (status, headers, body) = send(&http1_client(), request).await;
    (status.as_u16(), headers, body)
}

/// An HTTP/1.1 client with keep-alive.
pub fn http1_client() -> Client<HttpConnector, BoxBody<Bytes, Infallible>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// GET `url`; returns status, headers and body text.
pub async fn get(url: &str) -> (StatusCode, HeaderMap, String) {
    send(
        &http1_client(),
        Request::get(url).body(Empty::new().boxed()).unwrap(),
    )
    .await
}

/// Send `request` with `client`; returns status, headers and body text.
pub async fn send(
    client: &Client<HttpConnector, BoxBody<Bytes, Infallible>>,
    request: Request<BoxBody<Bytes, Infallible>>,
) -> (StatusCode, HeaderMap, String) {
    let response = client.request(request).await.expect("request failed");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// Count answers by body text.
pub fn tally(answers: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for answer in answers {
        *counts.entry(answer).or_default() += 1;
    }
    counts
}

/// The real `lbx` binary, started with `args`; killed when dropped.
pub struct LbxProcess {
    child: Child,
    /// Where it listens, read from its log.
    pub addr: SocketAddr,
    /// Its HTTPS listener, if it has one.
    pub tls: Option<SocketAddr>,
    /// Where its admin API listens, read from its log.
    pub admin: SocketAddr,
    log: Arc<Mutex<String>>,
    _unread_log: Option<std::io::Lines<BufReader<std::process::ChildStderr>>>,
}

impl LbxProcess {
    /// Start `lbx run <args> --listen 127.0.0.1:0 --admin 127.0.0.1:0` and wait until both
    /// listen.
    pub fn run(args: &[&str]) -> Self {
        Self::start(args, true)
    }

    /// Like [`LbxProcess::run`], but once it listens nobody reads its log any more: the pipe
    /// fills, as a stalled log destination would.
    pub fn run_with_a_log_nobody_reads(args: &[&str]) -> Self {
        Self::start(args, false)
    }

    fn start(args: &[&str], keep_reading: bool) -> Self {
        let mut child = Command::new(LBX_BIN)
            .arg("run")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start lbx");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let log = Arc::new(Mutex::new(String::new()));
        let (mut addr, mut admin, mut tls) = (None, None, None);
        while addr.is_none() || admin.is_none() {
            let Some(line) = lines.next() else {
                panic!(
                    "lbx exited before listening; its log:\n{}",
                    log.lock().unwrap()
                );
            };
            let line = line.unwrap();
            // `key=value` in a text line, `"key":"value"` in a JSON one (`[log] format`).
            let value_of = |key: &str| {
                line.split(&format!(" {key}="))
                    .nth(1)
                    .or_else(|| line.split(&format!("\"{key}\":\"")).nth(1))
                    .map(|rest| {
                        let mut value = rest.split(|c: char| c.is_whitespace() || c == '"');
                        value.next().unwrap().parse().unwrap()
                    })
            };
            addr = addr.or_else(|| value_of("listen"));
            admin = admin.or_else(|| value_of("admin"));
            tls = tls.or_else(|| value_of("tls_listen"));
            log.lock().unwrap().push_str(&(line + "\n"));
        }
        // Keep draining its log (so it never blocks on a full pipe) into `log`, or hold the
        // pipe open unread.
        let kept = log.clone();
        let unread = if keep_reading {
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    kept.lock().unwrap().push_str(&(line + "\n"));
                }
            });
            None
        } else {
            Some(lines)
        };
        Self {
            _unread_log: unread,
            child,
            addr: addr.unwrap(),
            tls,
            admin: admin.unwrap(),
            log,
        }
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Current resident memory, in KiB (VmRSS).
    pub fn rss_kib(&self) -> u64 {
        self.proc_status_kib("VmRSS:")
    }

    fn proc_status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("field in /proc/<pid>/status")
    }

    /// Wait for the process to exit on its own.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for lbx")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory so far, in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status_kib("VmHWM:")
    }
}

impl Drop for LbxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run `lbx <args>` to completion; returns exit success and stderr.
/// Run `program <args>` to completion off the async threads; returns (success, stdout,
/// stderr).
pub async fn run_tool(program: &'static str, args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} (installed by scripts/setup.sh): {e}"));
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// A command that should exit gets 30 s; one still running then (say, an lbx that started when
/// it should have refused) is killed and reported as not successful, so a regression fails the
/// test instead of hanging the suite.
pub fn run_lbx_to_exit(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(LBX_BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lbx");
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    match status {
        Some(status) => (status.success(), stderr),
        None => (
            false,
            format!("{stderr}\n(lbx was still running after 30 s and was killed)"),
        ),
    }
}

/// A port on 127.0.0.1 that refuses every connection: bound but never listening, so the
/// kernel answers a connect with RST, and no other test can take the port while it is held.
/// (Dropping a [`TestBackend`] instead would free its port for a parallel test to reuse.)
pub struct RefusingPort {
    /// Its address.
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

impl RefusingPort {
    /// Reserve one.
    pub fn reserve() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        Self {
            addr,
            _socket: socket,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A backend that accepts connections and never answers; holds them until dropped.
pub struct BlackHole {
    /// Its address.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    /// Start one on 127.0.0.1:0.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        Self { addr, task }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A backend that reads a request head and `threshold` bytes of body, then resets the
/// connection. Counts the requests it saw.
pub struct ResettingBackend {
    /// Its address.
    pub addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl ResettingBackend {
    /// Start one on 127.0.0.1:0 that resets after `threshold` bytes.
    pub async fn start(threshold: usize) -> Self {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut read = 0;
                    // Wait for the head and some body, then reset (RST, not FIN).
                    while read < threshold {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_zero_linger();
                    drop(stream);
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests that reached it.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for ResettingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A real `lbx backend` process answering its name, which a test can kill and restart.
pub struct BackendProcess {
    /// Its address (kept across restarts).
    pub addr: SocketAddr,
    name: String,
    child: Option<Child>,
}

impl BackendProcess {
    /// Start `lbx backend --name <name>` on a free port; returns once it answers.
    pub fn start(name: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut backend = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            name: name.into(),
            child: None,
        };
        backend.restart();
        backend
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL the process: no goodbye, connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Start it again on the same port; returns once it accepts connections.
    pub fn restart(&mut self) {
        let child = Command::new(LBX_BIN)
            .args([
                "backend",
                "--listen",
                &self.addr.to_string(),
                "--name",
                &self.name,
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lbx backend");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(self.addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "backend {} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir {
    /// Its path.
    pub path: std::path::PathBuf,
}

impl TempDir {
    /// Create one; `label` makes it recognisable.
    pub fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "lbx-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self { path }
    }

    /// `<dir>/<name>`.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Replace `path` with `bytes` the way deploy tools do: write a temporary file beside it, then
/// rename it over the original (readers see the old file or the new one, never half).
pub fn replace_atomically(path: &std::path::Path, bytes: &[u8]) {
    let temporary = path.with_extension("tmp-new");
    std::fs::write(&temporary, bytes).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A plugin's bytes with a custom section appended: the same code as a different file, as a
/// rebuilt plugin would be (a different hash, so lbx treats it as a new version).
pub fn with_custom_section(component: &[u8], tag: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"lbx-test-version";
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0); // custom section id
    leb128(payload.len(), &mut bytes);
    bytes.extend_from_slice(&payload);
    bytes
}

/// The value of one series in Prometheus text, e.g. `lbx_reloads_total{what="plugin",result="ok"}`
/// (labels in the order lbx writes them). Panics naming the series when it is absent: lbx
/// exposes its counters from the start at 0, so a missing series is a renamed or lost metric,
/// not a zero.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
}

/// GET an admin URL; returns status and body.
pub async fn admin_get(url: &str) -> (u16, String) {
    let (status, _, body) = get(url).await;
    (status.as_u16(), body)
}

/// POST an admin URL with an empty body; returns status and body.
pub async fn admin_post(url: &str) -> (u16, String) {
    let request = Request::post(url).body(Empty::new().boxed()).unwrap();
    let (status, _, body) = send(&http1_client(), request).await;
    (status.as_u16(), body)
}

/// Send `method` to an admin URL with an optional JSON body and bearer token; returns status
/// and body.
pub async fn admin_send(
    method: &str,
    url: &str,
    json: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let mut request = Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match json {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(json.to_string())).boxed()
        }
        None => Empty::new().boxed(),
    };
    let (status, _, body) = send(&http1_client(), request.body(body).unwrap()).await;
    (status.as_u16(), body)
}

/// Poll `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Client loops sending GETs to one URL until finished: continuous bounded load.
pub struct LoadGenerator {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<LoadStats>>,
}

/// What a [`LoadGenerator`] saw.
#[derive(Debug, Default)]
pub struct LoadStats {
    /// Requests answered 200.
    pub ok: usize,
    /// Every other outcome, described.
    pub failed: Vec<String>,
}

impl LoadGenerator {
    /// Start `clients` loops, each one request at a time over its own keep-alive connection.
    pub fn start(url: String, clients: usize) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|_| {
                let (url, stop) = (url.clone(), stop.clone());
                tokio::spawn(async move {
                    let client = http1_client();
                    let mut stats = LoadStats::default();
                    while !stop.load(Ordering::Relaxed) {
                        let request = Request::get(&url).body(Empty::new().boxed()).unwrap();
                        match client.request(request).await {
                            Ok(response) => {
                                let status = response.status();
                                let body = response.into_body().collect().await;
                                match (status, body) {
                                    (StatusCode::OK, Ok(_)) => stats.ok += 1,
                                    (status, body) => stats
                                        .failed
                                        .push(format!("{status} body ok: {}", body.is_ok())),
                                }
                            }
                            Err(e) => stats.failed.push(format!("request error: {e:?}")),
                        }
                    }
                    stats
                })
            })
            .collect();
        Self { stop, tasks }
    }

    /// Stop the loops and add up what they saw.
    pub async fn finish(self) -> LoadStats {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadStats::default();
        for task in self.tasks {
            let stats = task.await.unwrap();
            total.ok += stats.ok;
            total.failed.extend(stats.failed);
        }
        total
    }
}

mod raw;
pub use raw::{RawBackend, RawClient, RawRequest};

pub mod llm_replica;

mod metrics_backend;
pub use metrics_backend::{MetricsAnswer, MetricsBackend};

mod tls;
pub use tls::{Issued, TestCa, https_connect, https_get, tls_section};

mod nginx;
pub use nginx::{Nginx, free_port, free_ports};

pub mod dns;

mod peers;
pub use peers::{PeerServer, run_peer};

mod browser;
pub use browser::Browser;

mod etcd;
pub use etcd::EtcdCluster;

/// How `GET /admin/backends` on the admin API at `admin` describes the backend `id` (a
/// backend's id defaults to its `host:port`), or `None` if it is not listed. Tests wait on its
/// `down`, `in_flight` and `requests` instead of sleeping.
pub async fn admin_backend(admin: SocketAddr, id: &str) -> Option<serde_json::Value> {
    let (status, body) = admin_get(&format!("http://{admin}/admin/backends")).await;
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    listed["backends"]
        .as_array()?
        .iter()
        .find(|b| b["id"] == id)
        .cloned()
}

/// A finished command's stdout then stderr, as text: what a failed assertion shows.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `lbx check PLUGIN --iterations 100 [--config CONFIG]` succeeds and its `language` line names
/// `language` (the first word, before the producer in parentheses); the report, for more checks.
pub fn check_names_language(
    wasm: &std::path::Path,
    config: Option<&std::path::Path>,
    language: &str,
) -> String {
    let mut check = std::process::Command::new(LBX_BIN);
    check.args(["check", wasm.to_str().unwrap(), "--iterations", "100"]);
    if let Some(config) = config {
        check.arg("--config").arg(config);
    }
    let check = check.output().unwrap();
    assert!(check.status.success(), "{}", output_text(&check));
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    let named = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("language "))
        .unwrap_or_else(|| panic!("no language line:\n{report}"));
    assert!(named.starts_with(&format!("{language} (")), "{named}");
    report
}

/// Run an example's build script (a path under the repository root) with `out` as its
/// argument, failing the test with the script's stderr if it fails.
pub fn build_example(script: &str, out: &std::path::Path) {
    build_example_with(script, out, &[]);
}

/// `build_example` with more arguments after `out` (e.g. `--engine starlingmonkey`).
pub fn build_example_with(script: &str, out: &std::path::Path, args: &[&str]) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let build = std::process::Command::new("bash")
        .arg(format!("{root}/{script}"))
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
}
