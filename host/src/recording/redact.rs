//! Keeping secrets out of a recording: the values of the header fields on the deny-list
//! (`[record] hashed_headers`, by default `authorization`, `proxy-authorization` and `cookie`)
//! are written as `hmac-sha256:<32 hex digits>`, an HMAC-SHA256 truncated to 128 bits.
//!
//! Why keyed: a plain SHA-256 of a short password or a guessable token can be reversed by
//! trying candidates; with a random key that is never written anywhere, the file alone gives
//! nothing to try against. Why hashed rather than dropped: equal values still hash equal
//! within a recording (one key per recording session), so a plugin that routes on equality —
//! the same session cookie to the same backend — replays as it decided live. A plugin that
//! routes on the value itself (a hash ring over the cookie) sees a different value and may
//! choose differently; that is the price of not recording the secret.
//!
//! For `cookie`, each cookie keeps its name and only its value is hashed, so routing on a
//! cookie's presence or on cookie-name equality still replays.

use sha2::{Digest, Sha256};

use crate::message::Headers;

/// The prefix of a hashed value.
pub const PREFIX: &str = "hmac-sha256:";

/// Replaces deny-listed header values by keyed hashes.
pub struct Redactor {
    key: [u8; 32],
    /// Lowercase names of the hashed fields.
    hashed: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Redactor")
            .field("hashed", &self.hashed)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    /// A redactor hashing the fields `hashed` (any case) with a fresh random key.
    pub fn new(hashed: &[String]) -> Self {
        Self::with_key(random_key(), hashed)
    }

    fn with_key(key: [u8; 32], hashed: &[String]) -> Self {
        Self {
            key,
            hashed: hashed.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    /// The fields in order as `[name, value]` text, hashed where the deny-list says.
    pub fn headers(&self, headers: &Headers) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|h| {
                let name = String::from_utf8_lossy(&h.name).into_owned();
                let value = if !self.hashes(&name) {
                    String::from_utf8_lossy(&h.value).into_owned()
                } else if name.eq_ignore_ascii_case("cookie") {
                    self.cookies(&h.value)
                } else {
                    self.hash(&h.value)
                };
                (name, value)
            })
            .collect()
    }

    fn hashes(&self, name: &str) -> bool {
        self.hashed.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// `a=1; b=2` as `a=<hash of 1>; b=<hash of 2>`; a part without `=` is hashed whole.
    fn cookies(&self, value: &[u8]) -> String {
        value
            .split(|&b| b == b';')
            .map(|part| part.trim_ascii())
            .filter(|part| !part.is_empty())
            .map(|part| match part.iter().position(|&b| b == b'=') {
                Some(at) => format!(
                    "{}={}",
                    String::from_utf8_lossy(&part[..at]),
                    self.hash(&part[at + 1..])
                ),
                None => self.hash(part),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn hash(&self, value: &[u8]) -> String {
        let mac = hmac_sha256(&self.key, value);
        let mut text = String::with_capacity(PREFIX.len() + 32);
        text.push_str(PREFIX);
        for byte in &mac[..16] {
            text.push_str(&format!("{byte:02x}"));
        }
        text
    }
}

/// HMAC-SHA256 (RFC 2104) with a key of at most one block (64 bytes).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut inner_pad = [0x36u8; BLOCK];
    let mut outer_pad = [0x5cu8; BLOCK];
    debug_assert!(key.len() <= BLOCK);
    for (i, k) in key.iter().enumerate() {
        inner_pad[i] ^= k;
        outer_pad[i] ^= k;
    }
    let inner = Sha256::new()
        .chain_update(inner_pad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(outer_pad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// 32 bytes from the kernel; if it cannot be read, the standard library's randomly seeded
/// hasher keys and the clock, hashed together.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
        .is_ok()
    {
        return key;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut seed = Sha256::new();
    for _ in 0..4 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        seed.update(hasher.finish().to_le_bytes());
    }
    seed.update(format!("{:?}", std::time::SystemTime::now()));
    seed.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::with_key([7; 32], &["Authorization".into(), "cookie".into()])
    }

    fn headers(fields: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::default();
        for (name, value) in fields {
            headers.push(name.to_string(), value.to_string());
        }
        headers
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_1() {
        let mac = hmac_sha256(&[0x0b; 20], b"Hi There");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn deny_listed_values_are_hashed_equal_values_alike() {
        let redactor = redactor();
        let written = redactor.headers(&headers(&[
            ("authorization", "Bearer secret-token"),
            ("x-user", "u1"),
            ("Cookie", "session=abc; theme=dark"),
            ("cookie", "session=abc"),
        ]));
        assert_eq!(written[1], ("x-user".into(), "u1".into()));
        assert!(written[0].1.starts_with(PREFIX), "{written:?}");
        assert!(!written[0].1.contains("secret"));
        let cookies: Vec<&str> = written[2].1.split("; ").collect();
        assert!(
            cookies[0].starts_with("session=hmac-sha256:"),
            "{cookies:?}"
        );
        assert!(cookies[1].starts_with("theme=hmac-sha256:"), "{cookies:?}");
        assert!(!written[2].1.contains("abc") && !written[2].1.contains("dark"));
        // The same cookie value hashes the same, so equality routing replays.
        assert_eq!(cookies[0], written[3].1);
        // Another key (another recording) hashes differently.
        let other = Redactor::with_key([9; 32], &["cookie".into()]);
        assert_ne!(
            other.headers(&headers(&[("cookie", "session=abc")]))[0].1,
            written[3].1
        );
    }
}
