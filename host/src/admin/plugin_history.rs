//! `GET /admin/plugin/history`: the plugin versions put in force, newest first, and which one
//! is in force; `POST /admin/plugin/rollback`: go back to one of them (the reloader's
//! `rollback` module says how).
//!
//! A rollback names its version by `{"sha256": "<hex or unique prefix>"}` or
//! `{"steps": N}` (entries back from the one in force), with an optional `"reason"` recorded
//! in the reload history. Answers: 200 with the version now in force; 400 for a body that is
//! not one of these (or an ambiguous prefix); 404 for a version the history does not hold; 409
//! for the version already in force, or a plugin that is not reloadable (none, or embedded);
//! 422 when the version fails to load now (the running one keeps serving); 413 for a body
//! over the admin API's limit.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};

use super::json_body::{self, ReadError};
use super::{Admin, json_response};
use crate::reload::{MIN_PREFIX, RollbackError, RollbackTarget, Version};

/// Longest `reason` a rollback may carry: it is kept in the reload history.
const MAX_REASON: usize = 200;

/// The body of `POST /admin/plugin/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    sha256: Option<String>,
    steps: Option<u64>,
    reason: Option<String>,
}

/// `GET /admin/plugin/history`.
pub fn history(admin: &Admin) -> Response<Full<Bytes>> {
    let list = admin.reloader.plugin_versions();
    let held = admin.reloader.rollback_hold().map(|hold| {
        json!({
            "path": hold.path.display().to_string(),
            "file_sha256": hold.file_hash.map(|h| crate::reload::hex(&h)),
            "since": humantime::format_rfc3339_millis(hold.since).to_string(),
            "detail": "a rollback is in force: reloads leave it until the plugin file or the \
                       [plugin] settings change",
        })
    });
    let versions: Vec<Value> = list
        .versions
        .iter()
        .map(|version| describe(version, list.in_force == Some(version.id)))
        .collect();
    json_response(
        StatusCode::OK,
        json!({
            "capacity": list.capacity,
            "held": held,
            "versions": versions,
        }),
    )
}

/// `POST /admin/plugin/rollback`.
pub async fn rollback(admin: &Admin, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut body = match json_body::read(request).await {
        Ok(body) => body,
        Err(e @ ReadError::TooLarge) => return refused(StatusCode::PAYLOAD_TOO_LARGE, e),
        Err(ReadError::Invalid(problem)) => return refused(StatusCode::BAD_REQUEST, problem),
    };
    let (target, reason) = match parse(&mut body) {
        Ok(parsed) => parsed,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why),
    };
    match admin.reloader.rollback(target, reason.as_deref()).await {
        Ok(done) => json_response(
            StatusCode::OK,
            json!({
                "result": "applied",
                "detail": done.detail,
                "version": describe(&done.version, true),
                "from_compile_cache": done.from_compile_cache,
                "took_ms": done.took.as_secs_f64() * 1000.0,
                "plugin": admin.plugin_status(),
            }),
        ),
        Err(e) => {
            let status = match e {
                RollbackError::Unknown(_) => StatusCode::NOT_FOUND,
                RollbackError::Ambiguous(_) => StatusCode::BAD_REQUEST,
                RollbackError::AlreadyInForce(_) | RollbackError::NotReloadable(_) => {
                    StatusCode::CONFLICT
                }
                RollbackError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            refused(status, e)
        }
    }
}

/// The target and reason a body asks for, or every problem with it in one sentence.
fn parse(body: &mut Value) -> Result<(RollbackTarget, Option<String>), String> {
    let (decoded, problems) = json_body::decode::<RollbackRequest>(body);
    if !problems.is_empty() {
        let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(problems.join("; "));
    }
    let request = decoded.ok_or("the body must be a JSON object")?;
    if let Some(reason) = &request.reason
        && reason.chars().count() > MAX_REASON
    {
        return Err(format!("reason: at most {MAX_REASON} characters"));
    }
    let target = match (request.sha256, request.steps) {
        (Some(sha256), None) => {
            let valid = (MIN_PREFIX..=64).contains(&sha256.len())
                && sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if !valid {
                return Err(format!(
                    "sha256: {sha256:?} is not a sha256 or a prefix of one ({MIN_PREFIX} to 64 \
                     hex digits)"
                ));
            }
            RollbackTarget::Sha256(sha256.to_ascii_lowercase())
        }
        (None, Some(0)) => {
            return Err("steps: must be at least 1 (0 is the version in force)".into());
        }
        (None, Some(steps)) => RollbackTarget::Steps(usize::try_from(steps).unwrap_or(usize::MAX)),
        _ => {
            return Err(
                "give exactly one of sha256 (a version's sha256 or a unique prefix) and steps \
                 (versions back from the one in force)"
                    .into(),
            );
        }
    };
    Ok((target, request.reason))
}

/// One version as JSON.
fn describe(version: &Version, in_force: bool) -> Value {
    let spec = &version.spec;
    json!({
        "id": version.id,
        "sha256": version.sha256(),
        "at": humantime::format_rfc3339_millis(version.at).to_string(),
        "source": version.source.as_str(),
        "path": version.name,
        "bytes": version.bytes.len(),
        "in_force": in_force,
        "config": serde_json::from_str::<Value>(&spec.config_json).unwrap_or(Value::Null),
        "deadline_ms": spec.deadline.as_secs_f64() * 1000.0,
        "memory_limit_bytes": spec.memory_bytes,
        "body_prefix_bytes": spec.body_prefix,
    })
}

fn refused(status: StatusCode, reason: impl ToString) -> Response<Full<Bytes>> {
    json_response(
        status,
        json!({ "result": "refused", "reason": reason.to_string() }),
    )
}
