//! `[[discovery.dns]]`: backends found in DNS, re-resolved on an interval. This file owns the
//! settings and their checks; `crate::discovery` runs the lookups and feeds the backend set.
//!
//! ```toml
//! [[discovery.dns]]
//! name = "_http._tcp.api.example"   # SRV: the port (and weight) come from the records
//! type = "srv"
//!
//! [[discovery.dns]]
//! name = "web.example"              # A and AAAA: every address, on `port`
//! type = "a"
//! port = 8080
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

#[cfg(test)]
use super::Problem;
use super::check_duration;

/// `[discovery]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// `[[discovery.dns]]`, one per name.
    #[serde(default)]
    pub dns: Vec<DnsDiscovery>,
}

/// Which records a `[[discovery.dns]]` name is looked up as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsRecordType {
    /// SRV: targets with their own ports and weights (each target's A/AAAA gives addresses).
    Srv,
    /// A and AAAA: every address of the name, on the configured `port`.
    A,
}

impl DnsRecordType {
    /// `srv` or `a`, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            DnsRecordType::Srv => "srv",
            DnsRecordType::A => "a",
        }
    }
}

/// One `[[discovery.dns]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsDiscovery {
    /// The name to look up: `_service._proto.domain` for SRV, a host name for A/AAAA.
    pub name: String,
    /// `srv` or `a` (A and AAAA).
    #[serde(rename = "type")]
    pub record: DnsRecordType,
    /// `type = "a"` only (and required there): the backends' port.
    #[serde(default)]
    pub port: Option<u16>,
    /// How lbx talks to the discovered backends: `http`, `https` or `h2c`.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// How often the name is looked up again.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// How long the last answer stays in force while the name does not resolve (a failing
    /// resolver, NXDOMAIN, no records); after that its backends are drained and removed —
    /// unless they are the last backends lbx has.
    #[serde(default = "default_keep_last_for", with = "humantime_serde")]
    pub keep_last_for: Duration,
    /// The DNS server to ask, `ip:port` (or `ip`, port 53); default: the system's
    /// (`/etc/resolv.conf`).
    #[serde(default)]
    pub resolver: Option<String>,
    /// Weight of every discovered backend. Unset: 1 for `type = "a"`; for SRV, the record's
    /// weight (a weight of 0 counts as 1).
    #[serde(default)]
    pub weight: Option<u32>,
    /// Labels of every discovered backend; `source = "dns:<name>"` is added unless set here.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_scheme() -> String {
    "http".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_keep_last_for() -> Duration {
    Duration::from_secs(5 * 60)
}

/// Shortest `interval`: a name looked up more often only loads the DNS server.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Port of a `resolver` given without one.
const DNS_PORT: u16 = 53;

impl DnsDiscovery {
    /// The resolver's socket address, if one is configured and valid.
    pub fn resolver_addr(&self) -> Option<Result<SocketAddr, String>> {
        self.resolver.as_deref().map(parse_resolver)
    }

    /// The label value that marks this name's backends.
    pub fn source_label(&self) -> String {
        format!("dns:{}", self.name)
    }
}

fn parse_resolver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
        .map_err(|_| {
            format!(
                "{text:?} is not the address of a DNS server like 127.0.0.1:53 or [::1]:53 (an \
                 IP address, not a host name: lbx would need DNS to find its DNS server)"
            )
        })
}

/// Report every problem of `[[discovery.dns]]` under `discovery.dns[i].<key>`.
pub fn check(entries: &[DnsDiscovery], problem: &mut impl FnMut(String, String)) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let key = |field: &str| format!("discovery.dns[{i}].{field}");
        let name = entry.name.trim_end_matches('.');
        if let Some(first) = seen.insert(name, i) {
            problem(
                key("name"),
                format!("{name:?} is already looked up by discovery.dns[{first}]"),
            );
        }
        if let Some(message) = name_problem(name, entry.record) {
            problem(key("name"), message);
        }
        match (entry.record, entry.port) {
            (DnsRecordType::Srv, Some(_)) => problem(
                key("port"),
                "not used with type = \"srv\": SRV records carry each target's port".into(),
            ),
            (DnsRecordType::A, None) => problem(
                key("port"),
                "required with type = \"a\": A and AAAA records carry no port".into(),
            ),
            (DnsRecordType::A, Some(0)) => problem(key("port"), "must be 1 to 65535".into()),
            _ => {}
        }
        if !matches!(
            entry.scheme.to_ascii_lowercase().as_str(),
            "http" | "https" | "h2c"
        ) {
            problem(
                key("scheme"),
                format!(
                    "{:?} is not a backend scheme: http, https or h2c",
                    entry.scheme
                ),
            );
        }
        if entry.interval < MIN_INTERVAL {
            problem(
                key("interval"),
                format!(
                    "must be at least {}",
                    humantime::format_duration(MIN_INTERVAL)
                ),
            );
        }
        check_duration(&key("interval"), entry.interval, problem);
        check_duration(&key("keep_last_for"), entry.keep_last_for, problem);
        if let Some(Err(message)) = entry.resolver_addr() {
            problem(key("resolver"), message);
        }
        if entry.weight == Some(0) {
            problem(key("weight"), "must be at least 1".into());
        }
    }
}

