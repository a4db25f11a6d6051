//! Simulated vLLM replicas (`lbx::llm_sim`, what `lbx backend --llm` runs) inside the test
//! process, and a client that reads their Server-Sent Events as they arrive.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use lbx::llm_sim::Settings;
use lbx::shutdown::{self, StopSender};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// A replica on 127.0.0.1:0; stopped when dropped.
pub struct LlmReplica {
    /// Its address.
    pub addr: SocketAddr,
    stop: StopSender,
}

impl LlmReplica {
    /// A replica named `name` with the default profile, changed by `configure`.
    pub async fn start(name: &str, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::new(name);
        configure(&mut settings);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = shutdown::channel();
        tokio::spawn(async move {
            lbx::llm_sim::serve(listener, settings, stopped)
                .await
                .expect("valid settings")
        });
        Self { addr, stop }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for LlmReplica {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What a streamed answer brought, and when.
#[derive(Debug)]
pub struct Streamed {
    /// The response status.
    pub status: StatusCode,
    /// The HTTP version it came in.
    pub version: http::Version,
    /// Its headers.
    pub headers: HeaderMap,
    /// Each `data:` payload in order (`[DONE]` included), as sent.
    pub events: Vec<String>,
    /// From sending the request to the first body byte.
    pub first_byte: Duration,
    /// From sending the request to the end of the body.
    pub total: Duration,
}

impl Streamed {
    /// The events before `[DONE]`, as JSON.
    pub fn chunks(&self) -> Vec<serde_json::Value> {
        self.events
            .iter()
            .take_while(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap_or_else(|err| panic!("{err}: {e}")))
            .collect()
    }

    /// The generated text: every chunk's delta content (chat) or text (completions).
    pub fn text(&self) -> String {
        self.chunks()
            .iter()
            .filter_map(|c| {
                let choice = c["choices"].get(0)?;
                choice["delta"]["content"]
                    .as_str()
                    .or(choice["text"].as_str())
                    .map(str::to_string)
            })
            .collect()
    }
}

/// POST `json` to `url` with `client` and read the answer as Server-Sent Events: the body must
/// be whole events (`data: ...` and a blank line) and nothing else.
pub async fn post_streamed(
    client: &Client<HttpConnector, BoxBody<Bytes, Infallible>>,
    url: &str,
    json: &serde_json::Value,
) -> Streamed {
    let request = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())).boxed())
        .unwrap();
    let sent = Instant::now();
    let response = client.request(request).await.expect("an answer");
    let (parts, mut body) = response.into_parts();
    let mut first_byte = None;
    let mut text = String::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the body arrives whole");
        if let Ok(data) = frame.into_data() {
            if first_byte.is_none() && !data.is_empty() {
                first_byte = Some(sent.elapsed());
            }
            text.push_str(std::str::from_utf8(&data).expect("UTF-8"));
        }
    }
    let total = sent.elapsed();
    let mut events = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let (event, after) = rest
            .split_once("\n\n")
            .unwrap_or_else(|| panic!("an event not ended by a blank line: {rest:?}"));
        let payload = event
            .strip_prefix("data: ")
            .unwrap_or_else(|| panic!("not a data line: {event:?}"));
        events.push(payload.to_string());
        rest = after;
    }
    Streamed {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        events,
        first_byte: first_byte.unwrap_or(total),
        total,
    }
}

/// POST `json` to `url`; status, headers and the body as JSON.
pub async fn post_json(url: &str, json: &str) -> (u16, HeaderMap, serde_json::Value) {
    let request = Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(json.to_string())).boxed())
        .unwrap();
    let (status, headers, body) = super::send(&super::http1_client(), request).await;
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status.as_u16(), headers, value)
}

/// A chat request body: `system` then `user`, `max_tokens`, streamed with usage.
pub fn chat(system: &str, user: &str, max_tokens: usize) -> serde_json::Value {
    serde_json::json!({
        "model": lbx::llm_sim::Profile::DEFAULT_MODEL,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ],
        "max_tokens": max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
}

/// The usage chunk's cached prompt tokens.
pub fn cached_tokens(streamed: &Streamed) -> u64 {
    let chunks = streamed.chunks();
    let usage = &chunks.last().expect("a usage chunk")["usage"];
    usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or_else(|| panic!("no usage in {usage}"))
}
