//! The KV cache as vLLM's block pool manages it: a fixed number of blocks, each holding the KV
//! of `block_size` tokens, shared between requests by the hash of the prefix they hold.
//!
//! - A block in use has a reference count > 0 (the requests whose sequence holds it).
//! - A block whose requests are done goes to the back of the **free queue** but keeps its hash,
//!   so a later request with the same prefix takes it back (a prefix-cache hit) instead of
//!   computing it again.
//! - A new block is taken from the front of the free queue: the block freed longest ago, whose
//!   hash is then forgotten (evicted). A request's blocks are freed last-first, so the end of
//!   a sequence is evicted before its beginning, which other requests are likelier to share.
//!   Cached blocks therefore never exceed the capacity, and what goes is the least recently
//!   used.
//! - Usage, as `vllm:kv_cache_usage_perc` reports it, is the share of blocks not free: cached
//!   blocks nobody uses count as free.

use std::collections::{BTreeMap, HashMap};

use super::tokens::BlockHash;

/// A block's index in the pool.
pub type BlockId = usize;

#[derive(Debug, Clone, Default)]
struct Block {
    /// The prefix it holds, once full and registered.
    hash: Option<BlockHash>,
    /// Requests holding it.
    refs: u32,
    /// Its place in the free queue while free.
    free_since: u64,
}

/// The block pool and its prefix index.
#[derive(Debug)]
pub struct PrefixCache {
    blocks: Vec<Block>,
    /// Registered blocks by hash (one block per hash).
    by_hash: HashMap<BlockHash, BlockId>,
    /// Free blocks, oldest first, keyed by when they were freed.
    free: BTreeMap<u64, BlockId>,
    next_stamp: u64,
    evictions: u64,
}

impl PrefixCache {
    /// `capacity` empty blocks, all free.
    pub fn new(capacity: usize) -> Self {
        let mut cache = Self {
            blocks: vec![Block::default(); capacity],
            by_hash: HashMap::new(),
            free: BTreeMap::new(),
            next_stamp: 0,
            evictions: 0,
        };
        for id in 0..capacity {
            cache.push_free(id);
        }
        cache
    }

