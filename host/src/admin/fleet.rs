//! The fleet endpoints of the admin API (fleet mode only):
//!
//! - `GET /admin/fleet`: every live node (its status key), its applied revision, lag and state
//!   (`in_sync`, `behind`, `refusing` with the reason), this node's connection to the store;
//! - `POST /admin/fleet/plugin`: publish a plugin to every node. The body is the module's
//!   bytes (`Content-Type: application/wasm`; its config as `?config=<url-encoded JSON>`),
//!   kept in the store under its sha256 — or, for a module over 1 MiB, JSON `{"sha256": …,
//!   "url": …, "config": {…}}` and every node fetches it and checks the digest;
//! - `POST /admin/fleet/modules`: keep a module's bytes in the store under its sha256 (for a
//!   canary), in force nowhere;
//! - `POST /admin/fleet/canary` `{"sha256", "url"?, "config", "steps", "step_duration", "key",
//!   "gates"}`: a canary on every node, judged on the sum of every node's figures
//!   (`crate::fleet::canary`); `POST /admin/fleet/canary/promote` and `…/abort` end it;
//!   `GET /admin/fleet` shows it with the fleet's figures for its step;
//! - `PUT /admin/fleet/settings/{health|outlier|retry|timeouts}`: a fleet-wide section, as
//!   the config file writes it (in JSON); `DELETE` gives each node its own file's back.
//!   `timeouts`, `outlier` and `retry` take effect on each node at its next restart (as for a
//!   file edit); `health` at once;
//! - and, in fleet mode, `POST`/`PATCH`/`DELETE /admin/backends[/{id}]` write through to the
//!   store (`super::backends` routes them here): one guarded transaction each, answered with
//!   the commit `revision`; `If-Match: <revision>` makes a change conditional (412 when the
//!   backend changed after that revision); 503 when the store is unreachable, and then
//!   nothing changed anywhere. `?wait=applied[&timeout=10s]` answers once every live node
//!   applied the revision; 422 naming the nodes that refused it and why (they serve on with
//!   what they had), or 504 naming those that did not answer in time.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use super::backends::{
    backend_body, backend_id, error, invalid, invalid_problems, patch_body, read_body,
};
use super::{Admin, json_response, method_not_allowed};
use crate::fleet::FleetNode;
use crate::fleet::canary::{FleetCanaryState, SharedCanary};
use crate::fleet::follow::Connection;
use crate::fleet::layout::MAX_STORED_MODULE;
use crate::fleet::writes::{Applied, WriteError};

/// `GET /admin/fleet`.
pub const PATH: &str = "/admin/fleet";
const PLUGIN: &str = "/admin/fleet/plugin";
/// Default and longest wait of `?wait=applied`.
const DEFAULT_WAIT: Duration = Duration::from_secs(10);
const MAX_WAIT: Duration = Duration::from_secs(300);

const SETTINGS: &str = "/admin/fleet/settings/";
const MODULES: &str = "/admin/fleet/modules";
const CANARY: &str = "/admin/fleet/canary";
const PROMOTE: &str = "/admin/fleet/canary/promote";
const ABORT: &str = "/admin/fleet/canary/abort";

/// Whether `path` is one of these endpoints.
pub fn is_fleet(path: &str) -> bool {
    matches!(path, PATH | PLUGIN | MODULES | CANARY | PROMOTE | ABORT) || path.starts_with(SETTINGS)
}

/// Route a request to `/admin/fleet…`.
pub async fn handle(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(fleet) = &admin.fleet else {
        return error(
            StatusCode::NOT_FOUND,
            "lbx is not in fleet mode: add a [fleet] section to its config",
        );
    };
    if let Some(section) = request.uri().path().strip_prefix(SETTINGS) {
        let section = section.to_string();
        return settings(fleet, &section, request).await;
    }
    match (request.method(), request.uri().path()) {
        (&Method::GET, PATH) => json_response(StatusCode::OK, report(fleet)),
        (_, PATH) => method_not_allowed("GET"),
        (&Method::POST, PLUGIN) => publish_plugin(fleet, request).await,
        (&Method::POST, MODULES) => store_module(fleet, request).await,
        (&Method::POST, CANARY) => start_canary(fleet, request).await,
        (&Method::POST, PROMOTE | ABORT) => {
            let promote = request.uri().path() == PROMOTE;
            let query = match Query::parse(request.uri().query()) {
                Ok(query) => query,
                Err((field, message)) => return invalid(field, message),
            };
            match fleet.end_fleet_canary(promote).await {
                Ok(revision) => {
                    let result = if promote { "promoted" } else { "aborted" };
                    let body = json!({ "result": result, "revision": revision });
                    answer(fleet, StatusCode::OK, body, revision, &query).await
                }
                Err(e) => write_error(e),
            }
        }
        _ => method_not_allowed("POST"),
    }
}

