//! The shadow plugins' endpoints:
//!
//! - `GET /admin/plugin/shadow`: every running shadow with its figures (also under `shadows`
//!   in `GET /admin/plugin`);
//! - `POST /admin/plugin/shadow`: start one, or replace the one of the same name. Either JSON
//!   `{"path": "v2.wasm", "name": "v2", "config": {…}, "sample": 0.1}` (only `path` is
//!   required), or the component itself as the body with `Content-Type: application/wasm`
//!   and `?name=…&sample=…&config=<JSON>` in the query. 200 with the shadow; 422 naming the
//!   problem (a bad field, a plugin that does not load), nothing changed then;
//! - `DELETE /admin/plugin/shadow/{name}`: stop it; 404 if none runs under that name;
//! - `POST /admin/plugin/shadow/{name}/promote`: put its version in force as the live plugin
//!   in one atomic swap (with its own config and the live key-value store) and stop the
//!   shadow; 200 with the version, 404 unknown, 409 when the live plugin is not replaceable
//!   (none configured, or embedded), 422 when it fails to load as live. Like a rollback, it
//!   holds against the unchanged plugin file.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::json_body::{self, ReadError};
use super::{Admin, json_response, method_not_allowed};
use crate::reload::{CandidateSource, PromoteError, ShadowRequest};

/// The endpoints' common prefix.
pub const PREFIX: &str = "/admin/plugin/shadow";

/// Largest component accepted as an upload (a Python component is tens of MiB).
const MAX_UPLOAD: usize = 256 * 1024 * 1024;

/// A JSON body of `POST /admin/plugin/shadow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartJson {
    path: std::path::PathBuf,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    config: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    sample: Option<f64>,
}

/// Whether `path` is one of these endpoints.
pub fn is_shadow(path: &str) -> bool {
    path == PREFIX || path.starts_with("/admin/plugin/shadow/")
}

/// Answer a request for one of these endpoints.
pub async fn handle(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let name = path.strip_prefix("/admin/plugin/shadow/");
    let promote = name.and_then(|n| n.strip_suffix("/promote"));
    match (request.method(), name, promote) {
        (&Method::GET, None, _) => json_response(StatusCode::OK, list(admin)),
        (&Method::POST, None, _) => start(admin, request).await,
        (_, None, _) => method_not_allowed("GET, POST"),
        (&Method::POST, _, Some(name)) => promote_shadow(admin, name).await,
        (_, _, Some(_)) => method_not_allowed("POST"),
        (&Method::DELETE, Some(name), None) => stop(admin, name),
        (_, Some(_), None) => method_not_allowed("DELETE"),
    }
}

/// The running shadows as `GET` shows them.
pub fn list(admin: &Admin) -> Value {
    json!({ "shadows": admin.shadows.reports() })
}

async fn start(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let is_wasm = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/wasm"));
    let parsed = if is_wasm {
        from_upload(request).await
    } else {
        from_json(request).await
    };
    let shadow_request = match parsed {
        Ok(request) => request,
        Err(response) => return response,
    };
    match admin.reloader.start_shadow(shadow_request).await {
        Ok(shadow) => {
            let report = admin
                .shadows
                .reports()
                .into_iter()
                .find(|r| r.name == shadow.name);
            json_response(
                StatusCode::OK,
                json!({ "result": "started", "shadow": report }),
            )
        }
        Err(refused) => refusal(&refused.0),
    }
}

async fn from_json(request: Request<Incoming>) -> Result<ShadowRequest, Response<Full<Bytes>>> {
    let body = json_body::read(request).await.map_err(|e| match e {
        ReadError::TooLarge => json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({ "error": e.to_string() }),
        ),
        ReadError::Invalid(problem) => refusal(&problem.to_string()),
    })?;
    let start: StartJson = serde_json::from_value(body).map_err(|e| {
        refusal(&format!(
            "expected {{\"path\": \"….wasm\", \"name\"?, \"config\"?: {{…}}, \"sample\"?}}: {e}"
        ))
    })?;
    Ok(ShadowRequest {
        name: start.name,
        source: CandidateSource::Path(start.path),
        config_json: Value::Object(start.config.unwrap_or_default()).to_string(),
        sample: start.sample.unwrap_or(DEFAULT_SAMPLE),
    })
}

async fn from_upload(request: Request<Incoming>) -> Result<ShadowRequest, Response<Full<Bytes>>> {
    let query = request.uri().query().unwrap_or("").to_string();
    let mut name = None;
    let mut sample = DEFAULT_SAMPLE;
    let mut config_json = "{}".to_string();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "name" => name = Some(value.into_owned()),
            "sample" => {
                sample = value
                    .parse()
                    .map_err(|_| refusal(&format!("sample: {value:?} is not a number")))?;
            }
            "config" => {
                let parsed: Value = serde_json::from_str(&value)
                    .map_err(|e| refusal(&format!("config: not JSON: {e}")))?;
                if !parsed.is_object() {
                    return Err(refusal("config: must be a JSON object"));
                }
                config_json = parsed.to_string();
            }
            other => {
                return Err(refusal(&format!(
                    "unknown query parameter {other:?}: expected name, sample, config"
                )));
            }
        }
    }
    let bytes = Limited::new(request.into_body(), MAX_UPLOAD)
        .collect()
        .await
        .map_err(|_| {
            json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("a component upload is at most {MAX_UPLOAD} bytes") }),
            )
        })?
        .to_bytes();
    Ok(ShadowRequest {
        name,
        source: CandidateSource::Upload(bytes.to_vec()),
        config_json,
        sample,
    })
}

/// The sample rate of a shadow started without one.
const DEFAULT_SAMPLE: f64 = 0.1;

fn stop(admin: &Admin, name: &str) -> Response<Full<Bytes>> {
    if admin.reloader.stop_shadow(name) {
        json_response(StatusCode::OK, json!({ "result": "stopped", "name": name }))
    } else {
        json_response(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no shadow named {name:?}") }),
        )
    }
}

async fn promote_shadow(admin: &Admin, name: &str) -> Response<Full<Bytes>> {
    match admin.reloader.promote_shadow(name).await {
        Ok(promoted) => json_response(
            StatusCode::OK,
            json!({
                "result": "promoted",
                "detail": promoted.detail,
                "sha256": promoted.version.sha256(),
                "plugin": admin.plugin_status(),
            }),
        ),
        Err(error) => {
            let status = match error {
                PromoteError::Unknown(_) => StatusCode::NOT_FOUND,
                PromoteError::NotReloadable(_) => StatusCode::CONFLICT,
                PromoteError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            json_response(
                status,
                json!({ "result": "refused", "error": error.to_string() }),
            )
        }
    }
}

fn refusal(reason: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "result": "refused", "error": reason }),
    )
}