/// What is wrong with `name` as a name to look up as `record`, if anything.
fn name_problem(name: &str, record: DnsRecordType) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if let Some((host, port)) = name.rsplit_once(':')
        && port.parse::<u16>().is_ok()
    {
        return Some(match record {
            DnsRecordType::Srv => {
                format!("{name:?} has a port: SRV records carry each target's port; use {host:?}")
            }
            DnsRecordType::A => format!("{name:?} has a port: write port = {port} instead"),
        });
    }
    if name.contains("://") {
        return Some(format!(
            "{name:?} is a URL; give the DNS name only (the scheme is `scheme`)"
        ));
    }
    if name.len() > 253
        || name.split('.').any(|label| {
            label.is_empty()
                || label.len() > 63
                || !label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
    {
        return Some(format!(
            "{name:?} is not a DNS name (labels of letters, digits, '-' and '_', separated by \
             dots)"
        ));
    }
    if record == DnsRecordType::Srv && !name.starts_with('_') {
        return Some(format!(
            "{name:?} is not an SRV name like _http._tcp.{name}; for a host name's addresses \
             use type = \"a\" with a port"
        ));
    }
    None
}

/// Every problem, as [`Problem`]s.
#[cfg(test)]
fn problems(entries: &[DnsDiscovery]) -> Vec<Problem> {
    let mut found = Vec::new();
    check(entries, &mut |key, message| {
        found.push(Problem { key, message })
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn entries(toml: &str) -> Vec<DnsDiscovery> {
        Config::parse(toml, None).unwrap().discovery.dns
    }

    fn keys_and_messages(toml: &str) -> Vec<String> {
        problems(&entries(toml))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_are_10s_and_5m_over_http() {
        let dns = entries("[[discovery.dns]]\nname = \"_http._tcp.api.test\"\ntype = \"srv\"");
        assert_eq!(dns[0].interval, Duration::from_secs(10));
        assert_eq!(dns[0].keep_last_for, Duration::from_secs(300));
        assert_eq!(dns[0].scheme, "http");
        assert!(problems(&dns).is_empty());
    }

    #[test]
    fn a_bad_type_is_named_by_the_parser() {
        let err = Config::parse("[[discovery.dns]]\nname = \"x.test\"\ntype = \"mx\"", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("type") && err.contains("mx"), "{err}");
    }

    #[test]
    fn each_mistake_names_its_key() {
        let found = keys_and_messages(
            r#"
            [[discovery.dns]]
            name = "_http._tcp.api.test:8080"
            type = "srv"
            [[discovery.dns]]
            name = "web.test"
            type = "a"
            [[discovery.dns]]
            name = "_http._tcp.api2.test"
            type = "srv"
            port = 80
            resolver = "dns.example:53"
            scheme = "ftp"
            interval = "10ms"
            weight = 0
            [[discovery.dns]]
            name = "web.test"
            type = "a"
            port = 80
            "#,
        );
        let keys: Vec<&str> = found.iter().map(|p| p.split_once(':').unwrap().0).collect();
        assert_eq!(
            keys,
            [
                "discovery.dns[0].name",
                "discovery.dns[1].port",
                "discovery.dns[2].port",
                "discovery.dns[2].scheme",
                "discovery.dns[2].interval",
                "discovery.dns[2].resolver",
                "discovery.dns[2].weight",
                "discovery.dns[3].name",
            ],
            "{found:#?}"
        );
        assert!(found[0].contains("SRV records carry"), "{}", found[0]);
        assert!(
            found[1].contains("required with type = \"a\""),
            "{}",
            found[1]
        );
        assert!(found[7].contains("already looked up"), "{}", found[7]);
    }

    #[test]
    fn a_resolver_is_an_ip_with_an_optional_port() {
        assert_eq!(parse_resolver("127.0.0.1").unwrap().port(), 53);
        assert_eq!(parse_resolver("[::1]:5353").unwrap().port(), 5353);
        assert!(parse_resolver("localhost:53").is_err());
    }

    #[test]
    fn an_a_name_with_a_port_says_where_the_port_goes() {
        let found =
            keys_and_messages("[[discovery.dns]]\nname = \"web.test:80\"\ntype = \"a\"\nport = 80");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("write port = 80"), "{found:?}");
    }
}
