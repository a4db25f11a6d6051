//! One request over the wire and what it measured: sent when due, the answer's event stream
//! read as it arrives, the clock read as each event is decoded.
//!
//! - **TTFT** (time to first token): from just before the request is written to the first event
//!   that carries generated text — not the response head, which a server may send long before.
//! - **End-to-end**: to `data: [DONE]`, or to the end of the body when a server ends the stream
//!   without it. The rest of the body is still read, so the connection goes back to the pool.
//! - **Tokens**: the usage chunk's counts when the server sends them, else the content events
//!   (output) and the generator's own estimate (prompt).
//! - **Outcome**: 2xx with a complete event stream is ok; 429 is shed (the server or lbx
//!   refused the load); anything else — another status, no event stream, a stream that breaks,
//!   an error event, no answer within the timeout — is an error, by kind.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;

use super::chunk::{Chunk, Usage, interpret};
use super::sse::EventDecoder;

/// The HTTP/1.1 client every request of a run shares (keep-alive connections, pooled).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Why a request counts as an error. Its [`Display`](fmt::Display) is the stable key in
/// the report's `errors_by_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// No connection (refused, unreachable).
    Connect,
    /// The connection failed before a response head arrived.
    Request,
    /// A status other than 2xx and 429.
    Status(u16),
    /// A 2xx whose body is not `text/event-stream`.
    NotEventStream,
    /// The body broke off, or an event was not an OpenAI chunk.
    BrokenStream,
    /// The server sent an error event instead of the rest of the answer.
    ErrorEvent,
    /// No complete answer within the timeout.
    Timeout,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Request => f.write_str("request"),
            ErrorKind::Status(code) => write!(f, "status_{code}"),
            ErrorKind::NotEventStream => f.write_str("not_event_stream"),
            ErrorKind::BrokenStream => f.write_str("broken_stream"),
            ErrorKind::ErrorEvent => f.write_str("error_event"),
            ErrorKind::Timeout => f.write_str("timeout"),
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A complete answer.
    Ok,
    /// Refused with 429.
    Shed,
    /// Anything else.
    Error(ErrorKind),
}

/// What one request measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// How it ended.
    pub verdict: Verdict,
    /// Time to the first event carrying generated text, if one came.
    pub ttft: Option<Duration>,
    /// Time to `[DONE]` (or the body's end, or the failure).
    pub e2e: Duration,
    /// Tokens generated: `usage.completion_tokens`, else the content events.
    pub output_tokens: u64,
    /// Prompt tokens: `usage.prompt_tokens`, else the generator's estimate.
    pub prompt_tokens: u64,
    /// `usage.prompt_tokens_details.cached_tokens`, when the server reported it.
    pub cached_tokens: Option<u64>,
    /// How long after its due time the request was sent (the generator falling behind).
    pub send_lag: Duration,
}

/// What has been seen of the answer so far.
#[derive(Debug, Default)]
struct Progress {
    ttft: Option<Duration>,
    content_events: u64,
    usage: Usage,
    done: Option<Duration>,
    failure: Option<ErrorKind>,
}

impl Progress {
    fn on_event(&mut self, data: &str, started: Instant) {
        if self.done.is_some() || self.failure.is_some() {
            return;
        }
        match interpret(data) {
            Ok(Chunk::Done) => self.done = Some(started.elapsed()),
            Ok(Chunk::Data { content, usage }) => {
                if content {
                    self.content_events += 1;
                    self.ttft.get_or_insert_with(|| started.elapsed());
                }
                if let Some(usage) = usage {
                    self.usage = usage;
                }
            }
            Ok(Chunk::Error(message)) => {
                tracing::debug!(%message, "llm-load: the server sent an error event");
                self.failure = Some(ErrorKind::ErrorEvent);
            }
            Err(problem) => {
                tracing::debug!(%problem, "llm-load: a broken event stream");
                self.failure = Some(ErrorKind::BrokenStream);
            }
        }
    }
}

/// Send `request` (due at `due`) and read its answer, all within `timeout`.
pub async fn exchange(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
    estimated_prompt_tokens: u64,
    due: Instant,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let send_lag = started.saturating_duration_since(due);
    let mut progress = Progress::default();
    let verdict =
        match tokio::time::timeout(timeout, read(client, request, started, &mut progress)).await {
            Ok(verdict) => verdict,
            // `[DONE]` came; only the rest of the body did not.
            Err(_) if progress.done.is_some() => Verdict::Ok,
            Err(_) => Verdict::Error(ErrorKind::Timeout),
        };
    let ok = verdict == Verdict::Ok;
    Outcome {
        verdict,
        ttft: progress.ttft.filter(|_| ok),
        e2e: progress
            .done
            .filter(|_| ok)
            .unwrap_or_else(|| started.elapsed()),
        output_tokens: progress
            .usage
            .completion_tokens
            .unwrap_or(progress.content_events),
        prompt_tokens: progress
            .usage
            .prompt_tokens
            .unwrap_or(estimated_prompt_tokens),
        cached_tokens: progress.usage.cached_tokens,
        send_lag,
    }
}

async fn read(
    client: &HttpClient,
    request: http::Request<Full<Bytes>>,
    started: Instant,
    progress: &mut Progress,
) -> Verdict {
    let response = match client.request(request).await {
        Ok(response) => response,
        Err(e) if e.is_connect() => return Verdict::Error(ErrorKind::Connect),
        Err(_) => return Verdict::Error(ErrorKind::Request),
    };
    let status = response.status();
    let event_stream = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
    let refused = if status == StatusCode::TOO_MANY_REQUESTS {
        Some(Verdict::Shed)
    } else if !status.is_success() {
        Some(Verdict::Error(ErrorKind::Status(status.as_u16())))
    } else if !event_stream {
        Some(Verdict::Error(ErrorKind::NotEventStream))
    } else {
        None
    };
    let mut body = response.into_body();
    if let Some(verdict) = refused {
        // Read the (short) body so the connection can be reused.
        let _ = body.collect().await;
        return verdict;
    }
    let mut decoder = EventDecoder::default();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            if progress.done.is_some() {
                break;
            }
            return Verdict::Error(ErrorKind::BrokenStream);
        };
        if let Ok(data) = frame.into_data() {
            decoder.feed(&data, |event| progress.on_event(event, started));
            if let Some(kind) = progress.failure {
                return Verdict::Error(kind);
            }
        }
    }
    if progress.done.is_none() {
        // The body ended without `[DONE]`: that end is the answer's end.
        if let Some(event) = decoder.finish() {
            progress.on_event(&event, started);
        }
        if let Some(kind) = progress.failure {
            return Verdict::Error(kind);
        }
        progress.done = Some(started.elapsed());
    }
    Verdict::Ok
}
