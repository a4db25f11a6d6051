//! Raw-bytes peers: a backend that records exactly the bytes lbx sends (per connection) and
//! answers whatever a test scripts, and a client that writes and reads bytes as they are.
//! These peers parse HTTP with their own small code, independent of lbx's codec.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as a raw backend received it.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    /// The head, request line to the blank line included, exactly as received.
    pub head: String,
    /// The body bytes as they arrived on the wire (chunk framing included).
    pub wire_body: Vec<u8>,
    /// The body decoded (chunks joined).
    pub body: Vec<u8>,
    /// Whether the body's framing ended (last chunk, or all Content-Length bytes).
    pub complete: bool,
}

impl RawRequest {
    /// The request line.
    pub fn request_line(&self) -> &str {
        self.head.split("\r\n").next().unwrap_or("")
    }

    /// `(name, value)` of every field line, in order, names as received.
    pub fn fields(&self) -> Vec<(String, String)> {
        self.head
            .split("\r\n")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect()
    }

    /// Values of the fields called `name` (case-insensitive).
    pub fn values(&self, name: &str) -> Vec<String> {
        self.fields()
            .into_iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    }
}

/// What a raw backend has seen, shared with its connection handlers.
#[derive(Debug, Default)]
struct Log {
    /// Raw bytes received, per connection, in accept order.
    connections: Vec<Arc<Mutex<Vec<u8>>>>,
    requests: Vec<RawRequest>,
    /// Connections whose peer closed (EOF or reset) while the handler was reading.
    closed: usize,
}

/// A backend on 127.0.0.1:0 driven by a per-connection script.
pub struct RawBackend {
    /// Its address.
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawBackend {
    /// Start one; `handler` runs for every accepted connection.
    pub async fn start<F, Fut>(handler: F) -> Self
    where
        F: Fn(RawConn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        let handler = Arc::new(handler);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let wire = Arc::new(Mutex::new(Vec::new()));
                shared.lock().unwrap().connections.push(wire.clone());
                let conn = RawConn {
                    stream,
                    buf: Vec::new(),
                    wire,
                    log: shared.clone(),
                };
                tokio::spawn(handler(conn));
            }
        });
        Self { addr, log, task }
    }

    /// A backend answering every request `200 ok` (Content-Length, keep-alive), after
    /// reading its body.
    pub async fn recording() -> Self {
        Self::start(|mut conn| async move {
            while let Some(request) = conn.read_request().await {
                if !request.complete {
                    return;
                }
                conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
            }
        })
        .await
    }

    /// A backend answering every request with `response` (then keeping the connection).
    pub async fn answering(response: &'static [u8]) -> Self {
        Self::start(move |mut conn| async move {
            while let Some(request) = conn.read_request().await {
                if !request.complete {
                    return;
                }
                conn.write(response).await;
            }
        })
        .await
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far, in order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.log.lock().unwrap().requests.clone()
    }

    /// The one request received; panics if there were none or several.
    pub fn only_request(&self) -> RawRequest {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request: {requests:#?}"
        );
        requests.into_iter().next().unwrap()
    }

    /// Every byte received, per connection.
    pub fn wire(&self) -> Vec<Vec<u8>> {
        let log = self.log.lock().unwrap();
        log.connections
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .collect()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.log.lock().unwrap().connections.len()
    }

    /// Connections lbx closed while a handler was reading.
    pub fn closed_by_peer(&self) -> usize {
        self.log.lock().unwrap().closed
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One connection to a [`RawBackend`], as its script sees it.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
    wire: Arc<Mutex<Vec<u8>>>,
    log: Arc<Mutex<Log>>,
}

