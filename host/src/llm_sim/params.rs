//! The simulator's parameters: what replica it pretends to be, and where each number comes from.
//!
//! The default [`Profile`] is **meta-llama/Llama-3.1-8B-Instruct, BF16, on one NVIDIA H100
//! (tensor parallelism 1), served by vLLM v0.8.4** (`vllm/vllm-openai:v0.8.4`):
//!
//! | parameter | value | source |
//! |---|---|---|
//! | step time, fixed part (`--step-us`) | 5752.7 µs | BLIS β₀ |
//! | per uncached prompt token in the step (`--prefill-us-per-token`) | 17.25 µs | BLIS β₁ |
//! | per decoding sequence in the step (`--decode-us-per-token`) | 6.00 µs | BLIS β₂ |
//! | API server overhead before the engine (`--overhead-us`, `--overhead-us-per-token`) | 232.5 µs + 1.75 µs per prompt token | BLIS α₀, α₁ |
//! | KV cache (`--kv-blocks`) | 29 205 blocks of 16 tokens (467 280 tokens) | BLIS `total_kv_blocks` |
//! | tokens per block (`--block-size`) | 16 | vLLM's default block size on CUDA |
//! | tokens per step (`--max-batched-tokens`) | 8192 | vLLM's `max_num_batched_tokens` for an OpenAI server on an H100 |
//! | running sequences (`--max-running`) | 256 | vLLM's `max_num_seqs` for an OpenAI server (see below) |
//! | context length (`--max-model-len`) | 131 072 | Llama 3.1's `max_position_embeddings` |
//!
//! **BLIS** is the Blackbox LLM Inference Simulator (<https://github.com/inference-sim/inference-sim>).
//! Its `defaults.yaml` (the `models:` entry with `id: meta-llama/llama-3.1-8b-instruct`,
//! `GPU: H100`, `tensor_parallelism: 1`, `vllm_version: vllm/vllm-openai:v0.8.4`) publishes
//! coefficients fitted to measured vLLM runs: one engine step takes
//! `β₀ + β₁·(uncached prompt tokens in the step) + β₂·(decode tokens in the step)` µs
//! (`docs/concepts/glossary.md`, "Beta Coefficients": trained by Bayesian optimisation against
//! real vLLM TTFT, ITL and end-to-end latencies), and a request spends `α₀ + α₁·(prompt tokens)`
//! µs in the API server (tokenising, serialising) before it reaches the engine's queue.
//!
//! What the numbers say, and how they compare with first principles:
//! - decoding alone, one sequence: 5.76 ms per token, 174 tokens/s. The H100's 3.35 TB/s over
//!   16 GB of weights gives 4.8 ms, so the fit sits where a memory-bound step should;
//! - decoding 256 sequences: 7.29 ms per step, 35 000 tokens/s for the replica — the batch
//!   shares one read of the weights, which is what continuous batching buys;
//! - prefilling: 17.25 µs per uncached token, a 2 000-token prompt 40 ms in one step. That is
//!   cheaper than counting FLOPs suggests (2 × 8·10⁹ FLOP per token at the H100's 989 TFLOP/s
//!   is 16 µs at 100 % utilisation, ~32 µs at a typical 50 %): the fit was made on BLIS's
//!   workloads of a few hundred to a few thousand prompt tokens and puts part of the prefill
//!   cost into β₀. It is used as published; `--prefill-us-per-token 32` gives the
//!   compute-bound estimate instead.
//!
//! `max_num_seqs`: vLLM's `SchedulerConfig` and its OpenAI server default to 256; since the
//! 0.8 series its `EngineArgs` raises it to 1024 on an H100 (the same branch that sets 8192
//! tokens per step; vLLM's `tests/engine/test_arg_utils.py::test_defaults_with_usage_context`
//! pins both). 256 is kept here: with 29 205 blocks, 1024 sequences fit only when prompts are
//! under ~450 tokens, and the lower bound queues earlier, which is the behaviour a router is
//! tested against. **An assumption**, like the rest of this list:
//! - the chat template (Llama 3's, see `openai.rs`) and the tokenizer (`tokens.rs`, ~4 bytes a
//!   token as OpenAI's rule of thumb, not Llama 3's BPE);
//! - admission reserves KV blocks for the whole prompt plus `max_tokens`, so a running request
//!   never needs a block that is not there: vLLM allocates as it goes and preempts a running
//!   request when blocks run out; here `vllm:num_preemptions_total` stays 0;
//! - BLIS's α₂ (output processing per token, added to latencies without holding the engine) is
//!   left out: a request here ends with the step that samples its last token.

