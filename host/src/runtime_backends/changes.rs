//! What the admin API changed about the backend set, and the rule that merges it with the
//! config file. This is exactly what the state file holds.
//!
//! The merge rule (documented in the README, each branch tested below):
//! 1. The config file defines the base set, in its order.
//! 2. The state records, by id: backends **added** through the API (placed after the file's,
//!    in the order they were added), file backends **removed** through the API, and
//!    **overrides** of a file backend's `weight`, `labels` or drain state.
//! 3. Each removal and override remembers the file's entry as it was when the API changed it.
//!    If the file's entry for that id has been edited since, the file wins: the removal or
//!    override is cleared (and logged). If the id is gone from the file, it is cleared too.
//! 4. If the file now defines an id that the API added, the file wins and the added backend is
//!    dropped from the state.
//!
//! And what the API may ask of it ([`RuntimeChanges::add`]):
//! - `POST` of an id the file defines and that is in force is a conflict (409);
//! - `POST` of an id the file defines and the API **removed** undoes the removal: the file's
//!   entry is back, in its place in the file's order, with source `config`. The body describes
//!   that same backend: a field it leaves out takes the file's value; a `weight` or `labels`
//!   that differs from the file's is kept as an override (exactly what a `PATCH` would make);
//!   any other difference (`url`, `health`, the TLS settings) is refused as a conflict naming
//!   the fields, since an override cannot express it and the file is where it is changed. The
//!   restored backend is not drained: a drain made before the removal went with it.
//!
//! So an operator who edits a backend in the file always gets what the file says, and changes
//! made at runtime survive every reload and restart that does not touch that backend.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::config::{BackendConfig, Problem, parse_backend_url};

/// Version of the state file format written by this lbx.
pub const FORMAT_VERSION: u32 = 1;

/// The runtime changes to the file's backend set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeChanges {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Backends added through the API, in the order they were added.
    #[serde(default)]
    pub added: Vec<Added>,
    /// File backends the API changed.
    #[serde(default)]
    pub overrides: Vec<Override>,
    /// File backends the API removed.
    #[serde(default)]
    pub removed: Vec<Removal>,
}

/// A backend added through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Added {
    /// The backend, as posted (with its id filled in).
    pub backend: BackendConfig,
    /// Drained by an operator.
    #[serde(default)]
    pub drain: bool,
}

/// A change the API made to a backend the config file defines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The backend's id.
    pub id: String,
    /// The weight set through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The labels set through the API (replacing the file's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Drained by an operator.
    #[serde(default)]
    pub drain: bool,
    /// The file's entry when the change was made; if the file's entry differs now, the file
    /// was edited since and wins.
    pub file_entry: BackendConfig,
}

/// A file backend the API removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Removal {
    /// The backend's id.
    pub id: String,
    /// The file's entry when it was removed (as for [`Override::file_entry`]).
    pub file_entry: BackendConfig,
}

/// Where a backend in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config file (possibly with an API override).
    Config,
    /// Added through the admin API.
    Api,
    /// Found in DNS (`[[discovery.dns]]`; [`super::Roles::discovered`] names which name).
    Dns,
}

impl Source {
    /// `config`, `api` or `dns`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Api => "api",
            Source::Dns => "dns",
        }
    }
}

/// One backend of the merged set.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// Its settings, overrides applied.
    pub backend: BackendConfig,
    /// Its id.
    pub id: String,
    /// Drained by an operator.
    pub drain: bool,
    /// Where it comes from.
    pub source: Source,
}

/// The file and the runtime changes merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The backends in force, in order.
    pub backends: Vec<Effective>,
    /// The changes that still apply (the ones the file overruled are gone).
    pub changes: RuntimeChanges,
    /// One sentence for each change the file overruled.
    pub cleared: Vec<String>,
}

/// A change the API was asked for and cannot make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No backend has this id.
    #[error("no backend with id {0:?}")]
    NotFound(String),
    /// The id is taken, or the change would leave the set unusable; the text says which.
    #[error("{0}")]
    Conflict(String),
}

/// A backend body posted to the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Posted {
    /// The backend, with the fields the body left out at their defaults.
    pub backend: BackendConfig,
    /// The top-level fields the body set; `None` when every field counts as set. Re-adding a
    /// removed file backend takes the file's value for a field left out.
    pub given: Option<BTreeSet<String>>,
}

impl Posted {
    fn gave(&self, field: &str) -> bool {
        self.given
            .as_ref()
            .is_none_or(|given| given.contains(field))
    }
}

impl From<BackendConfig> for Posted {
    /// A backend built in code: every field counts as set.
    fn from(backend: BackendConfig) -> Self {
        Self {
            backend,
            given: None,
        }
    }
}

