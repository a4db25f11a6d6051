//! The fleet store (lbx::fleet) against a real 3-member etcd cluster: consistent prefix reads,
//! guarded transactions, watches delivered one transaction at a time, compaction, members that
//! die or freeze, and leases.

use std::future::Future;
use std::time::{Duration, Instant};

use lbx::fleet::etcd::EtcdStore;
use lbx::fleet::store::{
    Change, CommitOutcome, Snapshot, Store, StoreError, Txn, Watch, WatchEvent,
};

use crate::support::{EtcdCluster, TestCa, eventually};

/// A whole test, cluster start included, must finish within this.
const TEST_BOUND: Duration = Duration::from_secs(45);

/// How long the store may take to move to another member after one died or froze.
const FAILOVER: Duration = Duration::from_secs(5);

async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(TEST_BOUND, test)
        .await
        .expect("the test ran past its time bound");
}

async fn committed(store: &EtcdStore, txn: Txn) -> i64 {
    match store.commit(txn).await.unwrap() {
        CommitOutcome::Committed { revision } => revision,
        CommitOutcome::Conflict => panic!("unexpected conflict"),
    }
}

fn pairs(snapshot: &Snapshot) -> Vec<(&str, &[u8], i64)> {
    snapshot
        .kvs
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_slice(), e.mod_revision))
        .collect()
}

