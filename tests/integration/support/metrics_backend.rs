//! A backend that serves Prometheus metrics about itself on `/metrics`, as a vLLM server does,
//! and its name on every other path; what `/metrics` answers can be changed while it runs, to a
//! well-formed exposition or to the ways a scrape goes wrong.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use lbx::shutdown::{self, StopReceiver, StopSender};
use tokio::net::TcpListener;

/// What `/metrics` answers.
#[derive(Debug, Clone)]
pub enum MetricsAnswer {
    /// 200 with this text.
    Text(String),
    /// 200 with an HTML page: not the text format.
    Garbage,
    /// 200 with a body of this many bytes (well-formed lines), streamed without a length.
    Huge(usize),
    /// Nothing: the request is read and never answered (until the backend stops).
    Silence,
}

#[derive(Debug)]
struct State {
    answer: Mutex<MetricsAnswer>,
    metrics_requests: AtomicUsize,
    requests: AtomicUsize,
}

/// The backend; stopped when dropped.
pub struct MetricsBackend {
    /// Its address.
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: StopSender,
}

impl MetricsBackend {
    /// A backend on 127.0.0.1:0 answering `name`, its `/metrics` answering `answer`.
    pub async fn start(name: &str, answer: MetricsAnswer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            answer: Mutex::new(answer),
            metrics_requests: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
        });
        let (stop, mut stopped) = shutdown::channel();
        let name = Bytes::from(name.to_string());
        let task_state = state.clone();
        tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap().0,
                    _ = shutdown::stopped(&mut stopped) => return,
                };
                let (state, name, stopped) = (task_state.clone(), name.clone(), stopped.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (state, name, stopped) = (state.clone(), name.clone(), stopped.clone());
                    async move { Ok::<_, Infallible>(respond(request, &state, name, stopped).await) }
                });
                tokio::spawn(
                    auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned(),
                );
            }
        });
        Self { addr, state, stop }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its id in lbx (the default: `host:port`).
    pub fn id(&self) -> String {
        self.addr.to_string()
    }

    /// Make `/metrics` answer `answer` from now on.
    pub fn set_metrics(&self, answer: MetricsAnswer) {
        *self.state.answer.lock().unwrap() = answer;
    }

    /// Requests to `/metrics` so far.
    pub fn metrics_requests(&self) -> usize {
        self.state.metrics_requests.load(Ordering::SeqCst)
    }

    /// Requests to every other path so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl Drop for MetricsBackend {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

type TestBody = BoxBody<Bytes, Infallible>;

async fn respond(
    request: Request<Incoming>,
    state: &State,
    name: Bytes,
    mut stopped: StopReceiver,
) -> Response<TestBody> {
    if request.uri().path() != "/metrics" {
        state.requests.fetch_add(1, Ordering::SeqCst);
        return Response::new(Full::new(name).boxed());
    }
    state.metrics_requests.fetch_add(1, Ordering::SeqCst);
    let answer = state.answer.lock().unwrap().clone();
    match answer {
        MetricsAnswer::Text(text) => Response::new(Full::new(Bytes::from(text)).boxed()),
        MetricsAnswer::Garbage => Response::new(
            Full::new(Bytes::from_static(
                b"<html><head><title>It works!</title></head><body>metrics moved</body></html>\n",
            ))
            .boxed(),
        ),
        MetricsAnswer::Huge(len) => Response::new(Filler { remaining: len }.boxed()),
        MetricsAnswer::Silence => {
            shutdown::stopped(&mut stopped).await;
            Response::new(Full::new(Bytes::new()).boxed())
        }
    }
}

/// `filler_metric 1` lines, in 64 KiB chunks, up to a length; no length announced.
struct Filler {
    remaining: usize,
}

impl Body for Filler {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        const LINE: &[u8] = b"filler_metric 1\n";
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(64 * 1024);
        let chunk: Vec<u8> = LINE.iter().copied().cycle().take(n).collect();
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))))
    }
}