use std::time::Duration;

/// The numbers that make the replica behave like one model on one GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Fixed cost of one engine step, µs (BLIS β₀).
    pub step_us: f64,
    /// Cost of each uncached prompt token computed in a step, µs (BLIS β₁).
    pub prefill_us_per_token: f64,
    /// Cost of each decoding sequence in a step, µs (BLIS β₂).
    pub decode_us_per_token: f64,
    /// API server time before a request reaches the engine, µs (BLIS α₀).
    pub overhead_us: f64,
    /// Added API server time per prompt token, µs (BLIS α₁).
    pub overhead_us_per_token: f64,
    /// KV cache capacity, in blocks.
    pub kv_blocks: usize,
    /// Tokens per KV block: the prefix cache's granularity.
    pub block_size: usize,
    /// Tokens one step may compute (prefill chunks plus one per decoding sequence).
    pub max_batched_tokens: usize,
    /// Sequences running at once; the rest wait in FIFO order.
    pub max_running: usize,
    /// Longest prompt plus `max_tokens` a request may ask for.
    pub max_model_len: usize,
}

impl Profile {
    /// Llama-3.1-8B-Instruct on one H100 with vLLM v0.8.4 (see the module docs for sources).
    pub const LLAMA_3_1_8B_H100: Profile = Profile {
        step_us: 5752.705,
        prefill_us_per_token: 17.251,
        decode_us_per_token: 5.999,
        overhead_us: 232.462,
        overhead_us_per_token: 1.752,
        kv_blocks: 29_205,
        block_size: 16,
        max_batched_tokens: 8192,
        max_running: 256,
        max_model_len: 131_072,
    };

    /// The default profile.
    pub const DEFAULT: Profile = Self::LLAMA_3_1_8B_H100;

    /// The model name the profile was measured with, served when no `--model` is given.
    pub const DEFAULT_MODEL: &'static str = "meta-llama/Llama-3.1-8B-Instruct";

    /// Modelled duration of one step computing `prefill` uncached prompt tokens and `decode`
    /// decode tokens.
    pub fn step_time(&self, prefill: usize, decode: usize) -> Duration {
        micros(
            self.step_us
                + self.prefill_us_per_token * prefill as f64
                + self.decode_us_per_token * decode as f64,
        )
    }

    /// Modelled API server time for a prompt of `tokens` tokens.
    pub fn overhead(&self, tokens: usize) -> Duration {
        micros(self.overhead_us + self.overhead_us_per_token * tokens as f64)
    }

    /// The context length a request may use: `max_model_len`, or less if the KV cache cannot
    /// hold that many tokens (vLLM refuses to start then; the simulator serves the smaller
    /// length so that tests can run a tiny cache).
    pub fn usable_model_len(&self) -> usize {
        self.max_model_len
            .min(self.kv_blocks.saturating_mul(self.block_size))
    }
}

impl Default for Profile {
    fn default() -> Self {
        Self::DEFAULT
    }
}

fn micros(us: f64) -> Duration {
    Duration::from_secs_f64(us.max(0.0) / 1e6)
}

/// Everything one simulated replica is started with.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The replica's name, sent in the `x-llm-replica` response header.
    pub name: String,
    /// Model names served (aliases of the one engine, as vLLM's `--served-model-name a b`);
    /// the first labels the metrics and is used when a request names none.
    pub models: Vec<String>,
    /// Every modelled time is divided by this, so a benchmark runs in seconds.
    pub speedup: f64,
    /// Output length when a request sets no `max_tokens`.
    pub default_max_tokens: usize,
    /// The engine's numbers.
    pub profile: Profile,
}

