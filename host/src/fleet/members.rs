//! Which etcd members the store's requests go to. tonic balances over every endpoint with
//! power-of-two-choices on a constant load, so a member that hangs (SIGSTOP, a black-holed
//! network) keeps its share of requests forever: its TCP connection still opens (the kernel
//! accepts for it) and each request sent there waits out the whole request timeout. Measured on a
//! 3-member cluster with a frozen member: one request in three took the 1.5 s request timeout,
//! round after round.
//!
//! So each member is probed on its own connection every `keepalive_interval` (a status request
//! bounded by `keepalive_timeout`, which also checks that the member knows a leader); a member
//! that fails is taken out of the balancer until it answers again. When no member answers, all
//! of them stay in: there is nothing better to send requests to, and the first to recover
//! serves.

use std::time::Duration;

use etcd_client as etcd;
use tokio::task::JoinSet;

/// Probe the members of `balanced`'s cluster until aborted.
pub(super) async fn keep_only_answering_members(
    balanced: etcd::Client,
    endpoints: Vec<String>,
    options: etcd::ConnectOptions,
    interval: Duration,
    timeout: Duration,
) {
    let mut probes: Vec<Option<etcd::Client>> = vec![None; endpoints.len()];
    let mut in_balancer = vec![true; endpoints.len()];
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mut running = JoinSet::new();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let probe = probes[i].take();
            let endpoint = endpoint.clone();
            let options = options.clone();
            running.spawn(async move {
                let answered = tokio::time::timeout(timeout, async move {
                    let mut client = match probe {
                        Some(client) => client,
                        None => etcd::Client::connect([endpoint], Some(options))
                            .await
                            .ok()?,
                    };
                    let status = client.status().await.ok()?;
                    // A member cut off from the others answers, but serves nothing.
                    (status.leader() != 0).then_some(client)
                })
                .await
                .ok()
                .flatten();
                (i, answered)
            });
        }
        let mut answering = vec![false; endpoints.len()];
        while let Some(Ok((i, client))) = running.join_next().await {
            answering[i] = client.is_some();
            probes[i] = client;
        }
        let anyone = answering.iter().any(|a| *a);
        for (i, endpoint) in endpoints.iter().enumerate() {
            let wanted = answering[i] || !anyone;
            if wanted && !in_balancer[i] {
                if balanced.add_endpoint(endpoint).await.is_ok() {
                    tracing::info!(%endpoint, "etcd member answers again; sending it requests");
                    in_balancer[i] = true;
                }
            } else if !wanted && in_balancer[i] && balanced.remove_endpoint(endpoint).await.is_ok()
            {
                tracing::warn!(%endpoint, "etcd member does not answer; sending requests to the others");
                in_balancer[i] = false;
            }
        }
    }
}
