//! Test-only lbx plugin: behaves as its configuration says, so the host's integration tests can
//! use real Wasm that misbehaves, shapes its picks, and reports what it heard. Not shipped in
//! `plugins/`.
//!
//! Configuration (`[plugin.config]`; unknown keys are refused):
//!
//! What it does per request, `mode`:
//! - `"count"` (the default): counts requests in the host key-value store (key `requests`) and
//!   answers the count in the response header `x-request-number`; picks the first candidate
//!   (healthy, not yet tried). The count survives hot swaps because the store does.
//! - `"no_opinion"`: answers `no-opinion`, so lbx's fallback picks (its outcomes carry tag 0).
//! - `"loop"`: never returns (the host's deadline must cut it off).
//! - `"grow"`: allocates without bound (the host's memory cap must stop it).
//! - `"panic"`: panics (a trap).
//! - `"print"`: writes to stdout, which lbx does not provide (the decision fails).
//! - `fail_first = N` (with any mode): the first N requests panic, later ones behave as
//!   `mode` says; counted in the key-value store (key `failures`), so it spans instances.
//! - `reject = 429` (with `count` mode): rejects with that status (any number, so the host's
//!   check can be tested), adding `reject_headers = [["retry-after", "2"], ...]` to lbx's
//!   answer.
//!
//! What its picks carry (`count` mode), each sent exactly as given, so the host's checks can be
//! tested: `backend = 7` (the index picked instead of the first candidate; out of range is
//! fine), `fallbacks = [2, 0, 2, 9]` (duplicates and indexes out of range too), `retry_on =
//! [503, 429]`, `rewrite = "/v2/x?y=1"` (or `"/a\r\nx: y"`, or `"relative"`), `tag = 7`.
//!
//! What it heard:
//! - `outcomes = "record"` asks lbx for outcome feedback and records each outcome: as one JSON
//!   line logged at info (`{"test_router":"outcome","n":1,"backend":0,"status":200,
//!   "fault":null,"ttfb_us":812,"first_byte_us":840,"total_us":901,"bytes_up":0,"bytes_down":1,"attempt":0,"tag":7}`,
//!   `fault` being `"client"`, `"backend"` or `"lbx"` when set), stored under `outcome/<n>` in
//!   the key-value store with the count under `outcomes`; and every later pick adds the response
//!   headers `x-test-outcomes` (the count) and `x-test-last-outcome` (the latest line).
//!   `outcomes = "panic"` and `outcomes = "loop"` ask for outcomes and then panic, or never
//!   return, in `on-outcome`. Without `outcomes` the plugin does not ask for them.
//! - `report = true` adds upstream headers for a raw backend to record: `x-test-body-prefix-len`
//!   (the length of the body prefix, or `none`), `x-test-body-model` (its top-level JSON
//!   `model`, when there is one), `x-test-signals` (`{"names":[..],"backends":[{"age_ms":..,
//!   "values":[..]},..]}`, `null` for a missing number), `x-test-now-us` (the host's clock),
//!   `x-test-attempt` and `x-test-tried` (the retry context, `0,2`).
//!
//! Misbehaviour, shaping and reporting spare lbx's trial request (host `lbx-trial.invalid`),
//! which every new version must answer before it is put in force: these are plugins that pass
//! their smoke test and fail on real traffic. Except `stall_first_trial = true`: the first
//! trial request ever (counted in the key-value store, key `trials`) never returns, as a
//! decision held up once by a loaded machine would miss its deadline; later trials answer.

use lbx_guest::{Backends, Candidates, Decision, Outcome, Request, RetryContext, Router, kv};
use serde::Deserialize;

mod report;

/// What the plugin does per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Count,
    NoOpinion,
    Loop,
    Grow,
    Panic,
    Print,
}

/// What the plugin does with outcome feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnOutcome {
    /// Does not ask for outcomes.
    Ignore,
    Record,
    Panic,
    Loop,
}

/// `[plugin.config]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Option<String>,
    #[serde(default)]
    fail_first: i64,
    backend: Option<u32>,
    #[serde(default)]
    fallbacks: Vec<u32>,
    #[serde(default)]
    retry_on: Vec<u16>,
    rewrite: Option<String>,
    #[serde(default)]
    tag: u64,
    outcomes: Option<String>,
    #[serde(default)]
    report: bool,
    reject: Option<u16>,
    #[serde(default)]
    reject_headers: Vec<(String, String)>,
    #[serde(default)]
    stall_first_trial: bool,
}

/// The plugin.
#[derive(Debug)]
pub struct TestRouter {
    mode: Mode,
    on_outcome: OnOutcome,
    settings: Settings,
    /// Where `grow` keeps what it allocates, so nothing is freed.
    hoard: Vec<Vec<u8>>,
}

