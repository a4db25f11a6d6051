//! `[fleet]`: this node's part in a fleet kept in step through etcd — where the store is, the
//! prefix the fleet's keys live under, this node's name, and how to reach the store. These
//! settings stay in each node's own file (a node must know where the store is before it can
//! read anything from it); what the fleet shares is in the `fleet` module. Without `[fleet]`,
//! lbx runs alone, as it always has.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[fleet]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// The etcd members' client URLs, e.g. `["http://127.0.0.1:2379"]`; lbx spreads its
    /// requests over them and moves off a member that stops answering.
    pub endpoints: Vec<String>,
    /// The prefix of every key of this fleet (several fleets can share one etcd).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// This node's name in the fleet's status keys (default: the host name).
    #[serde(default)]
    pub node_id: Option<String>,
    /// etcd user name, with `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the etcd user's password (first line), kept out of the config file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS to the etcd members (`https://` endpoints).
    #[serde(default)]
    pub tls: FleetTls,
    /// Longest wait for a connection to a member.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Longest wait for one request to the store (a read, a transaction).
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often an idle connection is probed, so a member that went silent (stopped, cut
    /// off) is noticed and left within about twice this.
    #[serde(default = "default_keepalive", with = "humantime_serde")]
    pub keepalive: Duration,
    /// Time to live of this node's status key: it disappears this long after the node dies.
    #[serde(default = "default_status_ttl", with = "humantime_serde")]
    pub status_ttl: Duration,
}

/// `[fleet.tls]`: how lbx checks the etcd members and, optionally, presents itself.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetTls {
    /// PEM CA certificate(s) that sign the members' certificates (default: system roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// PEM client certificate, with `key`, for etcd's client-certificate authentication.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

fn default_prefix() -> String {
    "/lbx".into()
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_keepalive() -> Duration {
    Duration::from_secs(2)
}
fn default_status_ttl() -> Duration {
    Duration::from_secs(10)
}

/// Longest `node_id`: it is part of a key, shown in tables and metric labels.
const MAX_NODE_ID: usize = 128;

impl FleetConfig {
    /// This node's name: `node_id`, else the host name; `None` when neither is known.
    pub fn node_name(&self) -> Option<String> {
        self.node_id.clone().or_else(host_name)
    }

    /// Report every problem with these settings, each naming its key.
    pub fn check(&self, problem: &mut impl FnMut(String, String)) {
        if self.endpoints.is_empty() {
            problem(
                "fleet.endpoints".into(),
                "list at least one etcd client URL, e.g. [\"http://127.0.0.1:2379\"]".into(),
            );
        }
        for (i, endpoint) in self.endpoints.iter().enumerate() {
            if let Some(message) = endpoint_problem(endpoint) {
                problem(format!("fleet.endpoints[{i}]"), message);
            }
        }
        let trimmed = self.prefix.trim_matches('/');
        if trimmed.is_empty() {
            problem(
                "fleet.prefix".into(),
                "must name a prefix such as \"/lbx\" (not the whole store)".into(),
            );
        } else if trimmed.split('/').any(str::is_empty) {
            problem(
                "fleet.prefix".into(),
                format!("{:?} has an empty part (\"//\")", self.prefix),
            );
        }
        match self.node_name() {
            None => problem(
                "fleet.node_id".into(),
                "the host name could not be read: set node_id".into(),
            ),
            Some(name) => {
                if let Some(message) = node_id_problem(&name) {
                    let key = if self.node_id.is_some() {
                        "fleet.node_id"
                    } else {
                        "fleet.node_id (from the host name)"
                    };
                    problem(key.into(), message);
                }
            }
        }
        if self.username.is_some() != self.password_file.is_some() {
            problem(
                "fleet.username".into(),
                "username and password_file go together".into(),
            );
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            problem("fleet.tls.cert".into(), "cert and key go together".into());
        }
        let uses_tls = self.endpoints.iter().any(|e| e.starts_with("https://"));
        if !uses_tls && (self.tls.ca.is_some() || self.tls.cert.is_some()) {
            problem(
                "fleet.tls".into(),
                "set, but no endpoint is https://: TLS settings would be ignored".into(),
            );
        }
        for (key, value) in [
            ("fleet.connect_timeout", self.connect_timeout),
            ("fleet.request_timeout", self.request_timeout),
            ("fleet.keepalive", self.keepalive),
        ] {
            if value.is_zero() {
                problem(key.into(), "must be greater than 0".into());
            }
        }
        // etcd leases are whole seconds, at least its minimum TTL (about 2 s on defaults).
        if self.status_ttl < Duration::from_secs(2) {
            problem(
                "fleet.status_ttl".into(),
                "must be at least 2s (etcd's shortest lease)".into(),
            );
        }
    }
}

/// Why `endpoint` is not an etcd client URL, if it is not.
fn endpoint_problem(endpoint: &str) -> Option<String> {
    let Some(rest) = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        return Some(format!(
            "{endpoint:?} is not an etcd client URL: expected http://host:port or https://host:port"
        ));
    };
    let authority = rest.trim_end_matches('/');
    match authority.parse::<http::uri::Authority>() {
        Ok(parsed) if parsed.port_u16().is_some() && !authority.contains('/') => None,
        Ok(_) | Err(_) => Some(format!(
            "{endpoint:?} must be host:port after the scheme (etcd clients listen on 2379 by \
             default)"
        )),
    }
}

