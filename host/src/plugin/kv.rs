//! The key-value store behind the `kv` host import: bounded, owned by the host, shared by every
//! instance of the routing plugin and kept across hot swaps, so state such as sticky tables or
//! counters survives a new plugin version. The WIT glue that hands it to plugins is in
//! `host_api`; this module knows nothing of Wasm.
//!
//! Bounded by the total size of keys and values (`plugin.kv_max_bytes`): a plugin that keeps
//! writing new keys gets `store-full`, never more host memory.
//!
//! A shadow plugin gets an *overlay* ([`KvStore::overlay`]): it reads the live store through
//! it, but its writes and deletes stay in the overlay, so a candidate never changes what the
//! live plugin sees.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Longest key accepted, in bytes (documented in the WIT).
pub const MAX_KEY_BYTES: usize = 256;

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("key longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
    /// The write would take the store past its size bound.
    #[error("key-value store full")]
    StoreFull,
}

/// The store. Cheap operations under one lock: plugin calls are short and a decision touches
/// a handful of keys at most.
#[derive(Debug)]
pub struct KvStore {
    max_bytes: AtomicUsize,
    inner: Mutex<Entries>,
    /// The store read through when a key is neither written nor deleted here (an overlay's
    /// live store); never written.
    beneath: Option<Arc<KvStore>>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<String, Vec<u8>>,
    /// Keys deleted here that the store beneath may still hold (overlays only).
    deleted: HashSet<String>,
    /// Sum of key and value lengths.
    bytes: usize,
}

