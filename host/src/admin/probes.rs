//! `GET /live` and `GET /ready` on the admin port: what an orchestrator (a Kubernetes
//! liveness/readiness probe) or a load balancer in front of lbx asks before sending traffic.
//!
//! - `/live` answers 200 for as long as the process serves its admin port: the event loop runs.
//!   Nothing else is consulted, so a restart is never triggered by a backend outage.
//! - `/ready` answers 200 once the proxy listens with its plugin loaded (`lbx run` binds the
//!   listeners and loads the plugin before it serves, so "serving" is the one state to track),
//!   and 503 from the moment shutdown starts (SIGTERM/SIGINT) for the whole drain: the admin
//!   listener keeps answering until the drain ends, so whatever sits in front sees 503 and stops
//!   sending new requests while the last ones finish. Before serving it answers 503 `starting`.
//!
//! No bearer token is needed for these two, even with `[admin] token_file`: probes from kubelet
//! or a cloud load balancer are configured in places that should not hold the token (a pod spec,
//! a health-check form), and the answers leak nothing — one bit of state and a fixed word, no
//! configuration, addresses or counts. The `Host`/`Origin` rules still apply, so a probe from
//! another machine names an allowed host (`[admin] allowed_hosts`, or a `Host: localhost`
//! header in the probe).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;

/// The liveness probe's path.
pub const LIVE: &str = "/live";
/// The readiness probe's path.
pub const READY: &str = "/ready";

/// Whether `path` is a probe: answered without the bearer token.
pub fn is_probe(path: &str) -> bool {
    path == LIVE || path == READY
}

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const DRAINING: u8 = 2;

/// Where the process is in its life, as `/ready` reports it. Cloned handles share one state,
/// which only moves forward: starting → serving → draining.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicU8>);

impl Readiness {
    /// The proxy listens with its plugin loaded. Ignored once draining: a shutdown that began
    /// first is not undone.
    pub fn serving(&self) {
        let _ = self
            .0
            .compare_exchange(STARTING, SERVING, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Shutdown started: no new traffic, please.
    pub fn draining(&self) {
        self.0.store(DRAINING, Ordering::SeqCst);
    }

    /// Whether new traffic is welcome.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == SERVING
    }

    fn word(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            STARTING => "starting",
            SERVING => "ready",
            _ => "draining",
        }
    }
}

/// `GET /live`.
pub fn live() -> Response<Full<Bytes>> {
    answer(StatusCode::OK, "live")
}

/// `GET /ready`.
pub fn ready(readiness: &Readiness) -> Response<Full<Bytes>> {
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    answer(status, readiness.word())
}

fn answer(status: StatusCode, word: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        // A cached "ready" is a wrong one a second later.
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(format!("{word}\n"))))
        .expect("static response parts are valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_moves_forward_only() {
        let readiness = Readiness::default();
        assert_eq!(ready(&readiness).status(), 503);
        readiness.serving();
        assert_eq!(ready(&readiness).status(), 200);
        readiness.clone().draining();
        assert_eq!(ready(&readiness).status(), 503);
        readiness.serving();
        assert!(!readiness.is_ready(), "a drain is not undone");
        assert_eq!(readiness.word(), "draining");
        assert_eq!(live().status(), 200);
    }
}
