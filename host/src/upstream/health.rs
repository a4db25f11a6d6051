//! Active health checks: a task per backend probes `GET <path>` every interval on a fresh
//! connection (so a dead process or a full accept queue shows up, not a pooled socket), over
//! the same transport and protocol real requests use ([`probe`]), and flips the backend down
//! after `fall` failures in a row and up again after `rise` passes. Each transition is logged once, with the reason; individual probes are not.

use std::sync::Arc;

use http::uri::Authority;
use tokio::time::MissedTickBehavior;

use super::LiveStats;
use super::probe::{self, ProbeRequest};
use super::transport::Transport;
use crate::config::HealthCheck;
use crate::shutdown::{self, StopReceiver};

/// What one backend's checker needs.
#[derive(Debug, Clone)]
pub struct Target {
    /// Backend id, for logs.
    pub id: String,
    /// Its authority (the Host of probes).
    pub authority: Authority,
    /// How to connect (the backend's own transport).
    pub transport: Transport,
    /// Where the verdict goes.
    pub stats: Arc<LiveStats>,
    /// How to check.
    pub check: HealthCheck,
}

/// Probe `target` until `stop` (shutdown) or `retired` (its backend set was replaced) is raised.
pub async fn run(target: Target, mut stop: StopReceiver, mut retired: StopReceiver) {
    let mut ticks = tokio::time::interval(target.check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown::stopped(&mut stop) => return,
            _ = shutdown::stopped(&mut retired) => return,
        }
        match probe(&target.transport, &target.authority, &target.check).await {
            Ok(()) => {
                passes += 1;
                failures = 0;
                // A backend ejected for failing real requests that now passes its checks is
                // back as soon as it would be after a health-check outage.
                if passes >= target.check.rise && target.stats.is_ejected() {
                    target.stats.clear_ejection();
                    tracing::info!(backend = %target.id, "ejected backend passes its health checks: back in rotation");
                }
                if passes >= target.check.rise
                    && target.stats.is_down()
                    && target.stats.set_down(false)
                {
                    tracing::info!(backend = %target.id, passes, "backend passed its health checks: back in rotation");
                }
            }
            Err(reason) => {
                failures += 1;
                passes = 0;
                if failures >= target.check.fall
                    && !target.stats.is_down()
                    && target.stats.set_down(true)
                {
                    tracing::warn!(backend = %target.id, failures, %reason, "backend failed its health checks: out of rotation");
                }
            }
        }
    }
}

/// One probe: connect, `GET path`, expect a status in range, all within `check.timeout`.
async fn probe(
    transport: &Transport,
    authority: &Authority,
    check: &HealthCheck,
) -> Result<(), String> {
    let request = ProbeRequest {
        path: &check.path,
        user_agent: "lbx-health-check",
        accept: None,
    };
    let exchange = async {
        // Only the status counts: the body is not read, and the connection closes with it.
        let status = probe::get(transport, authority, request)
            .await?
            .response
            .status()
            .as_u16();
        if (check.status_min..=check.status_max).contains(&status) {
            Ok(())
        } else {
            Err(format!("{} answered {status}", check.path))
        }
    };
    match tokio::time::timeout(check.timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {} ms", check.timeout.as_millis())),
    }
}
