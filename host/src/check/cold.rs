//! What one decision costs when the CPU caches have gone cold, as they do between requests that
//! arrive one at a time: the figure an access line's `decision_us` shows on a quiet proxy.
//!
//! Measured on the quiet 2-core KVM machine this project is developed on (release build,
//! least_conn): 0.68 µs back to back and 14 µs after 64 MiB was written before each call
//! (`cargo bench -p lbx --bench decision`); the release demo with one request a second logs
//! 40-114 µs, since a second of idleness also lets the virtual CPU sleep and the host run other
//! work on the core (the TLB goes cold too). The built-in choice: 0.10 and 1.7 µs.
//! A Wasm call touches far more memory than the built-in loop (the store, the instance's
//! tables and linear memory, the compiled code, the canonical-ABI lowering of the stats list),
//! and each line of it comes back from memory when cold. Nothing is re-instantiated or
//! recompiled: the pool hands back the same instance.

use std::hint::black_box;

/// Pushes a process's working set out of the CPU caches and TLB by writing a buffer larger
/// than them, as the rest of a machine does while lbx waits for its next request.
#[derive(Debug)]
pub struct CacheEvicter {
    buffer: Vec<u8>,
    round: u8,
}

impl CacheEvicter {
    /// 64 MiB: larger than the L2 and most L3 slices a worker shares, so the next call finds
    /// nothing of its own in them (smaller buffers leave part of it warm: 16 MiB gave 6 µs).
    pub const DEFAULT_BYTES: usize = 64 << 20;

    /// An evicter that writes `bytes` each time.
    pub fn new(bytes: usize) -> Self {
        Self {
            buffer: vec![0; bytes],
            round: 0,
        }
    }

    /// Write one byte in every cache line of the buffer.
    pub fn evict(&mut self) {
        self.round = self.round.wrapping_add(1);
        for byte in self.buffer.iter_mut().step_by(64) {
            *byte = byte.wrapping_add(self.round);
        }
        black_box(&self.buffer);
    }
}

/// Median of `samples` (sorted in place); zero for none.
pub fn median(samples: &mut [std::time::Duration]) -> std::time::Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}
