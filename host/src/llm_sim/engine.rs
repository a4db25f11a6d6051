//! The engine: continuous batching as vLLM's v1 scheduler does it, with time taken from the
//! [`Profile`] instead of a GPU.
//!
//! Requests wait in a FIFO queue. One task runs the step loop; each step:
//! 1. **Schedules** within a token budget (`max_batched_tokens`): every running request gets
//!    its share first — one token for one that is decoding, the rest of its prompt (up to the
//!    budget: chunked prefill) for one still prefilling; then requests are admitted from the
//!    head of the queue while fewer than `max_running` run and budget is left. Admission looks
//!    the prompt's block hashes up in the prefix cache (whole blocks, from the first; at least
//!    the prompt's last token is always computed, as in vLLM) and needs KV blocks for the rest
//!    of the prompt and the whole output; if the head does not fit, nobody behind it is
//!    admitted (FIFO).
//! 2. **Takes** `step_us + prefill_us_per_token·(uncached prompt tokens scheduled) +
//!    decode_us_per_token·(decoding requests scheduled)`, divided by `--speedup`.
//! 3. **Samples**: a request whose prompt is now computed gets its first token (its TTFT), a
//!    decoding one its next token; full blocks are registered in the prefix cache; a request
//!    with `max_tokens` tokens finishes, and its blocks go back to the cache's free queue,
//!    still holding their prefixes until evicted.
//!
//! So TTFT is the wait for admission plus the prefill of the prompt tokens *not* found in the
//! cache, and the time per output token grows with the batch. Tokens reach the HTTP layer
//! through one channel per request; a request whose client has gone (its receiver dropped) is
//! aborted at the next step and its blocks freed, as vLLM aborts on disconnect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::metrics::{EngineStats, Snapshot};
use super::params::Profile;
use super::prefix_cache::{BlockId, PrefixCache};
use super::tokens::{BlockHash, BlockHasher, Prompt, Reply};
use crate::shutdown::{self, StopReceiver};

/// What a request hears from the engine, in order: its tokens, then `Done`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One generated token.
    Token {
        /// Its text.
        text: &'static str,
        /// When the step that sampled it ended, on the modelled timeline.
        at: Instant,
    },
    /// The last token was sent.
    Done(Usage),
}

/// A finished request's token counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Prompt tokens found in the prefix cache.
    pub cached_tokens: usize,
}

/// A handle on a running engine; clones share it.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    profile: Profile,
    speedup: f64,
    state: Mutex<State>,
    /// Raised when a request arrives, to wake an idle step loop.
    arrived: Notify,
}

impl Engine {
    /// Start the step loop (on the current tokio runtime) until `stop` is raised.
    pub fn start(profile: Profile, speedup: f64, stop: StopReceiver) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new(&profile)),
            profile,
            speedup,
            arrived: Notify::new(),
        });
        tokio::spawn(step_loop(shared.clone(), stop));
        Self { shared }
    }

    /// Queue a request for `prompt` generating `max_tokens` tokens (at least 1; prompt plus
    /// output must fit the cache, see [`Profile::usable_model_len`]). Its events arrive on the
    /// returned channel; dropping it aborts the request.
    pub fn submit(&self, prompt: Prompt, max_tokens: usize) -> mpsc::UnboundedReceiver<Event> {
        let (events, receiver) = mpsc::unbounded_channel();
        let seq = Seq::new(prompt, max_tokens.max(1), events);
        self.shared.lock().waiting.push_back(seq);
        self.shared.arrived.notify_one();
        receiver
    }

    /// The engine's state now.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.shared.lock();
        Snapshot {
            running: state.running.len(),
            waiting: state.waiting.len(),
            kv_usage: state.cache.usage(),
            kv_blocks: self.shared.profile.kv_blocks,
            block_size: self.shared.profile.block_size,
            stats: state.stats.clone(),
        }
    }

    /// Blocks in the prefix cache holding a prefix (used or not), and evictions so far.
    pub fn cache_contents(&self) -> (usize, u64) {
        let state = self.shared.lock();
        (state.cache.cached(), state.cache.evictions())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock would be a bug; it must not take every later request down
        // with it, so keep serving with the state as it is.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn step_loop(shared: Arc<Shared>, mut stop: StopReceiver) {
    // Steps follow each other on the modelled timeline: a step starts when the one before it
    // was due to end, not when the timer woke us (a little later, by up to a millisecond of
    // timer granularity and scheduling), so lateness never adds up; tokens reach clients that
    // much late, but at the modelled rate.
    let mut previous_end: Option<Instant> = None;
    loop {
        let started = previous_end.take().unwrap_or_else(Instant::now);
        let step = shared.lock().schedule(&shared.profile, started);
        match step {
            None => tokio::select! {
                _ = shared.arrived.notified() => {}
                _ = shutdown::stopped(&mut stop) => break,
            },
            Some(modelled) => {
                let end = started + modelled.div_f64(shared.speedup);
                tokio::select! {
                    _ = tokio::time::sleep_until(end) => {}
                    _ = shutdown::stopped(&mut stop) => break,
                }
                shared.lock().complete(&shared.profile, end);
                previous_end = Some(end);
            }
        }
    }
    // Dropping the requests ends their streams.
    let mut state = shared.lock();
    state.running.clear();
    state.waiting.clear();
}

