//! The last shared state a node applied, kept on its disk with the revision it came from, so
//! the node can start while the store is down (APISIX cannot: apisix#3878) and serve what the
//! fleet last agreed on, then catch up from that revision when the store is back.
//!
//! The file holds the entries of the listing as they were read (keys and their JSON values;
//! modules stay in the [module cache](super::modules), status keys are not kept), so reading
//! it back goes through the same [`SharedState::decode`](super::shared::SharedState::decode)
//! checks as a listing. Written durably after each apply: a crash leaves the old file or the
//! new one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::{Entry, Layout};

/// Version of the file's format.
pub const FORMAT_VERSION: u32 = 1;

/// What the file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliedState {
    /// [`FORMAT_VERSION`].
    pub format: u32,
    /// The fleet's prefix: a file written for another prefix is not this fleet's state.
    pub prefix: String,
    /// The store revision the entries were read at.
    pub revision: i64,
    /// When it was applied (RFC 3339).
    pub applied_at: String,
    /// The entries, key and value (JSON text).
    pub entries: Vec<StoredEntry>,
}

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredEntry {
    /// The full key.
    pub key: String,
    /// Its value, as text (every kept value is JSON).
    pub value: String,
}

impl AppliedState {
    /// The state to keep for a listing at `revision`: the entries that make up the shared
    /// state (backends, plugin, settings; not modules or status keys).
    pub fn new(
        layout: &Layout,
        revision: i64,
        applied_at: String,
        kvs: &[(String, Vec<u8>)],
    ) -> Self {
        let entries = kvs
            .iter()
            .filter(|(key, _)| {
                matches!(
                    layout.entry(key),
                    Some(Entry::Backend(_) | Entry::Plugin | Entry::Settings(_))
                )
            })
            .filter_map(|(key, value)| {
                let value = String::from_utf8(value.clone()).ok()?;
                Some(StoredEntry {
                    key: key.clone(),
                    value,
                })
            })
            .collect();
        Self {
            format: FORMAT_VERSION,
            prefix: layout.root(),
            revision,
            applied_at,
            entries,
        }
    }

    /// The entries as a listing gives them.
    pub fn kvs(&self) -> Vec<(String, Vec<u8>)> {
        self.entries
            .iter()
            .map(|e| (e.key.clone(), e.value.clone().into_bytes()))
            .collect()
    }

    /// Write it to `path`, durably.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_vec_pretty(self).expect("the applied state serialises");
        crate::durable::replace(path, &text)
    }

    /// Read the state kept at `path` for the fleet under `layout`: `Ok(None)` when there is no
    /// file; an error naming the file when it cannot be used.
    pub fn load(path: &Path, layout: &Layout) -> Result<Option<Self>, String> {
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(format!(
                    "cannot read fleet state file {}: {e}",
                    path.display()
                ));
            }
        };
        let state: Self = serde_json::from_slice(&text)
            .map_err(|e| format!("fleet state file {} is not valid: {e}", path.display()))?;
        if state.format != FORMAT_VERSION {
            return Err(format!(
                "fleet state file {} has format {}, this lbx reads {FORMAT_VERSION}",
                path.display(),
                state.format
            ));
        }
        if state.prefix != layout.root() {
            return Err(format!(
                "fleet state file {} is for prefix {}, not {}",
                path.display(),
                state.prefix,
                layout.root()
            ));
        }
        Ok(Some(state))
    }
}

/// The default place of the fleet state file: beside the config file, `<config>.fleet.json`.
pub fn default_path(config_file: &Path) -> PathBuf {
    let mut name = config_file.file_name().unwrap_or_default().to_os_string();
    name.push(".fleet.json");
    config_file.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::shared::SharedState;

    fn kv(key: &str, value: &str) -> (String, Vec<u8>) {
        (key.to_string(), value.as_bytes().to_vec())
    }

    #[test]
    fn the_kept_state_reads_back_to_the_same_shared_state_without_modules_or_statuses() {
        let layout = Layout::new("/lbx");
        let listing = [
            kv(
                "/lbx/backends/a",
                r#"{"url": "http://127.0.0.1:9001", "drain": true}"#,
            ),
            kv("/lbx/settings/retry", r#"{"max_attempts": 3}"#),
            kv("/lbx/status/node-b", r#"{"node": "b"}"#),
            ("/lbx/modules/ab".into(), vec![0, 0x61, 0x73, 0x6d, 0xff]),
        ];
        let dir = std::env::temp_dir().join(format!("lbx-fleet-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = default_path(&dir.join("lbx.toml"));
        assert_eq!(path, dir.join("lbx.toml.fleet.json"));

        let kept = AppliedState::new(&layout, 41, "2026-12-03T12:00:00Z".into(), &listing);
        assert_eq!(kept.entries.len(), 2);
        kept.save(&path).unwrap();
        let read = AppliedState::load(&path, &layout).unwrap().unwrap();
        assert_eq!(read, kept);
        assert_eq!(read.revision, 41);
        let from_file = SharedState::decode(&layout, &read.kvs()).unwrap();
        let stored_modules = SharedState::decode(&layout, &listing)
            .unwrap()
            .stored_modules;
        assert_eq!(
            SharedState {
                stored_modules,
                ..from_file
            },
            SharedState::decode(&layout, &listing).unwrap()
        );

        let other_fleet = Layout::new("/staging");
        let refused = AppliedState::load(&path, &other_fleet).unwrap_err();
        assert!(
            refused.contains("is for prefix /lbx/, not /staging/"),
            "{refused}"
        );
        assert_eq!(
            AppliedState::load(&dir.join("none.json"), &layout),
            Ok(None)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
