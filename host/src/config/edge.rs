//! Settings about who may talk to lbx and what lbx believes about them: the `[proxy]` section
//! (which peers' `X-Forwarded-*` headers are trusted) and the `[admin]` listener (address,
//! bearer token, accepted Host names).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use ipnet::IpNet;
use serde::Deserialize;

use super::Problem;

/// `[proxy]`: how lbx presents requests to backends.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Peers (addresses or CIDR blocks) whose `X-Forwarded-For`, `-Proto` and `-Host` are
    /// passed on. From any other peer those headers are replaced: a client cannot claim to be
    /// someone else to the backends.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
}

impl ProxyConfig {
    /// Whether a connection from `peer` may speak for the clients behind it.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, how a dual-stack socket reports an
        // IPv4 peer) compares as the IPv4 address it is.
        let peer = peer.to_canonical();
        self.trusted_proxies.iter().any(|net| net.0.contains(&peer))
    }
}

/// An address block, `10.0.0.0/8` or a single address `192.0.2.7` (= `/32`), checked when
/// the config is parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        text.parse::<IpAddr>()
            .map(|ip| Cidr(IpNet::from(ip.to_canonical())))
            .map_err(|_| format!("{text:?} is not an address or CIDR block like 10.0.0.0/8"))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `[admin]`: a separate listener for operators, never exposed with the proxy's port.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Whether to run it at all.
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// Its address. A non-loopback address needs `token_file`.
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    /// A file holding the bearer token every admin request must carry
    /// (`Authorization: Bearer <token>`). Without one, the admin API listens on loopback only.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Host names (besides loopback ones: `localhost`, `127.0.0.1`, `[::1]`) the admin API
    /// answers to. Requests for any other Host are refused: a web page cannot reach the admin
    /// API through a DNS name rebound to 127.0.0.1.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Where backend changes made through the admin API are kept, so that a config reload or
    /// a restart re-applies them. Default: `<config name>.state.json` beside the config file
    /// (none, and changes last until exit, when lbx runs without a config file).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: default_admin_listen(),
            token_file: None,
            allowed_hosts: Vec::new(),
            state_file: None,
        }
    }
}

impl AdminConfig {
    /// Problems with this section, each under its key.
    pub fn validate(&self, problems: &mut Vec<Problem>) {
        if !self.enabled {
            return;
        }
        match self.listen.parse::<SocketAddr>() {
            Err(e) => problems.push(Problem {
                key: "admin.listen".into(),
                message: format!(
                    "{:?} is not an address like 127.0.0.1:9901 ({e})",
                    self.listen
                ),
            }),
            Ok(addr) if !addr.ip().is_loopback() && self.token_file.is_none() => {
                problems.push(Problem {
                    key: "admin.listen".into(),
                    message: format!(
                        "{addr} is not a loopback address: anyone who can reach it could change \
                         routing; set admin.token_file to require a bearer token, or listen on \
                         127.0.0.1"
                    ),
                })
            }
            Ok(_) => {}
        }
        for (i, host) in self.allowed_hosts.iter().enumerate() {
            if host.is_empty() || !crate::http1::parse::valid_authority(host.as_bytes()) {
                problems.push(Problem {
                    key: format!("admin.allowed_hosts[{i}]"),
                    message: format!("{host:?} is not a host name"),
                });
            }
        }
    }

    /// Read the token file: its first line, which must be at least 16 characters.
    pub fn read_token(&self) -> Result<Option<String>, Problem> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let problem = |message: String| Problem {
            key: "admin.token_file".into(),
            message,
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
        let token = text.lines().next().unwrap_or("").trim().to_string();
        if token.len() < 16 {
            return Err(problem(format!(
                "the token in {} is shorter than 16 characters",
                path.display()
            )));
        }
        Ok(Some(token))
    }
}

fn default_admin_listen() -> String {
    super::DEFAULT_ADMIN_LISTEN.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_take_addresses_and_blocks() {
        let config = ProxyConfig {
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "192.0.2.7".parse().unwrap()],
        };
        assert!(config.trusts("10.1.2.3".parse().unwrap()));
        assert!(config.trusts("192.0.2.7".parse().unwrap()));
        assert!(
            config.trusts("::ffff:10.9.9.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!config.trusts("192.0.2.8".parse().unwrap()));
        assert!(!ProxyConfig::default().trusts("127.0.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn a_public_admin_address_needs_a_token() {
        let mut admin = AdminConfig {
            listen: "0.0.0.0:9901".into(),
            ..AdminConfig::default()
        };
        let mut problems = Vec::new();
        admin.validate(&mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "admin.listen");
        assert!(
            problems[0].message.contains("token_file"),
            "{}",
            problems[0].message
        );

        admin.token_file = Some("/etc/lbx/token".into());
        let mut problems = Vec::new();
        admin.validate(&mut problems);
        assert!(problems.is_empty());
    }
}
