//! The replica's HTTP server (HTTP/1.1 and h2c, as hyper's auto builder serves them): routes,
//! request checks, the wait before the engine, and the answer, whole or streamed as
//! Server-Sent Events.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/chat/completions`, `POST /v1/completions` | a generation (requests read by [`openai`](super::openai), answers shaped by [`answer`](super::answer)) |
//! | `GET /v1/models` | the served model names |
//! | `GET /metrics` | vLLM's metrics ([`metrics`](super::metrics)) |
//! | `GET /health` | 200, as vLLM's |
//!
//! Every answer carries `x-llm-replica: <name>`. A streamed answer sends its head as soon as the
//! request is queued (as uvicorn does for vLLM's `StreamingResponse`, before any token), then
//! one `data: {chunk}\n\n` event per token — the first when the first token is sampled, so the
//! first *body* byte marks the TTFT — and `data: [DONE]\n\n`. Tokens that are ready together leave in one write. A client that goes
//! away aborts its request in the engine.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::answer::{self, Answer};
use super::engine::{Engine, Event, Usage};
use super::metrics;
use super::openai::{self, ApiError, Endpoint};
use super::params::{Settings, SettingsError};
use super::tokens::Prompt;
use crate::accept::accept_loop;
use crate::shutdown::StopReceiver;

/// Largest request body read: prompts of a few hundred thousand tokens fit.
const MAX_BODY: usize = 8 * 1024 * 1024;

type ReplicaBody = BoxBody<Bytes, Infallible>;

/// One replica: its settings, its engine, its answer ids.
#[derive(Debug)]
struct Replica {
    settings: Settings,
    engine: Engine,
    /// Distinguishes replicas started in the same second.
    instance: u64,
    answers: AtomicU64,
}

