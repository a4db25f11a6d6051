//! One access-log line per request (target `lbx::access`), written when the response is over,
//! so the logged time covers the whole response. Nothing is collected when the log is off.
//!
//! The line is formatted here, by hand — `key=value` text in the layout `tracing`'s formatter
//! writes, or one JSON object (`[log] format`) — and handed to the log writer thread
//! ([`crate::logging::write_line`]). Going through `tracing`'s field visitors, float
//! formatting and timestamp cost ~8% of a worker's CPU per proxied request (perf, HTTP/1.1
//! keep-alive against nginx `return 200` backends); this costs a fraction of that.
//!
//! A line is written when `[log] access` is on (switched by config reload,
//! [`AccessLogSettings`]) and `RUST_LOG` enables the `lbx::access` target.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};

use super::request::{ClientRequest, RequestId};
use crate::config::{LogConfig, LogFormat};
use crate::plugin::DecidedBy;
use crate::upstream::BackendSet;

/// The `[log]` settings in force, read once per request and changed by config reload.
#[derive(Debug)]
pub struct AccessLogSettings {
    /// `OFF`, `TEXT` or `JSON`.
    mode: AtomicU8,
}

const OFF: u8 = 0;
const TEXT: u8 = 1;
const JSON: u8 = 2;

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self::new(&LogConfig::default())
    }
}

impl AccessLogSettings {
    /// The settings of `config`.
    pub fn new(config: &LogConfig) -> Self {
        let settings = Self {
            mode: AtomicU8::new(OFF),
        };
        settings.apply(config);
        settings
    }

    /// Put `config` in force for requests that start from now on.
    pub fn apply(&self, config: &LogConfig) {
        let mode = match (config.access, config.format) {
            (false, _) => OFF,
            (true, LogFormat::Text) => TEXT,
            (true, LogFormat::Json) => JSON,
        };
        self.mode.store(mode, Ordering::Relaxed);
    }

    /// A line for `request` if access logging is on, in the format in force.
    pub fn start(&self, request: &ClientRequest) -> Option<AccessLog> {
        let format = match self.mode.load(Ordering::Relaxed) {
            TEXT => LogFormat::Text,
            JSON => LogFormat::Json,
            _ => return None,
        };
        if !tracing::enabled!(target: "lbx::access", tracing::Level::INFO) {
            return None;
        }
        Some(AccessLog::new(format, request))
    }
}

/// One access-log line in the making.
#[derive(Debug)]
pub struct AccessLog {
    format: LogFormat,
    /// The request's id (also in `X-Request-Id` and error responses).
    pub id: RequestId,
    /// The client's address.
    pub client: SocketAddr,
    /// Request method.
    pub method: Method,
    /// The authority the request was for (Host or `:authority`).
    pub host: Option<Bytes>,
    /// Request target (path and query).
    pub target: Bytes,
    /// Status sent to the client.
    pub status: StatusCode,
    /// The set and index of the backend of the last attempt, if any.
    pub backend: Option<(Arc<BackendSet>, usize)>,
    /// When the request arrived.
    pub started: Instant,
    /// Time from sending the request to the response head, on the attempt that answered.
    pub upstream_latency: Option<Duration>,
    /// Time from sending the request to the response body's first byte, on the attempt that
    /// answered (a streamed answer's first piece); `None` for an empty body.
    pub first_body_byte: Option<Duration>,
    /// Time spent deciding where it goes.
    pub decision: Duration,
    /// Who decided.
    pub decided_by: DecidedBy,
    /// Attempts made.
    pub attempts: u32,
    /// Request body bytes read from the client.
    pub bytes_in: u64,
    /// Response body bytes relayed to the client.
    pub bytes_out: u64,
}

