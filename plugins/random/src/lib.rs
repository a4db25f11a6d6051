//! Random routing plugin for lbx: the power of two random choices.
//!
//! For each request the plugin draws two different healthy backends at random and sends the
//! request to the one with fewer requests in flight (the first drawn on a tie). This spreads
//! load almost as well as least-connections while avoiding the herd effect of every lbx
//! instance choosing the same "least loaded" backend. With one healthy backend it is chosen;
//! with none the plugin answers `no-opinion` and lbx's fallback decides. A retry avoids the
//! backends that already failed the request while another healthy one exists.
//!
//! Randomness comes from a small PRNG seeded per plugin instance from the standard library's
//! random keys (WASI random in the host). Configuration: none (`{}`). Per request the plugin
//! reads only numbers and allocates nothing.
//!
//! Build: `bash plugins/build.sh` (produces `plugins/random.wasm`).
//! Test: `cargo test -p random`.

use lbx_guest::{Backends, Candidates, Decision, FastRng, Request, RetryContext, Router};

/// Power-of-two-choices state: the random generator.
#[derive(Debug)]
pub struct PowerOfTwo {
    rng: FastRng,
}

impl PowerOfTwo {
    /// A router with a fixed seed, for reproducible tests.
    pub fn with_seed(seed: u64) -> Self {
        PowerOfTwo {
            rng: FastRng::new(seed),
        }
    }
}

/// Seeded from entropy, so plugin instances make independent choices.
impl Default for PowerOfTwo {
    fn default() -> Self {
        PowerOfTwo {
            rng: FastRng::from_entropy(),
        }
    }
}

impl Router for PowerOfTwo {
    fn init(config: &str) -> Result<Self, String> {
        lbx_guest::init_default(config)
    }

    fn choose(
        &mut self,
        _req: &dyn Request,
        backends: &Backends,
        retry: &RetryContext,
    ) -> Decision {
        let candidates = Candidates::new(backends, retry);
        let count = candidates.count();
        let chosen = match count {
            0 => None,
            1 => candidates.nth(0),
            _ => {
                // Two distinct draws: the second skips over the first.
                let a = self.rng.below(count);
                let mut b = self.rng.below(count - 1);
                if b >= a {
                    b += 1;
                }
                match (candidates.nth(a), candidates.nth(b)) {
                    (Some(a), Some(b)) if backends[b].in_flight < backends[a].in_flight => Some(b),
                    (a, _) => a,
                }
            }
        };
        chosen.map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
    }
}

lbx_guest::export_router!(PowerOfTwo);

#[cfg(test)]
mod tests;
