//! `GET /metrics`: the replica's state in the Prometheus text format (0.0.4), with the names,
//! labels, help texts and bucket bounds vLLM's v1 engine exposes (`vllm/v1/metrics/loggers.py`,
//! `PrometheusStatLogger`), as its `prometheus_client` writes them: counters get their `_total`
//! suffix, labels are sorted by name, values are floats (`3.0`), and every series carries
//! `engine="0"` and `model_name` (the first served model). The `_created` series Python adds to
//! counters and histograms are left out, as vLLM's multiprocess registry leaves them out.
//!
//! Exposed (a subset of vLLM's, the ones a router or a benchmark reads):
//! - gauges `vllm:num_requests_running`, `vllm:num_requests_waiting`,
//!   `vllm:kv_cache_usage_perc` (0 to 1), and `vllm:cache_config_info` (1, the cache's settings
//!   as labels);
//! - counters `vllm:prefix_cache_queries_total` and `vllm:prefix_cache_hits_total` (in tokens:
//!   every prompt token looked up at admission, and those found cached),
//!   `vllm:prompt_tokens_total`, `vllm:generation_tokens_total`, `vllm:num_preemptions_total`
//!   (always 0 here), `vllm:request_success_total{finished_reason}`;
//! - histograms `vllm:time_to_first_token_seconds`, `vllm:inter_token_latency_seconds`,
//!   `vllm:e2e_request_latency_seconds`, `vllm:request_queue_time_seconds`.
//!
//! Times are measured on the replica's own clock, so with `--speedup 10` they are a tenth of
//! the modelled ones, as a client would measure them.

use std::fmt::Write;
use std::time::Duration;

/// vLLM's `vllm:time_to_first_token_seconds` buckets.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// vLLM's `vllm:inter_token_latency_seconds` buckets.
const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];

/// vLLM's buckets for request latencies (end to end, queue time).
const REQUEST_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// Why a request finished, as vLLM's `finished_reason` label says it.
const FINISHED_REASONS: [&str; 3] = ["stop", "length", "abort"];

/// Cumulative bucket counts of observed durations.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Observations `<=` each bound (not yet cumulative).
    counts: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    /// Record one duration.
    pub fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|&b| seconds <= b) {
            self.counts[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their sum, in seconds.
    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// What the engine counts as it runs.
#[derive(Debug, Clone)]
pub struct EngineStats {
    /// Prompt tokens looked up in the prefix cache at admission.
    pub prefix_queries: u64,
    /// Of those, tokens found cached.
    pub prefix_hits: u64,
    /// Prompt tokens of requests that reached their first token.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generation_tokens: u64,
    /// Requests finished because they reached `max_tokens`.
    pub finished_length: u64,
    /// Arrival to first token.
    pub ttft: Histogram,
    /// Between two tokens of one request.
    pub inter_token: Histogram,
    /// Arrival to last token.
    pub e2e: Histogram,
    /// Arrival to admission (time in the waiting queue).
    pub queue_time: Histogram,
}

impl Default for EngineStats {
    fn default() -> Self {
        Self {
            prefix_queries: 0,
            prefix_hits: 0,
            prompt_tokens: 0,
            generation_tokens: 0,
            finished_length: 0,
            ttft: Histogram::new(TTFT_BUCKETS),
            inter_token: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(REQUEST_BUCKETS),
            queue_time: Histogram::new(REQUEST_BUCKETS),
        }
    }
}

/// The engine's state at one moment: what `/metrics` shows.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Requests in the running batch.
    pub running: usize,
    /// Requests waiting for admission.
    pub waiting: usize,
    /// Share of KV blocks in use, 0 to 1.
    pub kv_usage: f64,
    /// KV blocks in all.
    pub kv_blocks: usize,
    /// Tokens per block.
    pub block_size: usize,
    /// Counters and histograms.
    pub stats: EngineStats,
}

/// `snapshot` as vLLM would expose it for `model`.
pub fn render(snapshot: &Snapshot, model: &str) -> String {
    let model = escape(model);
    let labels = format!("engine=\"0\",model_name=\"{model}\"");
    let mut out = String::with_capacity(8 * 1024);
    let stats = &snapshot.stats;

    gauge(
        &mut out,
        "vllm:num_requests_running",
        "Number of requests in model execution batches.",
        &labels,
        snapshot.running as f64,
    );
    gauge(
        &mut out,
        "vllm:num_requests_waiting",
        "Number of requests waiting to be processed.",
        &labels,
        snapshot.waiting as f64,
    );
    gauge(
        &mut out,
        "vllm:kv_cache_usage_perc",
        "KV-cache usage. 1 means 100 percent usage.",
        &labels,
        snapshot.kv_usage,
    );
    let config = format!(
        "block_size=\"{}\",cache_dtype=\"auto\",enable_prefix_caching=\"True\",engine=\"0\",\
         num_gpu_blocks=\"{}\"",
        snapshot.block_size, snapshot.kv_blocks
    );
    gauge(
        &mut out,
        "vllm:cache_config_info",
        "Information of the LLMEngine CacheConfig",
        &config,
        1.0,
    );

    for (name, help, value) in [
        (
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            stats.prefix_queries,
        ),
        (
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            stats.prefix_hits,
        ),
        (
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            0,
        ),
        (
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            stats.prompt_tokens,
        ),
        (
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            stats.generation_tokens,
        ),
    ] {
        header(&mut out, &format!("{name}_total"), help, "counter");
        sample(&mut out, &format!("{name}_total"), &labels, value as f64);
    }
    header(
        &mut out,
        "vllm:request_success_total",
        "Count of successfully processed requests.",
        "counter",
    );
    for reason in FINISHED_REASONS {
        let value = if reason == "length" {
            stats.finished_length
        } else {
            0
        };
        let labels = format!("engine=\"0\",finished_reason=\"{reason}\",model_name=\"{model}\"");
        sample(
            &mut out,
            "vllm:request_success_total",
            &labels,
            value as f64,
        );
    }

    for (name, help, histogram) in [
        (
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &stats.ttft,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &stats.inter_token,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &stats.e2e,
        ),
        (
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            &stats.queue_time,
        ),
    ] {
        histogram_lines(&mut out, name, help, &model, histogram);
    }
    out
}

/// The `Content-Type` of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    let _ = writeln!(out, "{name}{{{labels}}} {}", float(value));
}

