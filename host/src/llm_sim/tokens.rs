//! Text to tokens, tokens to chained block hashes, and the fake tokens a replica generates.
//!
//! **Tokenizer.** Not Llama 3's BPE (the simulator has no vocabulary file) but a deterministic
//! rule with the same two properties that matter for routing: about 4 bytes of English per
//! token (OpenAI's rule of thumb; a real BPE gives 3.5–4.5), and the same text always gives the
//! same tokens, so two prompts sharing a text prefix share their leading tokens. A token starts
//! - at every ASCII whitespace byte (so words keep their leading space, as in BPE),
//! - after a `\n`,
//! - after 4 bytes of the current token (never inside a UTF-8 character: a token holding a
//!   multi-byte character may reach 7 bytes),
//! - at `<|`, where a special token such as `<|eot_id|>` runs to the next `|>` (at most 64
//!   bytes) as one token, as the chat template's markers are single tokens in Llama 3.
//!
//! Because every cut point depends only on the bytes just before and at it, tokenising `a + b`
//! gives the tokens of `a` followed by those of `b` whenever `b` starts at a cut point (a space,
//! a newline, `<|`, or after a newline). Generated tokens all start with a space, so a reply
//! sent back in the next turn of a conversation tokenises to the very tokens that were
//! generated, and the next turn hits the blocks the reply filled — as it does in vLLM.
//!
//! **Block hashes**, as vLLM's automatic prefix caching: the tokens are cut into blocks of
//! `block_size`; a full block's hash covers its parent's hash and its own tokens, so it stands
//! for the whole prefix up to its end. Hashes are the first 8 bytes of a SHA-256 over the parent
//! hash and the length-prefixed token bytes (vLLM offers SHA-256 too); a partial last block has
//! no hash and is never shared.

use sha2::{Digest, Sha256};

/// The hash of one full block and of everything before it.
pub type BlockHash = u64;

/// The parent of the first block.
const ROOT: BlockHash = 0;

/// Longest special token (`<|...|>`) recognised.
const MAX_SPECIAL: usize = 64;

/// Bytes after which a plain token is cut.
const TOKEN_BYTES: usize = 4;

/// The tokens of `text`, in order, as slices of it.
pub fn tokenize(text: &str) -> Tokens<'_> {
    Tokens { rest: text }
}

/// The iterator [`tokenize`] returns.
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let len = token_len(self.rest);
        let (token, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(token)
    }
}

/// Length in bytes of the token at the start of `text` (not empty).
fn token_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    if let Some(end) = special_len(bytes) {
        return end;
    }
    if bytes[0] == b'\n' {
        return 1;
    }
    let mut len = char_len(text, 0);
    while len < bytes.len() {
        let b = bytes[len];
        let at_cut = b.is_ascii_whitespace()
            || bytes[len - 1] == b'\n'
            || len >= TOKEN_BYTES
            || special_len(&bytes[len..]).is_some();
        if at_cut {
            break;
        }
        len += char_len(text, len);
    }
    len
}

/// If `bytes` starts with a special token `<|...|>`, its length.
fn special_len(bytes: &[u8]) -> Option<usize> {
    if !bytes.starts_with(b"<|") {
        return None;
    }
    let window = &bytes[2..bytes.len().min(MAX_SPECIAL)];
    window
        .windows(2)
        .position(|w| w == b"|>")
        .map(|end| 2 + end + 2)
}

/// Length of the UTF-8 character starting at byte `at` of `text`.
fn char_len(text: &str, at: usize) -> usize {
    text[at..].chars().next().map_or(1, char::len_utf8)
}

/// Cuts tokens into blocks and hashes each block as it fills, chained to the one before.
#[derive(Debug, Clone)]
pub struct BlockHasher {
    block_size: usize,
    tokens: usize,
    digest: Sha256,
}

impl BlockHasher {
    /// A hasher at the start of a sequence.
    pub fn new(block_size: usize) -> Self {
        Self::after(ROOT, block_size)
    }

    fn after(parent: BlockHash, block_size: usize) -> Self {
        let mut digest = Sha256::new();
        digest.update(parent.to_le_bytes());
        Self {
            block_size,
            tokens: 0,
            digest,
        }
    }

    /// Add one token; the block's hash if this token filled it.
    pub fn push(&mut self, token: &str) -> Option<BlockHash> {
        // Length-prefixed, so that ["ab", "c"] and ["a", "bc"] hash apart.
        self.digest.update((token.len() as u32).to_le_bytes());
        self.digest.update(token.as_bytes());
        self.tokens += 1;
        if self.tokens < self.block_size {
            return None;
        }
        let digest = std::mem::take(&mut self.digest).finalize();
        let hash = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        *self = Self::after(hash, self.block_size);
        Some(hash)
    }

    /// Tokens in the partial block.
    pub fn partial(&self) -> usize {
        self.tokens
    }