/// One request inside the engine.
#[derive(Debug)]
struct Seq {
    prompt_tokens: usize,
    max_tokens: usize,
    /// Hashes of the sequence's full blocks known so far (prompt, then generated tokens).
    hashes: Vec<BlockHash>,
    /// The tokens after the last full block.
    hasher: BlockHasher,
    reply: Reply,
    /// KV blocks held, in sequence order.
    blocks: Vec<BlockId>,
    /// Leading blocks registered in the prefix cache.
    registered: usize,
    /// Tokens whose KV is computed.
    computed: usize,
    /// Tokens generated.
    generated: usize,
    /// Prompt tokens found cached at admission.
    cached_tokens: usize,
    /// Blocks still to allocate under the admission's reservation.
    promised: usize,
    /// Tokens to compute in the step under way.
    scheduled: usize,
    arrived: Instant,
    last_token: Option<Instant>,
    events: mpsc::UnboundedSender<Event>,
}

impl Seq {
    fn new(prompt: Prompt, max_tokens: usize, events: mpsc::UnboundedSender<Event>) -> Self {
        Self {
            prompt_tokens: prompt.tokens,
            max_tokens,
            reply: Reply::to(&prompt),
            hashes: prompt.blocks,
            hasher: prompt.rest,
            blocks: Vec::new(),
            registered: 0,
            computed: 0,
            generated: 0,
            cached_tokens: 0,
            promised: 0,
            scheduled: 0,
            arrived: Instant::now(),
            last_token: None,
            events,
        }
    }

    fn prefilling(&self) -> bool {
        self.computed < self.prompt_tokens
    }

    /// Blocks the whole request needs: every token but the last one generated has its KV
    /// computed.
    fn blocks_needed(&self, block_size: usize) -> usize {
        (self.prompt_tokens + self.max_tokens - 1).div_ceil(block_size)
    }
}

#[derive(Debug)]
struct State {
    waiting: VecDeque<Seq>,
    running: Vec<Seq>,
    cache: PrefixCache,
    /// Blocks promised to running requests and not yet allocated.
    reserved: usize,
    stats: EngineStats,
}

impl State {
    fn new(profile: &Profile) -> Self {
        Self {
            waiting: VecDeque::new(),
            running: Vec::new(),
            cache: PrefixCache::new(profile.kv_blocks),
            reserved: 0,
            stats: EngineStats::default(),
        }
    }

    /// Choose the next step's work; its modelled duration, or `None` if there is nothing to do.
    fn schedule(&mut self, profile: &Profile, now: Instant) -> Option<Duration> {
        self.abort_abandoned();
        let block_size = profile.block_size;
        let mut budget = profile.max_batched_tokens;
        let (mut prefill, mut decode) = (0, 0);

        for seq in &mut self.running {
            if budget == 0 {
                break;
            }
            let tokens = if seq.prefilling() {
                (seq.prompt_tokens - seq.computed).min(budget)
            } else {
                1
            };
            grow(&mut self.cache, &mut self.reserved, seq, tokens, block_size);
            if seq.prefilling() {
                prefill += tokens;
            } else {
                decode += tokens;
            }
            budget -= tokens;
        }

        while self.running.len() < profile.max_running && budget > 0 {
            let Some(head) = self.waiting.front() else {
                break;
            };
            // Whole blocks only, and never the prompt's last token: it must be computed to
            // sample the first output token.
            let reusable = ((head.prompt_tokens - 1) / block_size).min(head.hashes.len());
            let (hits, idle) = self.cache.lookup(&head.hashes[..reusable]);
            let needed = head.blocks_needed(block_size) - hits;
            let free = self.cache.free() - idle;
            if free < self.reserved + needed {
                break;
            }
            let mut seq = self.waiting.pop_front().expect("the head");
            seq.blocks = self.cache.acquire(&seq.hashes[..hits]);
            seq.registered = hits;
            seq.computed = hits * block_size;
            seq.cached_tokens = seq.computed;
            seq.promised = needed;
            self.reserved += needed;
            self.stats.prefix_queries += seq.prompt_tokens as u64;
            self.stats.prefix_hits += seq.cached_tokens as u64;
            self.stats
                .queue_time
                .observe(now.saturating_duration_since(seq.arrived));

            let tokens = (seq.prompt_tokens - seq.computed).min(budget);
            grow(
                &mut self.cache,
                &mut self.reserved,
                &mut seq,
                tokens,
                block_size,
            );
            prefill += tokens;
            budget -= tokens;
            self.running.push(seq);
        }

        (prefill + decode > 0).then(|| profile.step_time(prefill, decode))
    }

