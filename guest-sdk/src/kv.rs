//! The host's key-value store: state shared by every instance of a plugin and kept across hot
//! swaps (a new version of the plugin sees what the old one stored).
//!
//! In a Wasm plugin these functions call the host's `kv` import. Natively (unit tests) they
//! use an in-memory map private to the test thread, so tests stay independent; see
//! [`clear`] to reset it within one test.
//!
//! ```
//! use lbx_guest::kv;
//!
//! assert_eq!(kv::increment("requests", 1), Ok(1));
//! assert_eq!(kv::increment("requests", 2), Ok(3));
//! kv::set("owner:abc", b"b2").unwrap();
//! assert_eq!(kv::get("owner:abc").as_deref(), Some(&b"b2"[..]));
//! assert!(kv::delete("owner:abc"));
//! assert_eq!(kv::get("owner:abc"), None);
//! ```
//!
//! Every call copies its key (and value) across the boundary: use it for state that must
//! survive, not as a per-request scratch pad.

pub use crate::bindings::lbx::router::kv::KvError;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Option<Vec<u8>> {
    imp::get(key)
}

/// Store `value` under `key`, replacing what was there.
pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
    imp::set(key, value)
}

/// Store `value` under `key` only if `key` is absent; true if it was stored. Several instances
/// agree on one value by each inserting a candidate and reading back the winner:
///
/// ```
/// use lbx_guest::kv;
///
/// let mine = b"secret-of-instance-1";
/// kv::insert("secret", mine).unwrap();
/// kv::insert("secret", b"secret-of-instance-2").unwrap(); // too late: kept the first
/// assert_eq!(kv::get("secret").unwrap(), mine);
/// ```
pub fn insert(key: &str, value: &[u8]) -> Result<bool, KvError> {
    imp::insert(key, value)
}

/// Remove `key`; true if it existed.
pub fn delete(key: &str) -> bool {
    imp::delete(key)
}

/// Atomically add `delta` to the counter under `key` (absent counts as 0); returns the new value.
pub fn increment(key: &str, delta: i64) -> Result<i64, KvError> {
    imp::increment(key, delta)
}

/// Forget everything in the native test store (no effect in a Wasm plugin: the host's store
/// belongs to the operator).
pub fn clear() {
    #[cfg(not(target_arch = "wasm32"))]
    imp::STORE.with(|store| store.borrow_mut().clear());
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::KvError;
    use crate::bindings::lbx::router::kv as host;

    pub fn get(key: &str) -> Option<Vec<u8>> {
        host::get(key)
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
        host::set(key, value)
    }

    pub fn insert(key: &str, value: &[u8]) -> Result<bool, KvError> {
        host::insert(key, value)
    }

    pub fn delete(key: &str) -> bool {
        host::delete(key)
    }

    pub fn increment(key: &str, delta: i64) -> Result<i64, KvError> {
        host::increment(key, delta)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::KvError;

    /// Same key limit as the host.
    const MAX_KEY_BYTES: usize = 256;

    thread_local! {
        pub static STORE: RefCell<HashMap<String, Vec<u8>>> = RefCell::new(HashMap::new());
    }

    pub fn get(key: &str) -> Option<Vec<u8>> {
        STORE.with(|store| store.borrow().get(key).cloned())
    }

    pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::KeyTooLong);
        }
        STORE.with(|store| store.borrow_mut().insert(key.to_string(), value.to_vec()));
        Ok(())
    }

    pub fn insert(key: &str, value: &[u8]) -> Result<bool, KvError> {
        if get(key).is_some() {
            return Ok(false);
        }
        set(key, value).map(|()| true)
    }

    pub fn delete(key: &str) -> bool {
        STORE.with(|store| store.borrow_mut().remove(key).is_some())
    }

    pub fn increment(key: &str, delta: i64) -> Result<i64, KvError> {
        let current = get(key)
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, i64::from_le_bytes);
        let next = current.wrapping_add(delta);
        set(key, &next.to_le_bytes())?;
        Ok(next)
    }
}
