//! The resolver side: one `[[discovery.dns]]` name looked up with hickory-resolver, as SRV
//! (targets, their ports and weights, then each target's addresses) or as A and AAAA.
//!
//! TTLs: the resolver caches an answer for its TTL, but never longer than the name's
//! `interval` (`positive_max_ttl`/`negative_max_ttl`), so a changed record is seen within one
//! interval whatever TTL it was published with; a TTL shorter than the interval does not make
//! lbx ask more often than once per interval. Every lookup is one attempt bounded by
//! [`lookup_timeout`]; a failure is retried at the next interval.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use crate::config::{DnsDiscovery, DnsRecordType};

/// One address an answer points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name it was found under (the SRV target, or the A name), without the final
    /// dot: the TLS server name of an `https` backend.
    pub host: String,
    /// Its address.
    pub ip: IpAddr,
    /// Its port (the SRV record's, or the configured one).
    pub port: u16,
    /// The SRV record's weight (0 for A/AAAA).
    pub weight: u16,
}

/// Why a lookup gave no targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The server answered: the name does not exist (NXDOMAIN) or has no such records.
    NoRecords(String),
    /// No usable answer: the server did not answer, refused, or answered garbage.
    Failed(String),
}

impl LookupError {
    /// The `result` label of `lbx_discovery_resolutions_total`.
    pub fn result_label(&self) -> &'static str {
        match self {
            LookupError::NoRecords(_) => "no_records",
            LookupError::Failed(_) => "error",
        }
    }
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LookupError::NoRecords(text) | LookupError::Failed(text) => f.write_str(text),
        }
    }
}

/// How long one lookup may take: a quarter of the interval, between 200 ms and 5 s (a lookup
/// must end well before the next one is due, and a slow server gets a fair chance).
pub fn lookup_timeout(interval: Duration) -> Duration {
    (interval / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
}

/// A name and the resolver that looks it up.
#[derive(Debug)]
pub struct DnsLookup {
    resolver: TokioResolver,
    name: String,
    record: DnsRecordType,
    port: u16,
}

impl DnsLookup {
    /// The resolver for `entry`: its `resolver`, or the system's.
    pub fn new(entry: &DnsDiscovery) -> Result<Self, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match entry.resolver_addr() {
            Some(Ok(addr)) => {
                let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                for connection in &mut server.connections {
                    connection.port = addr.port();
                }
                Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![server]),
                    provider,
                )
            }
            Some(Err(message)) => return Err(message),
            None => Resolver::builder(provider)
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
        };
        let options = builder.options_mut();
        options.timeout = lookup_timeout(entry.interval);
        options.attempts = 1;
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.positive_max_ttl = Some(entry.interval);
        options.negative_max_ttl = Some(entry.interval);
        if entry.resolver.is_some() {
            // Asked of a given server, the answer is that server's, not /etc/hosts'.
            options.use_hosts_file = ResolveHosts::Never;
        }
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot set up the resolver: {e}"))?;
        Ok(Self {
            resolver,
            name: entry.name.clone(),
            record: entry.record,
            port: entry.port.unwrap_or(0),
        })
    }

    /// Look the name up once. An answer without any address is [`LookupError::NoRecords`].
    pub async fn resolve(&self) -> Result<Vec<Target>, LookupError> {
        let targets = match self.record {
            DnsRecordType::A => self.addresses(&self.name, self.port, 0).await?,
            DnsRecordType::Srv => self.srv().await?,
        };
        if targets.is_empty() {
            return Err(LookupError::NoRecords(format!(
                "{}: the answer has no usable address",
                self.name
            )));
        }
        Ok(targets)
    }

    async fn addresses(
        &self,
        host: &str,
        port: u16,
        weight: u16,
    ) -> Result<Vec<Target>, LookupError> {
        let found = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| classify(host, &e))?;
        let mut targets: Vec<Target> = found
            .iter()
            .map(|ip| Target {
                host: bare(host),
                ip,
                port,
                weight,
            })
            .collect();
        targets.sort_by_key(|t| t.ip);
        targets.dedup();
        Ok(targets)
    }

    /// SRV: the records of the lowest priority (RFC 2782: higher ones are for when those are
    /// unreachable, and lbx's health checks and outlier ejection handle that within the set),
    /// each target's addresses from the answer's additional section or looked up.
    async fn srv(&self) -> Result<Vec<Target>, LookupError> {
        let lookup = self
            .resolver
            .lookup(self.name.as_str(), RecordType::SRV)
            .await
            .map_err(|e| classify(&self.name, &e))?;
        let records: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(srv) if !srv.target.is_root() => Some(srv.clone()),
                _ => None, // "." as target: the service is decidedly not available there
            })
            .collect();
        let Some(lowest) = records.iter().map(|srv| srv.priority).min() else {
            return Ok(Vec::new());
        };
        let mut glue: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for record in lookup.additionals() {
            if let Some(ip) = record.data.ip_addr() {
                glue.entry(bare(&record.name.to_ascii()))
                    .or_default()
                    .push(ip);
            }
        }
        let mut targets = Vec::new();
        for srv in records.iter().filter(|srv| srv.priority == lowest) {
            let host = bare(&srv.target.to_ascii());
            match glue.get(&host) {
                Some(ips) => targets.extend(ips.iter().map(|&ip| Target {
                    host: host.clone(),
                    ip,
                    port: srv.port,
                    weight: srv.weight,
                })),
                None => {
                    let fqdn = format!("{host}.");
                    targets.extend(self.addresses(&fqdn, srv.port, srv.weight).await?);
                }
            }
        }
        targets.sort_by_key(|t| (t.ip, t.port));
        targets.dedup_by(|a, b| (a.ip, a.port) == (b.ip, b.port));
        Ok(targets)
    }
}

/// A name without its final dot, lowercase.
fn bare(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn classify(name: &str, error: &NetError) -> LookupError {
    match error {
        NetError::Dns(DnsError::NoRecordsFound(no)) => {
            LookupError::NoRecords(format!("{name}: no records ({})", no.response_code))
        }
        other => LookupError::Failed(format!("{name}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lookup_timeout_follows_the_interval_within_bounds() {
        assert_eq!(
            lookup_timeout(Duration::from_millis(200)),
            Duration::from_millis(200)
        );
        assert_eq!(
            lookup_timeout(Duration::from_secs(10)),
            Duration::from_millis(2500)
        );
        assert_eq!(
            lookup_timeout(Duration::from_secs(600)),
            Duration::from_secs(5)
        );
    }
}