/// A setting that cannot work, named by its command-line flag.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// `--speedup` is not a positive number.
    #[error("--speedup must be a positive number, got {0}")]
    Speedup(f64),
    /// A count that must be at least 1 is 0.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// A time coefficient is negative or not a number.
    #[error("{flag} must be a number of microseconds >= 0, got {value}")]
    Micros {
        /// The flag.
        flag: &'static str,
        /// What it was given.
        value: f64,
    },
    /// A model name is empty.
    #[error("--model must not be empty")]
    EmptyModel,
}

impl Settings {
    /// Output length of a request that sets no `max_tokens` (vLLM's would run to the end of
    /// the context; a fixed length keeps a simulated reply bounded).
    pub const DEFAULT_MAX_TOKENS: usize = 256;

    /// A replica named `name` serving the default model with the default profile.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            models: vec![Profile::DEFAULT_MODEL.to_string()],
            speedup: 1.0,
            default_max_tokens: Self::DEFAULT_MAX_TOKENS,
            profile: Profile::default(),
        }
    }

    /// Check every setting; the first one that cannot work, by flag.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(self.speedup.is_finite() && self.speedup > 0.0) {
            return Err(SettingsError::Speedup(self.speedup));
        }
        if self.models.is_empty() || self.models.iter().any(|m| m.is_empty()) {
            return Err(SettingsError::EmptyModel);
        }
        let p = &self.profile;
        for (flag, count) in [
            ("--kv-blocks", p.kv_blocks),
            ("--block-size", p.block_size),
            ("--max-batched-tokens", p.max_batched_tokens),
            ("--max-running", p.max_running),
            ("--max-model-len", p.max_model_len),
            ("--default-max-tokens", self.default_max_tokens),
        ] {
            if count == 0 {
                return Err(SettingsError::Zero(flag));
            }
        }
        for (flag, value) in [
            ("--step-us", p.step_us),
            ("--prefill-us-per-token", p.prefill_us_per_token),
            ("--decode-us-per-token", p.decode_us_per_token),
            ("--overhead-us", p.overhead_us),
            ("--overhead-us-per-token", p.overhead_us_per_token),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(SettingsError::Micros { flag, value });
            }
        }
        Ok(())
    }

    /// `modelled` as it passes on this replica's clock.
    pub fn scaled(&self, modelled: Duration) -> Duration {
        modelled.div_f64(self.speedup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_time_follows_the_published_fit() {
        let p = Profile::default();
        // One sequence decoding: β₀ + β₂.
        assert_eq!(p.step_time(0, 1).as_micros(), 5758);
        // A 2 000-token prompt in one step: β₀ + 2000·β₁.
        assert_eq!(p.step_time(2000, 0).as_micros(), 40_254);
        // A full batch decoding.
        assert_eq!(p.step_time(0, 256).as_micros(), 7288);
        assert_eq!(p.overhead(1000).as_micros(), 1984);
    }

    #[test]
    fn bad_settings_are_named_by_flag() {
        let mut s = Settings::new("a");
        assert_eq!(s.validate(), Ok(()));
        s.speedup = 0.0;
        assert!(s.validate().unwrap_err().to_string().contains("--speedup"));
        let mut s = Settings::new("a");
        s.profile.kv_blocks = 0;
        assert_eq!(s.validate(), Err(SettingsError::Zero("--kv-blocks")));
        let mut s = Settings::new("a");
        s.profile.decode_us_per_token = f64::NAN;
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("--decode-us-per-token")
        );
        let mut s = Settings::new("a");
        s.models = vec![String::new()];
        assert_eq!(s.validate(), Err(SettingsError::EmptyModel));
    }

    #[test]
    fn a_small_cache_bounds_the_context_length() {
        let mut p = Profile::default();
        assert_eq!(p.usable_model_len(), 131_072);
        p.kv_blocks = 64;
        assert_eq!(p.usable_model_len(), 1024);
    }
}
