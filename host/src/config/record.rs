//! `[record]`: recording a sample of live routing decisions to a file, for `lbx replay` (see
//! the `recording` module and docs/recording-format.md). Read when lbx starts; switched at
//! runtime with `POST /admin/record`.

use std::path::PathBuf;

use serde::Deserialize;

use super::size;

/// `[record]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Record from the start (`false`: only configured, for `POST /admin/record` to switch on).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The recording file; the previous one is kept as `<path>.1` when it is rotated.
    pub path: PathBuf,
    /// Share of first decisions recorded, more than 0 and at most 1.
    #[serde(default = "default_sample")]
    pub sample: f64,
    /// Size at which the file is rotated (`"64MiB"` or a number of bytes).
    #[serde(default = "default_max_size", deserialize_with = "size::deserialize")]
    pub max_size: bytesize::ByteSize,
    /// Header fields whose values are written only as keyed hashes (names, any case); for
    /// `cookie`, each cookie's value is hashed and its name kept.
    #[serde(default = "default_hashed_headers")]
    pub hashed_headers: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_sample() -> f64 {
    1.0
}

/// `max_size` when none is given.
pub fn default_max_size() -> bytesize::ByteSize {
    bytesize::ByteSize::mib(64)
}

/// The header fields hashed when `hashed_headers` is not given: credentials and cookies.
pub fn default_hashed_headers() -> Vec<String> {
    ["authorization", "proxy-authorization", "cookie"]
        .map(String::from)
        .to_vec()
}

/// Smallest `max_size`: a file must hold its header, a backend list and some decisions.
pub const MIN_MAX_SIZE: u64 = 4096;

/// Why `sample` cannot be a recording's sample rate, if it cannot.
pub fn sample_problem(sample: f64) -> Option<String> {
    (!(sample > 0.0 && sample <= 1.0))
        .then(|| format!("{sample} is not a share of requests: more than 0 and at most 1"))
}

impl RecordConfig {
    /// Every problem of the table, named by key.
    pub fn check(&self, problem: &mut impl FnMut(String, String)) {
        if let Some(message) = sample_problem(self.sample) {
            problem("record.sample".into(), message);
        }
        if self.max_size.as_u64() < MIN_MAX_SIZE {
            problem(
                "record.max_size".into(),
                format!(
                    "{} is less than the minimum of {MIN_MAX_SIZE} bytes",
                    self.max_size.as_u64()
                ),
            );
        }
        if self.path.as_os_str().is_empty() {
            problem("record.path".into(), "must name a file".into());
        }
        for (i, name) in self.hashed_headers.iter().enumerate() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problem(
                    format!("record.hashed_headers[{i}]"),
                    format!("{name:?} is not a header field name"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(toml: &str) -> Vec<String> {
        let config: RecordConfig = toml::from_str(toml).unwrap();
        let mut found = Vec::new();
        config.check(&mut |key, message| found.push(format!("{key}: {message}")));
        found
    }

    #[test]
    fn defaults_hash_credentials_and_rotate_at_64_mib() {
        let config: RecordConfig = toml::from_str("path = \"r.lbxr\"").unwrap();
        assert!(config.enabled);
        assert_eq!(config.sample, 1.0);
        assert_eq!(config.max_size.as_u64(), 64 * 1024 * 1024);
        assert_eq!(
            config.hashed_headers,
            ["authorization", "proxy-authorization", "cookie"]
        );
        assert!(problems("path = \"r.lbxr\"").is_empty());
    }

    #[test]
    fn each_bad_key_is_named() {
        let found =
            problems("path = \"r.lbxr\"\nsample = 0.0\nmax_size = 100\nhashed_headers = [\"x y\"]");
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("record.sample:"));
        assert!(found[1].starts_with("record.max_size:"));
        assert!(found[2].starts_with("record.hashed_headers[0]:"));
    }
}
