//! The backend endpoints of the admin API, JSON in and out:
//!
//! - `GET /admin/backends`, `GET /admin/backends/{id}`: the set in force with live stats (and
//!   each backend's scraped `signals` when `[signals]` names some: `super::signals`);
//! - `POST /admin/backends` `{"url": …, "id": …, "weight": …, "labels": {…}}` → 201 with the
//!   backend as in force, its `Location`, and `"result": "added"` — or `"restored"` when the
//!   id is a config file backend the API removed: that removal is undone (the rule, and when
//!   it is a 409 instead, is in `runtime_backends::changes`); 409 if the id is taken; 422
//!   naming every problem of the body, each with its `field`;
//! - `PATCH /admin/backends/{id}` with any of `weight`, `labels`, `drain` → 200; 422 likewise;
//! - `DELETE /admin/backends/{id}[?timeout=30s][&now=true]` → 202: drained now, gone once its
//!   in-flight requests finish (or the timeout passes; `now` removes it at once);
//! - `GET /admin/reloads`: the last reloads and backend changes, newest first.
//!
//! Changes go through [`BackendManager`], which keeps them in the state file. (In fleet mode,
//! changes go to the fleet's store instead: `super::fleet` takes them.)

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::json_body::{self, ReadError};
use super::{Admin, json_response, method_not_allowed};
use crate::config::{BackendConfig, BackendSpec, HealthSettings, Problem};
use crate::runtime_backends::{ApiError, Outcome, Patch, Posted, Roles};
use crate::signals::Signals;
use crate::upstream::Backend;

/// How long a `DELETE` waits for in-flight requests by default.
pub const DEFAULT_REMOVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Route a request under `/admin/backends`.
pub async fn handle(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let id = match backend_id(&request) {
        Ok(id) => id,
        Err(response) => return *response,
    };
    match (request.method().clone(), id) {
        (Method::GET, None) => json_response(StatusCode::OK, list(admin)),
        (Method::POST, None) => add(admin, request).await,
        (_, None) => method_not_allowed("GET, POST"),
        (Method::GET, Some(id)) => match one(admin, &id) {
            Some(backend) => json_response(StatusCode::OK, backend),
            None => not_found(&id),
        },
        (Method::PATCH, Some(id)) => patch(admin, &id, request).await,
        (Method::DELETE, Some(id)) => remove(admin, &id, request.uri().query()).await,
        (_, Some(_)) => method_not_allowed("GET, PATCH, DELETE"),
    }
}

/// The backend id a path under `/admin/backends/` names (`None` for the collection), or the
/// 400 answer when it is not valid.
pub(super) fn backend_id(
    request: &Request<Incoming>,
) -> Result<Option<String>, Box<Response<Full<Bytes>>>> {
    match request.uri().path().strip_prefix("/admin/backends/") {
        None => Ok(None),
        Some(encoded) => match percent_decode(encoded) {
            Some(id) if !id.is_empty() => Ok(Some(id)),
            _ => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "the backend id in the path is not valid",
            ))),
        },
    }
}

/// `GET /admin/reloads`.
pub fn reloads(admin: &Admin) -> Response<Full<Bytes>> {
    let reloads: Vec<_> = admin
        .reloader
        .history()
        .entries()
        .into_iter()
        .map(|entry| {
            json!({
                "at": humantime::format_rfc3339_millis(entry.at).to_string(),
                "what": entry.what,
                "result": if entry.applied { "applied" } else { "refused" },
                "detail": entry.detail,
            })
        })
        .collect();
    json_response(StatusCode::OK, json!({ "reloads": reloads }))
}

/// Every backend in force.
pub fn list(admin: &Admin) -> serde_json::Value {
    let set = admin.upstreams.snapshot();
    let roles = admin.reloader.backends().roles();
    let signals = admin.signals.signals();
    let backends: Vec<_> = set
        .backends
        .iter()
        .enumerate()
        .map(|(index, b)| describe(index, b, &roles, &signals))
        .collect();
    let mut listed = json!({ "generation": set.generation, "backends": backends });
    if let Some(fleet) = &admin.fleet {
        // The revision to name in `If-Match` for a change based on what is shown here.
        listed["fleet_revision"] = json!(fleet.shared_revision());
    }
    listed
}

