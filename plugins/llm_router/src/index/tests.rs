//! The prefix index over an in-memory store that counts host calls and can list its keys.

use std::collections::HashMap;

use super::*;
use crate::blocks::checkpoints;

#[derive(Default)]
struct MapStore {
    map: HashMap<String, Vec<u8>>,
    calls: usize,
    /// lbx's clock, as the decisions see it.
    now_us: u64,
}

impl MapStore {
    fn entries(&self) -> usize {
        self.map
            .iter()
            .filter(|(k, _)| k.starts_with("t:s"))
            .map(|(_, v)| Set::decode(v).len)
            .sum()
    }
}

impl Store for MapStore {
    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.calls += 1;
        self.map.get(key).cloned()
    }

    fn set(&mut self, key: &str, value: &[u8]) -> bool {
        self.calls += 1;
        self.map.insert(key.to_owned(), value.to_vec());
        true
    }
}

/// Checkpoints of a prompt made of `blocks` blocks of 4 bytes, the first `shared` of them
/// common to every prompt, the rest particular to `conversation`.
fn prompt(conversation: u32, shared: usize, blocks: usize) -> Vec<Checkpoint> {
    let mut text = Vec::new();
    for block in 0..blocks {
        let owner = if block < shared {
            u32::MAX
        } else {
            conversation
        };
        text.extend_from_slice(&owner.to_le_bytes());
    }
    let mut out = Vec::new();
    checkpoints(&text, 4, 1024, &mut out);
    out
}

/// Looks up `points` and records `holder`; returns the depth `holder` had before.
fn send(index: &mut PrefixIndex, store: &mut MapStore, points: &[Checkpoint], holder: u64) -> u32 {
    let mut found = Matches::default();
    index.lookup(store, points, &mut found);
    let depth = found.depth_held_by(points, holder);
    store.now_us += 10_000;
    let now_us = store.now_us;
    index.record(store, points, &found, holder, now_us);
    depth
}

fn depth_of(
    index: &mut PrefixIndex,
    store: &mut MapStore,
    points: &[Checkpoint],
    holder: u64,
) -> u32 {
    let mut found = Matches::default();
    index.lookup(store, points, &mut found);
    found.depth_held_by(points, holder)
}

#[test]
fn a_prompt_sent_once_is_found_whole_and_its_next_turn_in_part() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 1000), MapStore::default());
    let turn1 = prompt(1, 0, 20);
    assert_eq!(send(&mut index, &mut store, &turn1, 7), 0);
    assert_eq!(depth_of(&mut index, &mut store, &turn1, 7), 20);
    assert_eq!(
        depth_of(&mut index, &mut store, &turn1, 8),
        0,
        "never sent to 8"
    );
    // The next turn extends the prompt: it matches at the deepest shared power of two.
    let turn2 = prompt(1, 0, 45);
    assert_eq!(depth_of(&mut index, &mut store, &turn2, 7), 16);
}

#[test]
fn a_shared_system_prompt_is_known_for_every_backend_it_went_to() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 1000), MapStore::default());
    send(&mut index, &mut store, &prompt(1, 8, 20), 1);
    send(&mut index, &mut store, &prompt(2, 8, 20), 2);
    let third = prompt(3, 8, 20);
    assert_eq!(depth_of(&mut index, &mut store, &third, 1), 8);
    assert_eq!(depth_of(&mut index, &mut store, &third, 2), 8);
    assert_eq!(depth_of(&mut index, &mut store, &third, 3), 0);
}

#[test]
fn at_most_four_holders_are_kept_the_oldest_dropping_out() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 1000), MapStore::default());
    let points = prompt(1, 0, 4);
    for holder in 1..=5 {
        send(&mut index, &mut store, &points, holder);
    }
    // Only the deepest entry takes a new holder (shallower ones when the prefix is touched).
    assert!(depth_of(&mut index, &mut store, &points, 1) < 4);
    for holder in 2..=5 {
        assert_eq!(depth_of(&mut index, &mut store, &points, holder), 4);
    }
}

#[test]
fn a_lookup_reads_only_log2_of_the_checkpoints() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 1000), MapStore::default());
    let points = prompt(1, 0, 200); // depths 1, 2, 4, ..., 128, 200: 9 checkpoints
    assert_eq!(points.len(), 9);
    let mut found = Matches::default();
    index.lookup(&mut store, &points, &mut found);
    assert!(store.calls <= 4, "{} calls on a miss", store.calls);
    index.record(&mut store, &points, &found, 1, 0);
    store.calls = 0;
    index.lookup(&mut store, &points, &mut found);
    assert!(store.calls <= 4, "{} calls on a hit", store.calls);
}

