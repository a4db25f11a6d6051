//! The node that judges the fleet canary (`canary`): the live node with the smallest id, so
//! exactly one while the nodes' statuses agree. Every [`TICK`] it adds up the figures each node
//! published for the step in progress and judges them with the canary's gates; then it writes
//! the next step, the promotion (the candidate becomes `<prefix>/plugin` in the same
//! transaction) or the rollback. Each write is guarded on the key it read, so two nodes that
//! both believed they judge cannot both move the canary.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::canary::{FleetCanaryState, SharedCanary};
use super::node::{FleetNode, now};
use super::shared::SharedPlugin;
use super::store::{CommitOutcome, Store, Txn};
use crate::canary::{ArmCounts, Verdict};

/// How often the judging node looks at the figures (and each node publishes its own).
pub const TICK: Duration = Duration::from_millis(500);

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
                serde_json::to_vec(&SharedPlugin::from_canary(&next)).expect("a plugin serialises"),
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
