//! The canary's state file: what a restarted lbx needs to resume a canary or to know it must
//! abort it — the candidate's file and sha256, its config, the steps and gates, the step it
//! had reached, and what the operator asked for on restart. Written (durably) at each
//! transition. A restarted lbx never promotes: it resumes at the saved step with fresh figures,
//! or records the canary as aborted.
//!
//! The file sits beside the runtime state file: `<config name>.canary.json` next to the config
//! (or next to `[admin] state_file`); without either there is none, and a restart ends the
//! canary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Gates, State};

/// The format this lbx writes and reads.
pub const VERSION: u32 = 1;

/// What a restart does with a canary in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRestart {
    /// End it: the live version decides every request (the default).
    #[default]
    Abort,
    /// Start it again at the step it had reached, with fresh figures.
    Resume,
}

/// A canary as its state file keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Saved {
    /// [`VERSION`].
    pub version: u32,
    /// Running, or how it ended.
    pub state: State,
    /// The candidate's file.
    pub path: PathBuf,
    /// Its sha256 when the canary started: a resumed canary must find the same bytes.
    pub sha256: String,
    /// Its `init` config (JSON text).
    pub config_json: String,
    /// The shares, in percent.
    pub steps: Vec<f64>,
    /// Each step's length.
    #[serde(with = "humantime_serde")]
    pub step_duration: Duration,
    /// What keeps a user on one side (`client-ip`, `header:NAME`, `cookie:NAME`).
    pub key: String,
    /// The gates.
    pub gates: Gates,
    /// The step reached (index into `steps`).
    pub step: usize,
    /// What a restart does.
    pub on_restart: OnRestart,
    /// The last transition's detail.
    pub detail: String,
}

/// The canary state file for the runtime state file `state_file`.
pub fn beside(state_file: &Path) -> PathBuf {
    let stem = state_file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem
        .strip_suffix(".state.json")
        .or_else(|| stem.strip_suffix(".json"))
        .unwrap_or(&stem)
        .to_string();
    state_file.with_file_name(format!("{stem}.canary.json"))
}

/// The saved canary, if the file exists.
pub fn load(path: &Path) -> Result<Option<Saved>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read canary state {}: {e}", path.display())),
    };
    let saved: Saved = serde_json::from_str(&text).map_err(|e| {
        format!(
            "canary state {} is not valid ({e}); move it away to start without it",
            path.display()
        )
    })?;
    if saved.version != VERSION {
        return Err(format!(
            "canary state {} has format version {}, this lbx reads version {VERSION}",
            path.display(),
            saved.version
        ));
    }
    Ok(Some(saved))
}

/// Replace the file with `saved`.
pub fn save(path: &Path, saved: &Saved) -> Result<(), String> {
    let mut text = serde_json::to_vec_pretty(saved).expect("the canary state serialises");
    text.push(b'\n');
    crate::durable::replace(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_sits_beside_the_state_file_and_what_is_saved_loads_back() {
        assert_eq!(
            beside(Path::new("/etc/lbx/lbx.state.json")),
            Path::new("/etc/lbx/lbx.canary.json")
        );
        assert_eq!(
            beside(Path::new("/var/x.json")),
            Path::new("/var/x.canary.json")
        );
        let dir = std::env::temp_dir().join(format!("lbx-canary-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lbx.canary.json");
        assert_eq!(load(&path).unwrap(), None);
        let saved = Saved {
            version: VERSION,
            state: State::Running,
            path: "/p/v2.wasm".into(),
            sha256: "ab".repeat(32),
            config_json: "{}".into(),
            steps: vec![1.0, 100.0],
            step_duration: Duration::from_secs(30),
            key: "client-ip".into(),
            gates: Gates::default(),
            step: 1,
            on_restart: OnRestart::Resume,
            detail: "now 100%".into(),
        };
        save(&path, &saved).unwrap();
        assert_eq!(load(&path).unwrap(), Some(saved));
        std::fs::write(&path, "{\"version\": 1").unwrap();
        assert!(load(&path).unwrap_err().contains("not valid"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