fn one(admin: &Admin, id: &str) -> Option<serde_json::Value> {
    let set = admin.upstreams.snapshot();
    let roles = admin.reloader.backends().roles();
    let signals = admin.signals.signals();
    set.backends
        .iter()
        .enumerate()
        .find(|(_, b)| b.spec.id == id)
        .map(|(index, b)| describe(index, b, &roles, &signals))
}

/// One backend as the API shows it.
fn describe(index: usize, b: &Backend, roles: &Roles, signals: &Signals) -> serde_json::Value {
    let draining = b.stats.is_draining();
    let state = if draining {
        "draining"
    } else if b.stats.is_down() {
        "down"
    } else if b.stats.is_ejected() {
        "ejected"
    } else {
        "up"
    };
    let mut described = json!({
        "index": index,
        "id": b.spec.id,
        "url": b.spec.url,
        "address": b.spec.authority.as_str(),
        "source": roles.sources.get(&b.spec.id).map_or("config", |s| s.as_str()),
        "weight": b.spec.weight,
        "labels": b.spec.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        "state": state,
        "usable": b.is_usable(),
        "down": b.stats.is_down(),
        "ejected": b.stats.is_ejected(),
        "draining": draining,
        "removing": roles.removing.contains(&b.spec.id),
        "in_flight": b.stats.in_flight(),
        "requests": b.stats.requests(),
        "ewma_latency_us": b.stats.ewma_latency_us(),
        "traffic": super::traffic::backend_traffic(&b.stats),
    });
    if let Some(name) = roles.discovered.get(&b.spec.id) {
        described["discovery"] = json!(name);
    }
    if let Some(signals) = super::signals::backend_signals(signals, &b.signals) {
        described["signals"] = signals;
    }
    described
}

async fn add(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let posted = match backend_body(body) {
        Ok(posted) => posted,
        Err(problems) => return invalid_problems(&problems),
    };
    match admin.reloader.backends().add(posted).await {
        Ok((id, outcome)) => {
            let result = match outcome {
                Outcome::Added => "added",
                Outcome::Restored => "restored",
            };
            // The change is in force; only a change made meanwhile can have taken it out.
            let body = match one(admin, &id) {
                Some(mut backend) => {
                    backend["result"] = result.into();
                    backend
                }
                None => {
                    json!({ "id": id, "result": format!("{result}, then removed by a later change") })
                }
            };
            let mut response = json_response(StatusCode::CREATED, body);
            if let Ok(location) = format!("/admin/backends/{}", percent_encode(&id)).parse() {
                response.headers_mut().insert(header::LOCATION, location);
            }
            response
        }
        Err(e) => api_error(e),
    }
}

/// A `POST` body as a backend, or every problem: those of the JSON types, and those of the
/// values whose types were right.
pub(super) fn backend_body(mut body: Value) -> Result<Posted, Vec<Problem>> {
    let given = json_body::keys(&body);
    let (backend, mut problems) = json_body::decode::<BackendConfig>(&mut body);
    if problems.is_empty() {
        let backend = backend.expect("decoded without problems");
        return Ok(Posted {
            backend,
            given: Some(given),
        });
    }
    // Without a usable `url` nothing decodes: check the rest against an empty one, whose own
    // problem is already named.
    let backend = backend.or_else(|| {
        let object = body.as_object_mut()?;
        object.insert("url".into(), Value::String(String::new()));
        json_body::decode::<BackendConfig>(&mut body).0
    });
    if let Some(backend) = backend
        && let Err(more) = BackendSpec::resolve(&backend, &HealthSettings::default(), "")
    {
        let more: Vec<_> = more
            .into_iter()
            .filter(|p| !json_body::is_named(&problems, &p.key))
            .collect();
        problems.extend(more);
    }
    Err(problems)
}

async fn patch(admin: &Admin, id: &str, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match read_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let patch = match patch_body(body) {
        Ok(patch) => patch,
        Err(problems) => return invalid_problems(&problems),
    };
    match admin.reloader.backends().patch(id, &patch).await {
        Ok(()) => match one(admin, id) {
            Some(backend) => json_response(StatusCode::OK, backend),
            None => not_found(id),
        },
        Err(e) => api_error(e),
    }
}

