//! One running shadow: its plugin version, its sample rate, the bounded queue that carries
//! sampled requests off the request path, and the worker thread that decides them and keeps
//! its [`Tally`].
//!
//! The request path only draws a number and, for a sampled request, `try_send`s: a full queue
//! drops the sample (counted), it never waits. The worker is a plain thread because each
//! decision is a blocking Wasm call; a shadow that loops is cut off by its own deadline (the
//! same epoch interruption as the live plugin's), so the worker falls behind, the queue fills
//! and samples are dropped — live requests see none of it. Its own breaker (the live plugin's
//! `disable_after_failures` and `disabled_for`) pauses a shadow that keeps failing, so one
//! that loops does not keep a core busy: samples that arrive while it is paused are counted
//! and skipped.
//!
//! A shadow that overruns its deadline three times in a row is moved to `SCHED_IDLE`, Linux's
//! lowest CPU priority, for the rest of its life: from then on it gets only the CPU live
//! requests leave over. Without that, a shadow that never returns and is never paused
//! (`disable_after_failures = 0`) held its share of a busy core and halved the proxy's
//! requests/s on one worker (bench/shadow.sh, case loop-unpaused: 0.51×), and nice 19 still
//! cost 12% on p99. A healthy shadow keeps the normal priority, so on a busy proxy it still
//! sees its sample; and the move is one way because an unprivileged process may not leave
//! `SCHED_IDLE`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, mpsc};
use std::time::{Instant, SystemTime};

use super::sample::{Choice, Sample};
use super::tally::{Tally, Verdict};
use crate::plugin::{Breaker, FailureKind, LoadedPlugin, Tripped, interpret};
use crate::sampler::Sampler;

/// Samples waiting for a shadow's worker at most; more are dropped.
pub const QUEUE: usize = 1024;

/// Where a shadow came from: the config file's `[[plugin.shadow]]` (replaced by a config
/// reload) or the admin API (kept until stopped or promoted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// `[[plugin.shadow]]`.
    Config,
    /// `POST /admin/plugin/shadow`.
    Api,
}

/// A shadow plugin and its worker.
#[derive(Debug)]
pub struct Shadow {
    /// Its name (unique among shadows): given, or the plugin file's stem.
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// The share of requests it sees (0–1).
    pub sample: f64,
    /// When it started.
    pub started: SystemTime,
    /// The version it runs.
    pub plugin: Arc<LoadedPlugin>,
    /// Its component's bytes, to load it as the live plugin when promoted.
    pub bytes: Arc<[u8]>,
    /// Its figures.
    pub tally: Arc<Tally>,
    /// Draws the requests it sees.
    sampler: Sampler,
    queue: SyncSender<Sample>,
    /// Raised when the shadow is stopped: its worker leaves the samples still queued.
    stopped: Arc<AtomicBool>,
}

impl Drop for Shadow {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

impl Shadow {
    /// Start a worker deciding with `plugin` on `sample` (0–1) of the requests.
    pub fn start(
        name: String,
        origin: Origin,
        sample: f64,
        plugin: Arc<LoadedPlugin>,
        bytes: Arc<[u8]>,
        breaker: Breaker,
    ) -> std::io::Result<Self> {
        let (queue, samples) = mpsc::sync_channel(QUEUE);
        let tally = Arc::new(Tally::default());
        let stopped = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            stopped: stopped.clone(),
            name: name.clone(),
            plugin: plugin.clone(),
            tally: tally.clone(),
            breaker,
        };
        std::thread::Builder::new()
            .name(format!("lbx-shadow-{name}"))
            .spawn(move || worker.run(&samples))?;
        Ok(Self {
            sampler: Sampler::new(sample),
            name,
            origin,
            sample,
            started: SystemTime::now(),
            plugin,
            bytes,
            tally,
            queue,
            stopped,
        })
    }

    /// Whether this request is in the shadow's sample: one relaxed add and a few multiplies.
    pub fn samples_next(&self) -> bool {
        self.sampler.samples_next()
    }

    /// Hand a sample to the worker, or drop it if the queue is full.
    pub fn offer(&self, sample: Sample) {
        match self.queue.try_send(sample) {
            Ok(()) => self.tally.offered(),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.tally.dropped(),
        }
    }
}

/// Deadline overruns in a row after which a shadow's worker moves to `SCHED_IDLE`. More than
/// one: on a busy machine a healthy shadow can overrun once because its thread was not
/// scheduled, and the move cannot be undone; a shadow that loops overruns every time.
const DEMOTE_AFTER_TIMEOUTS: u32 = 3;

/// What a shadow's worker thread owns.
struct Worker {
    stopped: Arc<AtomicBool>,
    name: String,
    plugin: Arc<LoadedPlugin>,
    tally: Arc<Tally>,
    breaker: Breaker,
}

impl Worker {
    /// Decide samples until the shadow is stopped.
    fn run(&self, samples: &Receiver<Sample>) {
        const TIMEOUT: &str = FailureKind::Timeout.as_str();
        let (mut demoted, mut timeouts_in_a_row) = (false, 0);
        while let Ok(mut sample) = samples.recv() {
            if self.stopped.load(Ordering::Relaxed) {
                break;
            }
            if !self.breaker.allows() {
                self.tally.paused();
                continue;
            }
            let started = Instant::now();
            let verdict = self.decide(&mut sample);
            let timed_out = matches!(verdict, Verdict::Error(kind) if kind == TIMEOUT);
            timeouts_in_a_row = if timed_out { timeouts_in_a_row + 1 } else { 0 };
            if !demoted && timeouts_in_a_row >= DEMOTE_AFTER_TIMEOUTS {
                demoted = true;
                tracing::warn!(shadow = %self.name,
                    "shadow plugin overran its deadline: its worker now runs only on idle CPU");
                lowest_cpu_priority();
            }
            if let Verdict::Error(kind) = &verdict {
                if self.breaker.record_failure() == Tripped::Yes {
                    tracing::warn!(shadow = %self.name, kind, cooldown = ?self.breaker.cooldown(),
                        "shadow plugin paused after consecutive failures");
                }
            } else {
                self.breaker.record_success();
            }
            self.tally.decided(verdict, started.elapsed());
        }
    }

    fn decide(&self, sample: &mut Sample) -> Verdict {
        let answer = self.plugin.choose_as_then(
            &mut sample.meta,
            &sample.set,
            &sample.stats,
            sample.signals.as_deref(),
        );
        match answer {
            Err(error) => Verdict::Error(error.kind.as_str()),
            Ok(decision) => match interpret(decision, &sample.set) {
                Err(_) => Verdict::Error(FailureKind::InvalidAnswer.as_str()),
                Ok(None) => Verdict::NoOpinion,
                Ok(Some((route, _))) => match Choice::of(&route) {
                    Some(choice) => Verdict::Chose {
                        shadow: choice.describe(&sample.set),
                        live: sample.live.describe(&sample.set),
                    },
                    None => Verdict::NoOpinion,
                },
            },
        }
    }
}

/// Move the calling thread to `SCHED_IDLE`, which the scheduler runs only with what other
/// threads leave over (weight 3 against a normal thread's 1024). On Linux the policy is a
/// per-thread attribute, so the proxy's own threads are left as they are. Failing to set it is
/// logged and otherwise harmless.
fn lowest_cpu_priority() {
    #[cfg(target_os = "linux")]
    {
        let idle = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; the kernel only reads `idle`, which outlives the
        // call.
        #[allow(unsafe_code)]
        let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) };
        if result != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(),
                "could not move the shadow worker to SCHED_IDLE");
        }
    }
}
