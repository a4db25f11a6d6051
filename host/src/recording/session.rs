//! One recording session: from switching recording on to switching it off. Owns the sampler,
//! the bounded queue that carries sampled decisions off the request path, and the writer
//! thread that turns them into lines of the file, rotates it at `max_size` and flushes it
//! whenever the queue runs dry.
//!
//! The request path only draws a number and, for a sampled request, copies the request's
//! metadata and `try_send`s it: a full queue drops the sample (counted), it never waits.
//! Hashing deny-listed values, JSON encoding and file I/O all happen on the writer thread.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::SystemTime;

use super::Counters;
use super::format::{
    BackendsLine, DecisionLine, FORMAT, FileHeader, HASH, Line, RecordedBackend, RecordedChoice,
    VERSION,
};
use super::redact::Redactor;
use crate::plugin::RequestMeta;
use crate::sampler::Sampler;
use crate::shadow::Choice;
use crate::upstream::BackendSet;

/// Sampled decisions waiting for the writer at most; more are dropped.
pub const QUEUE: usize = 4096;

/// What a session records, and where.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Settings {
    /// The file (the previous one is kept as `<path>.1`).
    pub path: PathBuf,
    /// Share of first decisions recorded (0–1).
    pub sample: f64,
    /// Size at which the file is rotated, in bytes.
    pub max_size: u64,
    /// Header fields whose values are hashed.
    pub hashed_headers: Vec<String>,
}

/// One decision as taken on the request path, before anything is encoded.
#[derive(Debug)]
pub struct Taken {
    at: SystemTime,
    meta: RequestMeta,
    set: Arc<BackendSet>,
    stats: Vec<u32>,
    by: &'static str,
    live: Choice,
}

enum Message {
    Decision(Box<Taken>),
    /// Flush and end: the session is being switched off.
    Stop,
}

/// A running session.
#[derive(Debug)]
pub struct Session {
    /// What it records.
    pub settings: Settings,
    /// When it started.
    pub started: SystemTime,
    sampler: Sampler,
    queue: SyncSender<Message>,
    counters: Arc<Counters>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Decision(_) => "Decision",
            Message::Stop => "Stop",
        })
    }
}