/// A `PATCH` body, or every problem (as for [`backend_body`]).
pub(super) fn patch_body(mut body: Value) -> Result<Patch, Vec<Problem>> {
    let (patch, mut problems) = json_body::decode::<Patch>(&mut body);
    if let Some(patch) = &patch {
        let more: Vec<_> = patch
            .problems()
            .into_iter()
            .filter(|p| !json_body::is_named(&problems, &p.key))
            .collect();
        problems.extend(more);
    }
    match patch {
        Some(patch) if problems.is_empty() => Ok(patch),
        _ => Err(problems),
    }
}

async fn remove(admin: &Admin, id: &str, query: Option<&str>) -> Response<Full<Bytes>> {
    let mut now = false;
    let mut timeout = DEFAULT_REMOVAL_TIMEOUT;
    for (key, value) in query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
    {
        match key {
            "now" => match value {
                "true" | "1" => now = true,
                "false" | "0" => now = false,
                _ => return invalid("now", "must be true or false"),
            },
            "timeout" => match humantime::parse_duration(value) {
                Ok(value) if value <= crate::config::MAX_DURATION => timeout = value,
                _ => return invalid("timeout", "must be a duration like 30s, at most 24h"),
            },
            _ => {}
        }
    }
    let manager = admin.reloader.backends().clone();
    match manager.remove(id, now, timeout).await {
        Ok(()) => {
            let remaining = one(admin, id);
            let in_flight = remaining
                .as_ref()
                .and_then(|b| b.get("in_flight").cloned())
                .unwrap_or(json!(0));
            json_response(
                StatusCode::ACCEPTED,
                json!({
                    "id": id,
                    "result": if remaining.is_some() { "removing" } else { "removed" },
                    "in_flight": in_flight,
                    "timeout_seconds": timeout.as_secs_f64(),
                }),
            )
        }
        Err(e) => api_error(e),
    }
}

/// Read a JSON body; the response when it cannot be.
pub(super) async fn read_body(request: Request<Incoming>) -> Result<Value, Response<Full<Bytes>>> {
    json_body::read(request).await.map_err(|e| match e {
        ReadError::TooLarge => error(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
        ReadError::Invalid(problem) => invalid_problems(&[problem]),
    })
}

fn api_error(error: ApiError) -> Response<Full<Bytes>> {
    match error {
        ApiError::NotFound(text) => self::error(StatusCode::NOT_FOUND, &text),
        ApiError::Conflict(text) => self::error(StatusCode::CONFLICT, &text),
        ApiError::Failed(text) => self::error(StatusCode::INTERNAL_SERVER_ERROR, &text),
        ApiError::Invalid(problems) => invalid_problems(&problems),
    }
}

pub(super) fn invalid(field: &str, message: &str) -> Response<Full<Bytes>> {
    invalid_problems(&[Problem {
        key: field.into(),
        message: message.into(),
    }])
}

pub(super) fn invalid_problems(problems: &[Problem]) -> Response<Full<Bytes>> {
    let listed: Vec<_> = problems
        .iter()
        .map(|p| json!({ "field": p.key, "message": p.message }))
        .collect();
    let summary: Vec<_> = problems.iter().map(ToString::to_string).collect();
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({ "error": summary.join("; "), "problems": listed }),
    )
}

fn not_found(id: &str) -> Response<Full<Bytes>> {
    error(StatusCode::NOT_FOUND, &format!("no backend with id {id:?}"))
}

pub(super) fn error(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    json_response(status, json!({ "error": text }))
}

/// Decode `%XX` escapes of a path segment; `None` if one is malformed or the result is not
/// UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Escape what cannot stand in a path segment.
pub(super) fn percent_encode(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:@".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_paths_round_trip() {
        for id in ["web-5", "127.0.0.1:9001", "a b/c%", "ünï"] {
            assert_eq!(percent_decode(&percent_encode(id)).as_deref(), Some(id));
        }
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