impl RawConn {
    /// Read more bytes; `false` at EOF or error (recorded as closed by the peer).
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                self.log.lock().unwrap().closed += 1;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.wire.lock().unwrap().extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Read one request head; `None` if the connection closed first.
    pub async fn read_head(&mut self) -> Option<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Some(String::from_utf8_lossy(&head).into_owned());
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Read the body `head` announces (Content-Length or chunked; none otherwise) until it is
    /// complete or the connection closes, and record the request.
    pub async fn read_body(&mut self, head: &str) -> RawRequest {
        let mut request = RawRequest {
            head: head.to_string(),
            ..RawRequest::default()
        };
        let lower = head.to_ascii_lowercase();
        if lower.contains("\r\ntransfer-encoding: chunked\r\n") {
            self.read_chunked(&mut request).await;
        } else if let Some(length) = lower
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            while self.buf.len() < length && self.fill().await {}
            let n = self.buf.len().min(length);
            request.wire_body = self.buf.drain(..n).collect();
            request.body = request.wire_body.clone();
            request.complete = n == length;
        } else {
            request.complete = true;
        }
        self.log.lock().unwrap().requests.push(request.clone());
        request
    }

    /// Read a request, head and body; `None` if the connection closed before a head.
    pub async fn read_request(&mut self) -> Option<RawRequest> {
        let head = self.read_head().await?;
        Some(self.read_body(&head).await)
    }

    async fn read_chunked(&mut self, request: &mut RawRequest) {
        let mut pos = 0;
        loop {
            // Size line.
            let line_end = loop {
                if let Some(i) = find(&self.buf[pos..], b"\r\n") {
                    break pos + i;
                }
                if !self.fill().await {
                    request.wire_body = self.buf.drain(..).collect();
                    return;
                }
            };
            let line = String::from_utf8_lossy(&self.buf[pos..line_end]).to_string();
            let size_text = line.split(';').next().unwrap_or("").trim();
            let Ok(size) = usize::from_str_radix(size_text, 16) else {
                request.wire_body = self.buf.drain(..).collect();
                return;
            };
            pos = line_end + 2;
            if size == 0 {
                // Trailer section up to the blank line.
                loop {
                    if let Some(i) = find(&self.buf[pos..], b"\r\n") {
                        if i == 0 {
                            pos += 2;
                            request.complete = true;
                            request.wire_body = self.buf.drain(..pos).collect();
                            return;
                        }
                        pos += i + 2;
                        continue;
                    }
                    if !self.fill().await {
                        request.wire_body = self.buf.drain(..).collect();
                        return;
                    }
                }
            }
            while self.buf.len() < pos + size + 2 {
                if !self.fill().await {
                    let available = self.buf.len().min(pos + size);
                    request
                        .body
                        .extend_from_slice(&self.buf[pos.min(available)..available]);
                    request.wire_body = self.buf.drain(..).collect();
                    return;
                }
            }
            request.body.extend_from_slice(&self.buf[pos..pos + size]);
            pos += size + 2;
        }
    }

    /// Write bytes to lbx.
    pub async fn write(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Write `data` to lbx as one chunk of a chunked body.
    pub async fn write_chunk(&mut self, data: &str) {
        self.write(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
            .await;
    }

    /// Wait until lbx closes the connection (up to 5 s); `true` if it did.
    pub async fn wait_closed(&mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(5), async { while self.fill().await {} })
            .await
            .is_ok()
    }
}

/// A client that speaks raw bytes to lbx.
pub struct RawClient {
    stream: TcpStream,
    received: Vec<u8>,
}

impl RawClient {
    /// Connect to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            received: Vec::new(),
        }
    }

    /// One exchange on a connection of its own: connect to `addr`, send `request` as it is, and
    /// return everything received until lbx closes the connection (or 5 s pass).
    pub async fn exchange(addr: SocketAddr, request: impl AsRef<[u8]>) -> String {
        let mut client = Self::connect(addr).await;
        client.send(request.as_ref()).await;
        client.read_to_close(Duration::from_secs(5)).await
    }

    /// Send bytes as they are (errors ignored: lbx may already have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Everything received until lbx closes the connection (or `limit` passes).
    pub async fn read_to_close(&mut self, limit: Duration) -> String {
        let _ = tokio::time::timeout(limit, async {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Read until what was received contains `needle` (up to 5 s); returns everything so far.
    pub async fn read_until(&mut self, needle: &str) -> String {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let mut chunk = [0u8; 16 * 1024];
            while find(&self.received, needle.as_bytes()).is_none() {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// Read until `needle` was received `count` times (or `limit` passed, or the connection
    /// closed); returns how many times it was. Only the last bytes are kept, so a long stream
    /// of answers is counted without holding it.
    pub async fn read_until_count(&mut self, needle: &str, count: usize, limit: Duration) -> usize {
        let needle = needle.as_bytes();
        let tail = needle.len() - 1;
        let mut counted = 0;
        let _ = tokio::time::timeout(limit, async {
            let mut chunk = [0u8; 16 * 1024];
            while counted < count {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                }
                // The kept tail is shorter than the needle: every match found is a new one.
                counted += self
                    .received
                    .windows(needle.len())
                    .filter(|w| *w == needle)
                    .count();
                let drop = self.received.len().saturating_sub(tail);
                self.received.drain(..drop);
            }
        })
        .await;
        counted
    }

    /// Whether lbx closed the connection within `limit`.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, async {
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.received.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .is_ok()
    }

    /// Shut down the write side (FIN) or reset the connection.
    pub async fn abort(self, reset: bool) {
        let mut stream = self.stream;
        if reset {
            let _ = stream.set_zero_linger();
        } else {
            let _ = stream.shutdown().await;
        }
        drop(stream);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
