//! `[plugin.config]` of the LLM router: every key optional (the defaults are documented in the
//! crate's README, and `{}` is a complete configuration), unknown keys refused, and every
//! problem reported at once with its key.

use serde::Deserialize;

/// The plugin's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Request paths whose body is read for a model and a prompt.
    pub paths: Vec<String>,
    /// The backend label listing the models a backend serves.
    pub model_label: String,
    /// Status answered when no backend serves the request's model.
    pub unknown_model_status: u16,
    /// Names of the backend signals read.
    pub signals: SignalNames,
    /// Weights of the score's terms.
    pub weights: Weights,
    /// When a backend counts as saturated, and what to do when all are.
    pub saturation: Saturation,
    /// The prefix index.
    pub prefix: PrefixSettings,
    /// How many next-best backends a pick names as fallbacks.
    pub fallbacks: usize,
    /// Requests one backend runs at once (vLLM's `--max-num-seqs`), known before any backend
    /// is seen queueing; unset: learned from the scrapes alone.
    pub slots: Option<f64>,
}

/// Which `[signals] metrics` the router reads, by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalNames {
    /// Requests waiting in the backend's queue.
    pub waiting: String,
    /// Requests running at the backend (teaches its slots; optional).
    pub running: String,
    /// Share of the backend's KV cache in use, 0 to 1.
    pub kv_cache: String,
    /// Older scrapes are ignored (as if missing), in milliseconds.
    pub max_age_ms: f64,
}

/// Weights of the terms of a backend's score.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    /// Share of the prompt's blocks the backend was sent before (0 to 1).
    pub prefix: f64,
    /// Each estimated waiting request: the scraped queue corrected by lbx's in-flight count.
    pub queue: f64,
    /// Each of lbx's in-flight requests (running or waiting) at the backend.
    pub in_flight: f64,
    /// KV-cache use (0 to 1).
    pub kv_cache: f64,
    /// Doublings of learned time to first byte over the fastest candidate's (0 to 4).
    pub ttft: f64,
}

/// Saturation: when a backend is avoided, and whether requests are shed when all are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Saturation {
    /// Estimated waiting requests at which a backend is saturated.
    pub waiting: f64,
    /// KV-cache use at which a backend is saturated.
    pub kv_cache: f64,
    /// Reject requests when every candidate is saturated.
    pub shed: bool,
    /// The status of a shed request.
    pub shed_status: u16,
    /// Seconds a shed client is told to wait (`retry-after`); 0: no such field.
    pub retry_after: u32,
}

/// The prefix index.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrefixSettings {
    /// Bytes of prompt per block.
    pub block_bytes: usize,
    /// Blocks hashed at most (the rest of a longer prompt is not matched).
    pub max_blocks: usize,
    /// Entries kept in lbx's key-value store.
    pub capacity: u64,
    /// Prefix of the index's keys in the store.
    pub key_prefix: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            paths: vec!["/v1/chat/completions".into(), "/v1/completions".into()],
            model_label: "model".into(),
            unknown_model_status: 404,
            signals: SignalNames::default(),
            weights: Weights::default(),
            saturation: Saturation::default(),
            prefix: PrefixSettings::default(),
            fallbacks: 2,
            slots: None,
        }
    }
}

impl Default for SignalNames {
    fn default() -> Self {
        SignalNames {
            waiting: "vllm:num_requests_waiting".into(),
            running: "vllm:num_requests_running".into(),
            kv_cache: "vllm:kv_cache_usage_perc".into(),
            max_age_ms: 10_000.0,
        }
    }
}

impl Default for Weights {
    /// llm-d's default scheduler weights for prefix and KV cache (3 and 2), and one for TTFT.
    /// Load is split where llm-d has one min-max normalised queue term: a waiting request
    /// outweighs a whole prefix match (4 > 3), an in-flight one weighs a twelfth of it, so a
    /// conversation stays with its replica while that one has a free slot — a place in a queue
    /// costs a running request's remaining time (seconds), a missed prefix its recomputation
    /// (17 µs a token on an H100: tens of ms for a chat). Measured in README, "LLM routing".
    fn default() -> Self {
        Weights {
            prefix: 3.0,
            queue: 4.0,
            in_flight: 0.25,
            kv_cache: 2.0,
            ttft: 1.0,
        }
    }
}

impl Default for Saturation {
    /// The Gateway API Inference Extension's saturation thresholds: 5 waiting, 80% KV cache.
    fn default() -> Self {
        Saturation {
            waiting: 5.0,
            kv_cache: 0.8,
            shed: false,
            shed_status: 429,
            retry_after: 1,
        }
    }
}

impl Default for PrefixSettings {
    /// 64-byte blocks (16 tokens of ~4 characters, vLLM's block), 256 of them (llm-d's
    /// default), 4096 entries (~215 KB of the default 1 MiB store).
    fn default() -> Self {
        PrefixSettings {
            block_bytes: 64,
            max_blocks: 256,
            capacity: 4096,
            key_prefix: "llm:".into(),
        }
    }
}

