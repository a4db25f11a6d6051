//! A stand-in for one vLLM replica, without a GPU: `lbx backend --llm`, or [`serve`] in-process.
//!
//! It speaks vLLM's OpenAI-compatible HTTP API (chat and text completions, streamed as
//! Server-Sent Events or whole; the model list; vLLM's `/metrics`), and it takes the time a
//! real replica would, from a model of what makes an inference server slow or fast — so that
//! a router in front of several of them (lbx with `llm_router`, or any other policy) sees the
//! effects it exists for: a prompt whose prefix a replica has cached starts answering sooner,
//! and a replica with a full batch makes requests wait.
//!
//! # The model
//! - **Tokens** (`tokens.rs`): text becomes tokens deterministically, about 4 bytes of English
//!   each; chat messages go through Llama 3's chat template first (`openai.rs`). The reply is
//!   `max_tokens` tokens of filler words, the same for the same prompt.
//! - **KV cache and prefix cache** (`prefix_cache.rs`): `kv_blocks` blocks of `block_size` (16)
//!   tokens. A full block is known by a hash chained over every token before it, as vLLM's
//!   automatic prefix caching does, so two prompts sharing a prefix share its blocks. Blocks of
//!   finished requests stay cached until a new block is needed and none is empty; then the
//!   least recently freed is evicted.
//! - **Continuous batching** (`engine.rs`): at most `max_running` requests run; the rest wait
//!   in FIFO order. A request is admitted when there is room in the batch and free KV blocks for
//!   its uncached prompt and its whole output. Each engine step computes up to
//!   `max_batched_tokens` tokens — one per decoding request, then prompt chunks — and takes
//!   `step_us + prefill_us_per_token·(uncached prompt tokens) +
//!   decode_us_per_token·(decoding requests)`. Hence:
//!   - TTFT = queueing + API overhead + the prefill steps of the prompt tokens **not** cached;
//!   - the time per output token grows with the batch size;
//!   - throughput is bounded by the batch and the cache, and beyond it the queue grows.
//! - **Parameters** (`params.rs`): Llama-3.1-8B-Instruct on one H100 with vLLM v0.8.4, from
//!   the coefficients BLIS fitted to measured vLLM runs; the sources, the comparison with
//!   first principles, and what is assumed are documented there. `--speedup F` divides every
//!   time by F.
//! - **Metrics** (`metrics.rs`): vLLM's names and labels (`vllm:num_requests_waiting`,
//!   `vllm:kv_cache_usage_perc`, `vllm:prefix_cache_hits_total`, TTFT and latency histograms...).
//! - **HTTP** (`api.rs`): hyper, HTTP/1.1 and h2c, `x-llm-replica: <name>` on every answer;
//!   requests read as vLLM reads them (`openai.rs`), answers in vLLM's shapes (`answer.rs`).
//!
//! # Using it
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let mut settings = lbx::llm_sim::Settings::new("replica-1");
//! settings.speedup = 10.0;
//! let (stop, stopped) = lbx::shutdown::channel();
//! tokio::spawn(lbx::llm_sim::serve(listener, settings, stopped));
//! // ... POST /v1/chat/completions ...
//! let _ = stop.send(true);
//! # Ok(())
//! # }
//! ```

pub mod answer;
mod api;
pub mod engine;
pub mod metrics;
pub mod openai;
pub mod params;
pub mod prefix_cache;
pub mod tokens;

#[cfg(test)]
mod tests;

pub use api::serve;
pub use params::{Profile, Settings, SettingsError};