/// The fleet as this node sees it.
pub fn report(fleet: &FleetNode) -> Value {
    let shared_revision = fleet.shared_revision();
    let nodes: Vec<Value> = fleet
        .statuses()
        .into_iter()
        .map(|(node, status)| match status {
            Ok(status) => json!({
                "node": node,
                "state": status.state(shared_revision),
                "applied_revision": status.applied_revision,
                "lag": status.lag(shared_revision),
                "plugin_sha256": status.plugin_sha256,
                "refused": status.refused,
                "connected": status.connected,
                "version": status.version,
                "started": status.started,
                "updated": status.updated,
            }),
            Err(problem) => json!({ "node": node, "state": "unreadable", "error": problem }),
        })
        .collect();
    let (connected, store_error) = match fleet.connection() {
        Connection::Watching => (true, None),
        Connection::Starting => (false, None),
        Connection::Lost(why) => (false, Some(why)),
    };
    let canary = fleet.canary().map(|canary| {
        let figures = fleet.canary_figures(&canary);
        json!({
            "canary": canary,
            "step_figures": {
                "nodes": figures.nodes,
                "live": figures.live.report(),
                "candidate": figures.candidate.report(),
            },
        })
    });
    json!({
        "node": fleet.node_id(),
        "prefix": fleet.layout().root(),
        "canary": canary,
        "endpoints": fleet.endpoints(),
        "connected": connected,
        "store_error": store_error,
        "shared_revision": shared_revision,
        "self": fleet.own_status(),
        "nodes": nodes,
    })
}

/// `POST`/`PATCH`/`DELETE /admin/backends[/{id}]` in fleet mode.
pub async fn backend_write(fleet: &FleetNode, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let id = match backend_id(&request) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    let query = match Query::parse(request.uri().query()) {
        Ok(query) => query,
        Err((field, message)) => return invalid(field, message),
    };
    let Ok(if_match) = if_match(&request) else {
        return bad_if_match();
    };
    let method = request.method().clone();
    let written = match (method, id) {
        (Method::POST, None) => {
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let drain = body.get("drain").and_then(Value::as_bool).unwrap_or(false);
            let mut body = body;
            if let Some(object) = body.as_object_mut() {
                object.remove("drain");
            }
            let posted = match backend_body(body) {
                Ok(posted) => posted,
                Err(problems) => return invalid_problems(&problems),
            };
            fleet
                .add_backend(posted.backend, drain)
                .await
                .map(|(id, revision)| (StatusCode::CREATED, id, revision, "added"))
        }
        (Method::PATCH, Some(id)) => {
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let patch = match patch_body(body) {
                Ok(patch) => patch,
                Err(problems) => return invalid_problems(&problems),
            };
            fleet
                .patch_backend(&id, &patch, if_match)
                .await
                .map(|revision| (StatusCode::OK, id, revision, "changed"))
        }
        (Method::DELETE, Some(id)) => fleet
            .remove_backend(&id, if_match)
            .await
            .map(|revision| (StatusCode::ACCEPTED, id, revision, "removed")),
        (Method::POST, Some(_)) => return method_not_allowed("GET, PATCH, DELETE"),
        (_, None) => return method_not_allowed("GET, POST"),
        (_, Some(_)) => return method_not_allowed("GET, PATCH, DELETE"),
    };
    match written {
        Ok((status, id, revision, result)) => {
            let body = json!({ "id": id, "result": result, "revision": revision });
            answer(fleet, status, body, revision, &query).await
        }
        Err(e) => write_error(e),
    }
}