impl Settings {
    /// Parses and checks the JSON configuration lbx hands to `init`.
    pub fn parse(config: &str) -> Result<Self, String> {
        let settings: Settings = lbx_guest::parse_config(config)?;
        settings.validate()?;
        Ok(settings)
    }

    /// Every problem, each naming its key, joined with `; `.
    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, key: &str, problem: String| {
            if !ok {
                problems.push(lbx_guest::config_error(key, &problem));
            }
        };
        for (i, path) in self.paths.iter().enumerate() {
            check(
                path.starts_with('/'),
                &format!("paths[{i}]"),
                format!("{path:?} is not a path; it must start with /"),
            );
        }
        check(
            !self.model_label.is_empty(),
            "model_label",
            "must not be empty".into(),
        );
        for (key, status) in [
            ("unknown_model_status", self.unknown_model_status),
            ("saturation.shed_status", self.saturation.shed_status),
        ] {
            check(
                (400..=599).contains(&status),
                key,
                format!("{status} is not an error status (400-599)"),
            );
        }
        let weights = &self.weights;
        for (key, weight) in [
            ("weights.prefix", weights.prefix),
            ("weights.queue", weights.queue),
            ("weights.in_flight", weights.in_flight),
            ("weights.kv_cache", weights.kv_cache),
            ("weights.ttft", weights.ttft),
        ] {
            check(
                weight.is_finite() && weight >= 0.0,
                key,
                format!("{weight} is not a weight (a number ≥ 0)"),
            );
        }
        for (key, value) in [
            ("signals.max_age_ms", self.signals.max_age_ms),
            ("saturation.waiting", self.saturation.waiting),
            ("saturation.kv_cache", self.saturation.kv_cache),
        ] {
            check(
                value.is_finite() && value > 0.0,
                key,
                format!("{value} must be a number > 0"),
            );
        }
        if let Some(slots) = self.slots {
            check(
                slots.is_finite() && slots >= 1.0,
                "slots",
                format!("{slots} is not a number of requests (≥ 1)"),
            );
        }
        let prefix = &self.prefix;
        check(
            (16..=4096).contains(&prefix.block_bytes),
            "prefix.block_bytes",
            format!("{} is not within 16..=4096", prefix.block_bytes),
        );
        check(
            (1..=4096).contains(&prefix.max_blocks),
            "prefix.max_blocks",
            format!("{} is not within 1..=4096", prefix.max_blocks),
        );
        check(
            (16..=1_000_000).contains(&prefix.capacity),
            "prefix.capacity",
            format!("{} is not within 16..=1000000", prefix.capacity),
        );
        check(
            (1..=32).contains(&prefix.key_prefix.len())
                && prefix.key_prefix.bytes().all(|b| b.is_ascii_graphic()),
            "prefix.key_prefix",
            format!(
                "{:?} must be 1 to 32 visible ASCII characters",
                prefix.key_prefix
            ),
        );
        check(
            self.fallbacks <= 16,
            "fallbacks",
            format!("{} is more than 16", self.fallbacks),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_configuration_is_a_complete_one() {
        let settings = Settings::parse("{}").unwrap();
        assert_eq!(settings.paths, ["/v1/chat/completions", "/v1/completions"]);
        assert_eq!(settings.unknown_model_status, 404);
        assert_eq!(settings.prefix.block_bytes, 64);
        assert!(!settings.saturation.shed);
    }

    #[test]
    fn a_partial_table_keeps_the_other_defaults() {
        let settings =
            Settings::parse(r#"{"weights":{"prefix":5},"saturation":{"shed":true}}"#).unwrap();
        assert_eq!(
            (settings.weights.prefix, settings.weights.queue),
            (5.0, 4.0)
        );
        assert_eq!(settings.saturation.shed_status, 429);
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let err = Settings::parse(
            r#"{"paths":["v1"],"unknown_model_status":200,"weights":{"queue":-1},"prefix":{"block_bytes":8,"key_prefix":""}}"#,
        )
        .unwrap_err();
        for expected in [
            "plugin.config.paths[0]: \"v1\" is not a path",
            "plugin.config.unknown_model_status: 200 is not an error status",
            "plugin.config.weights.queue: -1 is not a weight",
            "plugin.config.prefix.block_bytes: 8 is not within 16..=4096",
            "plugin.config.prefix.key_prefix: \"\" must be 1 to 32",
        ] {
            assert!(err.contains(expected), "{expected} not in {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Settings::parse(r#"{"weights":{"prefx":1}}"#).unwrap_err();
        assert!(
            err.starts_with("plugin.config.weights: unknown field `prefx`"),
            "{err}"
        );
    }
}
