//! One `[[backend]]`: what the file (or the admin API) says about a backend, the URL rules, and
//! the resolved [`BackendSpec`] that everything downstream consumes.
//!
//! Config resolves, the rest consumes: [`BackendSpec::resolve`] is the one place a backend's
//! URL is parsed, its id defaulted and its health check completed. The config file, the admin
//! API and the runtime state file all go through it; `upstream` builds backends from specs and
//! never parses a URL again.

use std::collections::BTreeMap;
use std::path::PathBuf;

use http::uri::Authority;
use serde::{Deserialize, Serialize};

use super::{HealthCheck, HealthSettings, Problem};

/// One `[[backend]]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `http://host:port` (HTTP/1.1), `h2c://host:port` (cleartext HTTP/2) or
    /// `https://host:port` (TLS; HTTP/2 or HTTP/1.1 by ALPN).
    pub url: String,
    /// Stable name shown to plugins, logs and metrics; defaults to `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Relative weight handed to plugins (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Free-form labels handed to plugins, e.g. `{ pool = "api" }`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// This backend's own health-check settings, over the global `[health]` ones.
    #[serde(default, skip_serializing_if = "HealthSettings::is_unset")]
    pub health: HealthSettings,
    /// `https://` only: PEM file of the CA certificate(s) that sign this backend's certificate,
    /// trusted instead of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// `https://` only: the name sent as SNI and checked against the backend's certificate
    /// (default: the URL's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// `https://` only: accept any certificate (no verification). Off by default; a warning is
    /// logged at start when on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

impl BackendConfig {
    /// A backend at `url` with every other setting at its default.
    pub fn at(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            id: None,
            weight: default_weight(),
            labels: BTreeMap::new(),
            health: HealthSettings::default(),
            ca: None,
            server_name: None,
            insecure_skip_verify: false,
        }
    }
}

fn default_weight() -> u32 {
    1
}
/// How lbx talks to a backend, from its URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendScheme {
    /// `http://`: HTTP/1.1 over TCP.
    Http,
    /// `h2c://`: HTTP/2 over TCP, prior knowledge.
    H2c,
    /// `https://`: TLS, then HTTP/2 or HTTP/1.1 as ALPN settles.
    Https,
}

/// A backend address that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendAddress {
    /// How to talk to it.
    pub scheme: BackendScheme,
    /// `host:port`, as used for connecting (the port defaults to 80, or 443 for `https://`).
    pub authority: Authority,
}

/// Whether `url` is a valid backend URL with the `https` scheme.
pub(super) fn is_https(url: &str) -> bool {
    parse_backend_url(url).is_ok_and(|address| address.scheme == BackendScheme::Https)
}

/// Accept `http://host:port` (port 80 by default), `h2c://host:port` (80) and
/// `https://host:port` (443), schemes in any case, and nothing else: lbx does not rewrite
/// paths, so a path on a backend URL would be silently ignored — refuse it instead.
pub fn parse_backend_url(url: &str) -> Result<BackendAddress, String> {
    const EXPECTED: &str = "expected http://host:port, h2c://host:port or https://host:port";
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e}); {EXPECTED}"))?;
    // Schemes are case-insensitive (RFC 3986 §3.1).
    let (scheme, default_port) = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => (BackendScheme::Http, 80),
        Some("h2c") => (BackendScheme::H2c, 80),
        Some("https") => (BackendScheme::Https, 443),
        Some(other) => {
            return Err(format!(
                "{url:?}: scheme {other:?} is not supported for backends; {EXPECTED}"
            ));
        }
        None => return Err(format!("{url:?} has no scheme; {EXPECTED}")),
    };
    let Some(authority) = uri.authority().cloned() else {
        return Err(format!("{url:?} has no host; {EXPECTED}"));
    };
    if authority.host().is_empty() {
        return Err(format!("{url:?} has no host; {EXPECTED}"));
    }
    if authority.as_str().contains('@') {
        return Err(format!(
            "{url:?}: credentials in backend URLs are not supported"
        ));
    }
    if uri.path() != "/" || uri.query().is_some() {
        return Err(format!(
            "{url:?}: backend URLs cannot have a path or query; lbx forwards the client's path as is"
        ));
    }
    let authority = if authority.port_u16().is_some() {
        authority
    } else {
        format!("{}:{default_port}", authority.as_str())
            .parse()
            .map_err(|e| format!("{url:?}: {e}"))?
    };
    Ok(BackendAddress { scheme, authority })
}

