#![doc = include_str!("../README.md")]
//!
//! # Code
//!
//! This file is the [`Router`]: it reads the request ([`body`]), filters by model
//! ([`models`]), looks the prompt's blocks ([`blocks`]) up in the shared prefix index
//! ([`index`]), scores and ranks the candidates ([`score`], with [`queue`] estimates and
//! [`ttft`] feedback) and records where the prompt went.

mod blocks;
mod body;
mod config;
mod index;
mod models;
mod queue;
mod score;
mod ttft;

use lbx_guest::{BackendInfo, Backends, Decision, Outcome, Request, RetryContext, Router};

use blocks::Checkpoint;
use config::Settings;
use index::{HostStore, Matches, PrefixIndex};
use models::{Eligible, ModelFilter};
use queue::{QueueEstimates, Scrape};
use score::{Scored, Terms};
use ttft::TtftTable;

/// The plugin's state: its settings, what it knows of the backend set, its feedback, and
/// buffers reused by every decision (a decision allocates only what the host hands over).
#[derive(Debug)]
pub struct LlmRouter {
    settings: Settings,
    models: ModelFilter,
    /// Hash of each backend's id, by index: how the prefix index names backends.
    ids: Vec<u64>,
    /// Tag of every pick: the backend set it was made on (never 0, lbx's fallback's tag).
    fingerprint: u64,
    index: PrefixIndex,
    store: HostStore,
    ttft: TtftTable,
    queues: QueueEstimates,
    /// Where ties start: advances with each decision.
    rotation: usize,
    prompt: Vec<u8>,
    checkpoints: Vec<Checkpoint>,
    matches: Matches,
    candidates: Vec<usize>,
    scored: Vec<Scored>,
}

impl LlmRouter {
    fn new(settings: Settings) -> Self {
        LlmRouter {
            index: PrefixIndex::new(&settings.prefix.key_prefix, settings.prefix.capacity),
            queues: QueueEstimates::new(settings.slots),
            settings,
            models: ModelFilter::default(),
            ids: Vec::new(),
            fingerprint: fingerprint(&[]),
            store: HostStore,
            ttft: TtftTable::default(),
            rotation: 0,
            prompt: Vec::new(),
            checkpoints: Vec::new(),
            matches: Matches::default(),
            candidates: Vec::new(),
            scored: Vec::new(),
        }
    }

    /// Scores every candidate into `self.scored` at `now_us`; `blocks` is the prompt's length
    /// in blocks.
    fn score_candidates(&mut self, backends: &Backends, blocks: u32, now_us: u64) {
        let settings = &self.settings;
        let names = &settings.signals;
        let waiting_slot = backends.signal_slot(&names.waiting);
        let running_slot = backends.signal_slot(&names.running);
        let kv_slot = backends.signal_slot(&names.kv_cache);
        let fastest = self.ttft.fastest(self.candidates.iter().copied());
        self.scored.clear();
        for &index in &self.candidates {
            let stats = backends[index];
            let age_ms = backends
                .signal_age_ms(index)
                .filter(|&age| age <= names.max_age_ms);
            let read =
                |slot: Option<usize>| age_ms.and(slot).and_then(|s| backends.signal(index, s));
            let kv_cache = read(kv_slot).unwrap_or(0.0);
            let queue = read(waiting_slot).map(|waiting| {
                let scrape = Scrape {
                    waiting,
                    running: read(running_slot),
                    age_ms: age_ms.unwrap_or(0.0),
                };
                self.queues.estimate(index, scrape, stats.in_flight, now_us)
            });
            let saturated = queue.is_some_and(|q| q.waiting >= settings.saturation.waiting)
                || kv_cache >= settings.saturation.kv_cache;
            let held = self
                .ids
                .get(index)
                .map_or(0, |&id| self.matches.depth_held_by(&self.checkpoints, id));
            let in_flight = f64::from(stats.in_flight);
            // Without a scraped queue only the in-flight term sees load.
            let waiting = queue.map_or(0.0, |q| q.waiting_if_sent);
            let terms = Terms {
                prefix: if blocks == 0 {
                    0.0
                } else {
                    f64::from(held) / f64::from(blocks)
                },
                waiting,
                in_flight,
                kv_cache,
                ttft: fastest.map_or(0.0, |f| self.ttft.penalty(index, f, now_us)),
            };
            self.scored.push(Scored {
                index,
                score: terms.score(&settings.weights),
                load: (waiting, in_flight),
                saturated,
            });
        }
    }
}