/// `PUT`/`DELETE /admin/fleet/settings/{section}`.
async fn settings(
    fleet: &FleetNode,
    section: &str,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let query = match Query::parse(request.uri().query()) {
        Ok(query) => query,
        Err((field, message)) => return invalid(field, message),
    };
    let Ok(if_match) = if_match(&request) else {
        return bad_if_match();
    };
    let written = match *request.method() {
        Method::PUT => {
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            fleet.put_settings(section, &body, if_match).await
        }
        Method::DELETE => fleet.delete_settings(section).await,
        _ => return method_not_allowed("PUT, DELETE"),
    };
    match written {
        Ok(revision) => {
            let body = json!({ "section": section, "result": "written", "revision": revision });
            answer(fleet, StatusCode::OK, body, revision, &query).await
        }
        Err(e) => write_error(e),
    }
}

/// `POST /admin/fleet/modules`: a module's bytes, kept under their sha256.
async fn store_module(fleet: &FleetNode, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let bytes = match read_module(request).await {
        Ok(bytes) => bytes,
        Err(response) => return *response,
    };
    match fleet.store_module(&bytes).await {
        Ok((sha256, revision)) => json_response(
            StatusCode::CREATED,
            json!({ "sha256": sha256, "result": "stored", "revision": revision }),
        ),
        Err(e) => write_error(e),
    }
}

/// What `POST /admin/fleet/canary` takes: the candidate (a module kept in the store, or a
/// url) and the same plan as `POST /admin/plugin/canary`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryBody {
    sha256: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(default = "crate::config::canary::default_steps")]
    steps: Vec<f64>,
    #[serde(
        default = "crate::config::canary::default_step_duration",
        with = "humantime_serde"
    )]
    step_duration: Duration,
    #[serde(default = "crate::config::canary::default_key")]
    key: String,
    #[serde(default)]
    gates: crate::config::canary::Gates,
}

/// `POST /admin/fleet/canary`.
async fn start_canary(fleet: &FleetNode, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = match Query::parse(request.uri().query()) {
        Ok(query) => query,
        Err((field, message)) => return invalid(field, message),
    };
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let body: CanaryBody = match serde_json::from_value(body) {
        Ok(body) => body,
        Err(e) => return invalid(".", &e.to_string()),
    };
    let canary = SharedCanary {
        id: String::new(),
        sha256: body.sha256,
        url: body.url,
        config: body.config,
        steps: body.steps,
        step_duration: body.step_duration,
        key: body.key,
        gates: body.gates,
        step: 0,
        step_started: String::new(),
        state: FleetCanaryState::Running,
        detail: None,
    };
    match fleet.start_fleet_canary(canary).await {
        Ok((id, revision)) => {
            let body = json!({ "id": id, "result": "started", "revision": revision });
            answer(fleet, StatusCode::CREATED, body, revision, &query).await
        }
        Err(e) => write_error(e),
    }
}

/// A module's bytes from a request body, at most what the store keeps.
async fn read_module(request: Request<Incoming>) -> Result<Bytes, Box<Response<Full<Bytes>>>> {
    match Limited::new(request.into_body(), MAX_STORED_MODULE + 1)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(_) => Err(Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "a module kept in the store is at most {MAX_STORED_MODULE} bytes: serve a larger \
                 one over HTTP and publish JSON {{\"sha256\", \"url\"}}"
            ),
        ))),
    }
}

/// `POST /admin/fleet/plugin`.
async fn publish_plugin(fleet: &FleetNode, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let query = match Query::parse(request.uri().query()) {
        Ok(query) => query,
        Err((field, message)) => return invalid(field, message),
    };
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let written = if is_json {
        let body = match read_body(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        let sha256 = body
            .get("sha256")
            .and_then(Value::as_str)
            .map(str::to_string);
        let url = body.get("url").and_then(Value::as_str).map(str::to_string);
        let config = match body.get("config") {
            None => Map::new(),
            Some(Value::Object(config)) => config.clone(),
            Some(_) => return invalid("config", "must be an object"),
        };
        fleet.publish_plugin(None, sha256, url, config).await
    } else {
        let config = match &query.config {
            None => Map::new(),
            Some(text) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(config)) => config,
                _ => return invalid("config", "must be a JSON object (URL-encoded)"),
            },
        };
        let bytes = match read_module(request).await {
            Ok(bytes) => bytes,
            Err(response) => return *response,
        };
        fleet.publish_plugin(Some(&bytes), None, None, config).await
    };
    match written {
        Ok((sha256, revision)) => {
            let body = json!({ "sha256": sha256, "result": "published", "revision": revision });
            answer(fleet, StatusCode::CREATED, body, revision, &query).await
        }
        Err(e) => write_error(e),
    }
}

