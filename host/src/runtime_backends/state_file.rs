//! The state file: the runtime changes as JSON, written atomically ([`crate::durable`]), so a
//! crash or a full disk leaves either the old file or the new one, never half of one.

use std::path::Path;

use super::changes::{FORMAT_VERSION, RuntimeChanges};

/// Read the state file; a missing file means no changes.
pub fn load(path: &Path) -> Result<RuntimeChanges, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RuntimeChanges::new()),
        Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
    };
    let changes: RuntimeChanges = serde_json::from_str(&text).map_err(|e| {
        format!(
            "state file {} is not valid ({e}); fix it, or move it away to start from the \
             config file alone",
            path.display()
        )
    })?;
    if changes.version != FORMAT_VERSION {
        return Err(format!(
            "state file {} has format version {}, this lbx reads version {FORMAT_VERSION}",
            path.display(),
            changes.version
        ));
    }
    Ok(changes)
}

/// Replace the state file with `changes` (durably: see [`crate::durable`]).
pub fn save(path: &Path, changes: &RuntimeChanges) -> Result<(), String> {
    let mut text = serde_json::to_vec_pretty(changes).expect("the state serialises");
    text.push(b'\n');
    crate::durable::replace(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BackendConfig;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("lbx-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn what_is_saved_loads_back() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("lbx.state.json");
        assert_eq!(
            load(&path).unwrap(),
            RuntimeChanges::new(),
            "missing = empty"
        );
        let mut changes = RuntimeChanges::new();
        changes
            .add(BackendConfig::at("http://127.0.0.1:7").into(), &[], &[])
            .unwrap();
        save(&path, &changes).unwrap();
        assert_eq!(load(&path).unwrap(), changes);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_file_is_named_not_ignored() {
        let dir = temp_dir("damaged");
        let path = dir.join("lbx.state.json");
        std::fs::write(&path, "{\"version\": 1, \"added\": [").unwrap();
        let err = load(&path).unwrap_err();
        assert!(
            err.contains("lbx.state.json") && err.contains("not valid"),
            "{err}"
        );
        std::fs::write(&path, "{\"version\": 9}").unwrap();
        assert!(load(&path).unwrap_err().contains("version 9"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