/// Fills `out` with the `eligible` backends usable for this attempt: healthy and not yet
/// tried, or healthy at all once every healthy one was tried.
fn fill_candidates(
    out: &mut Vec<usize>,
    eligible: &[usize],
    backends: &Backends,
    retry: &RetryContext,
) {
    let healthy = |i: &&usize| backends.get(**i).is_some_and(|b| b.healthy);
    let untried = |i: &&usize| !retry.tried.iter().any(|&t| t as usize == **i);
    out.clear();
    out.extend(eligible.iter().filter(healthy).filter(untried));
    if out.is_empty() {
        out.extend(eligible.iter().filter(healthy));
    }
}

/// A stable, non-zero fingerprint of the backend ids in order: the same set gives the same tag
/// in every plugin instance.
fn fingerprint(ids: &[u64]) -> u64 {
    let hash = ids
        .iter()
        .fold(lbx_guest::fnv1a_64(b"llm_router"), |h, id| {
            lbx_guest::fnv1a_64_extend(h, &id.to_le_bytes())
        });
    lbx_guest::mix64(hash).max(1)
}

impl Router for LlmRouter {
    fn init(config: &str) -> Result<Self, String> {
        Settings::parse(config).map(LlmRouter::new)
    }

    /// Outcomes teach the TTFT term; without it they would cost lbx a call for nothing.
    fn wants_outcomes(&self) -> bool {
        self.settings.weights.ttft > 0.0
    }

    fn backends_changed(&mut self, backends: &[BackendInfo]) {
        self.models = ModelFilter::new(backends, &self.settings.model_label);
        self.ids = backends
            .iter()
            .map(|b| lbx_guest::stable_hash(b.id.as_bytes()))
            .collect();
        self.fingerprint = fingerprint(&self.ids);
        self.ttft.rebuild(&self.ids);
        self.queues.reset(backends.len());
    }

    fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
        let reads_body = !self.settings.paths.is_empty() && {
            let path = req.path();
            self.settings.paths.contains(&path)
        };
        let body = if reads_body { req.body_prefix() } else { None };
        let model = match &body {
            Some(body) => body::read(body, &mut self.prompt),
            None => {
                self.prompt.clear();
                None
            }
        };
        let eligible = match self.models.eligible(model.as_deref()) {
            Eligible::UnknownModel => return lbx_guest::reject(self.settings.unknown_model_status),
            Eligible::Backends(list) => list,
        };
        fill_candidates(&mut self.candidates, eligible, backends, retry);
        if self.candidates.is_empty() {
            // Every backend of this model is down: lbx's fallback would pick one serving
            // another model. Without a model, lbx answers for itself.
            return if model.is_some() {
                lbx_guest::reject(503)
            } else {
                lbx_guest::no_opinion()
            };
        }

        let prefix = &self.settings.prefix;
        let blocks = blocks::checkpoints(
            &self.prompt,
            prefix.block_bytes,
            prefix.max_blocks,
            &mut self.checkpoints,
        );
        if blocks > 0 {
            self.index
                .lookup(&mut self.store, &self.checkpoints, &mut self.matches);
        } else {
            self.matches.clear();
        }
        let now_us = lbx_guest::now_us();
        self.score_candidates(backends, blocks, now_us);
        if self.settings.saturation.shed && self.scored.iter().all(|c| c.saturated) {
            let saturation = &self.settings.saturation;
            let shed = lbx_guest::reject(saturation.shed_status);
            return match saturation.retry_after {
                0 => shed,
                seconds => shed.downstream_header("retry-after", seconds.to_string()),
            };
        }
        score::rank(&mut self.scored, self.rotation, backends.len());
        self.rotation = self.rotation.wrapping_add(1);

        let best = self.scored[0].index;
        if blocks > 0
            && let Some(&holder) = self.ids.get(best)
        {
            self.index.record(
                &mut self.store,
                &self.checkpoints,
                &self.matches,
                holder,
                now_us,
            );
        }
        let fallbacks = self.scored[1..]
            .iter()
            .take(self.settings.fallbacks)
            .map(|c| c.index);
        lbx_guest::pick(best)
            .fallbacks(fallbacks)
            .tag(self.fingerprint)
    }

    fn on_outcome(&mut self, outcome: &Outcome) {
        // An error answers fast and says nothing of speed; lbx counts failures itself.
        let answered = outcome.status.is_some_and(|s| s < 500) && outcome.fault.is_none();
        // The first body byte is the first token of a streamed completion; the head, which a
        // streaming server sends before any token, is only the fallback.
        let ttft_us = outcome.first_byte_us.or(outcome.ttfb_us);
        if let (true, Some(ttfb_us)) = (answered && outcome.tag == self.fingerprint, ttft_us) {
            self.ttft
                .learn(outcome.backend as usize, ttfb_us, lbx_guest::now_us());
        }
    }
}

lbx_guest::export_router!(LlmRouter);

#[cfg(test)]
mod tests;
