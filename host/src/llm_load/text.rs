//! Deterministic pseudo-text for prompts and answers: pronounceable three-letter words, each
//! followed by a space, so every word is exactly [`BYTES_PER_TOKEN`] bytes and stands for one
//! token.
//!
//! Why four bytes: English text runs about four bytes per token in the BPE tokenizers of the
//! Llama and GPT families, and the model-server simulator (`lbx backend --llm`) counts tokens the
//! same way, so `max_tokens`, the simulator's prompt length and this generator's estimate agree.
//! Every piece of text is a whole number of tokens, so a conversation's prompt stays aligned to
//! token (and so to KV-cache block) boundaries as turns are appended.
//!
//! Words are drawn from the caller's seeded generator: the same seed gives the same text.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};

/// Bytes of text per token: one word of three letters and its trailing space.
pub const BYTES_PER_TOKEN: usize = 4;

const CONSONANTS: &[u8] = b"bcdfghjklmnprstvwz";
const VOWELS: &[u8] = b"aeiou";

/// `tokens` words of pseudo-text, `tokens * BYTES_PER_TOKEN` bytes of ASCII letters and spaces
/// (nothing JSON needs to escape).
pub fn words(rng: &mut impl Rng, tokens: u32) -> String {
    let mut text = String::with_capacity(tokens as usize * BYTES_PER_TOKEN);
    for _ in 0..tokens {
        for letters in [CONSONANTS, VOWELS, CONSONANTS] {
            text.push(char::from(letters[rng.random_range(0..letters.len())]));
        }
        text.push(' ');
    }
    text
}

/// `tokens` words of pseudo-text drawn from a generator seeded by `label`: the same label always
/// gives the same text, and different labels share no leading block (for tests and examples
/// that need distinct, reproducible prompts without a generator of their own).
///
/// ```
/// use lbx::llm_load::text::{labelled_words, token_count};
///
/// assert_eq!(labelled_words("a", 50), labelled_words("a", 50));
/// assert_ne!(labelled_words("a", 50)[..64], labelled_words("b", 50)[..64]);
/// assert_eq!(token_count(&labelled_words("a", 50)), 50);
/// ```
pub fn labelled_words(label: &str, tokens: u32) -> String {
    let seed = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    words(&mut Xoshiro256PlusPlus::seed_from_u64(seed), tokens)
}

/// The token count of text made by [`words`] (or any text, at four bytes per token, rounded up).
pub fn token_count(text: &str) -> u64 {
    text.len().div_ceil(BYTES_PER_TOKEN) as u64
}