impl TestRouter {
    /// The first candidate, shaped as configured and carrying what the plugin heard.
    fn shaped_pick(
        &self,
        req: &dyn Request,
        backends: &Backends,
        retry: &RetryContext,
    ) -> Decision {
        let first = Candidates::new(backends, retry).nth(0);
        let Some(index) = self.settings.backend.map(|i| i as usize).or(first) else {
            return lbx_guest::no_opinion();
        };
        let mut decision = lbx_guest::pick(index)
            .fallbacks(self.settings.fallbacks.iter().map(|&i| i as usize))
            .retry_on(&self.settings.retry_on)
            .tag(self.settings.tag);
        if let Some(rewrite) = &self.settings.rewrite {
            decision = decision.rewrite(rewrite.as_str());
        }
        if self.on_outcome == OnOutcome::Record {
            let count = kv::increment("outcomes", 0).unwrap_or(-1);
            decision = decision.downstream_header("x-test-outcomes", count.to_string());
            if let Some(last) = kv::get(&format!("outcome/{count}")) {
                decision = decision
                    .downstream_header("x-test-last-outcome", String::from_utf8_lossy(&last));
            }
        }
        if self.settings.report {
            for (name, value) in report::heard(req, backends, retry) {
                decision = decision.upstream_header(name, value);
            }
        }
        decision
    }
}

impl Router for TestRouter {
    fn init(config: &str) -> Result<Self, String> {
        let settings: Settings = lbx_guest::parse_config(config)?;
        let mode = match settings.mode.as_deref() {
            None | Some("count") => Mode::Count,
            Some("no_opinion") => Mode::NoOpinion,
            Some("loop") => Mode::Loop,
            Some("grow") => Mode::Grow,
            Some("panic") => Mode::Panic,
            Some("print") => Mode::Print,
            Some(other) => return Err(format!("unknown mode {other:?}")),
        };
        let on_outcome = match settings.outcomes.as_deref() {
            None => OnOutcome::Ignore,
            Some("record") => OnOutcome::Record,
            Some("panic") => OnOutcome::Panic,
            Some("loop") => OnOutcome::Loop,
            Some(other) => return Err(format!("unknown outcomes {other:?}")),
        };
        Ok(Self {
            mode,
            on_outcome,
            settings,
            hoard: Vec::new(),
        })
    }

    fn wants_outcomes(&self) -> bool {
        self.on_outcome != OnOutcome::Ignore
    }

    fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
        if req.authority().as_deref() == Some("lbx-trial.invalid") {
            if self.settings.stall_first_trial && kv::increment("trials", 1).unwrap_or(0) == 1 {
                loop {
                    std::hint::black_box(&self.hoard);
                }
            }
            return Candidates::new(backends, retry)
                .nth(0)
                .map_or_else(lbx_guest::no_opinion, lbx_guest::pick);
        }
        let fail_first = self.settings.fail_first;
        if fail_first > 0 && kv::increment("failures", 1).unwrap_or(0) <= fail_first {
            panic!("failing on purpose (fail_first)");
        }
        match self.mode {
            Mode::Count => {
                let count = kv::increment("requests", 1).unwrap_or(-1);
                if let Some(status) = self.settings.reject {
                    return self
                        .settings
                        .reject_headers
                        .iter()
                        .fold(lbx_guest::reject(status), |decision, (name, value)| {
                            decision.downstream_header(name, value)
                        });
                }
                self.shaped_pick(req, backends, retry)
                    .downstream_header("x-request-number", count.to_string())
            }
            Mode::NoOpinion => lbx_guest::no_opinion(),
            Mode::Loop => loop {
                std::hint::black_box(&self.hoard);
            },
            Mode::Grow => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            Mode::Panic => panic!("panicking on purpose"),
            Mode::Print => {
                println!("routing {}", req.path());
                self.shaped_pick(req, backends, retry)
            }
        }
    }

    fn on_outcome(&mut self, outcome: &Outcome) {
        match self.on_outcome {
            OnOutcome::Ignore => {}
            OnOutcome::Record => {
                let n = kv::increment("outcomes", 1).unwrap_or(-1);
                let line = report::outcome_line(n, outcome);
                // A full store loses the stored copy, never the log line.
                let _ = kv::set(&format!("outcome/{n}"), line.as_bytes());
                lbx_guest::log(lbx_guest::LogLevel::Info, &line);
            }
            OnOutcome::Panic => panic!("panicking on purpose in on-outcome"),
            OnOutcome::Loop => loop {
                std::hint::black_box(&self.hoard);
            },
        }
    }
}

lbx_guest::export_router!(TestRouter);

#[cfg(test)]
mod tests;
