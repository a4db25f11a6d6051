//! Finding the next `"` or `\` in a JSON string: 64 bytes a step with Wasm SIMD, eight
//! elsewhere.
//!
//! The prompt is nearly all string content, so this scan is most of the body's reading (the
//! profile of a 4 KiB chat decision put a quarter of the plugin's time in `string_into`, where
//! the scan is inlined).
//!
//! **On `wasm32`** (how plugins are built) `by_blocks` compares 16-byte blocks with both
//! bytes (`i8x16.eq` twice, `v128.or`), four blocks a step with one `v128.any_true` for all
//! four; only the block that has a match is turned into one bit per byte (`i8x16.bitmask`).
//! Whole 16-byte blocks after the last step go one at a time, the last 0–15 bytes (and inputs
//! shorter than a block) take the word path below. SIMD is enabled for `by_blocks` alone
//! (`#[target_feature(enable = "simd128")]`), not for the crate: the rest of the plugin
//! compiles as before. Wasmtime accepts SIMD by default (`Config::wasm_simd`: "This is `true`
//! by default", wasmtime 48.0.8 `src/config.rs`; lbx's engine does not turn it off) and lowers
//! these instructions to SSE on x86-64.
//!
//! What it bought (`cargo bench -p lbx --bench decision`, llm_router, 4 KiB chat, 7 alternating
//! rounds, median of the per-round ratio to the word scan, on a busy 2-core machine): one
//! 16-byte block a step, 0.94× (same conversation) and 0.92× (new conversation); four blocks a
//! step with one test, 0.90× and 0.88× (5.3 and 7.1 µs against 6.2 and 8.2 µs there).
//!
//! **Elsewhere**, and for those tails: `memchr` would do well on 64-bit targets, but on
//! `wasm32` without SIMD its portable path works on `usize` words, 4 bytes there, while Wasm
//! has native 64-bit integers. [`by_words`] is the same word-at-a-time test on `u64` words.
//!
//! The block loop is written once over a few lane operations (`lanes`): Wasm's intrinsics on
//! `wasm32`, plain arrays with the same meaning on native targets, where tests compare it with
//! a plain search (the plugin's tests run natively, through the SDK's test kit).

/// The position of the first `"` or `\` in `bytes`.
pub fn quote_or_backslash(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "wasm32")]
    return by_blocks(bytes);
    #[cfg(not(target_arch = "wasm32"))]
    return by_words(bytes);
}

/// Bytes per block.
#[cfg(any(target_arch = "wasm32", test))]
const BLOCK: usize = 16;
/// Bytes per step of the main loop: four blocks, one test for all four.
#[cfg(any(target_arch = "wasm32", test))]
const STEP: usize = 4 * BLOCK;

/// [`quote_or_backslash`] a step of four blocks at a time, then block by block, the tail by
/// [`by_words`].
#[cfg(any(target_arch = "wasm32", test))]
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
fn by_blocks(bytes: &[u8]) -> Option<usize> {
    use lanes::{any_set, eq, first_set, load, or, splat};

    let quote = splat(b'"');
    let backslash = splat(b'\\');
    let found_in = |block: &[u8]| {
        let block = load(block.try_into().unwrap_or_default());
        or(eq(block, quote), eq(block, backslash))
    };
    let mut steps = bytes.chunks_exact(STEP);
    let mut offset = 0;
    for step in steps.by_ref() {
        let (a, b, c, d) = (
            found_in(&step[..BLOCK]),
            found_in(&step[BLOCK..2 * BLOCK]),
            found_in(&step[2 * BLOCK..3 * BLOCK]),
            found_in(&step[3 * BLOCK..]),
        );
        if any_set(or(or(a, b), or(c, d))) {
            // Rare (once a string): which block, then where in it.
            let (block, found) = if any_set(a) {
                (0, a)
            } else if any_set(b) {
                (1, b)
            } else if any_set(c) {
                (2, c)
            } else {
                (3, d)
            };
            return Some(offset + block * BLOCK + first_set(found));
        }
        offset += STEP;
    }
    let mut blocks = steps.remainder().chunks_exact(BLOCK);
    for block in blocks.by_ref() {
        let found = found_in(block);
        if any_set(found) {
            return Some(offset + first_set(found));
        }
        offset += BLOCK;
    }
    by_words(blocks.remainder()).map(|at| offset + at)
}

