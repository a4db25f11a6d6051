//! A canary declared fleet-wide: the candidate takes the same share of traffic on every node,
//! and its gates are judged on the sum of every node's figures — a step passes or fails for the
//! fleet, not for the one node that happened to see a burst.
//!
//! The canary lives in `<prefix>/canary` ([`SharedCanary`]): the candidate (its module is kept
//! under `modules/<sha256>` like the plugin's), its steps, key and gates, the step in progress
//! and when it began, and its state. Every node follows that key: it starts the split at the
//! step given, moves when the step changes and ends the split when the state does
//! (`reload::fleet`), and publishes its figures for the step in its status key. One node — the
//! live node with the smallest id, so exactly one while the statuses agree — judges the summed
//! figures every [`TICK`] ([`FleetNode::coordinate_canary`]) and writes the next step, the
//! promotion (the candidate becomes `<prefix>/plugin` in the same transaction) or the rollback;
//! each write is guarded on the key it read, so two nodes that both believed they judge cannot
//! both move it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::node::{FleetNode, now};
use super::shared::SharedPlugin;
use super::store::{CommitOutcome, Store, Txn};
use crate::canary::{ArmCounts, Verdict};
use crate::config::canary::{Gates, default_key, default_step_duration, default_steps};

/// How often the judging node looks at the figures.
pub const TICK: Duration = Duration::from_millis(500);

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

    /// The candidate as the fleet's plugin (what a promotion writes).
    pub fn as_plugin(&self) -> SharedPlugin {
        SharedPlugin {
            sha256: self.sha256.clone(),
            config: self.config.clone(),
            url: self.url.clone(),
        }
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

/// The fleet's figures for `canary`'s step in progress: the sum over the nodes that report it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetFigures {
    /// Summed live counts.
    pub live: ArmCounts,
    /// Summed candidate counts.
    pub candidate: ArmCounts,
    /// The nodes counted.
    pub nodes: Vec<String>,
}

impl FleetNode {
    /// The fleet canary in force, if any.
    pub fn canary(&self) -> Option<SharedCanary> {
        self.canary.borrow().clone()
    }

    /// The sum of every live node's figures for `canary`'s step in progress.
    pub fn canary_figures(&self, canary: &SharedCanary) -> FleetFigures {
        let mut statuses = self.statuses();
        statuses.insert(self.node_id.clone(), Ok(self.own_status()));
        let mut figures = FleetFigures::default();
        for (node, status) in statuses {
            let Some(counts) = status.ok().and_then(|s| s.canary) else {
                continue;
            };
            if counts.id == canary.id && counts.step == canary.step {
                figures.live.add(&counts.live);
                figures.candidate.add(&counts.candidate);
                figures.nodes.push(node);
            }
        }
        figures
    }

    /// Whether this node judges the fleet's canary: the live node with the smallest id.
    fn judges(&self) -> bool {
        let statuses = self.statuses();
        statuses
            .keys()
            .chain(std::iter::once(&self.node_id))
            .min()
            .is_some_and(|first| *first == self.node_id)
    }

    /// Judge the fleet canary every [`TICK`] while this node is the judge, until `stop`.
    pub(super) async fn coordinate_canary(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
            }
            let Some(canary) = self.canary() else {
                continue;
            };
            if canary.state != FleetCanaryState::Running || !self.judges() {
                continue;
            }
            if let Err(error) = self.judge_canary(&canary).await {
                tracing::warn!(%error, canary = %canary.id, "cannot move the fleet canary now");
            }
        }
    }

    async fn judge_canary(&self, canary: &SharedCanary) -> Result<(), String> {
        let figures = self.canary_figures(canary);
        let (live, candidate) = (figures.live.report(), figures.candidate.report());
        let elapsed = humantime::parse_rfc3339_weak(&canary.step_started)
            .ok()
            .and_then(|started| SystemTime::now().duration_since(started).ok())
            .unwrap_or_default();
        let share = canary.steps[canary.step];
        let summary = format!(
            "{} requests on {} node(s), error rate {:.2}% (live {:.2}%), fallback rate {:.2}%, \
             p99 {} ms (live {} ms)",
            candidate.decisions,
            figures.nodes.len(),
            candidate.error_rate * 100.0,
            live.error_rate * 100.0,
            candidate.fallback_rate * 100.0,
            fmt_ms(candidate.p99_ms),
            fmt_ms(live.p99_ms)
        );
        let next = match canary.gates.judge(&live, &candidate) {
            Verdict::Fail(reasons) => SharedCanary {
                state: FleetCanaryState::RolledBack,
                detail: Some(format!(
                    "rolled back at {share}% on the fleet's figures: {}",
                    reasons.join("; ")
                )),
                ..canary.clone()
            },
            Verdict::Pass if elapsed >= canary.step_duration => {
                if canary.step + 1 < canary.steps.len() {
                    SharedCanary {
                        step: canary.step + 1,
                        step_started: now(),
                        detail: Some(format!("step {share}% passed: {summary}")),
                        ..canary.clone()
                    }
                } else {
                    SharedCanary {
                        state: FleetCanaryState::Promoted,
                        detail: Some(format!(
                            "promoted: step {share}% passed: {summary}; every step passed"
                        )),
                        ..canary.clone()
                    }
                }
            }
            _ => return Ok(()),
        };
        let written = self
            .move_canary(&canary.id, canary.step, next.clone())
            .await?;
        if written.is_some() {
            tracing::info!(canary = %canary.id, state = ?next.state, step = next.step,
                detail = next.detail.as_deref().unwrap_or_default(), "fleet canary moved");
        }
        Ok(())
    }

    /// Write `next` over the canary `id` at `step`, if that is still what the store holds; a
    /// promotion makes its candidate the fleet's plugin in the same transaction. The commit
    /// revision; `None` when the key changed meanwhile.
    pub(super) async fn move_canary(
        &self,
        id: &str,
        step: usize,
        next: SharedCanary,
    ) -> Result<Option<i64>, String> {
        let key = self.layout.canary();
        let snapshot = self.store.list(&key).await.map_err(|e| e.to_string())?;
        let Some(entry) = snapshot.kvs.into_iter().find(|e| e.key == key) else {
            return Ok(None);
        };
        let stored: SharedCanary = serde_json::from_slice(&entry.value)
            .map_err(|e| format!("{key} does not read: {e}"))?;
        if stored.id != id || stored.step != step || stored.state != FleetCanaryState::Running {
            return Ok(None);
        }
        let mut txn = Txn::new()
            .if_unchanged(key.clone(), entry.mod_revision)
            .put(key, serde_json::to_vec(&next).expect("a canary serialises"));
        if next.state == FleetCanaryState::Promoted {
            txn = txn.put(
                self.layout.plugin(),
                serde_json::to_vec(&next.as_plugin()).expect("a plugin serialises"),
            );
        }
        match self.store.commit(txn).await.map_err(|e| e.to_string())? {
            CommitOutcome::Committed { revision } => Ok(Some(revision)),
            CommitOutcome::Conflict => Ok(None),
        }
    }
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "–".into(), |ms| format!("{ms}"))
}