impl AccessLog {
    /// The line for `request`, before anything is known about its outcome.
    fn new(format: LogFormat, request: &ClientRequest) -> Self {
        Self {
            format,
            id: request.id.clone(),
            client: request.client,
            method: request.head.method.clone(),
            host: request.authority.clone(),
            target: request.head.target.clone(),
            status: StatusCode::OK,
            backend: None,
            started: request.received_at,
            upstream_latency: None,
            first_body_byte: None,
            decision: Duration::ZERO,
            decided_by: DecidedBy::Host,
            attempts: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Write the line. `complete` is false when the response did not reach its end.
    pub fn emit(self, complete: bool) {
        let mut line = Vec::with_capacity(320);
        let initialised = crate::logging::is_initialised();
        match self.format {
            LogFormat::Text => {
                if initialised {
                    crate::logging::write_timestamp(&mut line);
                    line.extend_from_slice(b"  INFO lbx::access: ");
                }
                self.write_text(complete, &mut line);
            }
            LogFormat::Json => self.write_json(complete, initialised, &mut line),
        }
        if initialised {
            line.push(b'\n');
            crate::logging::write_line(&line);
        } else {
            // A process that set up its own `tracing` output (tests, embedders).
            tracing::info!(target: "lbx::access", "{}", String::from_utf8_lossy(&line));
        }
    }

    fn backend_id(&self) -> Option<&str> {
        self.backend
            .as_ref()
            .map(|(set, i)| set.backends[*i].spec.id.as_str())
    }

    /// `request_id=… client=… method=… host=… path=… status=… backend="…" attempts=…
    /// upstream_ms=… total_ms=… bytes_in=… bytes_out=… decision_us=… decided_by="…"
    /// complete=… first_byte_ms=…` (the fields of earlier versions keep their order).
    fn write_text(&self, complete: bool, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        out.extend_from_slice(b"request_id=");
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(b" client=");
        write_socket_addr(self.client, out);
        out.extend_from_slice(b" method=");
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.extend_from_slice(b" host=");
        match &self.host {
            Some(host) => write_visible(host, out),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" path=");
        write_visible(&self.target, out);
        let _ = write!(
            out,
            " status={} backend={:?} attempts={} upstream_ms=",
            self.status.as_u16(),
            self.backend_id().unwrap_or("-"),
            self.attempts,
        );
        match self.upstream_latency {
            Some(took) => write_millis(took, out),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" total_ms=");
        write_millis(self.started.elapsed(), out);
        let _ = write!(
            out,
            " bytes_in={} bytes_out={} decision_us=",
            self.bytes_in, self.bytes_out
        );
        write_micros(self.decision, out);
        let _ = write!(
            out,
            " decided_by={:?} complete={complete} first_byte_ms=",
            self.decided_by.as_str()
        );
        match self.first_body_byte {
            Some(took) => write_millis(took, out),
            None => out.push(b'-'),
        }
    }

    /// One JSON object; `time`, `level` and `target` first, as in the text layout.
    fn write_json(&self, complete: bool, with_time: bool, out: &mut Vec<u8>) {
        out.push(b'{');
        if with_time {
            out.extend_from_slice(b"\"timestamp\":\"");
            crate::logging::write_timestamp(out);
            out.extend_from_slice(b"\",");
        }
        out.extend_from_slice(b"\"level\":\"INFO\",\"target\":\"lbx::access\",\"request_id\":");
        write_json_string(self.id.as_bytes(), out);
        out.extend_from_slice(b",\"client\":\"");
        write_socket_addr(self.client, out);
        out.extend_from_slice(b"\",\"method\":");
        write_json_string(self.method.as_str().as_bytes(), out);
        out.extend_from_slice(b",\"host\":");
        match &self.host {
            Some(host) => write_json_string(host, out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"path\":");
        write_json_string(&self.target, out);
        let _ = write!(out, ",\"status\":{},\"backend\":", self.status.as_u16());
        match self.backend_id() {
            Some(id) => write_json_string(id.as_bytes(), out),
            None => out.extend_from_slice(b"null"),
        }
        let _ = write!(out, ",\"attempts\":{},\"upstream_ms\":", self.attempts);
        match self.upstream_latency {
            Some(took) => write_millis(took, out),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"total_ms\":");
        write_millis(self.started.elapsed(), out);
        let _ = write!(
            out,
            ",\"bytes_in\":{},\"bytes_out\":{},\"decision_us\":",
            self.bytes_in, self.bytes_out
        );
        write_micros(self.decision, out);
        let _ = write!(
            out,
            ",\"decided_by\":\"{}\",\"complete\":{complete},\"first_byte_ms\":",
            self.decided_by.as_str()
        );
        match self.first_body_byte {
            Some(took) => write_millis(took, out),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
}

/// `ip:port` (`[ip]:port` for IPv6), IPv4 digit by digit: `Display` through `fmt::write` was
/// ~0.5% of a worker's CPU with the access log on (perf, HTTP/1.1 keep-alive).
fn write_socket_addr(addr: SocketAddr, out: &mut Vec<u8>) {
    match addr {
        SocketAddr::V4(v4) => {
            super::headers::write_ip(std::net::IpAddr::V4(*v4.ip()), out);
            let _ = write!(out, ":{}", v4.port());
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Milliseconds with three decimals (`12.345`): a valid number in text and JSON alike.
fn write_millis(took: Duration, out: &mut Vec<u8>) {
    let us = took.as_micros();
    let _ = write!(out, "{}.{:03}", us / 1000, us % 1000);
}

/// Microseconds with one decimal (`1.2`).
fn write_micros(took: Duration, out: &mut Vec<u8>) {
    let ns = took.as_nanos();
    let _ = write!(out, "{}.{}", ns / 1000, ns % 1000 / 100);
}

/// Visible ASCII as is, anything else as `\xNN`, so a text line stays one line whatever the
/// client sent. (Targets are visible ASCII from both parsers; a Host may hold other bytes.)
fn write_visible(bytes: &[u8], out: &mut Vec<u8>) {
    for &byte in bytes {
        if byte.is_ascii_graphic() {
            out.push(byte);
        } else {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
}

/// `bytes` as a JSON string (RFC 8259 §7): quotes, backslashes and control characters escaped,
/// bytes that are not UTF-8 replaced by U+FFFD so the line is always valid JSON.
fn write_json_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    let text = String::from_utf8_lossy(bytes);
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let mut utf8 = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::RequestHead;
    use crate::proxy::RequestBody;

    fn request(target: &'static [u8], host: &'static [u8]) -> ClientRequest {
        ClientRequest {
            head: RequestHead {
                method: Method::GET,
                target: Bytes::from_static(target),
                version: http::Version::HTTP_11,
                headers: Default::default(),
            },
            authority: Some(Bytes::from_static(host)),
            body: RequestBody::None,
            expect_continue: false,
            upgrade: None,
            client: "192.0.2.7:5000".parse().unwrap(),
            secure: false,
            received_at: Instant::now(),
            id: RequestId::next(),
        }
    }

    fn line_for(target: &'static [u8], host: &'static [u8], format: LogFormat) -> AccessLog {
        AccessLog::new(format, &request(target, host))
    }

    #[test]
    fn the_text_line_has_every_field_and_stays_one_line() {
        let mut log = line_for(b"/a?b=1 \r\nforged=1", b"shop.example", LogFormat::Text);
        log.status = StatusCode::BAD_GATEWAY;
        log.attempts = 2;
        log.decision = Duration::from_nanos(1_250);
        log.decided_by = DecidedBy::Plugin;
        log.bytes_in = 5;
        let mut line = Vec::new();
        log.write_text(false, &mut line);
        let line = String::from_utf8(line).unwrap();
        let expected_start = format!(
            "request_id={} client=192.0.2.7:5000 method=GET host=shop.example \
             path=/a?b=1\\x20\\x0d\\x0aforged=1 status=502 backend=\"-\" attempts=2 \
             upstream_ms=- total_ms=0.",
            log.id
        );
        assert!(line.starts_with(&expected_start), "{line}");
        assert!(
            line.ends_with(
                " bytes_in=5 bytes_out=0 decision_us=1.2 decided_by=\"plugin\" complete=false \
                 first_byte_ms=-"
            ),
            "{line}"
        );
    }

    #[test]
    fn the_json_line_escapes_quotes_backslashes_and_control_bytes() {
        let mut log = line_for(b"/q\"\\\x01\x7f", b"h\"o\\st\x1b\xff", LogFormat::Json);
        log.upstream_latency = Some(Duration::from_micros(1_500));
        log.first_body_byte = Some(Duration::from_micros(302_250));
        let mut line = Vec::new();
        log.write_json(true, true, &mut line);
        let value: serde_json::Value = serde_json::from_slice(&line)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&line)));
        assert_eq!(value["path"], "/q\"\\\u{1}\u{7f}");
        assert_eq!(value["host"], "h\"o\\st\u{1b}\u{fffd}");
        assert_eq!(value["upstream_ms"], 1.5);
        assert_eq!(value["first_byte_ms"], 302.25);
        assert_eq!(value["backend"], serde_json::Value::Null);
        assert_eq!(value["client"], "192.0.2.7:5000");
        assert_eq!(value["complete"], true);
        assert!(value["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn switching_the_log_off_collects_nothing() {
        let settings = AccessLogSettings::default();
        settings.apply(&LogConfig {
            format: LogFormat::Json,
            access: false,
        });
        assert!(settings.start(&request(b"/", b"h")).is_none());
    }

    #[test]
    fn client_addresses_read_as_display_writes_them() {
        for addr in [
            "192.0.2.7:5000",
            "10.0.0.255:1",
            "[2001:db8::1]:443",
            "[::ffff:1.2.3.4]:80",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut out = Vec::new();
            write_socket_addr(addr, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), addr.to_string());
        }
    }
}
