//! A canary declared fleet-wide: the candidate takes the same share of traffic on every node,
//! and its gates are judged on the sum of every node's figures — a step passes or fails for the
//! fleet, not for the one node that happened to see a burst.
//!
//! The canary lives in `<prefix>/canary` ([`SharedCanary`]): the candidate (its module is kept
//! under `modules/<sha256>` like the plugin's), its steps, key and gates, the step in progress
//! and when it began, and its state. Every node follows that key: it starts the split at the
//! step given, moves when the step changes and ends the split when the state does
//! (`reload::fleet`), and publishes its figures for the step in its status key. One node — the
//! live node with the smallest id — judges the summed figures and moves the canary on (`judge`).
//!
//! This file holds what the canary is; `judge` holds how it is judged.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canary::ArmCounts;
use crate::config::canary::{Gates, default_key, default_step_duration, default_steps};

/// `<prefix>/canary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedCanary {
    /// This canary's name: a new canary is a new id (figures of another are never summed in).
    pub id: String,
    /// The candidate module's sha256.
    pub sha256: String,
    /// Where to fetch it when it is not kept in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Its `init` config.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Its shares, in percent, increasing.
    #[serde(default = "default_steps")]
    pub steps: Vec<f64>,
    /// How long each step lasts before its verdict.
    #[serde(default = "default_step_duration", with = "humantime_serde")]
    pub step_duration: Duration,
    /// `client-ip`, `header:NAME` or `cookie:NAME`.
    #[serde(default = "default_key")]
    pub key: String,
    /// The bounds each step must stay within, judged on the fleet's sums.
    #[serde(default)]
    pub gates: Gates,
    /// The step in progress (index into `steps`).
    #[serde(default)]
    pub step: usize,
    /// When it began (RFC 3339).
    pub step_started: String,
    /// Where it stands.
    pub state: FleetCanaryState,
    /// Why it ended, with the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A fleet canary's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FleetCanaryState {
    /// Taking its share on every node.
    Running,
    /// Now the fleet's plugin.
    Promoted,
    /// Failed a gate on the fleet's figures.
    RolledBack,
    /// Ended by an operator.
    Aborted,
}

impl SharedCanary {
    /// Why this canary cannot run, if it cannot.
    pub fn problem(&self) -> Option<String> {
        crate::config::canary::plan_problem(&self.steps, self.step_duration, &self.gates)
            .or_else(|| {
                crate::plugin::SplitKey::parse(&self.key)
                    .err()
                    .map(|e| format!("key: {e}"))
            })
            .or_else(|| (self.step >= self.steps.len()).then(|| "step: past the last".into()))
    }
}

/// One node's figures for the fleet canary's step in progress, in its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeCanary {
    /// The canary's id.
    pub id: String,
    /// The step these figures are for.
    pub step: usize,
    /// The live version's counts.
    pub live: ArmCounts,
    /// The candidate's counts.
    pub candidate: ArmCounts,
}
