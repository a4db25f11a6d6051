//! Service discovery: backends found in DNS (`[[discovery.dns]]`), looked up again every
//! `interval`, merged with the config file's and the admin API's backends.
//!
//! - the lookups (hickory-resolver; SRV or A/AAAA; TTL handling) in [`dns`];
//! - an answer's targets as backends (ids, weights, labels) in [`targets`];
//! - one name's loop, its states and what happens when it stops resolving in [`watcher`];
//! - the `lbx_discovery_*` metrics in [`metrics`];
//! - this file: the watchers of the names in force, started with lbx and changed by a config
//!   reload.
//!
//! The backend set itself is `runtime_backends`' ([`BackendManager::set_discovered`]; the
//! merge rule and the answer diff are in `runtime_backends::discovered`). A reload that keeps
//! a name's settings keeps its watcher and its backends untouched; one that changes them
//! restarts its watcher (whose first answer is diffed against the last, so unchanged targets
//! stay); one that removes the name drains and removes its backends.

pub mod dns;
pub mod metrics;
pub mod targets;
pub mod watcher;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;

use crate::config::DnsDiscovery;
use crate::runtime_backends::BackendManager;

pub use metrics::DiscoveryMetrics;
pub use watcher::{State, Status};

/// Longest lbx waits at start for the first answers before it serves anyway.
pub const FIRST_ANSWER_WAIT: Duration = Duration::from_secs(10);

/// The names being watched.
#[derive(Debug)]
pub struct Discovery {
    backends: Arc<BackendManager>,
    metrics: DiscoveryMetrics,
    running: Mutex<BTreeMap<String, Running>>,
}

#[derive(Debug)]
struct Running {
    entry: DnsDiscovery,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

/// What `GET /admin/discovery` shows about one name.
#[derive(Debug, Clone, Serialize)]
pub struct NameReport {
    /// The name looked up.
    pub name: String,
    /// `srv` or `a`.
    #[serde(rename = "type")]
    pub record: &'static str,
    /// The DNS server asked, or `system`.
    pub resolver: String,
    /// Seconds between lookups.
    pub interval_s: f64,
    /// Seconds the last answer is kept while the name does not resolve.
    pub keep_last_for_s: f64,
    /// Where it stands.
    #[serde(flatten)]
    pub status: Status,
}

impl Discovery {
    /// Nothing watched yet.
    pub fn new(backends: Arc<BackendManager>) -> Self {
        Self {
            backends,
            metrics: DiscoveryMetrics::default(),
            running: Mutex::new(BTreeMap::new()),
        }
    }

    /// Its metrics, to register.
    pub fn metrics(&self) -> &DiscoveryMetrics {
        &self.metrics
    }

    /// Start watching `entries`, and wait (at most [`FIRST_ANSWER_WAIT`]) until each has been
    /// looked up once, so lbx starts serving with the backends DNS knows.
    pub async fn start(&self, entries: &[DnsDiscovery]) {
        let mut first_answers = Vec::new();
        for entry in entries {
            first_answers.push(self.spawn(entry.clone()));
        }
        let deadline = tokio::time::Instant::now() + FIRST_ANSWER_WAIT;
        for first in first_answers {
            let _ = tokio::time::timeout_at(deadline, first).await;
        }
    }

    /// Put a reloaded config's `entries` in force; returns a sentence of what changed, if
    /// anything did.
    pub async fn reconfigure(&self, entries: &[DnsDiscovery]) -> Option<String> {
        let wanted: BTreeMap<&str, &DnsDiscovery> =
            entries.iter().map(|e| (e.name.as_str(), e)).collect();
        let (stopped, kept): (Vec<_>, Vec<_>) = {
            let mut running = self.running.lock().expect("discovery lock");
            let names: Vec<String> = running.keys().cloned().collect();
            let mut stopped = Vec::new();
            let mut kept = Vec::new();
            for name in names {
                if wanted.get(name.as_str()) == Some(&&running[&name].entry) {
                    kept.push(name);
                } else if let Some(old) = running.remove(&name) {
                    stopped.push(old);
                }
            }
            (stopped, kept)
        };
        let mut changes = Vec::new();
        for old in stopped {
            old.task.abort();
            let _ = old.task.await;
            let name = old.entry.name.clone();
            if wanted.contains_key(name.as_str()) {
                changes.push(format!("dns {name} restarted with new settings"));
                continue; // its backends stay until the new watcher's first answer replaces them
            }
            self.metrics.remove_name(&name);
            match self
                .backends
                .set_discovered(&name, Vec::new(), watcher::REMOVAL_TIMEOUT)
                .await
            {
                Ok(diff) => changes.push(format!("dns {name} removed ({})", diff.describe())),
                Err(why) => {
                    tracing::warn!(discovery = %name, error = %why,
                        "[[discovery.dns]] removed, but its backends stay");
                    changes.push(format!("dns {name} removed; {why}"));
                }
            }
        }
        for entry in entries {
            if !kept.contains(&entry.name) {
                if !changes
                    .iter()
                    .any(|c| c.starts_with(&format!("dns {} ", entry.name)))
                {
                    changes.push(format!("dns {} added", entry.name));
                }
                // Not waited for: a reload must not hang on a slow DNS server.
                drop(self.spawn(entry.clone()));
            }
        }
        (!changes.is_empty()).then(|| changes.join(", "))
    }

    /// Stop every watcher (lbx is shutting down); the backends stay as they are.
    pub fn stop(&self) {
        for (_, running) in std::mem::take(&mut *self.running.lock().expect("discovery lock")) {
            running.task.abort();
        }
    }

    /// Every name watched, in name order.
    pub fn report(&self) -> Vec<NameReport> {
        let running = self.running.lock().expect("discovery lock");
        running
            .values()
            .map(|r| NameReport {
                name: r.entry.name.clone(),
                record: r.entry.record.as_str(),
                resolver: match r.entry.resolver_addr() {
                    Some(Ok(addr)) => addr.to_string(),
                    _ => "system".into(),
                },
                interval_s: r.entry.interval.as_secs_f64(),
                keep_last_for_s: r.entry.keep_last_for.as_secs_f64(),
                status: r.status.lock().expect("status lock").clone(),
            })
            .collect()
    }

    /// Start a watcher for `entry`; the receiver hears when its first lookup is dealt with.
    fn spawn(&self, entry: DnsDiscovery) -> tokio::sync::oneshot::Receiver<()> {
        let (first, first_answer) = tokio::sync::oneshot::channel();
        let status = Arc::new(Mutex::new(Status::default()));
        self.metrics.add_name(&entry.name);
        let watcher = watcher::Watcher {
            entry: entry.clone(),
            backends: self.backends.clone(),
            metrics: self.metrics.clone(),
            status: status.clone(),
        };
        let task = tokio::spawn(watcher.run(first));
        self.running.lock().expect("discovery lock").insert(
            entry.name.clone(),
            Running {
                entry,
                status,
                task,
            },
        );
        first_answer
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop();
    }
}
