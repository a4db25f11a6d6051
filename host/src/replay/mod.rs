//! `lbx replay --plugin new.wasm recording.lbxr`: run a plugin offline against a recording of
//! live decisions (see the `recording` module) and report how often it goes where the live
//! side went, where it sends requests, how long it takes per decision, and how often it traps
//! or falls back.
//!
//! Each recorded decision is replayed as the live plugin saw it: its backend set rebuilt from
//! the recording (ids, URLs, weights, labels, in order; backends recorded as unusable marked
//! down), the recorded statistics instead of live ones, the request's metadata as recorded.
//! The plugin is loaded as `lbx check` loads it (`init` with `--plugin-config` or the config
//! file's `[plugin] config`, its sandbox limits) with a fresh key-value store, and decides
//! the recording in order, so a stateful plugin (round robin) sees the same sequence.
//!
//! Agreement: the replay agrees when it picks the backend (or rejects with the status) the
//! live side recorded; when the live plugin fell back (no opinion, an error), the replay
//! agrees when it falls back too. Traps and timeouts count as `traps`, no-opinion and unusable
//! answers as `fallbacks`; both would have fallen back live.

mod read;
mod report;

pub use report::{Difference, Report};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;

use crate::config::{BackendConfig, Config, HealthSettings};
use crate::message::{Headers, RequestHead};
use crate::plugin::{KvStore, LoadOptions, LoadedPlugin, PluginEngine, RequestMeta, interpret};
use crate::recording::format::{BackendsLine, DecisionLine, RecordedChoice};
use crate::upstream::{BackendSet, PoolSettings, Upstreams};
use read::Entry;

/// What to replay, and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The plugin component; defaults to the config file's `[plugin] path`.
    pub plugin: Option<PathBuf>,
    /// The recording files, replayed in this order.
    pub recordings: Vec<PathBuf>,
    /// An lbx config file: its `[plugin]` config and sandbox limits.
    pub config_file: Option<PathBuf>,
    /// The plugin's `init` config as JSON, instead of the config file's.
    pub plugin_config: Option<String>,
    /// Longest one decision may run, instead of the config file's (or the default 5 ms).
    pub deadline: Option<Duration>,
}

/// Replay the recording; the report, or why the replay could not run.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    if options.recordings.is_empty() {
        bail!("no recording given");
    }
    let config = match &options.config_file {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let plugin_path = options
        .plugin
        .clone()
        .or_else(|| config.plugin.as_ref().map(|p| p.path.clone()))
        .context("no plugin given: --plugin FILE.wasm, or a --config with [plugin] path")?;
    let mut spec = config.plugin_spec();
    if let Some(json) = &options.plugin_config {
        let parsed: serde_json::Value =
            serde_json::from_str(json).context("--plugin-config is not JSON")?;
        if !parsed.is_object() {
            bail!("--plugin-config must be a JSON object, as [plugin] config is");
        }
        spec.config_json = parsed.to_string();
    }
    if let Some(deadline) = options.deadline {
        spec.deadline = deadline;
    }

    let entries = read::entries(&options.recordings)?;
    let mut sets = Sets::default();
    let first = entries
        .iter()
        .find_map(|e| match e {
            Entry::Backends { file, line } => Some((*file, line)),
            Entry::Decision { .. } => None,
        })
        .context("the recording holds no decisions")?;
    let trial = sets.get_or_build(first.0, first.1)?;

    let kv = Arc::new(KvStore::new(config.plugin_settings().kv_max_bytes));
    let options_for_load = LoadOptions::from_spec(&spec, kv, 1);
    let engine = PluginEngine::new(spec.deadline)?;
    let plugin = LoadedPlugin::load_file(&engine, &plugin_path, options_for_load, &trial)?;

    let mut tally = Tally::default();
    let mut current: HashMap<(usize, u64), Arc<BackendSet>> = HashMap::new();
    for entry in &entries {
        match entry {
            Entry::Backends { file, line } => {
                let set = sets.get_or_build(*file, line)?;
                current.insert((*file, line.set), set);
            }
            Entry::Decision { file, line } => {
                let set = current.get(&(*file, line.set)).with_context(|| {
                    format!(
                        "{}: a decision names backend set {} before any backends line does",
                        options.recordings[*file].display(),
                        line.set
                    )
                })?;
                replay_one(&plugin, set, line, &mut tally);
            }
        }
    }
    Ok(tally.report(
        &plugin,
        &options.recordings,
        sets.all_ids.iter().cloned().collect(),
    ))
}

