//! Watching the plugin and config files, and SIGHUP.
//!
//! Files are watched through their directories, not themselves: an editor's or a deploy
//! tool's atomic rename replaces the inode a file watch would follow, and a Kubernetes
//! ConfigMap update flips the `..data` symlink in the directory without touching the file's
//! name. Both directories, of the path as given and of the file it resolves to, are watched,
//! so writes in place through a symlink are seen too; the set is refreshed after each change
//! because a symlink flip moves the target to a new directory.
//!
//! Any event in those directories starts a debounce; once they are quiet the reloader re-reads
//! the files and compares contents, so unrelated files in the same directory cost a hash and
//! nothing else.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Reloader;
use crate::shutdown::{self, StopReceiver};

/// However busy a directory is, a change is applied at most this many debounce periods late.
const MAX_DEBOUNCE_PERIODS: u32 = 10;

/// Start watching (if enabled) and listening for SIGHUP; both run until `stop`.
pub async fn spawn(reloader: Arc<Reloader>, stop: &StopReceiver) -> anyhow::Result<()> {
    spawn_sighup(reloader.clone(), stop.clone())?;
    let (enabled, debounce) = reloader.watch_settings().await;
    if !enabled || reloader.watched_files().await.is_empty() {
        return Ok(());
    }
    let (events, rx) = mpsc::unbounded_channel();
    let watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if !event.kind.is_access() => {
                let _ = events.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        })?;
    let mut watch = DirWatch {
        watcher,
        dirs: BTreeSet::new(),
    };
    watch.refresh(&reloader.watched_files().await);
    tokio::spawn(run(reloader, watch, rx, debounce, stop.clone()));
    Ok(())
}

/// The watcher and the directories it watches now.
struct DirWatch {
    watcher: RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
}

impl DirWatch {
    /// Watch the directories `files` live in now; stop watching ones no longer needed.
    fn refresh(&mut self, files: &[PathBuf]) {
        let wanted: BTreeSet<PathBuf> = files.iter().flat_map(|f| directories_of(f)).collect();
        for gone in self.dirs.difference(&wanted) {
            // The directory may already be gone (an old ConfigMap revision): nothing to undo.
            let _ = self.watcher.unwatch(gone);
        }
        for dir in wanted.difference(&self.dirs) {
            match self.watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => tracing::debug!(dir = %dir.display(), "watching for changes"),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; changes there need SIGHUP or the admin API")
                }
            }
        }
        self.dirs = wanted;
    }
}

async fn run(
    reloader: Arc<Reloader>,
    mut watch: DirWatch,
    mut events: mpsc::UnboundedReceiver<()>,
    debounce: Duration,
    mut stop: StopReceiver,
) {
    loop {
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            _ = shutdown::stopped(&mut stop) => return,
        }
        // Wait for the burst of events (truncate, writes, rename…) to end.
        let latest = tokio::time::Instant::now() + debounce * MAX_DEBOUNCE_PERIODS;
        loop {
            let quiet = tokio::time::Instant::now() + debounce;
            match tokio::time::timeout_at(quiet.min(latest), events.recv()).await {
                Ok(Some(())) if tokio::time::Instant::now() < latest => continue,
                Ok(None) => return,
                _ => break,
            }
        }
        // Errors are logged and counted by the reloader.
        let _ = reloader.reload_all().await;
        watch.refresh(&reloader.watched_files().await);
    }
}

fn spawn_sighup(reloader: Arc<Reloader>, mut stop: StopReceiver) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = hangups.recv() => {
                    tracing::info!("SIGHUP received; reloading");
                    let _ = reloader.reload_all().await;
                }
                _ = shutdown::stopped(&mut stop) => return,
            }
        }
    });
    Ok(())
}

/// The directory of `file` as given, and of what it resolves to through symlinks.
fn directories_of(file: &Path) -> Vec<PathBuf> {
    let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    let mut dirs: Vec<PathBuf> = absolute
        .parent()
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    if let Ok(resolved) = std::fs::canonicalize(&absolute)
        && let Some(parent) = resolved.parent()
        && !dirs.iter().any(|d| d == parent)
    {
        dirs.push(parent.to_path_buf());
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::directories_of;

    #[test]
    fn a_symlinked_file_is_watched_in_both_directories() {
        let root = std::env::temp_dir().join(format!("lbx-watch-{}", std::process::id()));
        let data = root.join("..2026_01");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("plugin.wasm"), b"x").unwrap();
        let link = root.join("plugin.wasm");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(data.join("plugin.wasm"), &link).unwrap();

        let dirs = directories_of(&link);
        let canonical_root = std::fs::canonicalize(&root).unwrap();
        assert_eq!(dirs[0], root);
        assert_eq!(dirs[1], canonical_root.join("..2026_01"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
