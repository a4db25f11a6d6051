//! The request model: when requests arrive, which conversation each belongs to and what it
//! says — all decided by the seed, none of it by the server's answers, so every routing policy
//! can be driven with exactly the same traffic.
//!
//! - **Arrivals** are a Poisson process at `rate` per second: exponential gaps, drawn from a
//!   stream of their own so changing the conversation settings does not move them.
//! - **Conversations**: `conversations` of them are in progress at any time. Each arrival
//!   picks one at random and sends its next turn; a conversation that has sent all its turns
//!   (or whose next prompt would pass `max_prompt_tokens`) is replaced by a new one, which sends
//!   its first turn.
//! - **Shared prefixes**: a conversation starts from one of `system_prompts` long system
//!   prompts, chosen at random, so unrelated users share a prefix; then its first user message.
//! - **Turns**: turn k+1's prompt is turn k's prompt, then the answer to turn k, then a new user
//!   message — turn k is a prefix of turn k+1. The answer is generated here (as long as turn k's
//!   `max_tokens`), not taken from the server, which keeps the traffic identical whatever the
//!   server said; a server that produced other text still shares turn k's whole prompt.
//! - Lengths come from [`Profile`](super::Profile); text from [`super::text`].
//!
//! The workload is an iterator, so a long run holds only the conversations in progress.

use std::sync::Arc;
use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Exp};

use super::profile::Samplers;
use super::settings::{Settings, SettingsError};
use super::text;

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The shared system prompt.
    System,
    /// The user's turn.
    User,
    /// The model's earlier answer.
    Assistant,
}

impl Role {
    /// The OpenAI `role` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation. Contents are shared between the turns that repeat them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who says it.
    pub role: Role,
    /// What is said: pseudo-words, four bytes per token.
    pub content: Arc<str>,
}

/// One request of the schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRequest {
    /// Its position in the schedule, from 0.
    pub index: u64,
    /// When it is due, from the start of the run.
    pub offset: Duration,
    /// The conversation it belongs to (sent as `x-session-id`).
    pub conversation: u64,
    /// Which turn of the conversation it is, from 1.
    pub turn: u32,
    /// The prompt: the system prompt, then alternating user and assistant messages, ending with
    /// the new user message.
    pub messages: Vec<Message>,
    /// The answer's length asked for.
    pub max_tokens: u32,
}

impl PlannedRequest {
    /// The prompt as one string: the messages' contents in order (what `/v1/completions`
    /// sends).
    pub fn prompt_text(&self) -> String {
        self.messages.iter().map(|m| &*m.content).collect()
    }

    /// The prompt's length in tokens, as the generator counts them.
    pub fn prompt_tokens(&self) -> u64 {
        self.messages
            .iter()
            .map(|m| text::token_count(&m.content))
            .sum()
    }

    /// The `x-session-id` value: one per conversation, so a hash policy can keep a
    /// conversation on one replica.
    pub fn session_id(&self) -> String {
        format!("conv-{}", self.conversation)
    }
}

/// What each random stream is for: one stream per purpose (and per conversation), so that a
/// draw for one never shifts another.
#[derive(Clone, Copy)]
enum Purpose {
    Arrivals = 1,
    Picks = 2,
    SystemPrompt = 3,
    Conversation = 4,
}

/// A generator of its own for (`seed`, `purpose`, `index`).
fn stream(seed: u64, purpose: Purpose, index: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(mix(mix(seed) ^ purpose as u64) ^ index))
}

/// SplitMix64's finaliser: nearby inputs give unrelated outputs.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Arrival offsets of a Poisson process at `rate` per second, up to `duration`.
#[derive(Debug, Clone)]
pub struct Arrivals {
    rng: Xoshiro256PlusPlus,
    gaps: Exp<f64>,
    clock: f64,
    end: f64,
}

impl Arrivals {
    /// Arrivals for `seed`; `rate` must be positive and finite.
    pub fn new(seed: u64, rate: f64, duration: Duration) -> Self {
        Self {
            rng: stream(seed, Purpose::Arrivals, 0),
            gaps: Exp::new(rate).expect("a positive rate"),
            clock: 0.0,
            end: duration.as_secs_f64(),
        }
    }
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.clock >= self.end {
            return None;
        }
        self.clock += self.gaps.sample(&mut self.rng);
        (self.clock < self.end).then(|| Duration::from_secs_f64(self.clock))
    }
}