/// The backend sets rebuilt from the recording, over one table so that a backend keeps its
/// statistics object across sets, as in the live lbx.
#[derive(Default)]
struct Sets {
    upstreams: Option<Upstreams>,
    built: HashMap<(usize, u64), Arc<BackendSet>>,
    /// Every backend id seen, in first-seen order.
    all_ids: indexed::Ids,
}

impl Sets {
    fn get_or_build(
        &mut self,
        file: usize,
        line: &BackendsLine,
    ) -> anyhow::Result<Arc<BackendSet>> {
        if let Some(set) = self.built.get(&(file, line.set)) {
            return Ok(set.clone());
        }
        let configs: Vec<BackendConfig> = line
            .backends
            .iter()
            .map(|b| BackendConfig {
                id: Some(b.id.clone()),
                weight: b.weight,
                labels: b.labels.clone(),
                ..BackendConfig::at(b.url.clone())
            })
            .collect();
        let mut problems = Vec::new();
        let specs = crate::config::resolve_all(&configs, &HealthSettings::default(), &mut problems);
        if let Some(problem) = problems.first() {
            bail!("backend set {} of the recording: {problem}", line.set);
        }
        let set = match &self.upstreams {
            Some(upstreams) => Arc::new(upstreams.prepare(&specs)?),
            None => {
                // Nothing is ever connected to: the pools stay empty.
                let upstreams = Upstreams::new(&specs, PoolSettings::never_connecting())?;
                let set = upstreams.snapshot();
                self.upstreams = Some(upstreams);
                set
            }
        };
        for backend in &line.backends {
            self.all_ids.insert(&backend.id);
        }
        self.built.insert((file, line.set), set.clone());
        Ok(set)
    }
}

mod indexed {
    /// Distinct strings in first-seen order.
    #[derive(Default)]
    pub struct Ids(Vec<String>);

    impl Ids {
        pub fn insert(&mut self, id: &str) {
            if !self.0.iter().any(|known| known == id) {
                self.0.push(id.to_string());
            }
        }

        pub fn iter(&self) -> std::slice::Iter<'_, String> {
            self.0.iter()
        }
    }
}