    /// Number of blocks.
    pub fn capacity(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks free for allocation (cached-but-unused ones included).
    pub fn free(&self) -> usize {
        self.free.len()
    }

    /// Blocks that hold a registered prefix, in use or not.
    pub fn cached(&self) -> usize {
        self.by_hash.len()
    }

    /// Cached blocks evicted so far to make room.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Share of blocks in use, 0 to 1.
    pub fn usage(&self) -> f64 {
        if self.blocks.is_empty() {
            return 0.0;
        }
        1.0 - self.free.len() as f64 / self.blocks.len() as f64
    }

    /// How many of `hashes`, from the first, are cached; and how many of those are free now
    /// (taking them would take them off the free queue).
    pub fn lookup(&self, hashes: &[BlockHash]) -> (usize, usize) {
        let mut hits = 0;
        let mut idle = 0;
        for hash in hashes {
            match self.by_hash.get(hash) {
                Some(&id) => {
                    hits += 1;
                    idle += usize::from(self.blocks[id].refs == 0);
                }
                None => break,
            }
        }
        (hits, idle)
    }

    /// Take a reference on the cached blocks of `hashes` (all must be cached: see
    /// [`PrefixCache::lookup`]); their ids, in order.
    pub fn acquire(&mut self, hashes: &[BlockHash]) -> Vec<BlockId> {
        hashes
            .iter()
            .map(|hash| {
                let id = self.by_hash[hash];
                let block = &mut self.blocks[id];
                if block.refs == 0 {
                    self.free.remove(&block.free_since);
                }
                block.refs += 1;
                id
            })
            .collect()
    }

    /// A block for new tokens, taken from the front of the free queue (evicting the prefix it
    /// held), or `None` if every block is in use.
    pub fn allocate(&mut self) -> Option<BlockId> {
        let (_, id) = self.free.pop_first()?;
        let block = &mut self.blocks[id];
        if let Some(hash) = block.hash.take() {
            self.by_hash.remove(&hash);
            self.evictions += 1;
        }
        block.refs = 1;
        Some(id)
    }

    /// Block `id` is full and holds the prefix `hash`: later requests may share it. If another
    /// block already holds that prefix (two requests computed it at once), this one stays
    /// private and is freed as an empty block.
    pub fn register(&mut self, id: BlockId, hash: BlockHash) {
        if self.blocks[id].hash.is_some() {
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.by_hash.entry(hash) {
            slot.insert(id);
            self.blocks[id].hash = Some(hash);
        }
    }

    /// A request is done with `ids` (in sequence order): drop its references, freeing blocks
    /// nobody else holds, last block first.
    pub fn release(&mut self, ids: &[BlockId]) {
        for &id in ids.iter().rev() {
            let block = &mut self.blocks[id];
            debug_assert!(block.refs > 0, "block {id} released twice");
            block.refs = block.refs.saturating_sub(1);
            if block.refs == 0 {
                self.push_free(id);
            }
        }
    }

    fn push_free(&mut self, id: BlockId) {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.blocks[id].free_since = stamp;
        self.free.insert(stamp, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocate and register a sequence of `hashes`; its block ids.
    fn fill(cache: &mut PrefixCache, hashes: &[BlockHash]) -> Vec<BlockId> {
        hashes
            .iter()
            .map(|&h| {
                let id = cache.allocate().expect("a free block");
                cache.register(id, h);
                id
            })
            .collect()
    }

    #[test]
    fn a_released_prefix_is_found_again_and_taken_off_the_free_queue() {
        let mut cache = PrefixCache::new(8);
        let ids = fill(&mut cache, &[1, 2, 3]);
        assert_eq!(cache.free(), 5);
        assert_eq!(cache.usage(), 3.0 / 8.0);
        cache.release(&ids);
        assert_eq!((cache.free(), cache.cached()), (8, 3));
        assert_eq!(cache.usage(), 0.0, "cached but unused blocks count as free");

        assert_eq!(
            cache.lookup(&[1, 2, 9, 3]),
            (2, 2),
            "a prefix: stops at a miss"
        );
        let taken = cache.acquire(&[1, 2]);
        assert_eq!(taken, ids[..2]);
        assert_eq!(cache.free(), 6);
        // Shared: a second holder, and the first release leaves it in use.
        cache.acquire(&[1]);
        cache.release(&[ids[0]]);
        assert_eq!(cache.lookup(&[1]), (1, 0));
    }

    #[test]
    fn eviction_takes_the_least_recently_freed_and_cached_blocks_never_exceed_capacity() {
        let mut cache = PrefixCache::new(6);
        let old = fill(&mut cache, &[10, 11, 12]);
        cache.release(&old);
        let recent = fill(&mut cache, &[20, 21, 22]);
        cache.release(&recent);
        assert_eq!(cache.cached(), 6);

        // Two new blocks evict two of the old sequence's, its end first.
        fill(&mut cache, &[30, 31]);
        assert_eq!(cache.evictions(), 2);
        assert_eq!(
            cache.lookup(&[10]),
            (1, 1),
            "the old sequence's head survives"
        );
        assert_eq!(cache.lookup(&[10, 11]), (1, 1));
        assert_eq!(
            cache.lookup(&[20, 21, 22]),
            (3, 3),
            "the recent one is whole"
        );
        assert!(cache.cached() <= cache.capacity());

        // Many more sequences: the cache stays bounded, the first ones are gone.
        for n in 0..100u64 {
            let ids = fill(&mut cache, &[1000 + 3 * n, 1001 + 3 * n]);
            cache.release(&ids);
            assert!(cache.cached() <= cache.capacity());
        }
        assert_eq!(cache.lookup(&[20]).0, 0);
        assert_eq!(cache.lookup(&[1000 + 3 * 99, 1001 + 3 * 99]).0, 2);
    }

    #[test]
    fn blocks_in_use_are_never_evicted() {
        let mut cache = PrefixCache::new(2);
        let held = fill(&mut cache, &[1, 2]);
        assert_eq!(cache.allocate(), None);
        cache.release(&held[1..]);
        assert!(cache.allocate().is_some());
        assert_eq!(cache.lookup(&[1]), (1, 0), "block 1 is still held");
    }

    #[test]
    fn a_prefix_computed_twice_is_shared_once() {
        let mut cache = PrefixCache::new(4);
        let a = fill(&mut cache, &[7]);
        let b = fill(&mut cache, &[7]);
        assert_eq!(cache.cached(), 1);
        cache.release(&b);
        cache.release(&a);
        assert_eq!(cache.lookup(&[7]), (1, 1));
        assert_eq!(cache.acquire(&[7]), a);
    }
}
