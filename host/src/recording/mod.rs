//! Recording live routing decisions for `lbx replay`: a sample of first decisions — the
//! request metadata a plugin could ask for (method, target, authority, client, headers and
//! cookies, deny-listed values hashed: [`redact`]), the backend set and statistics it was
//! decided on, who decided and where the request went — written as JSON lines to a file
//! that is rotated at a size bound ([`format`] and docs/recording-format.md describe it).
//!
//! Off the request path like the shadows: the live side draws a number and, for a sampled
//! request, copies its metadata into a bounded queue; a writer thread encodes and writes
//! ([`session`]). Switched on by `[record]` at start and at runtime by `POST /admin/record`;
//! the counters outlive sessions so `/metrics` series only grow.
//!
//! Not recorded (version 1): the body prefix (`[plugin] body_prefix`) and backend signals;
//! a plugin that reads them replays without them.

pub mod format;
mod metrics;
mod redact;
mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use serde::Serialize;

pub use metrics::RecordMetrics;
pub use redact::PREFIX as HASH_PREFIX;
pub use session::{QUEUE, Settings, path_problem, rotated};

use crate::config::RecordConfig;
use crate::plugin::{DecidedBy, RequestMeta, Route};
use crate::shadow::Choice;
use crate::upstream::BackendSet;
use session::Session;

/// What happened to sampled decisions, over every session since lbx started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Written to the file (and flushed).
    pub written: AtomicU64,
    /// Dropped because the writer's queue was full.
    pub dropped: AtomicU64,
    /// Lost to a write error.
    pub failed: AtomicU64,
    /// Files rotated.
    pub rotations: AtomicU64,
}

/// The recorder: on or off, and its figures.
#[derive(Debug, Default)]
pub struct Recording {
    active: ArcSwapOption<Session>,
    /// Serializes switching on and off.
    changes: Mutex<()>,
    counters: Arc<Counters>,
    /// `[record]`, whose settings `POST /admin/record` starts from.
    configured: Option<RecordConfig>,
}

/// Why recording could not be switched on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No `path` given and none configured.
    #[error("no recording file: give \"path\" (there is no [record] path to default to)")]
    NoPath,
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The file cannot be opened or rotated.
    #[error("cannot record to {path}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// What `GET /admin/record` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Whether decisions are being recorded.
    pub enabled: bool,
    /// The running session's settings (absent when off).
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    pub settings: Option<Settings>,
    /// When the running session started (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// Decisions written since lbx started.
    pub written: u64,
    /// Decisions dropped because the queue was full.
    pub dropped: u64,
    /// Decisions lost to write errors.
    pub failed: u64,
    /// Files rotated.
    pub rotations: u64,
    /// Decisions the queue holds at most.
    pub queue: usize,
}

impl Recording {
    /// A recorder that is off, switched on by `configured` (`[record]`) through
    /// [`Recording::start_configured`] or by the admin API.
    pub fn new(configured: Option<RecordConfig>) -> Self {
        Self {
            configured,
            ..Self::default()
        }
    }

    /// Switch on if `[record]` says so (at start).
    pub fn start_configured(&self) -> Result<(), StartError> {
        match &self.configured {
            Some(config) if config.enabled => self.start(None, None).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// Offer a first decision: recorded if a session runs and draws it. One atomic load when
    /// recording is off.
    pub fn offer(&self, meta: &RequestMeta, set: &Arc<BackendSet>, route: &Route, by: DecidedBy) {
        let session = self.active.load();
        let Some(session) = session.as_ref() else {
            return;
        };
        let Some(live) = Choice::of(route) else {
            return;
        };
        session.offer(meta, set, live, by.as_str());
    }

    /// Switch on, with `path` and `sample` instead of the configured ones when given (a
    /// running session is ended and its file kept; if the new one cannot start, one writing
    /// another file keeps running). Blocks on file I/O.
    pub fn start(
        &self,
        path: Option<std::path::PathBuf>,
        sample: Option<f64>,
    ) -> Result<Status, StartError> {
        let configured = self.configured.as_ref();
        let path = path
            .or_else(|| configured.map(|c| c.path.clone()))
            .ok_or(StartError::NoPath)?;
        let sample = sample.or(configured.map(|c| c.sample)).unwrap_or(1.0);
        if let Some(problem) = crate::config::record::sample_problem(sample) {
            return Err(StartError::Invalid(format!("sample: {problem}")));
        }
        let settings = Settings {
            path,
            sample,
            max_size: configured.map_or_else(
                || crate::config::record::default_max_size().as_u64(),
                |c| c.max_size.as_u64(),
            ),
            hashed_headers: configured
                .map_or_else(crate::config::record::default_hashed_headers, |c| {
                    c.hashed_headers.clone()
                }),
        };
        let _changing = self.lock_changes();
        // The running session keeps recording if the new one cannot start — unless it writes
        // the same file, which the new one would rotate under it: that one ends first.
        let same_file = self
            .active
            .load()
            .as_ref()
            .is_some_and(|running| running.settings.path == settings.path);
        if same_file && let Some(running) = self.active.swap(None) {
            running.stop();
        }
        let session = Session::start(settings.clone(), self.counters.clone()).map_err(|error| {
            StartError::Io {
                path: settings.path.display().to_string(),
                error,
            }
        })?;
        tracing::info!(path = %settings.path.display(), sample, "recording routing decisions");
        if let Some(replaced) = self.active.swap(Some(Arc::new(session))) {
            replaced.stop();
        }
        Ok(self.status())
    }

    /// Switch off: what is queued is written and the file closed before this returns.
    pub fn stop(&self) -> Status {
        let _changing = self.lock_changes();
        if let Some(running) = self.active.swap(None) {
            running.stop();
            tracing::info!(path = %running.settings.path.display(), "recording stopped");
        }
        self.status()
    }

    /// Whether a session runs, and the figures.
    pub fn status(&self) -> Status {
        let session = self.active.load_full();
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Status {
            enabled: session.is_some(),
            settings: session.as_ref().map(|s| s.settings.clone()),
            started: session
                .as_ref()
                .map(|s| humantime::format_rfc3339_millis(s.started).to_string()),
            written: count(&self.counters.written),
            dropped: count(&self.counters.dropped),
            failed: count(&self.counters.failed),
            rotations: count(&self.counters.rotations),
            queue: QUEUE,
        }
    }

    fn lock_changes(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