/// A backend with everything resolved: the only form `upstream` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSpec {
    /// Stable identifier (the `id`, or `host:port`).
    pub id: String,
    /// The URL as written (shown by the admin API).
    pub url: String,
    /// How to talk to it.
    pub scheme: BackendScheme,
    /// Where to connect: `host:port`.
    pub authority: Authority,
    /// Relative weight handed to plugins.
    pub weight: u32,
    /// Labels handed to plugins, sorted by key.
    pub labels: Vec<(String, String)>,
    /// Active health check with every default filled in, if one is configured.
    pub health: Option<HealthCheck>,
    /// `https://` only: how its certificate is checked.
    pub tls: BackendTls,
}

/// How an `https://` backend's certificate is verified (all unset for other schemes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendTls {
    /// CA file trusted instead of the system roots.
    pub ca: Option<PathBuf>,
    /// Name sent as SNI and checked against the certificate.
    pub server_name: Option<String>,
    /// Accept any certificate.
    pub insecure_skip_verify: bool,
}

impl BackendSpec {
    /// Resolve one backend. `health_defaults` is the global `[health]`; problems are reported
    /// under `key` (e.g. `backend[2]`, or empty for an admin API request, giving bare field
    /// names such as `url`).
    pub fn resolve(
        config: &BackendConfig,
        health_defaults: &HealthSettings,
        key: &str,
    ) -> Result<Self, Vec<Problem>> {
        let mut problems = Vec::new();
        let field = |name: &str| {
            if key.is_empty() {
                name.to_string()
            } else {
                format!("{key}.{name}")
            }
        };
        let mut problem = |name: &str, message: String| {
            problems.push(Problem {
                key: field(name),
                message,
            })
        };
        let address = parse_backend_url(&config.url);
        if let Err(message) = &address {
            problem("url", message.clone());
        }
        if config.weight == 0 {
            problem("weight", "must be at least 1".into());
        }
        let https = address
            .as_ref()
            .is_ok_and(|a| a.scheme == BackendScheme::Https);
        for (name, set) in [
            ("ca", config.ca.is_some()),
            ("server_name", config.server_name.is_some()),
            ("insecure_skip_verify", config.insecure_skip_verify),
        ] {
            if set && !https && address.is_ok() {
                problem(name, "only applies to https:// backends".into());
            }
        }
        if let Some(name) = &config.server_name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            problem(
                "server_name",
                format!("{name:?} is not a DNS name or IP address"),
            );
        }
        match config.id.as_deref() {
            Some("") => problem("id", "must not be empty".into()),
            Some(id) if id.len() > MAX_ID_LEN || id.chars().any(char::is_control) => problem(
                "id",
                format!("must be at most {MAX_ID_LEN} bytes of printable characters"),
            ),
            _ => {}
        }
        let health = match config
            .health
            .over(health_defaults)
            .resolve(&field("health"))
        {
            Ok(health) => health,
            Err(mut health) => {
                problems.append(&mut health);
                None
            }
        };
        let address = match address {
            Ok(address) if problems.is_empty() => address,
            _ => return Err(problems),
        };
        Ok(Self {
            id: config
                .id
                .clone()
                .unwrap_or_else(|| address.authority.to_string()),
            url: config.url.clone(),
            scheme: address.scheme,
            authority: address.authority,
            weight: config.weight,
            labels: config
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            health,
            tls: BackendTls {
                ca: config.ca.clone(),
                server_name: config.server_name.clone(),
                insecure_skip_verify: config.insecure_skip_verify,
            },
        })
    }
}

/// Longest backend id: ids appear in metrics labels, log lines and URLs of the admin API.
pub const MAX_ID_LEN: usize = 128;

/// Resolve every backend of a list, reporting problems under `backend[i]` and ids used twice.
pub fn resolve_all(
    backends: &[BackendConfig],
    health_defaults: &HealthSettings,
    problems: &mut Vec<Problem>,
) -> Vec<BackendSpec> {
    let mut specs = Vec::with_capacity(backends.len());
    let mut seen_ids: BTreeMap<String, usize> = BTreeMap::new();
    for (i, backend) in backends.iter().enumerate() {
        let key = format!("backend[{i}]");
        match BackendSpec::resolve(backend, health_defaults, &key) {
            Ok(spec) => {
                if let Some(first) = seen_ids.insert(spec.id.clone(), i) {
                    problems.push(Problem {
                        key: format!("{key}.id"),
                        message: format!(
                            "{:?} is already used by backend[{first}]; ids must be unique",
                            spec.id
                        ),
                    });
                }
                specs.push(spec);
            }
            Err(mut found) => problems.append(&mut found),
        }
    }
    specs
}