fn gauge(out: &mut String, name: &str, help: &str, labels: &str, value: f64) {
    header(out, name, help, "gauge");
    sample(out, name, labels, value);
}

fn histogram_lines(out: &mut String, name: &str, help: &str, model: &str, h: &Histogram) {
    header(out, name, help, "histogram");
    let mut cumulative = 0;
    for (bound, count) in h.bounds.iter().zip(&h.counts) {
        cumulative += count;
        let labels = format!(
            "engine=\"0\",le=\"{}\",model_name=\"{model}\"",
            float(*bound)
        );
        sample(out, &format!("{name}_bucket"), &labels, cumulative as f64);
    }
    let labels = format!("engine=\"0\",le=\"+Inf\",model_name=\"{model}\"");
    sample(out, &format!("{name}_bucket"), &labels, h.count as f64);
    let labels = format!("engine=\"0\",model_name=\"{model}\"");
    sample(out, &format!("{name}_count"), &labels, h.count as f64);
    sample(out, &format!("{name}_sum"), &labels, h.sum);
}

/// A value as Python's `repr(float)` writes the ones used here: always with a decimal point.
fn float(value: f64) -> String {
    format!("{value:?}")
}

/// A label value escaped as the text format wants.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Selector;
    use crate::signals::{exposition, selector};

    fn snapshot() -> Snapshot {
        let mut stats = EngineStats {
            prefix_queries: 4000,
            prefix_hits: 2400,
            prompt_tokens: 4000,
            generation_tokens: 640,
            finished_length: 5,
            ..EngineStats::default()
        };
        for ms in [3, 40, 40, 700, 9000] {
            stats.ttft.observe(Duration::from_millis(ms));
        }
        stats.e2e.observe(Duration::from_secs(2));
        Snapshot {
            running: 3,
            waiting: 7,
            kv_usage: 0.25,
            kv_blocks: 29205,
            block_size: 16,
            stats,
        }
    }

    /// lbx's own `[signals]` scraper reads what the simulator writes: every line parses, and
    /// the selectors an operator would configure find the numbers.
    #[test]
    fn lbx_signals_parse_the_exposition() {
        let text = render(&snapshot(), "meta-llama/Llama-3.1-8B-Instruct");
        let samples: Vec<_> = exposition::samples(&text)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(samples.len() > 40, "{}", samples.len());

        let selectors: Vec<Selector> = [
            "vllm:num_requests_waiting",
            "vllm:num_requests_running",
            "vllm:kv_cache_usage_perc",
            "vllm:prefix_cache_queries_total",
            "vllm:prefix_cache_hits_total",
            "vllm:num_requests_waiting{model_name=\"meta-llama/Llama-3.1-8B-Instruct\"}",
            "vllm:request_success_total{finished_reason=\"length\"}",
            "vllm:time_to_first_token_seconds_bucket{le=\"0.04\"}",
            "vllm:time_to_first_token_seconds_count",
            "vllm:num_requests_waiting{model_name=\"other\"}",
        ]
        .iter()
        .map(|s| Selector::parse(s).unwrap())
        .collect();
        let values = selector::evaluate(&text, &selectors).unwrap();
        assert_eq!(
            &values[..9],
            [7.0, 3.0, 0.25, 4000.0, 2400.0, 7.0, 5.0, 3.0, 5.0]
        );
        assert!(values[9].is_nan(), "another model's queue is missing");
    }

    #[test]
    fn the_text_looks_like_vllms() {
        let text = render(&snapshot(), "m\"x");
        for line in [
            "# TYPE vllm:num_requests_waiting gauge",
            "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\\\"x\"} 7.0",
            "# TYPE vllm:prefix_cache_hits_total counter",
            "vllm:prefix_cache_hits_total{engine=\"0\",model_name=\"m\\\"x\"} 2400.0",
            "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"0.04\",model_name=\"m\\\"x\"} 3.0",
            "vllm:time_to_first_token_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"m\\\"x\"} 5.0",
            "vllm:time_to_first_token_seconds_count{engine=\"0\",model_name=\"m\\\"x\"} 5.0",
            "vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\\\"x\"} 2.0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
