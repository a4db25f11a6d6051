//! Watching the plugin and config files, and SIGHUP.
//!
//! Files are watched through their directories, not themselves: an editor's or a deploy
//! tool's atomic rename replaces the inode a file watch would follow, and a Kubernetes
//! ConfigMap update flips the `..data` symlink in the directory without touching the file's
//! name. Both directories, of the path as given and of the file it resolves to, are watched,
//! so writes in place through a symlink are seen too; the set is refreshed after each change
//! because a symlink flip moves the target to a new directory.
//!
//! Only events that name a watched file (as given or as resolved), or one of the `..`-prefixed
//! entries Kubernetes' atomic writer flips, start a debounce: a log file written beside the
//! config must not start reloads, and a reload that logs (a refusal, a setting that needs a
//! restart) would otherwise start the next one, every debounce period, for ever. Once the
//! directories are quiet the reloader re-reads the files and compares contents.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Reloader, VersionSource};
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
    let names = WatchedNames::default();
    let relevant = names.clone();
    let watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if !event.kind.is_access() && relevant.concerns(&event.paths) => {
                let _ = events.send(());
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "file watch error"),
        })?;
    let mut watch = DirWatch {
        watcher,
        dirs: BTreeSet::new(),
        names,
    };
    watch.refresh(&reloader.watched_files().await);
    tokio::spawn(run(reloader, watch, rx, debounce, stop.clone()));
    Ok(())
}

/// The watcher and the directories it watches now.
struct DirWatch {
    watcher: RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
    names: WatchedNames,
}

/// The file names whose changes matter, shared with the watcher's callback thread.
#[derive(Clone, Default)]
struct WatchedNames(Arc<RwLock<BTreeSet<OsString>>>);

impl WatchedNames {
    /// The names of `files` as given and as resolved through symlinks.
    fn set(&self, files: &[PathBuf]) {
        let names = files
            .iter()
            .flat_map(|file| [Some(file.clone()), std::fs::canonicalize(file).ok()])
            .flatten()
            .filter_map(|path| path.file_name().map(OsString::from))
            .collect();
        *self.0.write().expect("watched names lock") = names;
    }

    /// Whether an event on `paths` may have changed a watched file. An event naming no path
    /// (the watcher lost track and asks for a rescan) may have.
    fn concerns(&self, paths: &[PathBuf]) -> bool {
        let names = self.0.read().expect("watched names lock");
        paths.is_empty()
            || paths.iter().any(|path| {
                path.file_name().is_some_and(|name| {
                    names.contains(name) || name.as_encoded_bytes().starts_with(b"..")
                })
            })
    }
}

impl DirWatch {
    /// Watch the directories `files` live in now; stop watching ones no longer needed.
    fn refresh(&mut self, files: &[PathBuf]) {
        self.names.set(files);
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
        let _ = reloader.reload_all(VersionSource::File).await;
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
                    let _ = reloader.reload_all(VersionSource::File).await;
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
    use std::path::PathBuf;

    use super::{WatchedNames, directories_of};

    #[test]
    fn only_events_naming_a_watched_file_or_a_configmap_entry_concern_the_watch() {
        let names = WatchedNames::default();
        names.set(&[
            PathBuf::from("/etc/lbx/lbx.toml"),
            PathBuf::from("/etc/lbx/rr.wasm"),
        ]);
        let concerns = |paths: &[&str]| {
            let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
            names.concerns(&paths)
        };
        assert!(concerns(&["/etc/lbx/lbx.toml"]));
        // An editor's atomic save: the rename names both.
        assert!(concerns(&["/etc/lbx/.lbx.toml.swp", "/etc/lbx/lbx.toml"]));
        assert!(concerns(&["/etc/lbx/..data_tmp"]));
        assert!(concerns(&[]));
        assert!(!concerns(&["/etc/lbx/lbx.log"]));
        assert!(!concerns(&["/etc/lbx/lbx.state.json"]));
    }

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
