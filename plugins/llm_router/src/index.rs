//! The approximate prefix index: which backends were recently sent which prompt prefixes,
//! kept in lbx's key-value store so that every instance of the plugin shares it and a hot swap
//! keeps it.
//!
//! **Layout: a set-associative cache.** An entry is one [`Checkpoint`] hash with the time it
//! was last written (lbx's clock, shared by the instances) and the ids of up to
//! [`MAX_HOLDERS`] backends sent that prefix, most recent first. A backend is named by a 64-bit
//! hash of its configured id — stable across reorderings of the backend list, across instances
//! and versions — never by its index. Entries live in `capacity / 4` sets of [`WAYS`] (the key
//! `<prefix>s<set>`, the set being the hash modulo their number): a new entry replaces the
//! least recently used of its set, as in a CPU cache. So the index never holds more than
//! `capacity` entries, and what it drops is what was used least recently among its neighbours.
//!
//! **Why not exact LRU.** The store has no scan, so an exact LRU over all entries needs a ring
//! of the last writes beside the entries: five host calls per new entry (read the ring slot,
//! read and delete the entry it evicts, write the slot and the entry) and a shared counter per
//! decision — measured at ~13 µs for a new conversation's decision over a 4 KiB body, against
//! a 5 µs budget. A set costs one read (often already made by the lookup) and one write.
//!
//! **Few host calls.** A lookup reads `O(log checkpoints)` sets by binary search over the
//! depths: that relies on the index being prefix-closed (a prefix's shallow checkpoints are
//! present whenever its deep ones are), which it nearly is: a prompt's new checkpoints are
//! written together, and a known prefix is written again whole (touched) once the lookup sees
//! a newer entry beside one of its own. Otherwise a decision writes only the checkpoints it
//! adds, plus the deepest one found when the chosen backend is new to it: a repeated prompt
//! costs no write until other prompts start to crowd it.
//! Racing instances can lose an update; the index is approximate by design, and the next write
//! repairs it.

use lbx_guest::kv;

use crate::blocks::Checkpoint;

/// Backends remembered per prefix.
pub const MAX_HOLDERS: usize = 4;

/// Entries per set.
pub const WAYS: usize = 4;

/// The key-value operations the index needs; lbx's store in production, an in-memory one that
/// counts calls in tests.
pub trait Store {
    /// The value under `key`.
    fn get(&mut self, key: &str) -> Option<Vec<u8>>;
    /// Stores `value` under `key`; false if the store refused it (full).
    fn set(&mut self, key: &str, value: &[u8]) -> bool;
}

/// lbx's key-value store ([`lbx_guest::kv`]).
#[derive(Debug, Default)]
pub struct HostStore;

impl Store for HostStore {
    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        kv::get(key)
    }

    fn set(&mut self, key: &str, value: &[u8]) -> bool {
        kv::set(key, value).is_ok()
    }
}

/// One index entry: a prefix, when it was last written, and who holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entry {
    hash: u64,
    stamp_us: u64,
    holders: [u64; MAX_HOLDERS],
    len: usize,
}

impl Entry {
    /// The backends holding the prefix, most recent first.
    pub fn holders(&self) -> &[u64] {
        &self.holders[..self.len]
    }

    /// Puts `holder` first, keeping the others in order (the oldest drops out when full).
    fn promote(&mut self, holder: u64) {
        let at = self.holders().iter().position(|&h| h == holder);
        let end = at.unwrap_or(self.len.min(MAX_HOLDERS - 1));
        self.holders.copy_within(0..end, 1);
        self.holders[0] = holder;
        if at.is_none() {
            self.len = (self.len + 1).min(MAX_HOLDERS);
        }
    }
}

/// The entries of one set, as stored: per entry its hash, stamp, holder count and holders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Set {
    ways: [Entry; WAYS],
    len: usize,
}

impl Set {
    fn find(&self, hash: u64) -> Option<&Entry> {
        self.ways[..self.len].iter().find(|e| e.hash == hash)
    }

