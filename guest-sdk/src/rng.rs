//! A tiny, fast pseudo-random generator for routing decisions (not for secrets).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// wyrand: a 64-bit pseudo-random generator with one word of state, a few nanoseconds per
/// number, and good statistical quality for load balancing. **Not** cryptographically secure.
///
/// Seed it with [`from_entropy`](FastRng::from_entropy) in production and with
/// [`new`](FastRng::new) in tests, where a fixed seed makes choices reproducible.
///
/// ```
/// use lbx_guest::FastRng;
///
/// let mut rng = FastRng::new(42);
/// let index = rng.below(3);
/// assert!(index < 3);
/// // The same seed gives the same sequence.
/// assert_eq!(FastRng::new(7).next_u64(), FastRng::new(7).next_u64());
/// ```
#[derive(Clone, Debug)]
pub struct FastRng {
    state: u64,
}

impl FastRng {
    /// A generator with a fixed seed: the same seed always gives the same sequence.
    ///
    /// ```
    /// let mut rng = lbx_guest::FastRng::new(1);
    /// let _ = rng.next_u64();
    /// ```
    pub const fn new(seed: u64) -> Self {
        FastRng { state: seed }
    }

    /// A generator seeded from the standard library's per-process random keys
    /// ([`RandomState`]), so plugin instances do not all make the same choices. In a Wasm
    /// plugin these keys come from the host's WASI random source; this crate pulls in no extra
    /// dependency for it.
    ///
    /// ```
    /// let mut rng = lbx_guest::FastRng::from_entropy();
    /// assert!(rng.below(10) < 10);
    /// ```
    pub fn from_entropy() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        FastRng::new(hasher.finish())
    }

    /// The next pseudo-random 64-bit number.
    ///
    /// ```
    /// let mut rng = lbx_guest::FastRng::new(3);
    /// assert_ne!(rng.next_u64(), rng.next_u64());
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// A pseudo-random number in `0..n`, or 0 when `n` is 0.
    ///
    /// Uses a multiply-shift instead of `%`: no division, and a bias below `n / 2^64`, which
    /// is negligible for any realistic number of backends.
    ///
    /// ```
    /// let mut rng = lbx_guest::FastRng::new(9);
    /// assert!(rng.below(4) < 4);
    /// assert_eq!(rng.below(0), 0);
    /// ```
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::FastRng;

    #[test]
    fn below_stays_in_range_and_reaches_every_value() {
        let mut rng = FastRng::new(123);
        let mut seen = [0u32; 5];
        for _ in 0..10_000 {
            seen[rng.below(5)] += 1;
        }
        // Each bucket expects 2,000; allow a generous margin.
        assert!(
            seen.iter().all(|&c| (1_700..2_300).contains(&c)),
            "{seen:?}"
        );
    }

    #[test]
    fn below_one_is_always_zero() {
        let mut rng = FastRng::new(5);
        assert!((0..100).all(|_| rng.below(1) == 0));
    }

    #[test]
    fn different_seeds_give_different_sequences() {
        assert_ne!(FastRng::new(1).next_u64(), FastRng::new(2).next_u64());
    }

    #[test]
    fn entropy_seeds_differ_between_generators() {
        let a = FastRng::from_entropy().next_u64();
        let b = FastRng::from_entropy().next_u64();
        assert_ne!(a, b);
    }
}
