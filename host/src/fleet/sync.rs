//! The task that keeps a running node in step with its fleet: the follower ([`super::follow`])
//! hands over each new shared state whole; it is decoded, its plugin module fetched and
//! checked, and put in force through the reload path ([`Applier`]). Each outcome goes into
//! the node's status key — Envoy's ACK/NACK: the revision applied, or the revision refused
//! and why while the last good state keeps serving — and an applied state into the state
//! file, so the node can start from it while the store is down.
//!
//! The status key is bound to a lease the node keeps alive: a node that dies leaves the
//! fleet's view once the lease's TTL passes; a node that stops cleanly revokes it at once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::follow::{Connection, View};
use super::node::{FleetNode, now};
use super::overlay::Applier;
use super::status::{NodeStatus, Refusal};
use super::store::Store;

/// Longest wait before trying again to publish the status.
const STATUS_RETRY: Duration = Duration::from_secs(1);

impl FleetNode {
    /// Follow the store and keep this node's status key until `stop`; each new shared state
    /// goes to `applier`. Call once.
    pub fn spawn<A: Applier>(self: &Arc<Self>, applier: Arc<A>, stop: CancellationToken) {
        let Some(follower) = self.follower.lock().expect("follower lock").take() else {
            return;
        };
        let node = self.clone();
        let following = stop.clone();
        let publishing = applier.clone();
        tokio::spawn(async move {
            let apply = |view: View| {
                let node = node.clone();
                let applier = applier.clone();
                async move { node.apply_view(&*applier, view).await }
            };
            follower.run(apply, following).await;
        });
        tokio::spawn(self.clone().mirror_connection(stop.clone()));
        tokio::spawn(self.clone().publish_canary_counts(publishing, stop.clone()));
        tokio::spawn(self.clone().coordinate_canary(stop.clone()));
        tokio::spawn(self.clone().keep_status(stop));
    }

    /// While this node follows a fleet canary, put its figures in its status every
    /// [`super::judge::TICK`], for the judging node to add up.
    async fn publish_canary_counts<A: Applier>(
        self: Arc<Self>,
        applier: Arc<A>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(super::judge::TICK) => {}
            }
            let counts = applier.canary_counts();
            self.own.send_if_modified(|status| {
                let changed = status.canary != counts;
                status.canary = counts;
                changed
            });
        }
    }

    /// Put `view` in force, or refuse it; say which in the status.
    async fn apply_view<A: Applier>(&self, applier: &A, view: View) {
        self.shared_revision.send_replace(view.changed_at);
        self.metrics.shared_revision.set(view.changed_at);
        let result = match self.overlay_for(view.revision, &view.kvs).await {
            Ok(overlay) => {
                let sha256 = overlay.plugin_sha256().map(str::to_string);
                let canary = overlay.state.canary.clone();
                applier
                    .apply_overlay(overlay)
                    .await
                    .map(|what| (what, sha256, canary))
            }
            Err(reason) => Err(reason),
        };
        match result {
            Ok((what, sha256, canary)) => {
                tracing::info!(revision = view.revision, applied = %what, "fleet state applied");
                self.canary.send_replace(canary);
                self.save_applied(view.revision, &view.kvs);
                self.metrics.applied(true);
                self.metrics.applied_revision.set(view.revision);
                self.own.send_modify(|status| {
                    status.applied_revision = view.revision;
                    status.plugin_sha256 = sha256;
                });
            }
            Err(reason) => {
                tracing::error!(revision = view.revision, %reason,
                    "fleet state refused; the last applied state keeps serving");
                self.metrics.applied(false);
                self.own.send_modify(|status| {
                    status.refused = Some(Refusal {
                        revision: view.revision,
                        reason,
                    });
                });
            }
        }
    }

    /// Keep `connected` in the status, and the connection and node gauges, in step with the
    /// follower.
    async fn mirror_connection(self: Arc<Self>, stop: CancellationToken) {
        let mut connection = self.connection.clone();
        let mut statuses = self.watch_statuses();
        loop {
            let connected = *connection.borrow_and_update() == Connection::Watching;
            self.metrics.connected.set(i64::from(connected));
            self.own.send_if_modified(|status| {
                let changed = status.connected != connected;
                status.connected = connected;
                changed
            });
            let live = statuses.borrow_and_update().len();
            self.metrics
                .nodes
                .set(i64::try_from(live).unwrap_or(i64::MAX));
            tokio::select! {
                () = stop.cancelled() => return,
                changed = connection.changed() => if changed.is_err() { return },
                changed = statuses.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Publish the status under a lease, again at each change; a new lease when the store let
    /// the last one expire (a long partition). Revoked at stop, so the node leaves the view
    /// at once.
    async fn keep_status(self: Arc<Self>, stop: CancellationToken) {
        let key = self.layout.status(&self.node_id);
        let mut own = self.own.subscribe();
        'lease: while !stop.is_cancelled() {
            let mut lease = match self.store.grant(self.status_ttl).await {
                Ok(lease) => lease,
                Err(error) => {
                    tracing::debug!(%error, "cannot take a lease for this node's status yet");
                    if pause(&stop).await {
                        return;
                    }
                    continue;
                }
            };
            loop {
                let status = NodeStatus {
                    updated: now(),
                    ..own.borrow_and_update().clone()
                };
                let value = serde_json::to_vec(&status).expect("a status serialises");
                if let Err(error) = self.store.put_with_lease(&key, value, &lease).await {
                    // The lease may be gone (it expired while the store had no leader): take
                    // a new one rather than retry a write bound to a dead lease forever.
                    tracing::debug!(%error, "cannot publish this node's status yet");
                    if pause(&stop).await {
                        let _ = self.store.revoke(lease).await;
                        return;
                    }
                    continue 'lease;
                }
                tokio::select! {
                    () = stop.cancelled() => {
                        let _ = tokio::time::timeout(Duration::from_secs(2), self.store.revoke(lease)).await;
                        return;
                    }
                    changed = own.changed() => if changed.is_err() { return },
                    () = lease.expired() => {
                        tracing::warn!("this node's status lease expired (store unreachable for \
                            longer than its TTL): taking a new one");
                        continue 'lease;
                    }
                }
            }
        }
    }
}

/// Wait [`STATUS_RETRY`]; true when stopped meanwhile.
async fn pause(stop: &CancellationToken) -> bool {
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(STATUS_RETRY) => false,
    }
}