    /// Writes `hash` as held by `holder` at `now_us`: updates its entry, or replaces the least
    /// recently written one when the set is full.
    fn put(&mut self, hash: u64, holder: u64, now_us: u64) {
        let at = match self.ways[..self.len].iter().position(|e| e.hash == hash) {
            Some(at) => at,
            None if self.len < WAYS => {
                self.len += 1;
                self.ways[self.len - 1] = Entry::default();
                self.len - 1
            }
            None => {
                let oldest = self.ways.iter().enumerate().min_by_key(|(_, e)| e.stamp_us);
                let at = oldest.map_or(0, |(at, _)| at);
                self.ways[at] = Entry::default();
                at
            }
        };
        let entry = &mut self.ways[at];
        entry.hash = hash;
        entry.stamp_us = now_us;
        entry.promote(holder);
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        for entry in &self.ways[..self.len] {
            out.extend_from_slice(&entry.hash.to_le_bytes());
            out.extend_from_slice(&entry.stamp_us.to_le_bytes());
            out.push(entry.len as u8);
            for holder in entry.holders() {
                out.extend_from_slice(&holder.to_le_bytes());
            }
        }
    }

    /// The set stored as `bytes`; what cannot be read (another program's value) is dropped.
    fn decode(mut bytes: &[u8]) -> Self {
        let mut set = Set::default();
        while set.len < WAYS {
            let Some((head, rest)) = bytes.split_first_chunk::<17>() else {
                break;
            };
            let count = usize::from(head[16]);
            if count == 0 || count > MAX_HOLDERS || rest.len() < 8 * count {
                break;
            }
            let entry = &mut set.ways[set.len];
            entry.hash = u64::from_le_bytes(head[..8].try_into().unwrap_or_default());
            entry.stamp_us = u64::from_le_bytes(head[8..16].try_into().unwrap_or_default());
            entry.len = count;
            for (slot, chunk) in entry
                .holders
                .iter_mut()
                .zip(rest[..8 * count].chunks_exact(8))
            {
                *slot = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            }
            set.len += 1;
            bytes = &rest[8 * count..];
        }
        set
    }
}

/// What a lookup found: the entries it read, by checkpoint position.
#[derive(Debug, Default)]
pub struct Matches {
    hits: Vec<(usize, Entry)>,
    /// Position of the deepest checkpoint found.
    deepest: Option<usize>,
}

impl Matches {
    /// Nothing found (for a prompt without a whole block).
    pub fn clear(&mut self) {
        self.hits.clear();
        self.deepest = None;
    }

    /// The longest prefix (in blocks) `holder` is known to hold among the entries read.
    pub fn depth_held_by(&self, checkpoints: &[Checkpoint], holder: u64) -> u32 {
        self.hits
            .iter()
            .filter(|(_, entry)| entry.holders().contains(&holder))
            .map(|&(at, _)| checkpoints[at].depth)
            .max()
            .unwrap_or(0)
    }

    fn entry_at(&self, at: usize) -> Option<Entry> {
        self.hits.iter().find(|(i, _)| *i == at).map(|(_, e)| *e)
    }
}

/// The index, as one plugin instance reaches it: key names, and the sets one decision read or
/// changed (each is read and written at most once per decision).
#[derive(Debug)]
pub struct PrefixIndex {
    prefix: String,
    sets: u64,
    key: String,
    value: Vec<u8>,
    /// `(set number, set, changed)` for the current decision.
    cache: Vec<(u64, Set, bool)>,
    warned_refused: bool,
}

impl PrefixIndex {
    /// The index under keys starting with `prefix`, holding at most `capacity` entries.
    pub fn new(prefix: &str, capacity: u64) -> Self {
        PrefixIndex {
            prefix: prefix.to_owned(),
            sets: capacity.div_ceil(WAYS as u64).max(1),
            key: String::with_capacity(prefix.len() + 17),
            value: Vec::new(),
            cache: Vec::new(),
            warned_refused: false,
        }
    }

    /// Finds the deepest of `checkpoints` (shallowest first) the index knows, by binary search.
    pub fn lookup(
        &mut self,
        store: &mut impl Store,
        checkpoints: &[Checkpoint],
        out: &mut Matches,
    ) {
        self.cache.clear();
        out.clear();
        let (mut low, mut high) = (0, checkpoints.len());
        while low < high {
            let mid = low + (high - low) / 2;
            let hash = checkpoints[mid].hash;
            match self.set(store, hash).find(hash) {
                Some(entry) => {
                    out.hits.push((mid, *entry));
                    low = mid + 1;
                }
                None => high = mid,
            }
        }
        // `low` moved past a position only when its entry was found.
        out.deepest = low.checked_sub(1);
    }