/// Why `name` cannot be a node id, if it cannot.
fn node_id_problem(name: &str) -> Option<String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if name.is_empty() || name.len() > MAX_NODE_ID {
        Some(format!("must be 1 to {MAX_NODE_ID} characters"))
    } else if !name.chars().all(allowed) {
        Some(format!(
            "{name:?} may hold only letters, digits, '.', '-' and '_' (it is part of a key)"
        ))
    } else {
        None
    }
}

/// The host name, as the kernel has it.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(toml: &str) -> FleetConfig {
        toml::from_str(toml).unwrap()
    }

    fn problems(config: &FleetConfig) -> Vec<String> {
        let mut found = Vec::new();
        config.check(&mut |key, message| found.push(format!("{key}: {message}")));
        found
    }

    #[test]
    fn a_minimal_fleet_table_takes_the_defaults_and_is_valid() {
        let config = fleet(r#"endpoints = ["http://127.0.0.1:2379"]"#);
        assert_eq!(config.prefix, "/lbx");
        assert_eq!(config.request_timeout, Duration::from_secs(5));
        assert!(
            config.node_name().is_some(),
            "the host name is the default node id"
        );
        assert_eq!(problems(&config), Vec::<String>::new());
    }

    #[test]
    fn each_bad_setting_is_named_by_its_key() {
        let config = fleet(
            r#"
            endpoints = ["127.0.0.1:2379", "http://etcd-1", "https://etcd-2:2379"]
            prefix = "/"
            node_id = "node a"
            username = "lbx"
            status_ttl = "1s"
            keepalive = "0s"
            [tls]
            cert = "/etc/lbx/etcd.pem"
            "#,
        );
        let found = problems(&config);
        let keys: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "fleet.endpoints[0]",
                "fleet.endpoints[1]",
                "fleet.prefix",
                "fleet.node_id",
                "fleet.username",
                "fleet.tls.cert",
                "fleet.keepalive",
                "fleet.status_ttl",
            ],
            "{found:#?}"
        );
    }

    #[test]
    fn tls_settings_without_an_https_endpoint_are_refused_rather_than_ignored() {
        let config = fleet(
            r#"
            endpoints = ["http://127.0.0.1:2379"]
            tls = { ca = "/etc/lbx/etcd-ca.pem" }
            "#,
        );
        assert_eq!(problems(&config).len(), 1, "{:?}", problems(&config));
        assert!(problems(&config)[0].starts_with("fleet.tls: set, but no endpoint is https://"));
    }

    #[test]
    fn unknown_keys_are_refused_when_parsing() {
        let error = toml::from_str::<FleetConfig>(
            r#"
            endpoints = ["http://127.0.0.1:2379"]
            endpoint = "http://127.0.0.1:2380"
            "#,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("unknown field `endpoint`"),
            "{error}"
        );
    }
}
