//! Least-connections routing plugin for lbx.
//!
//! Sends each request to the healthy backend with the fewest requests in flight. Ties are
//! broken in rotation: the search starts just after the previously chosen backend, so equally
//! loaded backends take turns instead of backend 0 getting every request. A retry avoids the
//! backends that already failed the request while another healthy one exists. With no healthy
//! backend the plugin answers `no-opinion` and lbx's fallback decides.
//!
//! Weights are not considered: the comparison is on raw in-flight counts.
//!
//! Configuration: none (`{}`). Per request the plugin reads only numbers and allocates nothing.
//!
//! Build: `bash plugins/build.sh` (produces `plugins/least_conn.wasm`).
//! Test: `cargo test -p least_conn`.

use lbx_guest::{Backends, Candidates, Decision, Request, RetryContext, Router};

/// Least-connections state: where the next tie-breaking scan starts.
#[derive(Debug, Default)]
pub struct LeastConn {
    /// Index just after the last chosen backend.
    start: usize,
}

impl Router for LeastConn {
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
        // The first minimum met when scanning from `start` wins, so ties rotate.
        let mut best: Option<(usize, u32)> = None;
        for index in candidates.iter_from(self.start) {
            let load = backends[index].in_flight;
            if best.is_none_or(|(_, least)| load < least) {
                best = Some((index, load));
            }
        }
        match best {
            Some((index, _)) => {
                self.start = index.wrapping_add(1);
                lbx_guest::pick(index)
            }
            None => lbx_guest::no_opinion(),
        }
    }
}

lbx_guest::export_router!(LeastConn);

#[cfg(test)]
mod tests;
