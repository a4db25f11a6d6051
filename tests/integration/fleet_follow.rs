//! A node's follower of the fleet's keys (lbx::fleet::follow) against a real 3-member etcd
//! cluster: the whole prefix first, then each transaction whole, status keys kept apart, and
//! a member's death that forces a new listing without handing the same state over again.

use std::sync::Arc;
use std::time::Duration;

use lbx::fleet::follow::{Follower, Statuses, View};
use lbx::fleet::layout::Layout;
use lbx::fleet::store::{CommitOutcome, Store, Txn};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::support::EtcdCluster;

/// A whole test, cluster start included, must finish within this.
const TEST_BOUND: Duration = Duration::from_secs(45);

/// A follower of `/lbx` running on `store`.
struct Running {
    /// What it handed over, in order.
    views: mpsc::UnboundedReceiver<View>,
    /// Every node's status, as it publishes them.
    statuses: watch::Receiver<Statuses>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start<S: Store + 'static>(store: Arc<S>) -> Self {
        let follower = Follower::new(store, Layout::new("/lbx"));
        let statuses = follower.statuses();
        let (sender, views) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(follower.run(
            move |view| {
                let _ = sender.send(view);
                std::future::ready(())
            },
            stop.clone(),
        ));
        Self {
            views,
            statuses,
            stop,
            task,
        }
    }

    async fn next_view(&mut self, within: Duration) -> View {
        tokio::time::timeout(within, self.views.recv())
            .await
            .expect("no view handed over in time")
            .expect("the follower stopped")
    }

    /// Whether a view is handed over within `within`.
    async fn hands_over_within(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.views.recv())
            .await
            .is_ok()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

async fn committed<S: Store>(store: &S, txn: Txn) -> i64 {
    match store.commit(txn).await.unwrap() {
        CommitOutcome::Committed { revision } => revision,
        CommitOutcome::Conflict => panic!("unexpected conflict"),
    }
}

fn keys(view: &View) -> Vec<&str> {
    view.kvs.iter().map(|(k, _)| k.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_hands_over_the_prefix_then_each_transaction_whole_and_keeps_statuses_apart() {
    tokio::time::timeout(TEST_BOUND, async {
        let cluster = EtcdCluster::start(3).await;
        let store = Arc::new(cluster.store().await);
        let seeded = committed(
            &*store,
            Txn::new()
                .put("/lbx/backends/a", r#"{"url": "http://127.0.0.1:9001"}"#)
                .put("/lbx/backends/b", r#"{"url": "http://127.0.0.1:9002"}"#)
                .put("/other/key", "not this fleet's"),
        )
        .await;

        let mut follower = Running::start(store.clone());
        let first = follower.next_view(Duration::from_secs(5)).await;
        assert_eq!(first.revision, seeded);
        assert_eq!(keys(&first), ["/lbx/backends/a", "/lbx/backends/b"]);

        // Three changes in one transaction arrive as one view.
        let changed = committed(
            &*store,
            Txn::new()
                .delete("/lbx/backends/a")
                .put("/lbx/backends/c", r#"{"url": "http://127.0.0.1:9003"}"#)
                .put("/lbx/settings/retry", r#"{"max_attempts": 3}"#),
        )
        .await;
        let second = follower.next_view(Duration::from_secs(5)).await;
        assert_eq!(second.revision, changed);
        assert_eq!(
            keys(&second),
            ["/lbx/backends/b", "/lbx/backends/c", "/lbx/settings/retry"]
        );

        // A node's status is not a change of the shared state.
        committed(
            &*store,
            Txn::new().put("/lbx/status/node-a", r#"{"node": "node-a"}"#),
        )
        .await;
        let seen = tokio::time::timeout(
            Duration::from_secs(5),
            follower.statuses.wait_for(|s| s.contains_key("node-a")),
        )
        .await
        .is_ok_and(|found| found.is_ok());
        assert!(seen, "the status of node-a was never published");
        assert!(
            !follower.hands_over_within(Duration::from_millis(500)).await,
            "a status write was handed over as a change of the shared state"
        );
        follower.stop().await;
    })
    .await
    .expect("the test ran past its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_its_members_die_a_follower_lists_again_and_hands_over_only_a_real_change() {
    tokio::time::timeout(TEST_BOUND, async {
        let mut cluster = EtcdCluster::start(3).await;
        let store = Arc::new(cluster.store().await);
        committed(
            &*store,
            Txn::new().put("/lbx/backends/a", r#"{"url": "http://127.0.0.1:9001"}"#),
        )
        .await;
        let mut follower = Running::start(store.clone());
        follower.next_view(Duration::from_secs(5)).await;

        // Kill every member in turn but one at a time, so whichever the watch was on dies:
        // the follower lists again, finds nothing new, and hands nothing over.
        for member in 0..3 {
            cluster.kill(member);
            cluster.restart(member).await;
        }
        assert!(
            !follower.hands_over_within(Duration::from_secs(3)).await,
            "a new listing of an unchanged store was handed over"
        );

        // A change after all that still arrives, once.
        let changed = committed(
            &*store,
            Txn::new().put("/lbx/backends/b", r#"{"url": "http://127.0.0.1:9002"}"#),
        )
        .await;
        let view = follower.next_view(Duration::from_secs(10)).await;
        assert_eq!(view.revision, changed);
        assert_eq!(keys(&view), ["/lbx/backends/a", "/lbx/backends/b"]);
        follower.stop().await;
    })
    .await
    .expect("the test ran past its time bound");
}
