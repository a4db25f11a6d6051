//! Replacing a small file durably: a temporary file in the same directory, flushed to disk,
//! renamed over the old one, and the directory synced, so a crash or a full disk leaves either
//! the old file or the new one, never half of one. For the runtime state lbx keeps across
//! restarts (admin API backend changes, a canary in progress).

use std::io::Write as _;
use std::path::Path;

/// Replace `path`'s contents with `bytes`; the error names the file and the step that failed.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| {
        format!("cannot write state file {} ({what}): {e}", path.display())
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state.json".into());
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = std::fs::File::create(&temporary)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .map_err(|e| fail("writing", e));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&temporary, path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail("renaming", e));
    }
    // The rename is durable only once the directory entry is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("syncing its directory", e))
}