#[test]
fn sending_the_same_prompt_to_the_same_backend_again_writes_nothing() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 1000), MapStore::default());
    let points = prompt(1, 0, 64);
    send(&mut index, &mut store, &points, 1);
    let mut found = Matches::default();
    index.lookup(&mut store, &points, &mut found);
    store.calls = 0;
    let now_us = store.now_us;
    index.record(&mut store, &points, &found, 1, now_us);
    assert_eq!(store.calls, 0);
}

#[test]
fn the_index_holds_at_most_capacity_entries_and_forgets_the_oldest() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 64), MapStore::default());
    let first = prompt(0, 0, 8); // 4 checkpoints
    send(&mut index, &mut store, &first, 1);
    for conversation in 1..100 {
        send(&mut index, &mut store, &prompt(conversation, 0, 8), 1);
        assert!(store.entries() <= 64, "{} entries", store.entries());
    }
    assert_eq!(store.entries(), 64);
    assert_eq!(depth_of(&mut index, &mut store, &first, 1), 0, "evicted");
    assert_eq!(depth_of(&mut index, &mut store, &prompt(99, 0, 8), 1), 8);
}

#[test]
fn a_prompt_in_use_is_touched_and_outlives_ones_that_are_not() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 256), MapStore::default());
    let hot = prompt(0, 0, 8);
    send(&mut index, &mut store, &hot, 1);
    for conversation in 1..300 {
        send(&mut index, &mut store, &prompt(conversation, 0, 8), 1);
        // Used now and then, as a popular system prompt is.
        assert_eq!(
            send(&mut index, &mut store, &hot, 1),
            8,
            "lost after {conversation}"
        );
        store.now_us += 100_000;
    }
    assert_eq!(depth_of(&mut index, &mut store, &prompt(1, 0, 8), 1), 0);
}

#[test]
fn a_long_conversation_keeps_its_affinity_while_other_traffic_churns_the_index() {
    let (mut index, mut store) = (PrefixIndex::new("t:", 512), MapStore::default());
    let mut rng = lbx_guest::FastRng::new(3);
    let mut blocks = 4;
    send(&mut index, &mut store, &prompt(0, 0, blocks), 1);
    for turn in 1..60 {
        for _ in 0..6 {
            let other = prompt(1 + rng.below(1_000) as u32, 0, 4 + rng.below(40));
            send(&mut index, &mut store, &other, 2);
        }
        let before = blocks;
        blocks += 1 + rng.below(8);
        let matched = send(&mut index, &mut store, &prompt(0, 0, blocks), 1);
        // At least the deepest power of two of the previous turn.
        let floor = 1 << (31 - (before as u32).leading_zeros());
        assert!(
            matched >= floor,
            "turn {turn}: matched {matched} of {before} sent before"
        );
        assert!(store.entries() <= 512);
    }
}

#[test]
fn sets_round_trip_and_garbage_values_read_as_empty() {
    let mut set = Set::default();
    set.put(5, 9, 100);
    set.put(5, 8, 200);
    set.put(6, 1, 300);
    let mut bytes = Vec::new();
    set.encode(&mut bytes);
    assert_eq!(Set::decode(&bytes), set);
    assert_eq!(set.find(5).map(Entry::holders), Some(&[8, 9][..]));
    for garbage in [&b""[..], &[0; 8], &[0; 17], &[9; 48], &[1; 20]] {
        assert_eq!(Set::decode(garbage).len, 0);
    }
}

#[test]
fn a_full_set_replaces_its_least_recently_written_entry() {
    let mut set = Set::default();
    for (hash, at) in [(1, 40), (2, 10), (3, 30), (4, 20)] {
        set.put(hash, 7, at);
    }
    set.put(5, 7, 50);
    assert!(set.find(2).is_none(), "the oldest went");
    assert!([1, 3, 4, 5].iter().all(|&h| set.find(h).is_some()));
}

#[test]
fn hex_keys_are_short_and_distinct() {
    let mut out = String::new();
    push_hex(&mut out, 0);
    out.push(' ');
    push_hex(&mut out, 0xabc);
    out.push(' ');
    push_hex(&mut out, u64::MAX);
    assert_eq!(out, "0 abc ffffffffffffffff");
}
