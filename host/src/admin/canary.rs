//! The canary's endpoints:
//!
//! - `GET /admin/plugin/canary`: the canary in progress, or the last one, with its step, both
//!   sides' figures, the gates' verdict so far and its transitions (also `canary` in
//!   `GET /admin/plugin`); `null` when there has been none;
//! - `POST /admin/plugin/canary`: start one, JSON `{"path": "v2.wasm", "config": {…},
//!   "steps": [1, 10, 50, 100], "step_duration": "30s", "key": "client-ip" | "header:NAME" |
//!   "cookie:NAME", "gates": {"min_requests": 50, "max_error_rate_increase": 0.01,
//!   "max_p99_ratio": 1.5, "p99_slack_ms": 5, "max_fallback_rate_increase": 0.01},
//!   "on_restart": "abort" | "resume"}` (only `path` is required);
//!   200 with the canary, 409 if one runs or the live plugin cannot be replaced, 422 naming
//!   the problem;
//! - `POST /admin/plugin/canary/promote`, `POST /admin/plugin/canary/abort`: end it now;
//!   409 when none runs.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::json_body::{self, ReadError};
use super::{Admin, json_response, method_not_allowed};
use crate::canary::{CanarySpec, Gates, OnRestart};
use crate::plugin::SplitKey;
use crate::reload::{CanaryError, CanaryRequest, CandidateSource};

const PREFIX: &str = "/admin/plugin/canary";

/// A JSON body of `POST /admin/plugin/canary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartJson {
    path: std::path::PathBuf,
    #[serde(default)]
    config: Option<serde_json::Map<String, Value>>,
    #[serde(default = "default_steps")]
    steps: Vec<f64>,
    #[serde(default = "default_step_duration", with = "humantime_serde")]
    step_duration: Duration,
    #[serde(default = "default_key")]
    key: String,
    #[serde(default)]
    gates: Gates,
    #[serde(default)]
    on_restart: OnRestart,
}

fn default_steps() -> Vec<f64> {
    vec![1.0, 10.0, 50.0, 100.0]
}
fn default_step_duration() -> Duration {
    Duration::from_secs(30)
}
fn default_key() -> String {
    "client-ip".into()
}

/// Whether `path` is one of these endpoints.
pub fn is_canary(path: &str) -> bool {
    path == PREFIX || path.starts_with("/admin/plugin/canary/")
}

/// Answer a request for one of these endpoints.
pub async fn handle(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    match (request.method(), path.strip_prefix(PREFIX)) {
        (&Method::GET, Some("")) => json_response(StatusCode::OK, json!(admin.canaries.report())),
        (&Method::POST, Some("")) => start(admin, request).await,
        (_, Some("")) => method_not_allowed("GET, POST"),
        (&Method::POST, Some("/promote")) => {
            ended(admin.reloader.promote_canary().await, "promoted")
        }
        (&Method::POST, Some("/abort")) => ended(admin.reloader.abort_canary().await, "aborted"),
        (_, Some("/promote" | "/abort")) => method_not_allowed("POST"),
        _ => json_response(StatusCode::NOT_FOUND, json!({ "error": "not found" })),
    }
}

async fn start(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    if admin.fleet.is_some() {
        // One node splitting alone would route unlike the rest of the fleet.
        return json_response(
            StatusCode::CONFLICT,
            json!({ "error": "lbx runs in fleet mode: start a canary for the whole fleet with \
                POST /admin/fleet/canary" }),
        );
    }
    let body = match json_body::read(request).await {
        Ok(body) => body,
        Err(ReadError::TooLarge) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": ReadError::TooLarge.to_string() }),
            );
        }
        Err(ReadError::Invalid(problem)) => return invalid(&problem.to_string()),
    };
    let start: StartJson = match serde_json::from_value(body) {
        Ok(start) => start,
        Err(e) => return invalid(&e.to_string()),
    };
    let key = match SplitKey::parse(&start.key) {
        Ok(key) => key,
        Err(problem) => return invalid(&format!("key: {problem}")),
    };
    let canary = CanaryRequest {
        source: CandidateSource::Path(start.path),
        config_json: Value::Object(start.config.unwrap_or_default()).to_string(),
        spec: CanarySpec {
            steps: start.steps,
            step_duration: start.step_duration,
            key,
            gates: start.gates,
            on_restart: start.on_restart,
        },
        step: 0,
        resumed: false,
        driven_by_fleet: false,
    };
    match admin.reloader.start_canary(canary).await {
        Ok(canary) => json_response(
            StatusCode::OK,
            json!({ "result": "started", "canary": canary.report() }),
        ),
        Err(error) => refused(&error),
    }
}

fn ended(result: Result<String, CanaryError>, how: &str) -> Response<Full<Bytes>> {
    match result {
        Ok(detail) => json_response(StatusCode::OK, json!({ "result": how, "detail": detail })),
        Err(error) => refused(&error),
    }
}

fn refused(error: &CanaryError) -> Response<Full<Bytes>> {
    let status = match error {
        CanaryError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CanaryError::Conflict(_) => StatusCode::CONFLICT,
    };
    json_response(
        status,
        json!({ "result": "refused", "error": error.to_string() }),
    )
}

fn invalid(reason: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "result": "refused", "error": reason }),
    )
}
