//! The host's monotonic clock, for ageing a plugin's own state (latency averages, caches).
//!
//! In a Wasm plugin [`now_us`] calls the host's `now-us` import: one clock shared by every
//! instance of the plugin, never going back, its zero arbitrary. Natively (unit tests) it reads
//! a fake clock private to the test thread that starts at 0 and moves only when the test
//! advances it ([`testkit::advance_clock`](crate::testkit::advance_clock)), so time-dependent
//! logic is tested without sleeping.

/// Microseconds on the host's monotonic clock.
///
/// ```
/// use std::time::Duration;
///
/// let start = lbx_guest::now_us();
/// lbx_guest::testkit::advance_clock(Duration::from_millis(250));
/// assert_eq!(lbx_guest::now_us() - start, 250_000);
/// ```
pub fn now_us() -> u64 {
    imp::now_us()
}

#[cfg(target_arch = "wasm32")]
mod imp {
    pub fn now_us() -> u64 {
        crate::bindings::lbx::router::host::now_us()
    }

    /// The host's clock is not the test's to move.
    pub fn advance(_us: u64) {}
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::Cell;

    thread_local! {
        static NOW_US: Cell<u64> = const { Cell::new(0) };
    }

    pub fn now_us() -> u64 {
        NOW_US.with(Cell::get)
    }

    pub fn advance(us: u64) {
        NOW_US.with(|now| now.set(now.get().saturating_add(us)));
    }
}

/// Moves the native fake clock forward (nothing in a Wasm plugin).
pub(crate) fn advance(us: u64) {
    imp::advance(us);
}
