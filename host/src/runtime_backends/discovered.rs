//! Backends that service discovery contributes, by the name that found them, and how a new
//! answer for a name differs from its last one.
//!
//! The merge rule (applied in `super::resolve`): the config file's backends and the admin
//! API's changes come first ([`super::changes`]); then each discovered name's backends, names
//! in order, answers in order. An id already in force — defined by the file, added through the
//! API, or found by an earlier name — is not taken again: the first owner keeps it. So
//! discovery never overrides what an operator wrote or posted, and neither clobbers the other.
//!
//! A new answer changes only what differs ([`diff`]): new ids are added, ids gone from the
//! answer are drained and removed (as an admin API removal is), ids whose settings changed
//! (an SRV weight) are updated in place, and the others are untouched — their pools and stats
//! carry over, since the backend set keeps a backend whose id remains.

use std::collections::{BTreeMap, HashMap};

use crate::config::BackendConfig;

use super::changes::backend_id;

/// What each discovered name contributes now, by name.
pub type Contributions = BTreeMap<String, Vec<BackendConfig>>;

/// How a name's new answer differs from its last one, by backend id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Ids in the new answer only.
    pub added: Vec<String>,
    /// Ids in the last answer only: to drain and remove.
    pub gone: Vec<String>,
    /// Ids in both whose settings differ (weight, labels, scheme).
    pub changed: Vec<String>,
    /// Ids in both, the same.
    pub unchanged: usize,
}

impl Diff {
    /// Whether the new answer is the last one.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.gone.is_empty() && self.changed.is_empty()
    }

    /// One line for the reload history, e.g. `added 127.0.0.1:8001; removing 127.0.0.1:8002`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (what, ids) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removing", &self.gone),
        ] {
            if !ids.is_empty() {
                parts.push(format!("{what} {}", ids.join(", ")));
            }
        }
        if parts.is_empty() {
            "unchanged".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Compare a name's `last` answer with its `next` one.
pub fn diff(last: &[BackendConfig], next: &[BackendConfig]) -> Diff {
    let last: HashMap<String, &BackendConfig> = last.iter().map(|b| (backend_id(b), b)).collect();
    let mut result = Diff::default();
    let mut seen = Vec::with_capacity(next.len());
    for backend in next {
        let id = backend_id(backend);
        match last.get(&id) {
            None => result.added.push(id.clone()),
            Some(before) if *before != backend => result.changed.push(id.clone()),
            Some(_) => result.unchanged += 1,
        }
        seen.push(id);
    }
    let mut gone: Vec<String> = last.into_keys().filter(|id| !seen.contains(id)).collect();
    gone.sort();
    result.gone = gone;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16, weight: u32) -> BackendConfig {
        BackendConfig {
            weight,
            ..BackendConfig::at(format!("http://127.0.0.1:{port}"))
        }
    }

    #[test]
    fn only_what_differs_is_reported() {
        let last = [at(1, 1), at(2, 1), at(3, 1)];
        let next = [at(1, 1), at(3, 5), at(4, 1)];
        assert_eq!(
            diff(&last, &next),
            Diff {
                added: vec!["127.0.0.1:4".into()],
                gone: vec!["127.0.0.1:2".into()],
                changed: vec!["127.0.0.1:3".into()],
                unchanged: 1,
            }
        );
    }

    #[test]
    fn the_same_answer_in_another_order_is_no_change() {
        let diff = diff(&[at(1, 1), at(2, 1)], &[at(2, 1), at(1, 1)]);
        assert!(diff.is_empty(), "{diff:?}");
        assert_eq!(diff.describe(), "unchanged");
    }

    #[test]
    fn an_empty_answer_removes_everything() {
        let diff = diff(&[at(1, 1), at(2, 1)], &[]);
        assert_eq!(diff.gone, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_eq!(diff.describe(), "removing 127.0.0.1:1, 127.0.0.1:2");
    }
}

#[cfg(test)]
mod merge_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::config::{BackendConfig, HealthSettings};
    use crate::history::ReloadHistory;
    use crate::runtime_backends::{BackendManager, Source};
    use crate::upstream::PoolSettings;

    fn manager(file: &[&str]) -> Arc<BackendManager> {
        let file = file.iter().map(|url| BackendConfig::at(*url)).collect();
        Arc::new(
            BackendManager::start(
                file,
                HealthSettings::default(),
                PoolSettings::never_connecting(),
                None,
                Arc::new(ReloadHistory::default()),
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_discovered_id_the_file_defines_stays_the_files() {
        let manager = manager(&["http://127.0.0.1:1"]);
        let found = vec![
            BackendConfig::at("http://127.0.0.1:1"),
            BackendConfig::at("http://127.0.0.1:2"),
        ];
        manager
            .set_discovered("n", found, Duration::from_secs(1))
            .await
            .unwrap();
        let roles = manager.roles();
        assert_eq!(roles.sources["127.0.0.1:1"], Source::Config);
        assert_eq!(roles.sources["127.0.0.1:2"], Source::Dns);
        assert_eq!(roles.discovered["127.0.0.1:2"], "n");
        assert_eq!(manager.upstreams().snapshot().len(), 2);
    }

    #[tokio::test]
    async fn an_unchanged_answer_builds_no_new_set_and_the_last_backends_are_never_removed() {
        let manager = manager(&[]);
        let found = vec![BackendConfig::at("http://127.0.0.1:2")];
        let timeout = Duration::from_secs(1);
        manager
            .set_discovered("n", found.clone(), timeout)
            .await
            .unwrap();
        let generation = manager.upstreams().snapshot().generation;
        let diff = manager.set_discovered("n", found, timeout).await.unwrap();
        assert!(diff.is_empty());
        assert_eq!(manager.upstreams().snapshot().generation, generation);
        let refused = manager
            .set_discovered("n", Vec::new(), timeout)
            .await
            .unwrap_err();
        assert!(refused.contains("no backend"), "{refused}");
        assert_eq!(manager.upstreams().snapshot().len(), 1);
    }
}
