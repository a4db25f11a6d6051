//! Compiled plugins by content hash: swapping back to a version seen recently (a rollback, or a
//! file rewritten with the same bytes) skips compilation, which takes tens of milliseconds for
//! a Rust plugin and seconds for a Python one.
//!
//! Bounded to a few entries, least recently used first out, so 100 swaps do not keep 100
//! compiled plugins alive.

use std::sync::Mutex;

use wasmtime::component::Component;

/// How many compiled versions are kept.
const CAPACITY: usize = 4;

/// SHA-256 of a plugin's bytes.
pub type ContentHash = [u8; 32];

/// The cache; cloning a [`Component`] is cheap (it is reference counted).
#[derive(Default)]
pub struct CompiledCache {
    /// Most recently used last.
    entries: Mutex<Vec<(ContentHash, Component)>>,
}

impl CompiledCache {
    /// The compiled component for `hash`, or compile it with `compile` and remember it; and
    /// whether it came from the cache (`true`) or was compiled now.
    pub fn get_or_compile<E>(
        &self,
        hash: ContentHash,
        compile: impl FnOnce() -> Result<Component, E>,
    ) -> Result<(Component, bool), E> {
        if let Some(found) = self.take(&hash) {
            self.remember(hash, found.clone());
            return Ok((found, true));
        }
        // Compiled outside the lock: a reload must not stall another one's cache lookup.
        let component = compile()?;
        self.remember(hash, component.clone());
        Ok((component, false))
    }

    fn take(&self, hash: &ContentHash) -> Option<Component> {
        let mut entries = self.entries.lock().expect("cache lock");
        let position = entries.iter().position(|(h, _)| h == hash)?;
        Some(entries.remove(position).1)
    }

    fn remember(&self, hash: ContentHash, component: Component) {
        let mut entries = self.entries.lock().expect("cache lock");
        entries.retain(|(h, _)| *h != hash);
        if entries.len() == CAPACITY {
            entries.remove(0);
        }
        entries.push((hash, component));
    }
}
