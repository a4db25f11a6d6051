//! `lbx reload`: ask a running lbx to reload its config, plugin and certificates together —
//! what SIGHUP does — over its admin API (`POST /admin/reload`), and say what happened.
//!
//! Going through the admin API rather than a signal gives the answer back: what was applied,
//! or why the reload was refused (the running configuration keeps serving then), which a
//! signal cannot report. It needs no PID file and works across a container boundary.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config::{AdminConfig, Config, DEFAULT_ADMIN_LISTEN};

/// How long the reload may take: it can compile a plugin, seconds for a large one.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

/// Which lbx to ask, and the bearer token its admin API wants.
#[derive(Clone)]
pub struct Target {
    /// The admin API's address.
    pub admin: SocketAddr,
    /// The token, when the admin API has one.
    pub token: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("admin", &self.admin)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// Why `lbx reload` did not reload anything.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The target could not be worked out from the arguments.
    #[error("{0}")]
    Target(String),
    /// Nothing answered at the admin address.
    #[error("cannot connect to {admin} ({reason}): is lbx running with its admin API on {admin}?")]
    NotRunning {
        /// The address tried.
        admin: SocketAddr,
        /// The connection error.
        reason: String,
    },
    /// lbx refused the reload; the running configuration keeps serving.
    #[error("reload refused: {0}\n(the running configuration keeps serving)")]
    Refused(String),
    /// The admin API wants a token we did not send, or not this one.
    #[error(
        "the admin API at {0} refused the token (401): give --token-file, or --config with its \
         [admin] token_file"
    )]
    Unauthorized(SocketAddr),
    /// Any other answer.
    #[error("unexpected answer from {admin}: {status} {body}")]
    Unexpected {
        /// The address asked.
        admin: SocketAddr,
        /// Its status.
        status: StatusCode,
        /// Its body.
        body: String,
    },
}

impl Target {
    /// The target from `lbx reload`'s arguments: `--admin` wins over the config's
    /// `[admin] listen` (default 127.0.0.1:9901); `--token-file` over its `[admin] token_file`.
    pub fn from_args(
        admin: Option<&str>,
        token_file: Option<&Path>,
        config_file: Option<&Path>,
    ) -> Result<Self, RemoteError> {
        let config = match config_file {
            Some(path) => Config::load(path).map_err(|e| RemoteError::Target(e.to_string()))?,
            None => Config::default(),
        };
        if admin.is_none() && !config.admin.enabled {
            return Err(RemoteError::Target(format!(
                "{}: [admin] enabled = false, so there is no admin API to ask; send SIGHUP \
                 instead, or give --admin",
                config_file.map_or_else(String::new, |p| p.display().to_string())
            )));
        }
        let listen = admin.unwrap_or(&config.admin.listen);
        let admin: SocketAddr = listen.parse().map_err(|e| {
            RemoteError::Target(format!(
                "{listen:?} is not an admin address like {DEFAULT_ADMIN_LISTEN} ({e})"
            ))
        })?;
        let token_config = match token_file {
            Some(file) => AdminConfig {
                token_file: Some(file.to_path_buf()),
                ..AdminConfig::default()
            },
            None => config.admin,
        };
        let token = token_config
            .read_token()
            .map_err(|problem| RemoteError::Target(problem.message))?;
        Ok(Self {
            admin: reachable(admin),
            token,
        })
    }
}

/// An admin API listening on every address (`0.0.0.0:9901`) is asked on loopback: that is
/// where this machine reaches it, and a loopback `Host` is one the admin API always accepts.
fn reachable(admin: SocketAddr) -> SocketAddr {
    match admin.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), admin.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), admin.port())
        }
        _ => admin,
    }
}

/// Ask `target` to reload; returns what it applied (or that nothing had changed).
pub async fn request_reload(target: &Target) -> Result<String, RemoteError> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::post(format!("http://{}/admin/reload", target.admin));
    if let Some(token) = &target.token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Empty::new())
        .map_err(|e| RemoteError::Target(e.to_string()))?;
    let admin = target.admin;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| RemoteError::NotRunning {
                admin,
                reason: innermost(&e),
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| RemoteError::NotRunning {
                admin,
                reason: format!("the answer broke off: {e}"),
            })?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    let (status, body) = tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .map_err(|_| RemoteError::NotRunning {
            admin,
            reason: format!("no answer within {}s", ANSWER_TIMEOUT.as_secs()),
        })??;
    interpret(admin, status, &body)
}

/// What an answer of `POST /admin/reload` means.
fn interpret(admin: SocketAddr, status: StatusCode, body: &str) -> Result<String, RemoteError> {
    let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match (status, field("result").as_deref()) {
        (StatusCode::OK, Some("applied")) => Ok(format!(
            "applied: {}",
            field("detail").unwrap_or_else(|| "(no detail)".into())
        )),
        (StatusCode::OK, Some("unchanged")) => Ok(
            "unchanged: the config, plugin and certificates on disk are the ones in force".into(),
        ),
        (StatusCode::UNPROCESSABLE_ENTITY, _) => Err(RemoteError::Refused(
            field("reason").unwrap_or_else(|| body.trim().to_string()),
        )),
        (StatusCode::UNAUTHORIZED, _) => Err(RemoteError::Unauthorized(admin)),
        _ => Err(RemoteError::Unexpected {
            admin,
            status,
            body: body.trim().to_string(),
        }),
    }
}

/// The root cause of a client error ("Connection refused (os error 111)"), which hyper's own
/// message ("client error (Connect)") leaves out.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> SocketAddr {
        "127.0.0.1:9901".parse().unwrap()
    }

    #[test]
    fn answers_are_read_as_applied_unchanged_or_refused() {
        let applied = interpret(
            admin(),
            StatusCode::OK,
            r#"{"result": "applied", "detail": "2 backends"}"#,
        );
        assert_eq!(applied.unwrap(), "applied: 2 backends");
        assert!(
            interpret(admin(), StatusCode::OK, r#"{"result": "unchanged"}"#)
                .unwrap()
                .starts_with("unchanged")
        );
        let refused = interpret(
            admin(),
            StatusCode::UNPROCESSABLE_ENTITY,
            r#"{"result": "refused", "reason": "backend[0].url: bad"}"#,
        )
        .unwrap_err();
        assert!(
            refused.to_string().contains("backend[0].url: bad"),
            "{refused}"
        );
        assert!(matches!(
            interpret(
                admin(),
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required"
            ),
            Err(RemoteError::Unauthorized(_))
        ));
        assert!(matches!(
            interpret(admin(), StatusCode::NOT_FOUND, "not found"),
            Err(RemoteError::Unexpected { .. })
        ));
    }

    #[test]
    fn an_admin_api_on_every_address_is_asked_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:9901".parse().unwrap()),
            "127.0.0.1:9901".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            reachable("[::]:9901".parse().unwrap()),
            "[::1]:9901".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(reachable(admin()), admin());
    }
}