/// The answer to a committed change: at once, or once every node applied it.
async fn answer(
    fleet: &FleetNode,
    status: StatusCode,
    mut body: Value,
    revision: i64,
    query: &Query,
) -> Response<Full<Bytes>> {
    if !query.wait_applied {
        return json_response(status, body);
    }
    let Applied {
        nodes,
        pending,
        refused,
    } = fleet.wait_applied(revision, query.timeout).await;
    body["nodes"] = json!(
        nodes
            .iter()
            .map(|(node, s)| (
                node.clone(),
                json!({ "applied_revision": s.applied_revision })
            ))
            .collect::<Map<_, _>>()
    );
    if pending.is_empty() {
        body["applied"] = json!(true);
        json_response(status, body)
    } else if pending.len() == refused.len() {
        // Every node answered; some refused it and serve the last good state.
        body["applied"] = json!(false);
        body["refused"] = json!(refused);
        body["error"] = json!(format!(
            "committed at revision {revision}, but refused by {}: they keep serving the last \
             state they applied",
            refused.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        json_response(StatusCode::UNPROCESSABLE_ENTITY, body)
    } else {
        body["applied"] = json!(false);
        body["pending"] = json!(pending);
        body["refused"] = json!(refused);
        body["error"] = json!(format!(
            "committed at revision {revision}, but not applied by {} within {:?}",
            pending.join(", "),
            query.timeout
        ));
        json_response(StatusCode::GATEWAY_TIMEOUT, body)
    }
}

fn write_error(error: WriteError) -> Response<Full<Bytes>> {
    let status = match &error {
        WriteError::Unreachable(_) => StatusCode::SERVICE_UNAVAILABLE,
        WriteError::NotFound(_) | WriteError::Missing(_) => StatusCode::NOT_FOUND,
        WriteError::Exists(_) | WriteError::Failed(_) => StatusCode::CONFLICT,
        WriteError::Precondition { .. } => StatusCode::PRECONDITION_FAILED,
        WriteError::Invalid(problems) => return invalid_problems(problems),
    };
    let mut response = super::backends::error(status, &error.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
    }
    response
}

/// `If-Match: <revision>` (quotes allowed, as for an ETag); `Err` when it is not one.
fn if_match(request: &Request<Incoming>) -> Result<Option<i64>, ()> {
    let Some(value) = request.headers().get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_matches('"'))
        .and_then(|v| v.parse::<i64>().ok())
        .map(Some)
        .ok_or(())
}

fn bad_if_match() -> Response<Full<Bytes>> {
    error(
        StatusCode::BAD_REQUEST,
        "If-Match must be a fleet revision (the fleet_revision GET /admin/backends shows)",
    )
}

/// What the query string asks.
struct Query {
    wait_applied: bool,
    timeout: Duration,
    config: Option<String>,
}

impl Query {
    /// The query, or the problem with it (field, message).
    fn parse(query: Option<&str>) -> Result<Self, (&'static str, &'static str)> {
        let mut parsed = Query {
            wait_applied: false,
            timeout: DEFAULT_WAIT,
            config: None,
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*key {
                "wait" => match &*value {
                    "applied" => parsed.wait_applied = true,
                    _ => return Err(("wait", "the only wait is wait=applied")),
                },
                "timeout" => match humantime::parse_duration(&value) {
                    Ok(value) if value <= MAX_WAIT => parsed.timeout = value,
                    _ => {
                        return Err(("timeout", "must be a duration like 10s, at most 5m"));
                    }
                },
                "config" => parsed.config = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(parsed)
    }
}
