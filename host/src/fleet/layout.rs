//! Where fleet mode keeps each thing in the store: the key layout under the configured prefix
//! (default `/lbx`), and the reverse, what a key found under the prefix stands for.
//!
//! ```text
//! <prefix>/backends/<id>          one backend: a [[backend]] table as JSON, plus "drain"
//! <prefix>/plugin                 the plugin in force: {"sha256", "config", "url"?}
//! <prefix>/modules/<sha256>       a plugin module's bytes (those under MAX_STORED_MODULE)
//! <prefix>/settings/<section>     health, outlier, retry, timeouts: the TOML section as JSON
//! <prefix>/canary                 the fleet-wide canary: candidate, steps, gates, step, state
//! <prefix>/status/<node-id>       a node's status, under its lease
//! ```
//!
//! One key per backend (as APISIX keeps one per route), so two operators changing different
//! backends do not conflict, and a change touches only its own key. Backends are ordered by
//! id, which every node sees alike: a backend's position (its plugin index) is the same fleet-
//! wide. JSON, not TOML, because it is what etcdctl users and every language read and write.

/// Largest plugin module kept in the store itself: etcd refuses requests over 1.5 MiB by
/// default (`--max-request-bytes`), and a transaction carries the module with its other keys.
/// Larger modules travel by URL, checked against their sha256.
pub const MAX_STORED_MODULE: usize = 1024 * 1024;

/// The fleet-wide settings sections, each one key under `<prefix>/settings/`.
pub const SETTINGS_SECTIONS: [&str; 4] = ["health", "outlier", "retry", "timeouts"];

/// The keys of one fleet, under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The prefix without a trailing slash, e.g. `/lbx`.
    prefix: String,
}

/// What a key under the prefix stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<'k> {
    /// `backends/<id>`.
    Backend(&'k str),
    /// `plugin`.
    Plugin,
    /// `modules/<sha256>`.
    Module(&'k str),
    /// `settings/<section>`, one of [`SETTINGS_SECTIONS`].
    Settings(&'static str),
    /// `canary`: the fleet-wide canary.
    Canary,
    /// `status/<node-id>`.
    Status(&'k str),
    /// Anything else under the prefix: left alone (a newer lbx may write keys this one does
    /// not know), and listed so an operator sees a typo.
    Unknown,
}

impl Layout {
    /// The layout under `prefix` (`/lbx`, `/lbx/`, `lbx/prod` are all fine: a leading slash is
    /// added and a trailing one dropped).
    pub fn new(prefix: &str) -> Self {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Self { prefix }
    }

    /// The prefix every key of the fleet starts with, with its trailing slash: what a node
    /// lists and watches.
    pub fn root(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// `<prefix>/backends/<id>`.
    pub fn backend(&self, id: &str) -> String {
        format!("{}/backends/{id}", self.prefix)
    }

    /// `<prefix>/plugin`.
    pub fn plugin(&self) -> String {
        format!("{}/plugin", self.prefix)
    }

    /// `<prefix>/modules/<sha256>`.
    pub fn module(&self, sha256: &str) -> String {
        format!("{}/modules/{sha256}", self.prefix)
    }

    /// `<prefix>/canary`.
    pub fn canary(&self) -> String {
        format!("{}/canary", self.prefix)
    }

    /// `<prefix>/settings/<section>`.
    pub fn settings(&self, section: &str) -> String {
        format!("{}/settings/{section}", self.prefix)
    }

    /// `<prefix>/status/` (every node's status key starts with it).
    pub fn statuses(&self) -> String {
        format!("{}/status/", self.prefix)
    }

    /// `<prefix>/status/<node-id>`.
    pub fn status(&self, node: &str) -> String {
        format!("{}/status/{node}", self.prefix)
    }

    /// What `key` stands for; `None` when it is not under the prefix at all.
    pub fn entry<'k>(&self, key: &'k str) -> Option<Entry<'k>> {
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let named = |dir: &str| rest.strip_prefix(dir).filter(|name| is_name(name));
        Some(if rest == "plugin" {
            Entry::Plugin
        } else if rest == "canary" {
            Entry::Canary
        } else if let Some(id) = named("backends/") {
            Entry::Backend(id)
        } else if let Some(sha256) = named("modules/") {
            Entry::Module(sha256)
        } else if let Some(node) = named("status/") {
            Entry::Status(node)
        } else if let Some(section) = rest
            .strip_prefix("settings/")
            .and_then(|s| SETTINGS_SECTIONS.into_iter().find(|known| *known == s))
        {
            Entry::Settings(section)
        } else {
            Entry::Unknown
        })
    }
}

/// A name that can be the last part of a key: not empty, no `/`.
fn is_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_is_normalised_to_a_leading_slash_and_no_trailing_one() {
        for written in ["/lbx", "/lbx/", "lbx", "lbx//"] {
            assert_eq!(Layout::new(written).root(), "/lbx/", "{written}");
        }
        assert_eq!(
            Layout::new("/prod/lbx").backend("api-1"),
            "/prod/lbx/backends/api-1"
        );
    }

    #[test]
    fn every_key_the_layout_writes_is_read_back_as_what_it_stands_for() {
        let layout = Layout::new("/lbx");
        assert_eq!(
            layout.entry(&layout.backend("b1")),
            Some(Entry::Backend("b1"))
        );
        assert_eq!(layout.entry(&layout.plugin()), Some(Entry::Plugin));
        assert_eq!(
            layout.entry(&layout.module("ab12")),
            Some(Entry::Module("ab12"))
        );
        assert_eq!(
            layout.entry(&layout.status("node-a")),
            Some(Entry::Status("node-a"))
        );
        for section in SETTINGS_SECTIONS {
            assert_eq!(
                layout.entry(&layout.settings(section)),
                Some(Entry::Settings(section))
            );
        }
    }

    #[test]
    fn keys_outside_the_prefix_or_the_layout_are_told_apart() {
        let layout = Layout::new("/lbx");
        // Another fleet whose prefix merely starts with ours.
        assert_eq!(layout.entry("/lbx2/plugin"), None);
        assert_eq!(layout.entry("/other/plugin"), None);
        for unknown in [
            "/lbx/settings/pool",
            "/lbx/backends/",
            "/lbx/backends/a/b",
            "/lbx/plugins",
            "/lbx/",
        ] {
            assert_eq!(layout.entry(unknown), Some(Entry::Unknown), "{unknown}");
        }
    }
}
