//! Test-only lbx plugin: behaves as its configuration says, so the sandbox and hot-swap tests
//! can use real misbehaving Wasm. Not shipped in `plugins/`.
//!
//! Configuration (`[plugin.config]`):
//! - `mode = "count"`: counts requests in the host key-value store (key `requests`) and
//!   answers the count in the response header `x-request-number`; picks the first healthy
//!   backend. The count survives hot swaps because the store does.
//! - `mode = "loop"`: never returns (the host's deadline must cut it off).
//! - `mode = "grow"`: allocates without bound (the host's memory cap must stop it).
//! - `mode = "panic"`: panics (a trap).
//! - `mode = "print"`: writes to stdout, which lbx does not provide (the decision fails).
//! - `fail_first = N` (with any mode): the first N requests panic, later ones behave as
//!   `mode` says; counted in the key-value store (key `failures`), so it spans instances.
//!
//! Misbehaviour spares lbx's trial request (host `lbx-trial.invalid`), which every new
//! version must answer before it is put in force: these are plugins that pass their smoke
//! test and fail on real traffic.

use lbx_guest::{Backends, Candidates, Decision, Request, RetryContext, Router, kv};

/// What the plugin was configured to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Count,
    Loop,
    Grow,
    Panic,
    Print,
}

/// The plugin.
#[derive(Debug)]
pub struct TestRouter {
    mode: Mode,
    fail_first: i64,
    /// Where `grow` keeps what it allocates, so nothing is freed.
    hoard: Vec<Vec<u8>>,
}

impl Router for TestRouter {
    fn init(config: &str) -> Result<Self, String> {
        let mode = match string_field(config, "mode").as_deref() {
            None | Some("count") => Mode::Count,
            Some("loop") => Mode::Loop,
            Some("grow") => Mode::Grow,
            Some("panic") => Mode::Panic,
            Some("print") => Mode::Print,
            Some(other) => return Err(format!("unknown mode {other:?}")),
        };
        let fail_first = number_field(config, "fail_first").unwrap_or(0);
        Ok(Self {
            mode,
            fail_first,
            hoard: Vec::new(),
        })
    }

    fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
        let first_healthy = Candidates::new(backends, retry)
            .nth(0)
            .map_or_else(lbx_guest::no_opinion, lbx_guest::pick);
        if req.authority().as_deref() == Some("lbx-trial.invalid") {
            return first_healthy;
        }
        if self.fail_first > 0 && kv::increment("failures", 1).unwrap_or(0) <= self.fail_first {
            panic!("failing on purpose (fail_first)");
        }
        match self.mode {
            Mode::Count => {
                let count = kv::increment("requests", 1).unwrap_or(-1);
                match first_healthy {
                    Decision::Pick(pick) => lbx_guest::pick_with_headers(
                        pick.backend as usize,
                        Vec::new(),
                        vec![lbx_guest::header("x-request-number", count.to_string())],
                    ),
                    other => other,
                }
            }
            Mode::Loop => loop {
                std::hint::black_box(&self.hoard);
            },
            Mode::Grow => loop {
                self.hoard.push(vec![1u8; 1 << 20]);
            },
            Mode::Panic => panic!("panicking on purpose"),
            Mode::Print => {
                println!("routing {}", req.path());
                first_healthy
            }
        }
    }
}

/// `"key":"value"` in the host's compact JSON (serde_json output, no spaces).
fn string_field(json: &str, key: &str) -> Option<String> {
    let start = json.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = json[start..].find('"')?;
    Some(json[start..start + end].to_string())
}

/// `"key":123` in the host's compact JSON.
fn number_field(json: &str, key: &str) -> Option<i64> {
    let start = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let digits: String = json[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

lbx_guest::export_router!(TestRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use lbx_guest::testkit::{FakeRequest, all_healthy, first_attempt, picked};

    #[test]
    fn count_mode_counts_in_the_store_and_reports_it() {
        lbx_guest::kv::clear();
        let mut router = TestRouter::init("{\"mode\":\"count\"}").unwrap();
        let req = FakeRequest::get("/");
        for expected in 1..=3 {
            let decision = router.choose(&req, &all_healthy(2), &first_attempt());
            assert_eq!(picked(&decision), Some(0));
            let Decision::Pick(pick) = decision else {
                unreachable!()
            };
            assert_eq!(pick.downstream_headers[0].value, expected.to_string());
        }
    }

    #[test]
    fn config_is_read_and_unknown_modes_are_refused() {
        let router = TestRouter::init("{\"fail_first\":4,\"mode\":\"loop\"}").unwrap();
        assert_eq!((router.mode, router.fail_first), (Mode::Loop, 4));
        assert!(TestRouter::init("{\"mode\":\"fly\"}").is_err());
    }
}
