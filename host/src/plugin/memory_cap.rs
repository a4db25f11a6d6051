//! A plugin store's memory cap (`[plugin] memory_limit_mib` per linear memory, growing past it
//! traps) that also keeps count of the linear memory the instance holds, so `lbx check` can say
//! what a plugin costs in memory. The cap itself is wasmtime's [`StoreLimits`]; this only
//! watches the growths it allows.

use wasmtime::{ResourceLimiter, StoreLimits};

/// [`StoreLimits`] plus the bytes of linear memory its store holds.
pub struct MemoryCap {
    limits: StoreLimits,
    held: usize,
}

impl MemoryCap {
    /// `limits`, counting from nothing.
    pub fn new(limits: StoreLimits) -> Self {
        Self { limits, held: 0 }
    }

    /// Bytes of linear memory (all memories of the instance) allocated so far; memory never
    /// shrinks, so this is also the peak.
    pub fn held_bytes(&self) -> usize {
        self.held
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.held = self.held.saturating_add(desired.saturating_sub(current));
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
