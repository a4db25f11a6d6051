//! The plugin versions put in force, newest first: what `GET /admin/plugin/history` lists and
//! what a rollback ([`super::rollback`]) goes back to.
//!
//! A version is the plugin's bytes and the settings it ran with (`[plugin] config`, deadline,
//! memory cap, body prefix): the same file with another `init` config routes differently, so
//! it is another version. Each entry keeps the bytes, so a version the compile cache
//! (`plugin/cache.rs`, a handful of entries) has let go of is rebuilt from them, even when the
//! file on disk has long been replaced. Entries of the same content share one copy; at most
//! `[plugin] history` entries (default 10) are kept, so at most that many distinct files.
//!
//! Every version put in force is an entry, a rollback included: the list reads like git's
//! reflog, and "N steps back" counts its entries from the one in force.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::PluginSpec;
use crate::plugin::LoadedPlugin;

/// Shortest sha256 prefix a rollback may name: fewer digits match by accident.
pub const MIN_PREFIX: usize = 4;

/// What put a version in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSource {
    /// The plugin file, read at start, after the file watcher saw it change, or on SIGHUP.
    File,
    /// An admin API reload: `POST /admin/plugin/reload`, `POST /admin/reload` (`lbx reload`).
    Api,
    /// A rollback to a version of this history (`POST /admin/plugin/rollback`).
    Rollback,
    /// The plugin compiled into the binary (`lbx demo`), which is never reloaded.
    Embedded,
    /// A shadow plugin promoted to live (`POST /admin/plugin/shadow/{name}/promote`).
    Shadow,
    /// A canary promoted to live, by its last step's gates or by the operator.
    Canary,
    /// The plugin the fleet published in its store (fleet mode).
    Fleet,
}

impl VersionSource {
    /// The name the admin API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Api => "api",
            Self::Rollback => "rollback",
            Self::Embedded => "embedded",
            Self::Shadow => "shadow",
            Self::Canary => "canary",
            Self::Fleet => "fleet",
        }
    }
}

/// One version put in force.
#[derive(Clone)]
pub struct Version {
    /// Its number in this process (the first version put in force is 1): an entry's identity
    /// while the list shifts under it.
    pub id: u64,
    /// SHA-256 of its bytes.
    pub hash: [u8; 32],
    /// When it was put in force.
    pub at: SystemTime,
    /// What put it in force.
    pub source: VersionSource,
    /// Where its bytes came from: the plugin file's path, or the embedded plugin's name.
    pub name: String,
    /// Its bytes, shared with every other entry of the same content.
    pub bytes: Arc<[u8]>,
    /// How it ran.
    pub spec: PluginSpec,
}

impl std::fmt::Debug for Version {
    /// Without the bytes, which can be megabytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("id", &self.id)
            .field("sha256", &self.sha256())
            .field("source", &self.source)
            .field("name", &self.name)
            .field("bytes", &self.bytes.len())
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Version {
    /// Hex SHA-256 of its bytes.
    pub fn sha256(&self) -> String {
        hex(&self.hash)
    }

    /// Whether `plugin` is this version: the same bytes run the same way.
    pub fn is_running_as(&self, plugin: &LoadedPlugin) -> bool {
        *plugin.content_hash() == self.hash && plugin.options().spec() == self.spec
    }
}

/// The history as the admin API shows it.
#[derive(Debug, Clone)]
pub struct VersionList {
    /// Most entries kept (`[plugin] history`).
    pub capacity: usize,
    /// The entry in force, if one is (none when the plugin was removed from the config).
    pub in_force: Option<u64>,
    /// The entries, newest first.
    pub versions: Vec<Version>,
}

/// Why a version asked for is not in the history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lookup {
    /// Nothing matches.
    #[error("{0}")]
    Unknown(String),
    /// A prefix that matches more than one version.
    #[error("{0}")]
    Ambiguous(String),
}

/// The bounded, newest-first list of versions put in force.
#[derive(Debug)]
pub struct PluginVersions {
    capacity: usize,
    versions: VecDeque<Version>,
    in_force: Option<u64>,
    next_id: u64,
}

