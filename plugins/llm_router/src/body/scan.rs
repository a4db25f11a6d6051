//! Finding the next `"` or `\` in a JSON string, eight bytes at a time.
//!
//! The prompt is nearly all string content, so this scan is most of the body's reading. On
//! 64-bit targets `memchr` does it well; on `wasm32` without SIMD (how plugins are built) its
//! portable path works on `usize` words, 4 bytes there, while Wasm has native 64-bit integers.
//! This is the same word-at-a-time test on `u64` words: twice the bytes per step.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The position of the first `"` or `\` in `bytes`.
pub fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in words.by_ref() {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        let found = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            // Little-endian: the lowest flagged byte is the first in memory. The flags of the
            // bytes after the first match may be wrong, but never that of an earlier byte.
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|at| offset + at)
}

/// The high bit set in every zero byte of `word` (and possibly in bytes after the first zero).
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

#[cfg(test)]
mod tests {
    use super::quote_or_backslash;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finds_what_a_plain_search_finds(
            bytes in proptest::collection::vec(
                prop_oneof![3 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\'), 1 => Just(0u8)],
                0..64,
            ),
        ) {
            let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\');
            prop_assert_eq!(quote_or_backslash(&bytes), expected);
        }
    }

    #[test]
    fn every_position_of_a_word_and_the_tail() {
        for at in 0..20 {
            for needle in [b'"', b'\\'] {
                let mut bytes = vec![b'a'; 20];
                bytes[at] = needle;
                assert_eq!(quote_or_backslash(&bytes), Some(at));
            }
        }
        assert_eq!(quote_or_backslash(&[0x22 ^ 0x80; 17]), None);
        assert_eq!(quote_or_backslash(b""), None);
    }
}