    /// The step scheduled last has ended at `now` (when it was due to): account its tokens,
    /// sample, finish.
    fn complete(&mut self, profile: &Profile, now: Instant) {
        let block_size = profile.block_size;
        let mut index = 0;
        while index < self.running.len() {
            let seq = &mut self.running[index];
            let tokens = std::mem::take(&mut seq.scheduled);
            seq.computed += tokens;
            while seq.registered < seq.computed / block_size && seq.registered < seq.hashes.len() {
                self.cache
                    .register(seq.blocks[seq.registered], seq.hashes[seq.registered]);
                seq.registered += 1;
            }
            let caught_up = tokens > 0 && seq.computed == seq.prompt_tokens + seq.generated;
            if caught_up && sample(seq, &mut self.stats, now) {
                let seq = self.running.remove(index);
                self.finish(seq, now);
            } else {
                index += 1;
            }
        }
    }

    fn finish(&mut self, seq: Seq, now: Instant) {
        self.stats.finished_length += 1;
        self.stats
            .e2e
            .observe(now.saturating_duration_since(seq.arrived));
        self.release(seq);
    }

    /// Give a request's blocks back (its prefixes stay cached until evicted).
    fn release(&mut self, seq: Seq) {
        self.cache.release(&seq.blocks);
        self.reserved -= seq.promised;
    }

    /// Drop the requests whose clients are gone.
    fn abort_abandoned(&mut self) {
        self.waiting.retain(|seq| !seq.events.is_closed());
        let mut index = 0;
        while index < self.running.len() {
            if self.running[index].events.is_closed() {
                let seq = self.running.remove(index);
                self.release(seq);
            } else {
                index += 1;
            }
        }
    }
}

/// Schedule `tokens` more tokens of `seq`, allocating the blocks they fill.
fn grow(
    cache: &mut PrefixCache,
    reserved: &mut usize,
    seq: &mut Seq,
    tokens: usize,
    block_size: usize,
) {
    seq.scheduled = tokens;
    let blocks = (seq.computed + tokens).div_ceil(block_size);
    while seq.blocks.len() < blocks {
        // Admission reserved these: the free queue holds at least `reserved` blocks.
        let id = cache
            .allocate()
            .expect("admission reserves every block a request needs");
        seq.blocks.push(id);
        seq.promised -= 1;
        *reserved -= 1;
    }
}

/// Generate `seq`'s next token at `now`; whether that was its last.
fn sample(seq: &mut Seq, stats: &mut EngineStats, now: Instant) -> bool {
    let token = seq.reply.token(seq.generated);
    seq.hashes.extend(seq.hasher.push(token));
    seq.generated += 1;
    stats.generation_tokens += 1;
    match seq.last_token {
        None => {
            stats.prompt_tokens += seq.prompt_tokens as u64;
            stats
                .ttft
                .observe(now.saturating_duration_since(seq.arrived));
        }
        Some(last) => stats
            .inter_token
            .observe(now.saturating_duration_since(last)),
    }
    seq.last_token = Some(now);
    // A client gone is noticed at the next step (abort_abandoned).
    let _ = seq.events.send(Event::Token {
        text: token,
        at: now,
    });
    let done = seq.generated == seq.max_tokens;
    if done {
        let _ = seq.events.send(Event::Done(Usage {
            prompt_tokens: seq.prompt_tokens,
            completion_tokens: seq.generated,
            cached_tokens: seq.cached_tokens,
        }));
    }
    done
}