/// Serve a simulated vLLM replica on `listener` until `stop` is raised. Fails at once, naming
/// the flag, if `settings` cannot work.
pub async fn serve(
    listener: TcpListener,
    settings: Settings,
    mut stop: StopReceiver,
) -> Result<(), SettingsError> {
    settings.validate()?;
    let engine = Engine::start(settings.profile, settings.speedup, stop.clone());
    let instance = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64;
    let replica = Arc::new(Replica {
        settings,
        engine,
        instance,
        answers: AtomicU64::new(0),
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    accept_loop(&listener, &mut stop, "llm replica", |stream, _| {
        let replica = replica.clone();
        let service = service_fn(move |request| {
            let replica = replica.clone();
            async move { Ok::<_, Infallible>(route(&replica, request).await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        async move {
            let _ = connection.await;
        }
    })
    .await;
    Ok(())
}

async fn route(replica: &Replica, request: Request<Incoming>) -> Response<ReplicaBody> {
    let path = request.uri().path();
    let method = request.method().clone();
    let mut response = match (path, &method) {
        ("/v1/chat/completions", &Method::POST) => generate(replica, Endpoint::Chat, request).await,
        ("/v1/completions", &Method::POST) => {
            generate(replica, Endpoint::Completion, request).await
        }
        ("/v1/models", &Method::GET) => json_response(
            StatusCode::OK,
            &answer::model_list(
                &replica.settings.models,
                unix_seconds(),
                replica.settings.profile.usable_model_len(),
            ),
        ),
        ("/metrics", &Method::GET) => {
            let text = metrics::render(&replica.engine.snapshot(), &replica.settings.models[0]);
            Response::builder()
                .header(header::CONTENT_TYPE, metrics::CONTENT_TYPE)
                .body(full(text))
                .expect("valid response")
        }
        ("/health", &Method::GET) => Response::new(full(Bytes::new())),
        ("/v1/chat/completions" | "/v1/completions" | "/v1/models" | "/metrics" | "/health", _) => {
            // FastAPI's answers, which vLLM's server gives.
            json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"detail": "Method Not Allowed"}),
            )
        }
        _ => json_response(StatusCode::NOT_FOUND, &json!({"detail": "Not Found"})),
    };
    let name = http::HeaderValue::from_str(&replica.settings.name)
        .unwrap_or_else(|_| http::HeaderValue::from_static("unnamed"));
    response.headers_mut().insert("x-llm-replica", name);
    response
}

/// A generation request, checked, queued, answered.
async fn generate(
    replica: &Replica,
    endpoint: Endpoint,
    request: Request<Incoming>,
) -> Response<ReplicaBody> {
    let settings = &replica.settings;
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return error_response(&ApiError {
                status: 413,
                message: format!("the request body is larger than {MAX_BODY} bytes"),
                param: None,
            });
        }
        // The client broke off: nobody will read an answer.
        Err(_) => return error_response(&ApiError::bad_request("the body broke off", None)),
    };
    let job = match openai::parse(endpoint, &body).and_then(|r| Job::check(r, settings)) {
        Ok(job) => job,
        Err(error) => return error_response(&error),
    };

    // Tokenising and queueing in the API server, before the engine sees the request.
    let overhead = settings.profile.overhead(job.prompt.tokens);
    tokio::time::sleep(settings.scaled(overhead)).await;

    let number = replica.answers.fetch_add(1, Ordering::Relaxed);
    let unique = format!("{:016x}{number:016x}", replica.instance);
    let answer = Answer::new(endpoint, &unique, unix_seconds(), job.model);
    let max_tokens = job.max_tokens;
    let events = replica.engine.submit(job.prompt, max_tokens);
    if job.stream {
        let stream = SseBody {
            events,
            answer,
            include_usage: job.include_usage,
            max_tokens,
            sent: 0,
            ended: false,
        };
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(stream.boxed())
            .expect("valid response")
    } else {
        match collect(events).await {
            Some((text, usage)) => Response::builder()
                .header(header::CONTENT_TYPE, "application/json")
                .body(full(answer.complete(&text, usage)))
                .expect("valid response"),
            None => error_response(&ApiError {
                status: 503,
                message: "the replica is shutting down".into(),
                param: None,
            }),
        }
    }
}

/// A checked generation request.
struct Job {
    model: String,
    prompt: Prompt,
    max_tokens: usize,
    stream: bool,
    include_usage: bool,
}

impl Job {
    fn check(request: openai::GenerationRequest, settings: &Settings) -> Result<Self, ApiError> {
        let model = match request.model {
            None => settings.models[0].clone(),
            Some(model) if settings.models.contains(&model) => model,
            Some(model) => {
                return Err(ApiError {
                    status: 404,
                    message: format!("The model `{model}` does not exist."),
                    param: Some("model"),
                });
            }
        };
        let max_tokens = match request.max_tokens {
            None => settings.default_max_tokens as u64,
            Some(0) => {
                return Err(ApiError::bad_request(
                    "max_tokens must be at least 1, got 0.",
                    Some("max_tokens"),
                ));
            }
            Some(n) => n,
        };
        let prompt = Prompt::new(&request.prompt, settings.profile.block_size);
        if prompt.tokens == 0 {
            return Err(ApiError::bad_request(
                "The prompt cannot be empty.",
                Some("prompt"),
            ));
        }
        let limit = settings.profile.usable_model_len();
        let total = (prompt.tokens as u64).saturating_add(max_tokens);
        if total > limit as u64 {
            return Err(ApiError::bad_request(
                format!(
                    "This model's maximum context length is {limit} tokens. However, you \
                     requested {total} tokens ({} in the messages, {max_tokens} in the \
                     completion). Please reduce the length of the messages or completion.",
                    prompt.tokens
                ),
                Some("max_tokens"),
            ));
        }
        Ok(Self {
            model,
            prompt,
            max_tokens: max_tokens as usize,
            stream: request.stream,
            include_usage: request.include_usage,
        })
    }
}

/// The whole reply, once the engine has sent it; `None` if the engine stopped first.
async fn collect(mut events: mpsc::UnboundedReceiver<Event>) -> Option<(String, Usage)> {
    let mut text = String::new();
    while let Some(event) = events.recv().await {
        match event {
            Event::Token { text: token, .. } => text.push_str(token),
            Event::Done(usage) => return Some((text, usage)),
        }
    }
    None
}

/// A streamed answer: the engine's events as Server-Sent Events.
struct SseBody {
    events: mpsc::UnboundedReceiver<Event>,
    answer: Answer,
    include_usage: bool,
    max_tokens: usize,
    sent: usize,
    ended: bool,
}

impl SseBody {
    fn event(out: &mut Vec<u8>, chunk: &str) {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(chunk.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let mut out = Vec::new();
        while !this.ended {
            match this.events.poll_recv(cx) {
                Poll::Ready(Some(Event::Token { text: token, .. })) => {
                    if this.sent == 0
                        && let Some(opening) = this.answer.opening_chunk()
                    {
                        Self::event(&mut out, &opening);
                    }
                    this.sent += 1;
                    let last = this.sent == this.max_tokens;
                    Self::event(&mut out, &this.answer.token_chunk(token, last));
                }
                Poll::Ready(Some(Event::Done(usage))) => {
                    if this.include_usage {
                        Self::event(&mut out, &this.answer.usage_chunk(usage));
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    this.ended = true;
                }
                // The engine stopped: the stream ends without [DONE], as a dropped one would.
                Poll::Ready(None) => this.ended = true,
                Poll::Pending => break,
            }
        }
        if !out.is_empty() {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
        } else if this.ended {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

fn full(body: impl Into<Bytes>) -> ReplicaBody {
    Full::new(body.into()).boxed()
}

fn json_response(status: StatusCode, value: &Value) -> Response<ReplicaBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(full(value.to_string()))
        .expect("valid response")
}

fn error_response(error: &ApiError) -> Response<ReplicaBody> {
    let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, &error.body())
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
