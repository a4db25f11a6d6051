//! The recording file format, version 1 (docs/recording-format.md is the full reference):
//! JSON lines, UTF-8. The first line of every file is a [`FileHeader`]; after it come
//! [`Line::Backends`] lines (the backend set decisions refer to, written before the first
//! decision on a set and again whenever the set changes) and [`Line::Decision`] lines, one per
//! sampled first decision. A reader refuses a file whose `format` is not `lbx-recording` or
//! whose `version` it does not know; fields added later within a version are optional, so a
//! version-1 reader ignores what it does not know.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The header's `format`.
pub const FORMAT: &str = "lbx-recording";

/// The format version this lbx writes and reads.
pub const VERSION: u32 = 1;

/// What the `hash` field names: how hashed header values were computed.
pub const HASH: &str = "hmac-sha256";

/// The first line of a recording file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileHeader {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version, [`VERSION`].
    pub version: u32,
    /// The lbx version that wrote it.
    pub lbx: String,
    /// When the file was started (RFC 3339).
    pub started: String,
    /// The share of first decisions recorded (0–1).
    pub sample: f64,
    /// How hashed values were computed ([`HASH`]).
    pub hash: String,
    /// The header fields whose values are hashed (lowercase).
    pub hashed_headers: Vec<String>,
}

impl FileHeader {
    /// Why a file with this header cannot be read, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.format != FORMAT {
            Some(format!("format {:?} is not {FORMAT:?}", self.format))
        } else if self.version != VERSION {
            Some(format!(
                "format version {} is not one this lbx reads (it reads version {VERSION})",
                self.version
            ))
        } else {
            None
        }
    }
}

/// Every line after the header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    /// The backend set that later decisions with this `set` number were made on.
    Backends(BackendsLine),
    /// One sampled decision.
    Decision(Box<DecisionLine>),
}

/// A backend set, in plugin index order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendsLine {
    /// Its number (the set's generation in the recording lbx): decisions name it.
    pub set: u64,
    /// Its backends; a backend's position is its index for the plugin.
    pub backends: Vec<RecordedBackend>,
}

/// One backend of a set, as the plugin saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedBackend {
    /// Its id.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// Its weight.
    pub weight: u32,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// One decision: the request as the plugin could see it, the statistics it was given, and
/// where the live side sent the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionLine {
    /// When it was decided (RFC 3339, milliseconds).
    pub at: String,
    /// The backend set's number (a `backends` line earlier in the same file).
    pub set: u64,
    /// The request method.
    pub method: String,
    /// The request target: path and query, as received.
    pub target: String,
    /// The HTTP version the client spoke (`HTTP/1.1`, `HTTP/2.0`).
    pub version: String,
    /// The authority (Host or `:authority`), if any.
    #[serde(default)]
    pub authority: Option<String>,
    /// The client's socket address.
    pub client: String,
    /// Whether the request came over TLS.
    #[serde(default)]
    pub secure: bool,
    /// The header fields in order, `[name, value]`; values of hashed fields replaced.
    pub headers: Vec<(String, String)>,
    /// The backend statistics, 5 numbers per backend: usable (0/1), weight, in flight, EWMA
    /// latency in µs, consecutive failures.
    pub stats: Vec<u32>,
    /// Who decided live: `plugin`, `builtin`, or a `fallback_*` reason.
    pub by: String,
    /// Where the live side sent the request.
    pub live: RecordedChoice,
}

/// Where a request went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordedChoice {
    /// To a backend of the set.
    Backend {
        /// Its index in the set.
        index: usize,
        /// Its id.
        id: String,
    },
    /// Answered by lbx with this status (the plugin's `reject`).
    Reject {
        /// The status.
        status: u16,
    },
}

impl DecisionLine {
    /// Whether the live plugin gave no usable answer, so lbx's fallback placed the request.
    pub fn live_fell_back(&self) -> bool {
        self.by.starts_with("fallback")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tagged_by_type_and_round_trip() {
        let line = Line::Decision(Box::new(DecisionLine {
            at: "2026-01-01T00:00:00.000Z".into(),
            set: 3,
            method: "GET".into(),
            target: "/a?b=1".into(),
            version: "HTTP/1.1".into(),
            authority: Some("example.test".into()),
            client: "127.0.0.1:5000".into(),
            secure: false,
            headers: vec![("x-user".into(), "u1".into())],
            stats: vec![1, 1, 0, 0, 0],
            by: "plugin".into(),
            live: RecordedChoice::Backend {
                index: 0,
                id: "a".into(),
            },
        }));
        let text = serde_json::to_string(&line).unwrap();
        assert!(text.starts_with(r#"{"type":"decision","#), "{text}");
        assert!(
            text.contains(r#""live":{"backend":{"index":0,"id":"a"}}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Line>(&text).unwrap(), line);
    }

    #[test]
    fn an_unknown_format_or_version_is_refused() {
        let mut header = FileHeader {
            format: FORMAT.into(),
            version: VERSION,
            lbx: "0".into(),
            started: String::new(),
            sample: 1.0,
            hash: HASH.into(),
            hashed_headers: vec![],
        };
        assert_eq!(header.problem(), None);
        header.version = 2;
        assert!(header.problem().unwrap().contains("version 2"));
        header.format = "other".into();
        assert!(header.problem().unwrap().contains("\"other\""));
    }
}
