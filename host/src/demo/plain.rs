//! `lbx demo` and `lbx backend`: tiny in-process HTTP backends that answer with their own name,
//! and a demo that puts lbx with the embedded least_conn plugin in front of three of them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::accept::accept_loop;
use crate::config::{Config, Overrides};
use crate::server::Server;

/// Serve `name\n` to every request on `listener`, after `delay`, until `shutdown` is true.
pub async fn serve_backend(
    listener: TcpListener,
    name: String,
    delay: Duration,
    mut shutdown: crate::shutdown::StopReceiver,
) {
    let body = Bytes::from(format!("{name}\n"));
    let name = Arc::new(name);
    let builder = auto::Builder::new(TokioExecutor::new());
    accept_loop(&listener, &mut shutdown, "backend", |stream, _| {
        let body = body.clone();
        let name = name.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let body = body.clone();
            let name = name.clone();
            async move {
                // Read the request body so keep-alive connections stay reusable after a POST.
                let _ = request.into_body().collect().await;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok::<_, Infallible>(
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/plain")
                        .header("x-backend", name.as_str())
                        .body(Full::new(body))
                        .expect("valid response"),
                )
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        async move {
            let _ = connection.await;
        }
    })
    .await;
}

/// Run the demo: three backends (gamma is slow), lbx on `listen` with the embedded least_conn
/// plugin, a few sample requests printed, then serve until Ctrl-C.
pub async fn run(listen: Option<String>, admin: Option<String>) -> anyhow::Result<()> {
    let signals = crate::shutdown::StopSignals::install()?;
    let (stop_tx, stop_rx) = crate::shutdown::channel();
    let mut backends = Vec::new();
    for (name, delay) in [
        ("alpha", Duration::ZERO),
        ("beta", Duration::ZERO),
        ("gamma", Duration::from_millis(300)),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(serve_backend(
            listener,
            name.to_string(),
            delay,
            stop_rx.clone(),
        ));
        backends.push((name, addr, delay));
    }

    let mut config = Config::default();
    config.apply(Overrides {
        listen,
        admin,
        backends: backends
            .iter()
            .map(|(_, addr, _)| format!("http://{addr}"))
            .collect(),
        ..Overrides::default()
    });
    for (backend, (name, _, _)) in config.backends.iter_mut().zip(&backends) {
        backend.id = Some(name.to_string());
    }
    let server = Server::bind_embedded(
        &config,
        "least_conn.wasm (embedded)",
        crate::EMBEDDED_LEAST_CONN,
    )
    .await
    .context(
        "cannot start the demo proxy (is something else on that port? try --listen 127.0.0.1:0)",
    )?
    .with_drain(Duration::from_secs(2));
    let addr = server.local_addr();
    let admin_addr = server.admin_addr();
    let serving = tokio::spawn(server.run(stop_rx.clone()));

    println!("lbx demo: proxy on http://{addr}, routing with the embedded least_conn plugin");
    for (name, backend, delay) in &backends {
        let note = if delay.is_zero() {
            String::new()
        } else {
            format!(" (slow: answers after {} ms)", delay.as_millis())
        };
        println!("  backend {name:<6} http://{backend}{note}");
    }
    sample_requests(addr).await?;
    println!("\nTry it yourself:");
    println!("  curl -i http://{addr}/");
    println!("  for i in $(seq 9); do curl -s http://{addr}/ & done; wait");
    if let Some(admin) = admin_addr {
        println!("  curl http://{admin}/admin/plugin     # the plugin in force");
        println!("  curl http://{admin}/metrics          # Prometheus metrics");
        println!("  open http://{admin}/ in a browser    # the live dashboard");
    }
    println!("Press Ctrl-C to stop.");

    signals.recv().await;
    let _ = stop_tx.send(true);
    let _ = serving.await;
    Ok(())
}

/// Send 30 requests from 6 concurrent clients and show where least_conn sent them: the slow
/// backend holds its requests longer, so it gets fewer.
async fn sample_requests(proxy: SocketAddr) -> anyhow::Result<()> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: http::Uri = format!("http://{proxy}/").parse()?;
    let mut clients = Vec::new();
    for _ in 0..6 {
        let client = client.clone();
        let uri = uri.clone();
        clients.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..5 {
                let response = client.get(uri.clone()).await?;
                let body = response.into_body().collect().await?.to_bytes();
                answers.push(String::from_utf8_lossy(&body).trim().to_string());
            }
            anyhow::Ok(answers)
        }));
    }
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for answers in clients {
        for answer in answers.await?? {
            *counts.entry(answer).or_default() += 1;
        }
    }
    println!("\n30 sample requests from 6 concurrent clients were answered by:");
    for (name, count) in counts {
        println!("  {name:<6} {count:>2}  {}", "#".repeat(count as usize));
    }
    Ok(())
}