impl Session {
    /// Open the file (an earlier recording there is kept as `<path>.1`) and start the writer.
    /// Refuses to move or overwrite a file that is not an lbx recording.
    pub fn start(settings: Settings, counters: Arc<Counters>) -> std::io::Result<Self> {
        let started = SystemTime::now();
        let file = RecordingFile::open(&settings, started)?;
        let (queue, decisions) = mpsc::sync_channel(QUEUE);
        let writer = Writer {
            file,
            redactor: Redactor::new(&settings.hashed_headers),
            counters: counters.clone(),
            pending: 0,
        };
        let writer = std::thread::Builder::new()
            .name("lbx-record".into())
            .spawn(move || writer.run(&decisions))?;
        Ok(Self {
            sampler: Sampler::new(settings.sample),
            settings,
            started,
            queue,
            counters,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Record this decision if it is in the sample: a copy of the request's metadata and the
    /// statistics, handed to the writer, or dropped if its queue is full.
    pub fn offer(&self, meta: &RequestMeta, set: &Arc<BackendSet>, live: Choice, by: &'static str) {
        if !self.sampler.samples_next() {
            return;
        }
        let mut stats = Vec::with_capacity(set.len() * 5);
        crate::plugin::flatten_stats(set, &mut stats);
        let taken = Taken {
            at: SystemTime::now(),
            meta: meta.clone(),
            set: set.clone(),
            stats,
            by,
            live,
        };
        match self.queue.try_send(Message::Decision(Box::new(taken))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Write out what is queued, close the file and end the writer. Blocks until it has.
    pub fn stop(&self) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            let _ = self.queue.send(Message::Stop);
            let _ = writer.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Without a join: a session dropped without `stop` lets its writer finish alone.
        let _ = self.queue.try_send(Message::Stop);
    }
}

/// The writer thread's state.
struct Writer {
    file: RecordingFile,
    redactor: Redactor,
    counters: Arc<Counters>,
    /// Decisions written since the last flush (counted as written once flushed).
    pending: u64,
}

impl Writer {
    fn run(mut self, decisions: &Receiver<Message>) {
        loop {
            let message = match decisions.try_recv() {
                Ok(message) => message,
                Err(TryRecvError::Empty) => {
                    // The queue ran dry: what is written reaches the file now.
                    self.flush();
                    match decisions.recv() {
                        Ok(message) => message,
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            };
            match message {
                Message::Decision(taken) => self.write(&taken),
                Message::Stop => break,
            }
        }
        self.flush();
    }

    fn write(&mut self, taken: &Taken) {
        let line = self.encode(taken);
        match self.file.append(&line, taken.set.as_ref()) {
            Ok(rotated) => {
                self.pending += 1;
                if rotated {
                    self.counters.rotations.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(path = %self.file.path.display(), error = %e,
                    "cannot write the decision recording");
            }
        }
    }

    fn flush(&mut self) {
        match self.file.flush() {
            Ok(()) => {
                self.counters
                    .written
                    .fetch_add(self.pending, Ordering::Relaxed);
            }
            Err(e) => {
                self.counters
                    .failed
                    .fetch_add(self.pending, Ordering::Relaxed);
                tracing::warn!(path = %self.file.path.display(), error = %e,
                    "cannot write the decision recording");
            }
        }
        self.pending = 0;
    }

    fn encode(&self, taken: &Taken) -> String {
        let meta = &taken.meta;
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let live = match taken.live {
            Choice::Backend(index) => RecordedChoice::Backend {
                index,
                id: taken
                    .set
                    .backends
                    .get(index)
                    .map_or_else(String::new, |b| b.spec.id.clone()),
            },
            Choice::Reject(status) => RecordedChoice::Reject { status },
        };
        let line = Line::Decision(Box::new(DecisionLine {
            at: humantime::format_rfc3339_millis(taken.at).to_string(),
            set: taken.set.generation,
            method: meta.head.method.as_str().to_string(),
            target: text(&meta.head.target),
            version: format!("{:?}", meta.head.version),
            authority: meta.authority.as_deref().map(text),
            client: meta.client.to_string(),
            secure: meta.secure,
            headers: self.redactor.headers(&meta.head.headers),
            stats: taken.stats.clone(),
            by: taken.by.to_string(),
            live,
        }));
        serde_json::to_string(&line).expect("a decision line encodes")
    }
}

/// The file being written, its size, and the backend set its last `backends` line described.
struct RecordingFile {
    path: PathBuf,
    out: BufWriter<File>,
    header: String,
    size: u64,
    max_size: u64,
    /// The set number of the last `backends` line in this file.
    described: Option<u64>,
    /// Decisions in this file (a file is rotated only once it holds one).
    decisions: u64,
}

impl RecordingFile {
    fn open(settings: &Settings, started: SystemTime) -> std::io::Result<Self> {
        let header = serde_json::to_string(&FileHeader {
            format: FORMAT.into(),
            version: VERSION,
            lbx: env!("CARGO_PKG_VERSION").into(),
            started: humantime::format_rfc3339_millis(started).to_string(),
            sample: settings.sample,
            hash: HASH.into(),
            hashed_headers: settings
                .hashed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        })
        .expect("a header encodes");
        let path = settings.path.clone();
        refuse_foreign(&path)?;
        refuse_foreign(&rotated(&path))?;
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            std::fs::rename(&path, rotated(&path))?;
        }
        let mut file = Self {
            out: BufWriter::new(create(&path)?),
            path,
            header,
            size: 0,
            max_size: settings.max_size,
            described: None,
            decisions: 0,
        };
        file.write_header()?;
        Ok(file)
    }

    fn write_header(&mut self) -> std::io::Result<()> {
        let header = std::mem::take(&mut self.header);
        let written = self.write_line(&header);
        self.header = header;
        written
    }

    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.size += line.len() as u64 + 1;
        Ok(())
    }

    /// Append a decision line made on `set`, rotating first if it would take the file past
    /// `max_size`; whether it rotated.
    fn append(&mut self, line: &str, set: &BackendSet) -> std::io::Result<bool> {
        let mut backends = self.backends_line(set);
        let needed = line.len() as u64 + 1 + backends.as_ref().map_or(0, |b| b.len() as u64 + 1);
        let rotate = self.decisions > 0 && self.size + needed > self.max_size;
        if rotate {
            self.rotate()?;
            backends = self.backends_line(set);
        }
        if let Some(backends) = backends {
            self.write_line(&backends)?;
            self.described = Some(set.generation);
        }
        self.write_line(line)?;
        self.decisions += 1;
        Ok(rotate)
    }

    /// The `backends` line `set` needs first, if this file has not described it last.
    fn backends_line(&self, set: &BackendSet) -> Option<String> {
        if self.described == Some(set.generation) {
            return None;
        }
        let line = Line::Backends(BackendsLine {
            set: set.generation,
            backends: set
                .backends
                .iter()
                .map(|b| RecordedBackend {
                    id: b.spec.id.clone(),
                    url: b.spec.url.clone(),
                    weight: b.spec.weight,
                    labels: b.spec.labels.iter().cloned().collect(),
                })
                .collect(),
        });
        Some(serde_json::to_string(&line).expect("a backends line encodes"))
    }

    /// Keep this file as `<path>.1` (replacing the one before) and start a new one.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        std::fs::rename(&self.path, rotated(&self.path))?;
        self.out = BufWriter::new(create(&self.path)?);
        self.size = 0;
        self.described = None;
        self.decisions = 0;
        self.write_header()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

fn create(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)
}

/// `<path>.1`: where the previous file is kept.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Why a session could not record to `path`, if that can be told without starting one: its
/// directory is missing, or it (or `<path>.1`) is a file that is not a recording.
pub fn path_problem(path: &Path) -> Option<String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Some(format!("directory {} does not exist", dir.display()));
    }
    refuse_foreign(path)
        .and_then(|()| refuse_foreign(&rotated(path)))
        .err()
        .map(|e| e.to_string())
}

/// A recording replaces or moves only empty files and earlier recordings: pointed at any
/// other file by mistake (or through the admin API), it refuses instead of destroying it.
fn refuse_foreign(path: &Path) -> std::io::Result<()> {
    let Ok(file) = File::open(path) else {
        return Ok(());
    };
    let mut first = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::Read::take(file, 256), &mut first);
    let marker = format!("{{\"format\":\"{FORMAT}\"");
    if first.is_empty() || first.starts_with(&marker) {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not an lbx recording; it is left alone",
                path.display()
            ),
        ))
    }
}
