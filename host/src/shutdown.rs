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

/// SIGTERM and SIGINT handlers. They are installed when this is created, so create it before
/// announcing readiness: a signal arriving earlier would get the default action and kill the
/// process instead of draining it.
#[derive(Debug)]
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Install the handlers (inside a tokio runtime).
    pub fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Wait for the first of them; returns its name.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    /// Raise `stop` when a signal arrives (spawned; returns at once).
    pub fn raise_on_signal(self, stop: StopSender) {
        tokio::spawn(async move {
            let name = self.recv().await;
            tracing::info!("{name} received; shutting down");
            let _ = stop.send(true);
        });
    }
}