/// The lane operations `by_blocks` needs, as Wasm SIMD intrinsics.
#[cfg(target_arch = "wasm32")]
mod lanes {
    use core::arch::wasm32::{u8x16, u8x16_bitmask, v128, v128_any_true};
    pub use core::arch::wasm32::{u8x16_eq as eq, u8x16_splat as splat, v128_or as or};

    /// One block as a vector. Built lane by lane so no `unsafe` load is needed: LLVM folds it
    /// into one `v128.load`.
    #[inline]
    #[target_feature(enable = "simd128")]
    pub fn load(b: [u8; 16]) -> v128 {
        u8x16(
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
            b[14], b[15],
        )
    }

    /// Whether any lane is set (`v128.any_true`: cheaper than a bitmask when none is).
    #[inline]
    #[target_feature(enable = "simd128")]
    pub fn any_set(found: v128) -> bool {
        v128_any_true(found)
    }

    /// The first set lane of a mask from `eq` (all ones or all zeros per lane).
    #[inline]
    #[target_feature(enable = "simd128")]
    pub fn first_set(found: v128) -> usize {
        u8x16_bitmask(found).trailing_zeros() as usize
    }
}

/// The lane operations `by_blocks` needs, on plain arrays: the intrinsics' meaning, for tests
/// on native targets.
#[cfg(all(not(target_arch = "wasm32"), test))]
mod lanes {
    type Block = [u8; 16];

    pub fn load(b: Block) -> Block {
        b
    }

    pub fn splat(byte: u8) -> Block {
        [byte; 16]
    }

    /// All ones in each lane where `a` and `b` are equal, as `u8x16_eq`.
    pub fn eq(a: Block, b: Block) -> Block {
        std::array::from_fn(|i| if a[i] == b[i] { 0xff } else { 0 })
    }

    pub fn or(a: Block, b: Block) -> Block {
        std::array::from_fn(|i| a[i] | b[i])
    }

    pub fn any_set(found: Block) -> bool {
        found.iter().any(|&lane| lane != 0)
    }

    /// As `u8x16_bitmask(found).trailing_zeros()`: lane `i`'s high bit is bit `i`.
    pub fn first_set(found: Block) -> usize {
        let mask = (0..16).fold(0u16, |mask, i| mask | u16::from(found[i] >> 7) << i);
        mask.trailing_zeros() as usize
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// [`quote_or_backslash`] eight bytes at a time, the tail byte by byte.
fn by_words(bytes: &[u8]) -> Option<usize> {
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
    use super::{by_blocks, by_words, quote_or_backslash};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn finds_what_a_plain_search_finds(
            bytes in proptest::collection::vec(
                // Matches rare enough that the first one falls in any block of a step.
                prop_oneof![
                    40 => any::<u8>(),
                    1 => Just(b'"'),
                    1 => Just(b'\\'),
                    1 => Just(0u8),
                    // Bytes whose high bit the bitmask reads: `"` and `\` with it set.
                    1 => Just(b'"' | 0x80),
                    1 => Just(b'\\' | 0x80),
                ],
                0..160,
            ),
        ) {
            let expected = bytes.iter().position(|&b| b == b'"' || b == b'\\');
            prop_assert_eq!(quote_or_backslash(&bytes), expected);
            prop_assert_eq!(by_words(&bytes), expected);
            prop_assert_eq!(by_blocks(&bytes), expected);
        }
    }

    #[test]
    fn every_position_of_a_block_a_word_and_the_tail() {
        for len in [20, 40, 100, 150] {
            for at in 0..len {
                for needle in [b'"', b'\\'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = needle;
                    assert_eq!(by_words(&bytes), Some(at));
                    assert_eq!(by_blocks(&bytes), Some(at));
                }
            }
        }
        for search in [by_words, by_blocks] {
            assert_eq!(search(&[0x22 ^ 0x80; 137]), None);
            assert_eq!(search(b""), None);
        }
    }
}