impl PluginVersions {
    /// An empty history keeping at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            versions: VecDeque::new(),
            in_force: None,
            next_id: 1,
        }
    }

    /// Keep at most `capacity` entries from now on; the oldest beyond it go now.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.versions.truncate(self.capacity);
    }

    /// Record the version `hash` (its `bytes`, read from `name`, run as `spec`) as the one in
    /// force.
    pub fn put_in_force(
        &mut self,
        hash: [u8; 32],
        name: String,
        bytes: Arc<[u8]>,
        spec: PluginSpec,
        source: VersionSource,
    ) -> Version {
        // One copy of each content, however often it comes back.
        let bytes = self
            .versions
            .iter()
            .find(|v| v.hash == hash)
            .map_or(bytes, |v| v.bytes.clone());
        let version = Version {
            id: self.next_id,
            hash,
            at: SystemTime::now(),
            source,
            name,
            bytes,
            spec,
        };
        self.next_id += 1;
        self.in_force = Some(version.id);
        self.versions.push_front(version.clone());
        self.versions.truncate(self.capacity);
        version
    }

    /// No version is in force any more (the config dropped its plugin).
    pub fn none_in_force(&mut self) {
        self.in_force = None;
    }

    /// The whole list.
    pub fn list(&self) -> VersionList {
        VersionList {
            capacity: self.capacity,
            in_force: self.in_force,
            versions: self.versions.iter().cloned().collect(),
        }
    }

    /// The newest version whose sha256 starts with `prefix` (lowercase hex), if exactly one
    /// content matches.
    pub fn by_prefix(&self, prefix: &str) -> Result<Version, Lookup> {
        let mut matching = self
            .versions
            .iter()
            .filter(|v| v.sha256().starts_with(prefix));
        let Some(newest) = matching.next() else {
            return Err(Lookup::Unknown(format!(
                "no version in the history has a sha256 starting with {prefix} (GET \
                 /admin/plugin/history lists them)"
            )));
        };
        if let Some(other) = matching.find(|v| v.hash != newest.hash) {
            return Err(Lookup::Ambiguous(format!(
                "{prefix} is the start of more than one version's sha256 ({} and {}); give \
                 more digits",
                short(&newest.sha256()),
                short(&other.sha256())
            )));
        }
        Ok(newest.clone())
    }

    /// The entry `steps` entries older than the one in force (the newest when none is).
    pub fn steps_back(&self, steps: usize) -> Result<Version, Lookup> {
        let from = self
            .in_force
            .and_then(|id| self.versions.iter().position(|v| v.id == id))
            .unwrap_or(0);
        from.checked_add(steps)
            .and_then(|at| self.versions.get(at))
            .cloned()
            .ok_or_else(|| {
                Lookup::Unknown(format!(
                    "the history holds {} version(s) ([plugin] history = {}); there is none \
                     {steps} step(s) back",
                    self.versions.len(),
                    self.capacity
                ))
            })
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first 12 digits of a hex sha256, for messages.
pub fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(config_json: &str) -> PluginSpec {
        PluginSpec {
            config_json: config_json.into(),
            deadline: Duration::from_millis(5),
            memory_bytes: 64 << 20,
            body_prefix: 0,
        }
    }

    fn put(versions: &mut PluginVersions, content: &[u8], source: VersionSource) -> Version {
        use sha2::Digest;
        versions.put_in_force(
            sha2::Sha256::digest(content).into(),
            "plugin.wasm".into(),
            Arc::from(content),
            spec("{}"),
            source,
        )
    }

    #[test]
    fn keeps_the_newest_versions_first_up_to_its_capacity() {
        let mut versions = PluginVersions::new(3);
        for content in [b"v1", b"v2", b"v3", b"v4"] {
            put(&mut versions, content, VersionSource::File);
        }
        let list = versions.list();
        let kept: Vec<&[u8]> = list.versions.iter().map(|v| &*v.bytes).collect();
        assert_eq!(kept, [b"v4", b"v3", b"v2"]);
        assert_eq!(list.in_force, Some(list.versions[0].id));
        versions.set_capacity(1);
        assert_eq!(versions.list().versions.len(), 1);
        // A capacity of 0 would forget the version in force.
        versions.set_capacity(0);
        assert_eq!(versions.list().capacity, 1);
    }

    #[test]
    fn a_content_that_comes_back_shares_the_bytes_kept_for_it() {
        let mut versions = PluginVersions::new(10);
        let first = put(&mut versions, b"v1", VersionSource::File);
        put(&mut versions, b"v2", VersionSource::Api);
        let again = put(&mut versions, b"v1", VersionSource::Rollback);
        assert!(Arc::ptr_eq(&first.bytes, &again.bytes));
        assert_ne!(first.id, again.id);
    }

    #[test]
    fn steps_count_entries_back_from_the_one_in_force() {
        let mut versions = PluginVersions::new(10);
        let v1 = put(&mut versions, b"v1", VersionSource::File);
        let v2 = put(&mut versions, b"v2", VersionSource::File);
        put(&mut versions, b"v3", VersionSource::File);
        assert_eq!(versions.steps_back(1).unwrap().id, v2.id);
        assert_eq!(versions.steps_back(2).unwrap().id, v1.id);
        assert!(matches!(versions.steps_back(3), Err(Lookup::Unknown(_))));
        assert!(matches!(
            versions.steps_back(usize::MAX),
            Err(Lookup::Unknown(_))
        ));
    }

    #[test]
    fn a_prefix_names_the_newest_entry_of_exactly_one_content() {
        let mut versions = PluginVersions::new(10);
        let v1 = put(&mut versions, b"v1", VersionSource::File);
        put(&mut versions, b"v2", VersionSource::File);
        let v1_again = put(&mut versions, b"v1", VersionSource::Rollback);
        assert_eq!(
            versions.by_prefix(&v1.sha256()[..8]).unwrap().id,
            v1_again.id
        );
        assert!(matches!(
            versions.by_prefix("ffffffffffff"),
            Err(Lookup::Unknown(_))
        ));
        // Every sha256 starts with the empty prefix: two contents match.
        assert!(matches!(versions.by_prefix(""), Err(Lookup::Ambiguous(_))));
    }
}
