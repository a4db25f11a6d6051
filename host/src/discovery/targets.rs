//! From an answer's targets to the backends a name contributes: one backend per address and
//! port, with the name's scheme, weight and labels.
//!
//! - id and URL: `<scheme>://<ip>:<port>`, id `<ip>:<port>` (as a `[[backend]]` with that URL
//!   would have, so a file backend at the same address is the same backend, and the file's
//!   entry wins);
//! - weight: the name's `weight` when set; otherwise, for SRV, the record's weight (RFC 2782
//!   weights are relative shares among targets of one priority, as backend weights are; a
//!   weight of 0, "very small chance", counts as 1 since lbx has no weight below 1), and 1 for
//!   A/AAAA;
//! - labels: the name's `labels`, plus `source = "dns:<name>"` unless they set `source`;
//! - `https`: the TLS server name is the target's host name (the SRV target or the A name),
//!   not its address.

use std::net::SocketAddr;

use crate::config::{BackendConfig, BackendSpec, DnsDiscovery, DnsRecordType, HealthSettings};

use super::dns::Target;

/// The backends for `targets`, and a sentence for each target that cannot be one.
pub fn backends(entry: &DnsDiscovery, targets: &[Target]) -> (Vec<BackendConfig>, Vec<String>) {
    let scheme = entry.scheme.to_ascii_lowercase();
    let mut labels = entry.labels.clone();
    labels
        .entry("source".into())
        .or_insert_with(|| entry.source_label());
    let mut backends = Vec::with_capacity(targets.len());
    let mut refused = Vec::new();
    for target in targets {
        let weight = entry.weight.unwrap_or(match entry.record {
            DnsRecordType::Srv => u32::from(target.weight).max(1),
            DnsRecordType::A => 1,
        });
        let backend = BackendConfig {
            weight,
            labels: labels.clone(),
            server_name: (scheme == "https").then(|| target.host.clone()),
            ..BackendConfig::at(format!(
                "{scheme}://{}",
                SocketAddr::new(target.ip, target.port)
            ))
        };
        // Checked here so that one odd record cannot make the whole set unbuildable.
        match BackendSpec::resolve(&backend, &HealthSettings::default(), "") {
            Ok(_) => backends.push(backend),
            Err(problems) => refused.push(format!(
                "{} ({}:{}): {}",
                target.host,
                target.ip,
                target.port,
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )),
        }
    }
    (backends, refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn entry(toml: &str) -> DnsDiscovery {
        Config::parse(toml, None).unwrap().discovery.dns.remove(0)
    }

    fn target(ip: &str, port: u16, weight: u16) -> Target {
        Target {
            host: "b1.lbx.test".into(),
            ip: ip.parse().unwrap(),
            port,
            weight,
        }
    }

    #[test]
    fn srv_weights_become_backend_weights_and_zero_counts_as_one() {
        let srv = entry("[[discovery.dns]]\nname = \"_http._tcp.api.test\"\ntype = \"srv\"");
        let (backends, refused) = backends(
            &srv,
            &[target("127.0.0.1", 8001, 0), target("::1", 8002, 30)],
        );
        assert!(refused.is_empty());
        assert_eq!(backends[0].url, "http://127.0.0.1:8001");
        assert_eq!(backends[0].weight, 1);
        assert_eq!(backends[1].url, "http://[::1]:8002");
        assert_eq!(backends[1].weight, 30);
        assert_eq!(backends[1].labels["source"], "dns:_http._tcp.api.test");
    }

    #[test]
    fn the_names_weight_and_labels_win_and_https_checks_the_host_name() {
        let a = entry(
            "[[discovery.dns]]\nname = \"web.test\"\ntype = \"a\"\nport = 443\nscheme = \"https\"\n\
             weight = 7\nlabels = { source = \"mine\", pool = \"web\" }",
        );
        let (backends, _) = backends(&a, &[target("10.0.0.1", 443, 99)]);
        assert_eq!(backends[0].weight, 7);
        assert_eq!(backends[0].labels["source"], "mine");
        assert_eq!(backends[0].labels["pool"], "web");
        assert_eq!(backends[0].server_name.as_deref(), Some("b1.lbx.test"));
    }
}
