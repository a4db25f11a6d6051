//! `lbx fleet status`: the fleet's nodes and where each stands, read straight from the store
//! (so it works with no node running, and shows what the store says rather than what one node
//! believes).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;

use super::etcd::{EtcdSettings, EtcdStore};
use super::layout::{Entry, Layout};
use super::status::NodeStatus;
use super::store::Store;
use crate::config::Config;

/// The report for the fleet `config_file`'s `[fleet]` names: a table, or JSON.
pub async fn status(config_file: &Path, json: bool) -> anyhow::Result<String> {
    let config = Config::load(config_file)?;
    let settings = config
        .fleet
        .with_context(|| format!("{} has no [fleet] section", config_file.display()))?;
    let layout = Layout::new(&settings.prefix);
    let store = EtcdStore::connect(EtcdSettings::from_config(&settings)?).await?;
    let snapshot = store.list(&layout.root()).await?;
    let mut shared_revision = 0;
    let mut nodes = Vec::new();
    for entry in &snapshot.kvs {
        match layout.entry(&entry.key) {
            Some(Entry::Status(node)) => {
                let status = serde_json::from_slice::<NodeStatus>(&entry.value)
                    .map_err(|e| format!("status does not read: {e}"));
                nodes.push((node.to_string(), status));
            }
            Some(Entry::Backend(_) | Entry::Plugin | Entry::Settings(_) | Entry::Canary) => {
                shared_revision = shared_revision.max(entry.mod_revision);
            }
            _ => {}
        }
    }
    if json {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|(node, status)| match status {
                Ok(s) => serde_json::json!({
                    "node": node,
                    "state": s.state(shared_revision),
                    "applied_revision": s.applied_revision,
                    "lag": s.lag(shared_revision),
                    "plugin_sha256": s.plugin_sha256,
                    "refused": s.refused,
                    "connected": s.connected,
                    "updated": s.updated,
                }),
                Err(e) => serde_json::json!({ "node": node, "state": "unreadable", "error": e }),
            })
            .collect();
        let report = serde_json::json!({
            "prefix": layout.root(),
            "endpoints": store.endpoints(),
            "revision": snapshot.revision,
            "shared_revision": shared_revision,
            "nodes": nodes,
        });
        return Ok(format!("{report:#}\n"));
    }
    let mut out = String::new();
    writeln!(
        out,
        "fleet {} on etcd {}: store revision {}, last shared change at {}, {} live node(s)",
        layout.root(),
        store.endpoints(),
        snapshot.revision,
        shared_revision,
        nodes.len()
    )?;
    writeln!(
        out,
        "{:<20} {:<10} {:>8} {:>5} {:<12} {:<9} REFUSED",
        "NODE", "STATE", "APPLIED", "LAG", "PLUGIN", "CONNECTED"
    )?;
    for (node, status) in &nodes {
        match status {
            Ok(s) => {
                let state = serde_json::to_value(s.state(shared_revision))?;
                let refused = s
                    .refused
                    .as_ref()
                    .filter(|r| r.revision > s.applied_revision)
                    .map(|r| format!("revision {}: {}", r.revision, r.reason))
                    .unwrap_or_default();
                writeln!(
                    out,
                    "{:<20} {:<10} {:>8} {:>5} {:<12} {:<9} {}",
                    node,
                    state.as_str().unwrap_or_default(),
                    s.applied_revision,
                    s.lag(shared_revision),
                    s.plugin_sha256
                        .as_deref()
                        .map_or("-", |sha| &sha[..sha.len().min(12)]),
                    if s.connected { "yes" } else { "no" },
                    refused
                )?;
            }
            Err(e) => writeln!(out, "{node:<20} unreadable: {e}")?,
        }
    }
    Ok(out)
}
