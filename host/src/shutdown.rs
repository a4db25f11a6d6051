//! The stop signal shared by the accept loops: a `watch` channel that turns `true` once.

use tokio::sync::watch;

/// Sender side: `send(true)` starts shutdown.
pub type StopSender = watch::Sender<bool>;
/// Receiver side, one per task that must stop.
pub type StopReceiver = watch::Receiver<bool>;

/// A new stop signal, not yet raised.
pub fn channel() -> (StopSender, StopReceiver) {
    watch::channel(false)
}

/// Wait until stop is raised (or every sender is gone, which also means stop).
pub async fn stopped(stop: &mut StopReceiver) {
    // The guard `wait_for` returns is dropped here, so callers' futures stay `Send`.
    let _ = stop.wait_for(|raised| *raised).await;
}
