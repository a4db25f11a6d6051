//! A stable hash for routing decisions that must agree across instances and upgrades.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`.
///
/// Unlike [`std::hash::Hash`] with `DefaultHasher`, the result is **stable**: the same bytes
/// give the same hash on every platform (native or Wasm, any endianness), in every version of
/// this crate and of Rust, in every plugin instance. Use it where a key must map to the same
/// backend everywhere, e.g. consistent or sticky routing by client IP or session id. Not
/// resistant to deliberately colliding keys.
///
/// To hash several fields without concatenating them, continue with [`fnv1a_64_extend`].
///
/// ```
/// use lbx_guest::fnv1a_64;
///
/// // Published FNV-1a test vectors.
/// assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
/// assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
///
/// // Map a session id onto one of 3 backends.
/// let index = fnv1a_64(b"session-42") % 3;
/// assert!(index < 3);
/// ```
pub const fn fnv1a_64(bytes: &[u8]) -> u64 {
    fnv1a_64_extend(OFFSET_BASIS, bytes)
}

/// Continues an FNV-1a hash with more bytes: `fnv1a_64_extend(fnv1a_64(a), b)` equals
/// `fnv1a_64` of `a` followed by `b`. Stable like [`fnv1a_64`].
///
/// ```
/// use lbx_guest::{fnv1a_64, fnv1a_64_extend};
///
/// // Key = tenant, a separator, then path, without building a String.
/// let key = fnv1a_64_extend(fnv1a_64_extend(fnv1a_64(b"acme"), b"\0"), b"/api");
/// assert_eq!(key, fnv1a_64(b"acme\0/api"));
/// ```
pub const fn fnv1a_64_extend(hash: u64, bytes: &[u8]) -> u64 {
    let mut hash = hash;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(PRIME);
        i += 1;
    }
    hash
}

/// A stable 64-bit hash with good mixing: FNV-1a followed by MurmurHash3's 64-bit finaliser.
///
/// FNV-1a alone spreads short, similar keys (`backend-1#17`, `backend-1#18`) poorly over the
/// high bits; placing points on a hash ring or comparing hashes needs every bit to depend on
/// every input byte. Stable like [`fnv1a_64`].
///
/// ```
/// use lbx_guest::stable_hash;
///
/// assert_eq!(stable_hash(b"user-42"), stable_hash(b"user-42"));
/// assert_ne!(stable_hash(b"node#1"), stable_hash(b"node#2"));
/// ```
pub const fn stable_hash(bytes: &[u8]) -> u64 {
    mix64(fnv1a_64(bytes))
}

/// MurmurHash3's `fmix64`: every output bit depends on every input bit.
pub const fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::fnv1a_64;

    #[test]
    fn matches_published_test_vectors() {
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a_64(b"chongo was here!\n"), 0x4681_0940_eff5_f915);
    }

    #[test]
    fn is_usable_in_const_context() {
        const H: u64 = fnv1a_64(b"a");
        assert_eq!(H, 0xaf63_dc4c_8601_ec8c);
    }
}
