//! The decision recorder's endpoints:
//!
//! - `GET /admin/record`: whether decisions are being recorded, the settings in force (path,
//!   sample, max_size, hashed_headers), when the session started, and decisions written,
//!   dropped and lost since lbx started (also under `record` in `GET /admin/plugin`);
//! - `POST /admin/record` with JSON `{"enabled": true, "path"?: "…", "sample"?: 0.5}`: start
//!   recording (a running session is ended and its file kept; `path` and `sample` default to
//!   `[record]`'s), or `{"enabled": false}`: stop, after what is queued is written. 200 with
//!   the state; 422 naming the problem (no path anywhere, a bad sample, a file that cannot be
//!   opened or is not a recording), nothing changed then.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::json_body::{self, ReadError};
use super::{Admin, json_response, method_not_allowed};

/// The endpoint's path.
pub const PATH: &str = "/admin/record";

/// The body of `POST /admin/record`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Switch {
    enabled: bool,
    #[serde(default)]
    path: Option<std::path::PathBuf>,
    #[serde(default)]
    sample: Option<f64>,
}

/// Answer a request for `/admin/record`.
pub async fn handle(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    match *request.method() {
        Method::GET => json_response(StatusCode::OK, json!(admin.recording.status())),
        Method::POST => switch(admin, request).await,
        _ => method_not_allowed("GET, POST"),
    }
}

async fn switch(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match json_body::read(request).await {
        Ok(body) => body,
        Err(e @ ReadError::TooLarge) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": e.to_string() }),
            );
        }
        Err(ReadError::Invalid(problem)) => return refusal(&problem.to_string()),
    };
    let switch: Switch = match serde_json::from_value(body) {
        Ok(switch) => switch,
        Err(e) => {
            return refusal(&format!(
                "expected {{\"enabled\": true|false, \"path\"?: \"…\", \"sample\"?: 0–1}}: {e}"
            ));
        }
    };
    let recording = admin.recording.clone();
    // Both block: opening (and rotating) the file, or waiting for the writer to finish.
    let result = tokio::task::spawn_blocking(move || {
        if switch.enabled {
            recording.start(switch.path, switch.sample)
        } else {
            Ok(recording.stop())
        }
    })
    .await;
    match result {
        Ok(Ok(status)) => json_response(StatusCode::OK, json!(status)),
        Ok(Err(refused)) => refusal(&refused.to_string()),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        ),
    }
}

fn refusal(message: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "result": "refused", "error": message }),
    )
}