/// A conversation in progress.
#[derive(Debug)]
struct Conversation {
    id: u64,
    rng: Xoshiro256PlusPlus,
    turns: u32,
    sent: u32,
    /// Everything sent so far, ending with the last user message.
    messages: Vec<Message>,
    tokens: u64,
    /// `max_tokens` of the last turn sent: its answer opens the next turn.
    last_answer_tokens: u32,
}

/// The schedule: an iterator of [`PlannedRequest`]s in offset order.
#[derive(Debug)]
pub struct Workload {
    seed: u64,
    arrivals: Arrivals,
    picks: Xoshiro256PlusPlus,
    samplers: Samplers,
    system_prompts: Vec<Arc<str>>,
    max_prompt_tokens: u64,
    slots: Vec<Conversation>,
    next_conversation: u64,
    next_index: u64,
}

impl Workload {
    /// The schedule `settings` describe, or every problem with them.
    pub fn new(settings: &Settings) -> Result<Self, SettingsError> {
        settings.endpoint()?;
        let system_prompts = (0..settings.system_prompts as u64)
            .map(|i| {
                let mut rng = stream(settings.seed, Purpose::SystemPrompt, i);
                Arc::from(text::words(&mut rng, settings.profile.system_prompt_tokens))
            })
            .collect();
        let mut workload = Self {
            seed: settings.seed,
            arrivals: Arrivals::new(settings.seed, settings.rate, settings.duration),
            picks: stream(settings.seed, Purpose::Picks, 0),
            samplers: settings.profile.samplers(),
            system_prompts,
            max_prompt_tokens: u64::from(settings.max_prompt_tokens),
            slots: Vec::with_capacity(settings.conversations),
            next_conversation: 0,
            next_index: 0,
        };
        for _ in 0..settings.conversations {
            let conversation = workload.start_conversation();
            workload.slots.push(conversation);
        }
        Ok(workload)
    }

    fn start_conversation(&mut self) -> Conversation {
        let id = self.next_conversation;
        self.next_conversation += 1;
        let mut rng = stream(self.seed, Purpose::Conversation, id);
        let system = self.system_prompts[rng.random_range(0..self.system_prompts.len())].clone();
        let turns = self.samplers.turns.draw(&mut rng);
        let tokens = text::token_count(&system);
        Conversation {
            id,
            rng,
            turns,
            sent: 0,
            messages: vec![Message {
                role: Role::System,
                content: system,
            }],
            tokens,
            last_answer_tokens: 0,
        }
    }

    /// The next turn of the conversation in `slot`, or `None` when it has ended.
    fn next_turn(&mut self, slot: usize) -> Option<(u64, u32, Vec<Message>, u32)> {
        let samplers = &self.samplers;
        let c = &mut self.slots[slot];
        if c.sent == c.turns {
            return None;
        }
        let user_tokens = samplers.user_tokens.draw(&mut c.rng);
        let added = u64::from(c.last_answer_tokens) + u64::from(user_tokens);
        if c.sent > 0 && c.tokens + added > self.max_prompt_tokens {
            return None;
        }
        if c.sent > 0 {
            let answer = text::words(&mut c.rng, c.last_answer_tokens);
            c.messages.push(Message {
                role: Role::Assistant,
                content: answer.into(),
            });
        }
        c.messages.push(Message {
            role: Role::User,
            content: text::words(&mut c.rng, user_tokens).into(),
        });
        c.tokens += added;
        let max_tokens = samplers.output_tokens.draw(&mut c.rng);
        c.last_answer_tokens = max_tokens;
        c.sent += 1;
        Some((c.id, c.sent, c.messages.clone(), max_tokens))
    }
}

impl Iterator for Workload {
    type Item = PlannedRequest;

    fn next(&mut self) -> Option<PlannedRequest> {
        let offset = self.arrivals.next()?;
        let slot = self.picks.random_range(0..self.slots.len());
        let (conversation, turn, messages, max_tokens) = match self.next_turn(slot) {
            Some(turn) => turn,
            None => {
                self.slots[slot] = self.start_conversation();
                self.next_turn(slot)
                    .expect("a new conversation has a first turn")
            }
        };
        let index = self.next_index;
        self.next_index += 1;
        Some(PlannedRequest {
            index,
            offset,
            conversation,
            turn,
            messages,
            max_tokens,
        })
    }
}