    /// A hash of everything pushed so far, the partial block included (seeds the reply).
    pub fn fingerprint(&self) -> u64 {
        let digest = self.digest.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

/// A prompt as the engine sees it: its length and the hashes of its full blocks.
#[derive(Debug, Clone)]
pub struct Prompt {
    /// Number of tokens.
    pub tokens: usize,
    /// Hashes of the full blocks, in order.
    pub blocks: Vec<BlockHash>,
    /// The tokens after the last full block, to continue hashing with generated tokens.
    pub rest: BlockHasher,
}

impl Prompt {
    /// Tokenise and hash `text`.
    pub fn new(text: &str, block_size: usize) -> Self {
        let mut hasher = BlockHasher::new(block_size);
        let mut blocks = Vec::new();
        let mut tokens = 0;
        for token in tokenize(text) {
            tokens += 1;
            blocks.extend(hasher.push(token));
        }
        Self {
            tokens,
            blocks,
            rest: hasher,
        }
    }
}

/// Words a replica "generates": each starts with a space and is at most 4 bytes, so a reply
/// tokenises back into exactly the tokens generated.
const VOCABULARY: [&str; 20] = [
    " the", " of", " and", " to", " a", " in", " is", " it", " you", " he", " was", " for", " on",
    " are", " as", " his", " at", " be", " or", " by",
];

/// The reply to one prompt: token `i` depends only on the prompt and `i`, so the same prompt
/// gets the same reply on every replica.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    seed: u64,
}

impl Reply {
    /// The reply to `prompt`.
    pub fn to(prompt: &Prompt) -> Self {
        Self {
            seed: prompt.rest.fingerprint(),
        }
    }

    /// Its token number `i` (0-based).
    pub fn token(&self, i: usize) -> &'static str {
        let n = VOCABULARY.len() as u64;
        VOCABULARY[(splitmix64(self.seed ^ i as u64) % n) as usize]
    }
}

/// A well-mixed 64-bit hash of `x` (SplitMix64's finaliser).
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<&str> {
        tokenize(text).collect()
    }

    #[test]
    fn words_keep_their_space_and_long_words_are_cut_every_four_bytes() {
        assert_eq!(
            tokens("Hello world, how are you"),
            ["Hell", "o", " wor", "ld,", " how", " are", " you"]
        );
        assert_eq!(tokens("a\n\nb  c"), ["a", "\n", "\n", "b", " ", " c"]);
        assert_eq!(tokens(""), Vec::<&str>::new());
    }

    #[test]
    fn special_markers_are_single_tokens() {
        assert_eq!(
            tokens("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"),
            [
                "<|start_header_id|>",
                "user",
                "<|end_header_id|>",
                "\n",
                "\n",
                "Hi",
                "<|eot_id|>"
            ]
        );
        // No closing `|>` within reach: plain bytes.
        assert_eq!(tokens("<|abc"), ["<|ab", "c"]);
    }

    #[test]
    fn multibyte_characters_are_never_split() {
        for text in ["ééééé", "日本語のテキスト", "a😀b😀c", " 😀😀😀"] {
            let joined: String = tokens(text).concat();
            assert_eq!(joined, text);
            for token in tokens(text) {
                assert!(token.len() <= 7, "{token:?}");
            }
        }
    }

    #[test]
    fn about_four_bytes_a_token_on_english_text() {
        let text = "The quick brown fox jumps over the lazy dog while the cat watches \
                    from the window, wondering whether it should join the chase or \
                    simply return to its afternoon nap in the warm sunlight.";
        let per_token = text.len() as f64 / tokens(text).len() as f64;
        assert!((3.0..=4.5).contains(&per_token), "{per_token}");
    }

    #[test]
    fn a_shared_text_prefix_shares_its_leading_blocks_and_only_those() {
        let system = "You are a helpful assistant. ".repeat(20);
        let cats = "Tell me about cats. ".repeat(10);
        let dogs = "Tell me about dogs, please. ".repeat(10);
        let a = Prompt::new(&format!("{system}{cats}"), 16);
        let b = Prompt::new(&format!("{system}{dogs}"), 16);
        let shared = a.blocks.iter().zip(&b.blocks).take_while(|(x, y)| x == y);
        let shared = shared.count();
        assert!(shared >= tokenize(&system).count() / 16, "{shared}");
        assert!(shared < a.blocks.len().max(b.blocks.len()));
        // Deterministic: the same text, the same hashes.
        let again = Prompt::new(&format!("{system}{cats}"), 16);
        assert_eq!(a.blocks, again.blocks);
        assert_eq!(a.tokens, again.tokens);
    }

    #[test]
    fn a_block_hash_covers_everything_before_it() {
        // Same second block, different first block: different second hash.
        let a = Prompt::new(&format!("{}{}", "x".repeat(64), "y".repeat(64)), 16);
        let b = Prompt::new(&format!("{}{}", "z".repeat(64), "y".repeat(64)), 16);
        assert_eq!(a.blocks.len(), 2);
        assert_ne!(a.blocks[1], b.blocks[1]);
    }

    #[test]
    fn a_reply_tokenises_back_into_the_tokens_generated() {
        let prompt = Prompt::new("<|start_header_id|>assistant<|end_header_id|>\n\n", 16);
        let reply = Reply::to(&prompt);
        let generated: Vec<&str> = (0..40).map(|i| reply.token(i)).collect();
        let text = generated.concat();
        assert_eq!(tokens(&text), generated);
        // Appended to the prompt's text, the prompt's tokens come first, unchanged.
        let whole = format!("<|start_header_id|>assistant<|end_header_id|>\n\n{text}<|eot_id|>");
        let all = tokens(&whole);
        assert_eq!(all.len(), prompt.tokens + generated.len() + 1);
        assert_eq!(
            &all[prompt.tokens..prompt.tokens + 40],
            generated.as_slice()
        );
    }

    #[test]
    fn the_same_prompt_gets_the_same_reply() {
        let a = Reply::to(&Prompt::new("hello there", 16));
        let b = Reply::to(&Prompt::new("hello there", 16));
        let c = Reply::to(&Prompt::new("hello where", 16));
        let text = |r: Reply| (0..32).map(|i| r.token(i)).collect::<String>();
        assert_eq!(text(a), text(b));
        assert_ne!(text(a), text(c));
    }
}
