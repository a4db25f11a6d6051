//! What a node says of itself under `<prefix>/status/<node-id>`, a key bound to its lease (it
//! disappears when the node dies): the revision it applied, the plugin it runs, and — Envoy's
//! ACK/NACK — the revision it refused and why, while it keeps serving the last good state.
//! Every node reads the others' to show the whole fleet (`GET /admin/fleet`, `lbx fleet
//! status`), and the lag of each behind the store.

use serde::{Deserialize, Serialize};

/// A node's status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's name (`[fleet] node_id`).
    pub node: String,
    /// The lbx version it runs.
    pub version: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// When it wrote this (RFC 3339).
    pub updated: String,
    /// The store revision whose shared state it has in force (0: none yet).
    pub applied_revision: i64,
    /// The sha256 of the plugin it runs, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin_sha256: Option<String>,
    /// The last revision it refused, if it refused one after the one it applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<Refusal>,
    /// Whether it reaches the store now (`false` in a status read back from its state file).
    pub connected: bool,
    /// Its figures for the fleet canary's step in progress, while one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<super::canary::NodeCanary>,
}

/// A revision a node could not apply, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The revision refused.
    pub revision: i64,
    /// Why, naming the key: `/lbx/plugin: the module's sha256 is 9a…, expected 68…`.
    pub reason: String,
}

/// Where a node stands, seen from the store at `revision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// It has the store's latest shared state in force.
    InSync,
    /// It applied an older revision and refused none since: catching up.
    Behind,
    /// It refused a later revision and serves an older one.
    Refusing,
}

impl NodeStatus {
    /// Where the node stands, given the revision of the last change to the shared state.
    pub fn state(&self, shared_revision: i64) -> NodeState {
        match &self.refused {
            Some(refusal) if refusal.revision > self.applied_revision => NodeState::Refusing,
            _ if self.applied_revision >= shared_revision => NodeState::InSync,
            _ => NodeState::Behind,
        }
    }

    /// How many revisions of the shared state it is behind (0 when in step).
    pub fn lag(&self, shared_revision: i64) -> i64 {
        (shared_revision - self.applied_revision).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(applied: i64, refused: Option<i64>) -> NodeStatus {
        NodeStatus {
            node: "a".into(),
            version: "0.1.0".into(),
            started: "2026-12-03T10:00:00Z".into(),
            updated: "2026-12-03T10:00:01Z".into(),
            applied_revision: applied,
            plugin_sha256: None,
            refused: refused.map(|revision| Refusal {
                revision,
                reason: "bad".into(),
            }),
            connected: true,
            canary: None,
        }
    }

    #[test]
    fn a_node_is_in_sync_behind_or_refusing_as_its_revisions_say() {
        assert_eq!(status(12, None).state(12), NodeState::InSync);
        assert_eq!(status(10, None).state(12), NodeState::Behind);
        assert_eq!(status(10, None).lag(12), 2);
        assert_eq!(status(10, Some(12)).state(12), NodeState::Refusing);
        // A refusal it has since moved past (a later good revision applied) is history.
        assert_eq!(status(14, Some(12)).state(14), NodeState::InSync);
        // Lag is never negative: the status may be newer than the listing read it with.
        assert_eq!(status(15, None).lag(14), 0);
    }

    #[test]
    fn the_status_document_reads_back_as_written() {
        let written = status(7, Some(9));
        let json = serde_json::to_string(&written).unwrap();
        assert!(
            json.contains(r#""refused":{"revision":9,"reason":"bad"}"#),
            "{json}"
        );
        assert!(!json.contains("plugin_sha256"), "{json}");
        assert_eq!(serde_json::from_str::<NodeStatus>(&json).unwrap(), written);
    }
}