impl KvStore {
    /// An empty store holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes: AtomicUsize::new(max_bytes),
            inner: Mutex::new(Entries::default()),
            beneath: None,
        }
    }

    /// An empty overlay over `live`: reads fall through to `live` for keys not written or
    /// deleted here; writes (bounded by `max_bytes`) and deletes stay here.
    pub fn overlay(live: Arc<KvStore>, max_bytes: usize) -> Self {
        Self {
            beneath: Some(live),
            ..Self::new(max_bytes)
        }
    }

    /// Change the size bound (a config reload). Entries already stored are kept; writes are
    /// refused until the store is back under the new bound.
    pub fn set_max_bytes(&self, max_bytes: usize) {
        self.max_bytes.store(max_bytes, Ordering::Relaxed);
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let entries = self.lock();
        if let Some(value) = entries.map.get(key) {
            return Some(value.clone());
        }
        if entries.deleted.contains(key) {
            return None;
        }
        drop(entries);
        self.beneath.as_ref().and_then(|live| live.get(key))
    }

    /// Store `value` under `key`.
    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::KeyTooLong);
        }
        let mut entries = self.lock();
        let replaced = entries.map.get(&key).map_or(0, |old| key.len() + old.len());
        let after = entries.bytes - replaced + key.len() + value.len();
        if after > self.max_bytes.load(Ordering::Relaxed) {
            return Err(KvError::StoreFull);
        }
        entries.bytes = after;
        entries.deleted.remove(&key);
        entries.map.insert(key, value);
        Ok(())
    }

    /// Store `value` under `key` if absent; true if stored.
    pub fn insert(&self, key: String, value: Vec<u8>) -> Result<bool, KvError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::KeyTooLong);
        }
        let mut entries = self.lock();
        if entries.map.contains_key(&key) || self.beneath_holds(&entries, &key) {
            return Ok(false);
        }
        let after = entries.bytes + key.len() + value.len();
        if after > self.max_bytes.load(Ordering::Relaxed) {
            return Err(KvError::StoreFull);
        }
        entries.bytes = after;
        entries.deleted.remove(&key);
        entries.map.insert(key, value);
        Ok(true)
    }

    /// Remove `key`; true if it existed.
    pub fn delete(&self, key: &str) -> bool {
        let mut entries = self.lock();
        let beneath = self.beneath_holds(&entries, key);
        if beneath {
            // Hidden, not removed: the live store is never written through an overlay.
            entries.deleted.insert(key.to_string());
        }
        match entries.map.remove_entry(key) {
            Some((key, value)) => {
                entries.bytes -= key.len() + value.len();
                true
            }
            None => beneath,
        }
    }

    /// Add `delta` to the counter under `key`, atomically with respect to other instances.
    pub fn increment(&self, key: String, delta: i64) -> Result<i64, KvError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::KeyTooLong);
        }
        let mut entries = self.lock();
        let counter = |value: &[u8]| <[u8; 8]>::try_from(value).map_or(0, i64::from_le_bytes);
        let (current, old_len) = match entries.map.get(&key) {
            Some(value) => (counter(value), key.len() + value.len()),
            None if entries.deleted.contains(&key) => (0, 0),
            None => (
                self.beneath
                    .as_ref()
                    .and_then(|live| live.get(&key))
                    .map_or(0, |value| counter(&value)),
                0,
            ),
        };
        let after = entries.bytes - old_len + key.len() + 8;
        if after > self.max_bytes.load(Ordering::Relaxed) {
            return Err(KvError::StoreFull);
        }
        let next = current.wrapping_add(delta);
        entries.bytes = after;
        entries.deleted.remove(&key);
        entries.map.insert(key, next.to_le_bytes().to_vec());
        Ok(next)
    }

    /// Number of keys and bytes used, for the admin API.
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.map.len(), entries.bytes)
    }

    /// Whether the store beneath (an overlay's live store) holds `key` and it was not deleted
    /// here.
    fn beneath_holds(&self, entries: &Entries, key: &str) -> bool {
        !entries.deleted.contains(key)
            && self
                .beneath
                .as_ref()
                .is_some_and(|live| live.get(key).is_some())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map inconsistent (each operation
        // updates `bytes` last), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_beyond_the_size_bound_are_refused_and_replacing_frees_space() {
        let store = KvStore::new(20);
        store.set("a".into(), vec![0; 9]).unwrap(); // 10 bytes
        store.set("b".into(), vec![0; 9]).unwrap(); // 20 bytes
        assert_eq!(store.set("c".into(), vec![]), Err(KvError::StoreFull));
        store.set("a".into(), vec![0; 4]).unwrap(); // 15 bytes
        store.set("c".into(), vec![0; 4]).unwrap(); // 20 bytes
        assert!(store.delete("b"));
        assert_eq!(store.usage(), (2, 10));
        assert_eq!(
            store.insert("a".into(), vec![9]),
            Ok(false),
            "insert keeps what is there"
        );
        assert_eq!(store.get("a"), Some(vec![0; 4]));
        assert_eq!(store.insert("d".into(), vec![9]), Ok(true));
    }

    #[test]
    fn counters_start_at_zero_and_refuse_long_keys() {
        let store = KvStore::new(1024);
        assert_eq!(store.increment("n".into(), 5), Ok(5));
        assert_eq!(store.increment("n".into(), -2), Ok(3));
        store.set("s".into(), b"not a counter".to_vec()).unwrap();
        assert_eq!(store.increment("s".into(), 1), Ok(1));
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert_eq!(store.increment(long, 1), Err(KvError::KeyTooLong));
    }

    #[test]
    fn an_overlay_reads_the_live_store_but_never_writes_it() {
        let live = Arc::new(KvStore::new(1024));
        live.set("seen".into(), b"live".to_vec()).unwrap();
        live.increment("n".into(), 10).unwrap();
        live.set("gone".into(), b"x".to_vec()).unwrap();
        let overlay = KvStore::overlay(live.clone(), 1024);

        assert_eq!(overlay.get("seen"), Some(b"live".to_vec()));
        assert_eq!(overlay.insert("seen".into(), b"o".to_vec()), Ok(false));
        assert_eq!(
            overlay.increment("n".into(), 1),
            Ok(11),
            "counts on from the live value"
        );
        overlay.set("seen".into(), b"shadow".to_vec()).unwrap();
        assert!(overlay.delete("gone"));
        assert_eq!(overlay.get("gone"), None);
        assert_eq!(
            overlay.increment("gone".into(), 1),
            Ok(1),
            "a deleted counter restarts"
        );

        assert_eq!(live.get("seen"), Some(b"live".to_vec()));
        assert_eq!(live.increment("n".into(), 0), Ok(10));
        assert_eq!(live.get("gone"), Some(b"x".to_vec()));
        assert_eq!(overlay.get("seen"), Some(b"shadow".to_vec()));
        assert_eq!(overlay.usage().0, 3, "only the overlay's own keys count");
    }
}