/// The next watch event, within `limit`.
async fn next_event(watch: &mut Watch, limit: Duration) -> Option<WatchEvent> {
    tokio::time::timeout(limit, watch.next())
        .await
        .expect("no watch event in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_returns_what_was_written_at_one_revision() {
    bounded(async {
        let cluster = EtcdCluster::start(3).await;
        let store = cluster.store().await;
        let first = committed(&store, Txn::new().put("/lbx/a", "1").put("/lbx/b", "2")).await;
        let second = committed(&store, Txn::new().put("/lbx/c", "3").put("/lby/x", "no")).await;
        let snapshot = store.list("/lbx/").await.unwrap();
        assert_eq!(snapshot.revision, second);
        assert_eq!(
            pairs(&snapshot),
            [
                ("/lbx/a", &b"1"[..], first),
                ("/lbx/b", &b"2"[..], first),
                ("/lbx/c", &b"3"[..], second),
            ]
        );

        // More keys than one page of a list (etcd takes at most 128 writes per transaction):
        // still one snapshot, at one revision, in key order.
        for batch in 0..12 {
            let txn = (0..100).fold(Txn::new(), |txn, i| {
                txn.put(format!("/many/{:05}", batch * 100 + i), "v")
            });
            committed(&store, txn).await;
        }
        let changed_later = committed(&store, Txn::new().delete("/many/00000")).await;
        let snapshot = store.list("/many/").await.unwrap();
        assert_eq!(snapshot.revision, changed_later);
        let keys: Vec<String> = snapshot.kvs.iter().map(|e| e.key.clone()).collect();
        let expected: Vec<String> = (1..1200).map(|i| format!("/many/{i:05}")).collect();
        assert_eq!(keys, expected);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_with_a_stale_guard_conflicts_and_changes_nothing() {
    bounded(async {
        let cluster = EtcdCluster::start(3).await;
        let store = cluster.store().await;
        let read_at = committed(&store, Txn::new().put("/lbx/k", "v1")).await;
        let changed_at = committed(
            &store,
            Txn::new()
                .if_unchanged("/lbx/k", read_at)
                .put("/lbx/k", "v2"),
        )
        .await;

        // Someone else changed /lbx/k since `read_at`: nothing of this transaction applies.
        let stale = Txn::new()
            .if_unchanged("/lbx/k", read_at)
            .put("/lbx/k", "v3")
            .put("/lbx/other", "x");
        assert_eq!(store.commit(stale).await.unwrap(), CommitOutcome::Conflict);
        let exists = Txn::new().if_absent("/lbx/k").put("/lbx/other", "x");
        assert_eq!(store.commit(exists).await.unwrap(), CommitOutcome::Conflict);
        let snapshot = store.list("/lbx/").await.unwrap();
        assert_eq!(snapshot.revision, changed_at);
        assert_eq!(pairs(&snapshot), [("/lbx/k", &b"v2"[..], changed_at)]);

        let fresh = Txn::new().if_absent("/lbx/new").put("/lbx/new", "n");
        assert!(matches!(
            store.commit(fresh).await.unwrap(),
            CommitOutcome::Committed { revision } if revision == changed_at + 1
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_delivers_each_transaction_as_one_batch_from_the_revision_asked() {
    bounded(async {
        let cluster = EtcdCluster::start(3).await;
        let store = cluster.store().await;
        committed(&store, Txn::new().put("/lbx/c", "old")).await;
        let snapshot = store.list("/lbx/").await.unwrap();
        let three = Txn::new()
            .put("/lbx/a", "1")
            .put("/lbx/b", "2")
            .delete("/lbx/c");
        let first = committed(&store, three).await;

        // From the snapshot's next revision: the transaction already made, as one batch.
        let mut watch = store.watch("/lbx/", snapshot.revision + 1).await.unwrap();
        let Some(WatchEvent::Batch(batch)) = next_event(&mut watch, FAILOVER).await else {
            panic!("expected a batch");
        };
        assert_eq!(batch.revision, first);
        let keys: Vec<&str> = batch.changes.iter().map(Change::key).collect();
        assert_eq!(keys, ["/lbx/a", "/lbx/b", "/lbx/c"]);
        assert!(matches!(&batch.changes[2], Change::Delete { revision, .. } if *revision == first));

        // A live transaction, with a key outside the prefix that the watch must not show.
        let live = Txn::new()
            .put("/lbx/d", "4")
            .put("/lby/ignored", "x")
            .put("/lbx/e", "5")
            .put("/lbx/f", "6");
        let second = committed(&store, live).await;
        let Some(WatchEvent::Batch(batch)) = next_event(&mut watch, FAILOVER).await else {
            panic!("expected a batch");
        };
        assert_eq!(batch.revision, second);
        let keys: Vec<&str> = batch.changes.iter().map(Change::key).collect();
        assert_eq!(keys, ["/lbx/d", "/lbx/e", "/lbx/f"]);

        // An idle watch outlives the request timeout (it is a stream, not a request).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let third = committed(&store, Txn::new().put("/lbx/g", "7")).await;
        let Some(WatchEvent::Batch(batch)) = next_event(&mut watch, FAILOVER).await else {
            panic!("expected a batch after an idle spell");
        };
        assert_eq!(batch.revision, third);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_revision_reports_the_compaction() {
    bounded(async {
        let cluster = EtcdCluster::start(3).await;
        let store = cluster.store().await;
        let old = committed(&store, Txn::new().put("/lbx/k", "1")).await;
        committed(&store, Txn::new().put("/lbx/k", "2")).await;
        let compacted_at = committed(&store, Txn::new().put("/lbx/k", "3")).await;
        cluster.compact(compacted_at).await;

        let mut watch = store.watch("/lbx/", old).await.unwrap();
        assert_eq!(
            next_event(&mut watch, FAILOVER).await,
            Some(WatchEvent::Compacted {
                compact_revision: compacted_at
            })
        );
        assert_eq!(next_event(&mut watch, FAILOVER).await, None);

        // From the compaction on, the watch works.
        let mut watch = store.watch("/lbx/", compacted_at + 1).await.unwrap();
        let next = committed(&store, Txn::new().put("/lbx/k", "4")).await;
        assert!(matches!(
            next_event(&mut watch, FAILOVER).await,
            Some(WatchEvent::Batch(batch)) if batch.revision == next
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_watch_loses_or_keeps_the_watch_and_the_client_recovers() {
    bounded(async {
        let mut cluster = EtcdCluster::start(3).await;
        let store = cluster.store().await;
        let snapshot = store.list("/lbx/").await.unwrap();
        let mut watch = store.watch("/lbx/", snapshot.revision + 1).await.unwrap();
        let leader = cluster.leader().await;
        // A watch that surely is on the leader: it must report the loss.
        let pinned = EtcdStore::connect(EtcdCluster::quick(vec![cluster.endpoint(leader)]))
            .await
            .unwrap();
        let mut pinned_watch = pinned.watch("/lbx/", snapshot.revision + 1).await.unwrap();

        cluster.kill(leader);
        let killed = Instant::now();

        // Writes go through another member once a new leader is elected.
        let written = eventually(FAILOVER, || async {
            committed_or_unreachable(&store, Txn::new().put("/lbx/after", "x")).await
        })
        .await
        .unwrap_or_else(|| panic!("no commit within {FAILOVER:?} of killing the leader"));

        // The watch either delivers that write or says it was lost; then list and watch again.
        let seen = loop {
            match next_event(&mut watch, FAILOVER).await {
                Some(WatchEvent::Batch(batch)) if batch.revision == written => break true,
                Some(WatchEvent::Batch(_)) => continue,
                Some(WatchEvent::Lost(e)) => {
                    assert!(e.is_unreachable(), "{e}");
                    break false;
                }
                other => panic!("unexpected watch event {other:?}"),
            }
        };
        if !seen {
            let relisted = eventually(FAILOVER, || async { store.list("/lbx/").await.ok() })
                .await
                .expect("no list within seconds after the watch was lost");
            assert!(relisted.kvs.iter().any(|e| e.key == "/lbx/after"));
            let mut rewatch = store.watch("/lbx/", relisted.revision + 1).await.unwrap();
            let next = committed(&store, Txn::new().put("/lbx/again", "y")).await;
            assert!(matches!(
                next_event(&mut rewatch, FAILOVER).await,
                Some(WatchEvent::Batch(batch)) if batch.revision == next
            ));
        }
        assert!(
            killed.elapsed() < 2 * FAILOVER,
            "recovery took {:?}",
            killed.elapsed()
        );

        assert!(matches!(
            next_event(&mut pinned_watch, FAILOVER).await,
            Some(WatchEvent::Lost(StoreError::Unreachable { .. }))
        ));

        // The killed member comes back on its data and catches up.
        cluster.restart(leader).await;
        let alone = EtcdStore::connect(EtcdCluster::quick(vec![cluster.endpoint(leader)]))
            .await
            .unwrap();
        let caught_up = alone.list("/lbx/").await.unwrap();
        assert!(caught_up.kvs.iter().any(|e| e.key == "/lbx/after"));
    })
    .await;
}

/// The commit's revision, or `None` if the store was unreachable (any other failure fails).
async fn committed_or_unreachable(store: &EtcdStore, txn: Txn) -> Option<i64> {
    match store.commit(txn).await {
        Ok(CommitOutcome::Committed { revision }) => Some(revision),
        Ok(CommitOutcome::Conflict) => panic!("unexpected conflict"),
        Err(e) if e.is_unreachable() => None,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_does_not_hold_up_list_or_commit_for_more_than_seconds() {
    bounded(async {
        let cluster = EtcdCluster::start(3).await;
        let store = cluster.store().await;
        // Each member in turn: the client cannot tell which one a request will go to.
        for frozen in 0..3 {
            let pinned = EtcdStore::connect(EtcdCluster::quick(vec![cluster.endpoint(frozen)]))
                .await
                .unwrap();
            let from = store.list("/lbx/").await.unwrap().revision + 1;
            let mut pinned_watch = pinned.watch("/lbx/", from).await.unwrap();
            cluster.stop(frozen);
            for round in 0..6 {
                let started = Instant::now();
                let key = format!("/lbx/{frozen}-{round}");
                let revision = committed(&store, Txn::new().put(key.as_str(), "v")).await;
                let snapshot = store.list("/lbx/").await.unwrap();
                assert!(snapshot.revision >= revision);
                assert!(snapshot.kvs.iter().any(|e| e.key == key));
                // The first requests may wait for the member's request timeout; once the
                // member is known not to answer (keep-alive interval + timeout), none does.
                let limit = if round == 0 {
                    FAILOVER
                } else {
                    Duration::from_secs(1)
                };
                assert!(
                    started.elapsed() < limit,
                    "member {frozen} frozen: a commit and a list took {:?} in round {round}",
                    started.elapsed()
                );
                if round == 0 {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
            // A watch on the frozen member says so instead of waiting forever.
            loop {
                match next_event(&mut pinned_watch, FAILOVER).await {
                    Some(WatchEvent::Batch(_)) => continue,
                    Some(WatchEvent::Lost(e)) => {
                        assert!(e.is_unreachable(), "{e}");
                        break;
                    }
                    other => panic!("expected the watch to be lost, got {other:?}"),
                }
            }
            cluster.cont(frozen);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_bound_key_lives_while_kept_alive_and_disappears_after_its_ttl() {
    bounded(async {
        let cluster = EtcdCluster::start(3).await;
        let observer = cluster.store().await;
        let holder = cluster.store().await;
        let ttl = Duration::from_secs(2);
        let lease = holder.grant(ttl).await.unwrap();
        holder
            .put_with_lease("/lbx/status/node-1", b"up".to_vec(), &lease)
            .await
            .unwrap();

        // Kept alive past twice its TTL.
        tokio::time::sleep(2 * ttl).await;
        assert!(lease.is_alive());
        let snapshot = observer.list("/lbx/status/").await.unwrap();
        assert_eq!(snapshot.kvs.len(), 1, "the key expired while kept alive");

        // The holder goes away: the key goes once the TTL has passed.
        drop(lease);
        drop(holder);
        let gone_at = Instant::now();
        let gone = eventually(ttl + Duration::from_secs(3), || async {
            let snapshot = observer.list("/lbx/status/").await.ok()?;
            snapshot.kvs.is_empty().then_some(())
        })
        .await;
        assert!(gone.is_some(), "the lease-bound key outlived its TTL");
        assert!(gone_at.elapsed() >= ttl / 2, "gone before its TTL passed");

        // Revoking removes the keys at once.
        let lease = observer.grant(Duration::from_secs(30)).await.unwrap();
        observer
            .put_with_lease("/lbx/status/node-2", b"up".to_vec(), &lease)
            .await
            .unwrap();
        observer.revoke(lease).await.unwrap();
        assert!(observer.list("/lbx/status/").await.unwrap().kvs.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_no_live_member_is_unreachable_and_names_the_endpoints() {
    bounded(async {
        let mut cluster = EtcdCluster::start(3).await;
        let endpoints = cluster.endpoints();
        for i in 0..3 {
            cluster.kill(i);
        }
        let store = cluster.store().await;
        let started = Instant::now();
        let error = store.list("/lbx/").await.unwrap_err();
        assert!(matches!(error, StoreError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains(&endpoints[0]), "{error}");
        assert!(
            started.elapsed() < 2 * FAILOVER,
            "took {:?}",
            started.elapsed()
        );
        let error = store
            .commit(Txn::new().put("/lbx/k", "v"))
            .await
            .unwrap_err();
        assert!(error.is_unreachable(), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_speaks_tls_with_a_client_certificate_to_a_cluster_that_requires_one() {
    bounded(async {
        let ca = TestCa::new("etcd-tls");
        let cluster = EtcdCluster::start_tls(1, &ca).await;
        let store = cluster.store().await;
        let revision = committed(&store, Txn::new().put("/lbx/k", "over tls")).await;
        let snapshot = store.list("/lbx/").await.unwrap();
        assert_eq!(pairs(&snapshot), [("/lbx/k", &b"over tls"[..], revision)]);

        // Without the client certificate the cluster refuses the connection.
        let mut settings = cluster.settings(cluster.endpoints());
        settings.tls.as_mut().unwrap().client_cert = None;
        let anonymous = EtcdStore::connect(settings).await.unwrap();
        let error = anonymous.list("/lbx/").await.unwrap_err();
        assert!(error.is_unreachable(), "{error}");
    })
    .await;
}
