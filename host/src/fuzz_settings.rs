//! How many cases the randomised tests run, and from which seed: `LBX_FUZZ_SEED` and
//! `LBX_FUZZ_CASES`, read the same way by the HTTP/1.1 differential fuzz (a unit test) and the
//! body relay property test (an integration test), so a seed printed by either reruns it.
//!
//! Test support only; nothing on the request path reads it.

use std::hash::{BuildHasher, RandomState};

/// The seed and case count a randomised test runs with.
///
/// `LBX_FUZZ_SEED`: unset, `ci_seed` (what a plain `cargo test`, and so CI, uses: the same
/// inputs on every run and machine); `random`, a seed from the clock, so each run explores new
/// inputs; otherwise the seed itself. `LBX_FUZZ_CASES`, or `default_cases`. A value that is
/// not a number is refused by name.
pub fn fuzz_settings(ci_seed: u64, default_cases: u32) -> (u64, u32) {
    let seed = match std::env::var("LBX_FUZZ_SEED").as_deref() {
        Err(_) => ci_seed,
        Ok("random") => RandomState::new().hash_one(std::time::SystemTime::now()),
        Ok(seed) => seed
            .parse()
            .unwrap_or_else(|_| panic!("LBX_FUZZ_SEED must be a number or `random`, not {seed:?}")),
    };
    let cases = match std::env::var("LBX_FUZZ_CASES") {
        Err(_) => default_cases,
        Ok(cases) => cases
            .parse()
            .unwrap_or_else(|_| panic!("LBX_FUZZ_CASES must be a number, not {cases:?}")),
    };
    (seed, cases)
}
