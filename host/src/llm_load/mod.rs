//! `lbx llm-load`: an open-loop workload generator for OpenAI-compatible LLM servers (vLLM,
//! the simulator `lbx backend --llm`, or lbx in front of either), so routing policies can be
//! compared on identical, realistic chat traffic (issue 18, part 4).
//!
//! **The workload** ([`workload`]): requests arrive as a Poisson process at `rate` per second
//! for `duration`. They belong to multi-turn conversations (`conversations` in progress at a
//! time, each arrival the next turn of one chosen at random). Every conversation starts from
//! one of a few long shared system prompts (`system_prompts`), so unrelated users share a
//! prefix, then a user message; each later turn's prompt is the previous prompt, the previous
//! answer and a new user message, so turn k is a prefix of turn k+1. Lengths in tokens are
//! drawn from a published profile ([`Profile`], sources in `profile.rs`); text is
//! deterministic pseudo-words at four bytes per token ([`text`]); `max_tokens` is the drawn
//! answer length. Everything is decided by `seed`: the same seed sends the same requests, in
//! the same order, at the same offsets.
//!
//! **The requests** (`body.rs`): `POST /v1/chat/completions` (or `/v1/completions`),
//! `"stream": true`, `stream_options: {"include_usage": true}`, and the header
//! `x-session-id: conv-<n>` naming the conversation, for hash policies.
//!
//! **Measuring** (`exchange.rs`, `sse.rs`, `chunk.rs`): per request, the time to the first
//! event carrying text (TTFT), to `[DONE]` (end-to-end), tokens generated, prompt tokens and
//! those the server served from its prefix cache (`usage.prompt_tokens_details.cached_tokens`);
//! 429 counts as shed, other failures as errors by kind.
//!
//! **Sending** (`driver.rs`): open loop — requests go out on schedule whether or not earlier
//! ones finished — over pooled HTTP/1.1 keep-alive connections, with a bound on outstanding
//! requests (arrivals beyond it are dropped by the generator and counted).
//!
//! **The report** ([`Report`]): a table, or one JSON object with stable field names.
//!
//! In-process use (`lbx demo --llm`, benchmarks):
//!
//! ```no_run
//! # async fn demo() -> Result<(), lbx::llm_load::SettingsError> {
//! use std::time::Duration;
//! let settings = lbx::llm_load::Settings {
//!     url: "http://127.0.0.1:8080".into(),
//!     rate: 20.0,
//!     duration: Duration::from_secs(10),
//!     ..Default::default()
//! };
//! let report = lbx::llm_load::run(&settings).await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

mod body;
mod chunk;
mod driver;
mod exchange;
mod profile;
mod report;
mod settings;
mod sse;
#[cfg(test)]
mod tests;
pub mod text;
pub mod workload;

pub use driver::SESSION_HEADER;
pub use profile::{Profile, Shape, Spread};
pub use report::{Report, Summary};
pub use settings::{Api, DEFAULT_MODEL, Settings, SettingsError};
pub use workload::{PlannedRequest, Workload};

/// Run the workload `settings` describe against their URL and summarise what was measured.
/// Fails only on settings that cannot run; failed requests are counted in the report.
pub async fn run(settings: &Settings) -> Result<Report, SettingsError> {
    let endpoint = settings.endpoint()?;
    let workload = Workload::new(settings)?;
    let run = driver::drive(settings, endpoint.clone(), workload).await;
    Ok(Report::new(settings, &endpoint.to_string(), &run))
}