/// What one replayed decision came to.
enum Replayed {
    Chose(String),
    NoOpinion,
    Unusable,
    Trap(&'static str),
}

fn replay_one(plugin: &LoadedPlugin, set: &BackendSet, line: &DecisionLine, tally: &mut Tally) {
    // The backends' usability as the live plugin saw it (and as `interpret` checks it).
    for (backend, stats) in set.backends.iter().zip(line.stats.chunks(5)) {
        backend.stats.set_down(stats.first() == Some(&0));
    }
    let mut meta = request_meta(line);
    let started = Instant::now();
    let answer = plugin.choose_as_then(&mut meta, set, &line.stats, None);
    let elapsed = started.elapsed();
    let replayed = match answer {
        Err(error) => Replayed::Trap(error.kind.as_str()),
        Ok(decision) => match interpret(decision, set) {
            Ok(Some((route, _))) => match crate::shadow::Choice::of(&route) {
                Some(choice) => Replayed::Chose(choice.describe(set)),
                None => Replayed::NoOpinion,
            },
            Ok(None) => Replayed::NoOpinion,
            Err(_) => Replayed::Unusable,
        },
    };
    tally.add(line, replayed, elapsed);
}

/// The request as the plugin saw it live, from its recorded form.
fn request_meta(line: &DecisionLine) -> RequestMeta {
    let mut headers = Headers::with_capacity(line.headers.len());
    for (name, value) in &line.headers {
        headers.push(name.clone(), value.clone());
    }
    let version = match line.version.as_str() {
        "HTTP/1.0" => http::Version::HTTP_10,
        "HTTP/2.0" => http::Version::HTTP_2,
        "HTTP/3.0" => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    };
    RequestMeta {
        head: RequestHead {
            method: http::Method::from_bytes(line.method.as_bytes()).unwrap_or(http::Method::GET),
            target: Bytes::from(line.target.clone()),
            version,
            headers,
        },
        authority: line.authority.clone().map(Bytes::from),
        client: line
            .client
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
        secure: line.secure,
        body_prefix: None,
    }
}

/// The figures as the replay goes.
#[derive(Default)]
struct Tally {
    decisions: u64,
    agreed: u64,
    per_backend: BTreeMap<String, u64>,
    live_per_backend: BTreeMap<String, u64>,
    rejects: BTreeMap<String, u64>,
    traps: u64,
    trap_kinds: BTreeMap<String, u64>,
    fallbacks: u64,
    unusable: u64,
    timings_ns: Vec<u64>,
    differences: BTreeMap<(String, String), u64>,
}

const FALLBACK: &str = "fallback";

impl Tally {
    fn add(&mut self, line: &DecisionLine, replayed: Replayed, elapsed: Duration) {
        self.decisions += 1;
        self.timings_ns
            .push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        let live = if line.live_fell_back() {
            FALLBACK.to_string()
        } else {
            match &line.live {
                RecordedChoice::Backend { id, .. } => id.clone(),
                RecordedChoice::Reject { status } => format!("reject {status}"),
            }
        };
        if let RecordedChoice::Backend { id, .. } = &line.live {
            *self.live_per_backend.entry(id.clone()).or_default() += 1;
        }
        let replay = match replayed {
            Replayed::Chose(choice) => {
                match choice.strip_prefix("reject ") {
                    Some(status) => *self.rejects.entry(status.to_string()).or_default() += 1,
                    None => *self.per_backend.entry(choice.clone()).or_default() += 1,
                }
                choice
            }
            Replayed::NoOpinion => {
                self.fallbacks += 1;
                FALLBACK.to_string()
            }
            Replayed::Unusable => {
                self.fallbacks += 1;
                self.unusable += 1;
                FALLBACK.to_string()
            }
            Replayed::Trap(kind) => {
                self.traps += 1;
                *self.trap_kinds.entry(kind.to_string()).or_default() += 1;
                FALLBACK.to_string()
            }
        };
        if live == replay {
            self.agreed += 1;
        } else {
            *self.differences.entry((live, replay)).or_default() += 1;
        }
    }

    fn report(mut self, plugin: &LoadedPlugin, files: &[PathBuf], ids: Vec<String>) -> Report {
        for id in ids {
            self.per_backend.entry(id.clone()).or_default();
            self.live_per_backend.entry(id).or_default();
        }
        self.timings_ns.sort_unstable();
        let mut differences: Vec<Difference> = self
            .differences
            .into_iter()
            .map(|((live, replay), count)| Difference {
                live,
                replay,
                count,
            })
            .collect();
        differences.sort_by_key(|d| std::cmp::Reverse(d.count));
        Report {
            plugin: plugin.name().to_string(),
            sha256: plugin.sha256(),
            recordings: files.iter().map(|p| p.display().to_string()).collect(),
            decisions: self.decisions,
            agreed: self.agreed,
            agreement: if self.decisions == 0 {
                1.0
            } else {
                self.agreed as f64 / self.decisions as f64
            },
            per_backend: self.per_backend,
            live_per_backend: self.live_per_backend,
            rejects: self.rejects,
            traps: self.traps,
            trap_kinds: self.trap_kinds,
            fallbacks: self.fallbacks,
            unusable: self.unusable,
            us_p50: report::quantile_us(&self.timings_ns, 0.5),
            us_p99: report::quantile_us(&self.timings_ns, 0.99),
            differences,
        }
    }
}
