//! Round-robin routing plugin for lbx.
//!
//! Rotates over the healthy backends: with three healthy backends, successive requests go to
//! 0, 1, 2, 0, 1, 2, ... An unhealthy backend is skipped and the rotation continues evenly over
//! the others. A retry avoids the backends that already failed the request while another
//! healthy one exists. With no healthy backend the plugin answers `no-opinion` and lbx's
//! fallback decides.
//!
//! Configuration: none (`{}`). Per request the plugin reads only numbers and allocates nothing.
//!
//! Build: `bash plugins/build.sh` (produces `plugins/round_robin.wasm`).
//! Test: `cargo test -p round_robin`.

use lbx_guest::{Backends, Candidates, Decision, Request, RetryContext, Router};

/// Round-robin state: how many requests were routed so far.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Requests routed so far; the next one goes to candidate number `turn % candidates`.
    turn: u64,
}

impl Router for RoundRobin {
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
        let count = candidates.count() as u64;
        if count == 0 {
            return lbx_guest::no_opinion();
        }
        // Counting turns over the candidates (rather than remembering the last index) keeps the
        // rotation even when a backend is down: its share is spread over all the others.
        let nth = (self.turn % count) as usize;
        self.turn = self.turn.wrapping_add(1);
        candidates
            .nth(nth)
            .map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
    }
}

lbx_guest::export_router!(RoundRobin);

#[cfg(test)]
mod tests;