/// What a `POST` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A backend of the API's own was added.
    Added,
    /// A file backend the API had removed is back (see the module doc).
    Restored,
}

/// What `PATCH` may change.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    /// New weight.
    pub weight: Option<u32>,
    /// New labels (replacing all of them).
    pub labels: Option<BTreeMap<String, String>>,
    /// Drain (`true`) or undrain (`false`).
    pub drain: Option<bool>,
}

impl Patch {
    /// What is wrong with its values, by field (bare names, as the API reports them).
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if self.weight == Some(0) {
            problems.push(Problem {
                key: "weight".into(),
                message: "must be at least 1".into(),
            });
        }
        problems
    }
}

/// The id a backend entry resolves to: its `id`, or `host:port` of its URL.
pub fn backend_id(backend: &BackendConfig) -> String {
    backend.id.clone().unwrap_or_else(|| {
        parse_backend_url(&backend.url)
            .map(|address| address.authority.to_string())
            .unwrap_or_else(|_| backend.url.clone())
    })
}

impl RuntimeChanges {
    /// No changes.
    pub fn new() -> Self {
        Self {
            version: FORMAT_VERSION,
            ..Self::default()
        }
    }

    /// Whether there is nothing to re-apply.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.overrides.is_empty() && self.removed.is_empty()
    }

    /// Merge with the file's backends (see the module doc for the rule).
    pub fn merge(&self, file: &[BackendConfig]) -> Merged {
        let mut cleared = Vec::new();
        let mut kept = RuntimeChanges::new();
        let file_ids: Vec<String> = file.iter().map(backend_id).collect();
        let in_file: HashSet<&str> = file_ids.iter().map(String::as_str).collect();
        let mut backends = Vec::with_capacity(file.len() + self.added.len());

        for (entry, id) in file.iter().zip(&file_ids) {
            if let Some(removal) = self.removed.iter().find(|r| &r.id == id) {
                if removal.file_entry == *entry {
                    kept.removed.push(removal.clone());
                    continue;
                }
                cleared.push(format!(
                    "backend {id:?} was removed through the admin API, but the config file \
                     changed it since: the file wins and it is back"
                ));
            }
            let mut effective = Effective {
                backend: entry.clone(),
                id: id.clone(),
                drain: false,
                source: Source::Config,
            };
            if let Some(change) = self.overrides.iter().find(|o| &o.id == id) {
                if change.file_entry == *entry {
                    change.apply(&mut effective);
                    kept.overrides.push(change.clone());
                } else {
                    cleared.push(format!(
                        "backend {id:?} was changed through the admin API, but the config file \
                         changed it since: the file's version is in force and the API change is \
                         cleared"
                    ));
                }
            }
            backends.push(effective);
        }
        for gone in self
            .overrides
            .iter()
            .map(|o| &o.id)
            .chain(self.removed.iter().map(|r| &r.id))
            .filter(|id| !in_file.contains(id.as_str()))
        {
            cleared.push(format!(
                "backend {gone:?} is no longer in the config file: its admin API change is cleared"
            ));
        }
        for added in &self.added {
            let id = backend_id(&added.backend);
            if in_file.contains(id.as_str()) {
                // Say what is in force: the file's entry, unless the API removed it.
                let in_force = if kept.removed.iter().any(|r| r.id == id) {
                    "its entry there was removed through the admin API, so neither is in force"
                } else {
                    "the file's entry is in force"
                };
                cleared.push(format!(
                    "backend {id:?} was added through the admin API, but the config file now \
                     defines it: {in_force}"
                ));
                continue;
            }
            kept.added.push(added.clone());
            backends.push(Effective {
                backend: added.backend.clone(),
                id,
                drain: added.drain,
                source: Source::Api,
            });
        }
        Merged {
            backends,
            changes: kept,
            cleared,
        }
    }

    /// Record a backend posted to the API. `taken` are the ids in force; `file` is the config
    /// file's backends (a removed one of them is restored, see the module doc).
    pub fn add(
        &mut self,
        posted: Posted,
        taken: &[&str],
        file: &[BackendConfig],
    ) -> Result<Outcome, ChangeError> {
        let id = backend_id(&posted.backend);
        if taken.contains(&id.as_str()) {
            let whose = if file.iter().any(|b| backend_id(b) == id) {
                " (the config file defines it)"
            } else {
                ""
            };
            return Err(ChangeError::Conflict(format!(
                "a backend with id {id:?} already exists{whose}"
            )));
        }
        let removed = self.removed.iter().position(|r| r.id == id);
        if let (Some(i), Some(entry)) = (removed, file.iter().find(|b| backend_id(b) == id)) {
            return self.restore(i, &posted, entry, file);
        }
        self.added.push(Added {
            backend: BackendConfig {
                id: Some(id),
                ..posted.backend
            },
            drain: false,
        });
        Ok(Outcome::Added)
    }

    /// Undo removal `i` of the file's `entry`, with the posted weight and labels as an
    /// override where they differ from the file's.
    fn restore(
        &mut self,
        i: usize,
        posted: &Posted,
        entry: &BackendConfig,
        file: &[BackendConfig],
    ) -> Result<Outcome, ChangeError> {
        let id = self.removed[i].id.clone();
        let body = &posted.backend;
        let same_address = match (parse_backend_url(&body.url), parse_backend_url(&entry.url)) {
            (Ok(posted), Ok(filed)) => posted == filed,
            _ => body.url == entry.url,
        };
        let mut differ = Vec::new();
        if !same_address {
            differ.push(format!("url (the file has {:?})", entry.url));
        }
        for (field, same) in [
            ("health", body.health == entry.health),
            ("ca", body.ca == entry.ca),
            ("server_name", body.server_name == entry.server_name),
            (
                "insecure_skip_verify",
                body.insecure_skip_verify == entry.insecure_skip_verify,
            ),
        ] {
            if posted.gave(field) && !same {
                differ.push(field.to_string());
            }
        }
        if !differ.is_empty() {
            return Err(ChangeError::Conflict(format!(
                "backend {id:?} is defined by the config file and was removed through the admin \
                 API; posting it again brings the file's entry back, but this body differs from \
                 it in {}: change that in the config file, or add this backend under another id \
                 (only weight and labels can differ, kept as an override)",
                differ.join(", ")
            )));
        }
        self.removed.remove(i);
        let patch = Patch {
            weight: posted.gave("weight").then_some(body.weight),
            labels: posted.gave("labels").then(|| body.labels.clone()),
            drain: None,
        };
        self.patch(&id, &patch, file)?;
        Ok(Outcome::Restored)
    }

    /// Apply `patch` to backend `id`; `file` is the config file's backends.
    pub fn patch(
        &mut self,
        id: &str,
        patch: &Patch,
        file: &[BackendConfig],
    ) -> Result<(), ChangeError> {
        if let Some(added) = self.added.iter_mut().find(|a| backend_id(&a.backend) == id) {
            if let Some(weight) = patch.weight {
                added.backend.weight = weight;
            }
            if let Some(labels) = &patch.labels {
                added.backend.labels.clone_from(labels);
            }
            if let Some(drain) = patch.drain {
                added.drain = drain;
            }
            return Ok(());
        }
        let entry = self.live_file_entry(id, file)?;
        let position = self.overrides.iter().position(|o| o.id == id);
        let mut change = match position {
            Some(i) => self.overrides.remove(i),
            None => Override {
                id: id.to_string(),
                weight: None,
                labels: None,
                drain: false,
                file_entry: entry.clone(),
            },
        };
        if let Some(weight) = patch.weight {
            change.weight = (weight != entry.weight).then_some(weight);
        }
        if let Some(labels) = &patch.labels {
            change.labels = (*labels != entry.labels).then(|| labels.clone());
        }
        if let Some(drain) = patch.drain {
            change.drain = drain;
        }
        // An override that changes nothing is not kept: the file alone describes the backend.
        if change.weight.is_some() || change.labels.is_some() || change.drain {
            self.overrides
                .insert(position.unwrap_or(self.overrides.len()), change);
        }
        Ok(())
    }

    /// Record the removal of backend `id`.
    pub fn remove(&mut self, id: &str, file: &[BackendConfig]) -> Result<(), ChangeError> {
        if let Some(i) = self.added.iter().position(|a| backend_id(&a.backend) == id) {
            self.added.remove(i);
            return Ok(());
        }
        let entry = self.live_file_entry(id, file)?.clone();
        self.overrides.retain(|o| o.id != id);
        self.removed.push(Removal {
            id: id.to_string(),
            file_entry: entry,
        });
        Ok(())
    }

    /// The file's entry for `id`, if that backend is in force (not removed).
    fn live_file_entry<'f>(
        &self,
        id: &str,
        file: &'f [BackendConfig],
    ) -> Result<&'f BackendConfig, ChangeError> {
        if self.removed.iter().any(|r| r.id == id) {
            return Err(ChangeError::NotFound(id.to_string()));
        }
        file.iter()
            .find(|b| backend_id(b) == id)
            .ok_or_else(|| ChangeError::NotFound(id.to_string()))
    }
}

impl Override {
    fn apply(&self, effective: &mut Effective) {
        if let Some(weight) = self.weight {
            effective.backend.weight = weight;
        }
        if let Some(labels) = &self.labels {
            effective.backend.labels.clone_from(labels);
        }
        effective.drain = self.drain;
    }
}

#[cfg(test)]
mod tests;
