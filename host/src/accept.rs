//! The one accept loop every listener uses — the proxy's plain and TLS ports, the admin API,
//! the demo backends — in the manner of axum's `serve` with `handle_accept_error`: accept, hand
//! each connection to a task of its own, reap finished tasks, and on an accept error tell a
//! failure of one connection (ignored) from a shortage of resources (back off, so a full file
//! table does not turn into a busy loop).
//!
//! The loop returns the connections still open when it stops, so the caller decides whether
//! they drain or are dropped.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::shutdown::{self, StopReceiver};

/// How long accepting pauses after an error that is not about a single connection.
const BACKOFF: Duration = Duration::from_millis(100);

/// Connections a stopped accept loop left open.
#[derive(Debug)]
pub struct Connections {
    tasks: JoinSet<()>,
}

impl Connections {
    /// How many are still open.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Wait up to `within` for them to finish, then close whatever is left. Returns whether
    /// all finished in time.
    pub async fn drain(mut self, within: Duration) -> bool {
        let drained = tokio::time::timeout(within, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !drained {
            self.tasks.shutdown().await;
        }
        drained
    }
}

/// Accept on `listener` until `stop` is raised, serving each connection with `serve` on its
/// own task. `name` labels log lines.
pub async fn accept_loop<F, Fut>(
    listener: &TcpListener,
    stop: &mut StopReceiver,
    name: &'static str,
    mut serve: F,
) -> Connections
where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            _ = shutdown::stopped(stop) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(listener = name, error = %e, "could not set TCP_NODELAY");
                }
                tasks.spawn(serve(stream, peer));
            }
            Err(e) => handle_accept_error(name, e).await,
        }
    }
    Connections { tasks }
}

/// An error from `accept`: about one connection (it died before it was accepted: go on at
/// once), or about the process (out of file descriptors or memory: pause, as it will not go
/// away by itself within microseconds).
async fn handle_accept_error(name: &'static str, error: io::Error) {
    if is_connection_error(&error) {
        tracing::debug!(listener = name, %error, "a connection failed before it was accepted");
        return;
    }
    tracing::warn!(listener = name, %error, "accept failed; pausing {} ms", BACKOFF.as_millis());
    tokio::time::sleep(BACKOFF).await;
}

fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_served_and_the_open_ones_handed_back_at_stop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, mut stop) = shutdown::channel();
        let (held_tx, mut held) = tokio::sync::mpsc::unbounded_channel();
        let looping = tokio::spawn(async move {
            accept_loop(&listener, &mut stop, "test", move |mut stream, _| {
                let held_tx = held_tx.clone();
                async move {
                    let _ = held_tx.send(());
                    // Hold the connection until the client goes.
                    let mut buf = [0u8; 1];
                    let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
                }
            })
            .await
        });
        let client = TcpStream::connect(addr).await.unwrap();
        held.recv().await.unwrap();
        stop_tx.send(true).unwrap();
        let connections = looping.await.unwrap();
        assert_eq!(connections.len(), 1);
        drop(client);
        assert!(connections.drain(Duration::from_secs(5)).await);
    }

    #[test]
    fn a_full_file_table_is_not_a_connection_error() {
        assert!(is_connection_error(
            &io::ErrorKind::ConnectionAborted.into()
        ));
        assert!(!is_connection_error(&io::Error::from_raw_os_error(
            libc::EMFILE
        )));
    }
}