    /// Records that `holder` was sent the prompt of `checkpoints` at `now_us`, given what
    /// [`lookup`](Self::lookup) found just before.
    pub fn record(
        &mut self,
        store: &mut impl Store,
        checkpoints: &[Checkpoint],
        found: &Matches,
        holder: u64,
        now_us: u64,
    ) {
        // Decided on the sets as the lookup read them, before this decision changes them.
        let overtaken = found
            .hits
            .iter()
            .any(|(_, entry)| self.overtaken(entry.hash));
        let new_from = found.deepest.map_or(0, |d| d + 1);
        for point in &checkpoints[new_from..] {
            self.put(store, point.hash, holder, now_us);
        }
        if let Some(deepest) = found.deepest {
            if overtaken {
                for point in &checkpoints[..=deepest] {
                    self.put(store, point.hash, holder, now_us);
                }
            } else if !found
                .entry_at(deepest)
                .is_some_and(|e| e.holders().contains(&holder))
            {
                self.put(store, checkpoints[deepest].hash, holder, now_us);
            }
        }
        self.flush(store);
    }

    /// Whether anything was written after the entry of `hash` in its set (one this decision
    /// read). Sets fill at the same pace, so the prefix's entries the lookup did not read are
    /// about as far from being dropped: touching them all now keeps them far from it.
    fn overtaken(&self, hash: u64) -> bool {
        let number = hash % self.sets;
        self.cache.iter().any(|(n, set, _)| {
            *n == number
                && set.find(hash).is_some_and(|entry| {
                    set.ways[..set.len]
                        .iter()
                        .any(|e| e.stamp_us > entry.stamp_us)
                })
        })
    }

    /// The set `hash` belongs to, read once per decision.
    fn set(&mut self, store: &mut impl Store, hash: u64) -> &mut Set {
        let number = hash % self.sets;
        let at = match self.cache.iter().position(|(n, _, _)| *n == number) {
            Some(at) => at,
            None => {
                self.set_key(number);
                let set = store.get(&self.key).as_deref().map(Set::decode);
                self.cache.push((number, set.unwrap_or_default(), false));
                self.cache.len() - 1
            }
        };
        &mut self.cache[at].1
    }

    fn put(&mut self, store: &mut impl Store, hash: u64, holder: u64, now_us: u64) {
        self.set(store, hash).put(hash, holder, now_us);
        let number = hash % self.sets;
        if let Some(cached) = self.cache.iter_mut().find(|(n, _, _)| *n == number) {
            cached.2 = true;
        }
    }

    /// Writes the sets this decision changed.
    fn flush(&mut self, store: &mut impl Store) {
        let mut cache = std::mem::take(&mut self.cache);
        for (number, set, changed) in cache.iter_mut().filter(|(_, _, changed)| *changed) {
            set.encode(&mut self.value);
            self.set_key(*number);
            if !store.set(&self.key, &self.value) {
                self.refused();
                break;
            }
            *changed = false;
        }
        self.cache = cache;
    }

    fn refused(&mut self) {
        if !self.warned_refused {
            self.warned_refused = true;
            lbx_guest::log(
                lbx_guest::LogLevel::Warn,
                "llm_router: the key-value store refused a write to the prefix index (full?): \
                 raise [plugin] kv_max_bytes or lower plugin.config.prefix.capacity; prefix \
                 affinity goes on with what is stored",
            );
        }
    }

    fn set_key(&mut self, number: u64) {
        self.key.clear();
        self.key.push_str(&self.prefix);
        self.key.push('s');
        push_hex(&mut self.key, number);
    }
}

/// Appends `value` in hex, without leading zeros (without going through `fmt`).
fn push_hex(out: &mut String, value: u64) {
    let digits = (64 - value.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        let nibble = (value >> (shift * 4)) & 0xf;
        out.push(char::from_digit(nibble as u32, 16).unwrap_or('0'));
    }
}

#[cfg(test)]
mod tests;
