//! Fleet mode when the store fails: real lbx processes and a real 3-member etcd cluster whose
//! members are killed, frozen and compacted under them. Proxied requests never fail because
//! of the store; a write either commits whole or answers 503; a transaction is in force on a
//! node whole or not at all; and every node converges on the store's state once it is back.

use std::collections::BTreeSet;
use std::time::Duration;

use lbx::fleet::store::{CommitOutcome, Store, Txn};
use serde_json::Value;

use crate::fleet::{Node, within};
use crate::support::{EtcdCluster, LoadGenerator, TempDir, TestBackend};

/// The backend ids `node` has in force.
async fn ids(node: &Node) -> BTreeSet<String> {
    node.json("/admin/backends").await["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

/// Commit `txn`, trying again while the cluster elects a leader (after a member was killed or
/// frozen); its revision.
async fn commit_through_an_election(store: &impl Store, txn: Txn) -> i64 {
    for _ in 0..50 {
        match store.commit(txn.clone()).await {
            Ok(CommitOutcome::Committed { revision }) => return revision,
            Ok(CommitOutcome::Conflict) => panic!("unguarded write conflicted"),
            Err(error) if error.is_unreachable() => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{error}"),
        }
    }
    panic!("no write committed within 5 s")
}

fn backend_value(id: &str, url: &str) -> String {
    format!(r#"{{"id": "{id}", "url": "{url}"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multi_key_change_is_in_force_whole_and_a_change_made_past_a_compaction_arrives_by_listing_again()
 {
    let mut cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-atomic");
    let backends = [
        TestBackend::named("a").await,
        TestBackend::named("x").await,
        TestBackend::named("y").await,
        TestBackend::named("z").await,
    ];
    let seed = format!("[[backend]]\nid = \"a\"\nurl = {:?}\n", backends[0].url());
    let node_a = Node::start(&dir, "node-a", &cluster, &seed);
    // Node B reaches the store through member 0 only, so killing that member cuts it off.
    let node_b = Node::start_on(&dir, "node-b", &[cluster.endpoint(0)], "");
    let store = cluster.store().await;

    // One transaction: x and y in, a out. Watched closely, each node shows the set before or
    // after it, never a mix.
    let before: BTreeSet<String> = ["a".to_string()].into();
    let after: BTreeSet<String> = ["x".to_string(), "y".to_string()].into();
    let watching = [&node_a, &node_b].map(|node| {
        let node_url = node.admin("/admin/backends");
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while tokio::time::Instant::now() < deadline {
                let (_, body) = crate::support::admin_get(&node_url).await;
                let listed: Value = serde_json::from_str(&body).unwrap();
                let ids: BTreeSet<String> = listed["backends"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b["id"].as_str().unwrap().to_string())
                    .collect();
                seen.push(ids);
            }
            seen
        })
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let txn = Txn::new()
        .put(
            "/lbx-test/backends/x",
            backend_value("x", &backends[1].url()),
        )
        .put(
            "/lbx-test/backends/y",
            backend_value("y", &backends[2].url()),
        )
        .delete("/lbx-test/backends/a");
    assert!(matches!(
        store.commit(txn).await.unwrap(),
        CommitOutcome::Committed { .. }
    ));
    for watched in watching {
        let seen = watched.await.unwrap();
        assert!(seen.contains(&after), "the change never arrived: {seen:?}");
        let mixed: Vec<_> = seen
            .iter()
            .filter(|s| **s != before && **s != after)
            .collect();
        assert!(
            mixed.is_empty(),
            "a node showed half the transaction: {mixed:?}"
        );
    }

    // Node B is cut off; the fleet changes and the store forgets the history in between.
    cluster.kill(0);
    let elsewhere = cluster.settings(vec![cluster.endpoint(1), cluster.endpoint(2)]);
    let elsewhere = lbx::fleet::etcd::EtcdStore::connect(elsewhere)
        .await
        .unwrap();
    let revision = commit_through_an_election(
        &elsewhere,
        Txn::new().put(
            "/lbx-test/backends/z",
            backend_value("z", &backends[3].url()),
        ),
    )
    .await;
    elsewhere.compact(revision).await.unwrap();
    assert_eq!(ids(&node_b).await, after, "node B serves on while cut off");
    cluster.restart(0).await;
    within(Duration::from_secs(10), "node B listed again", || async {
        ids(&node_b).await.contains("z")
    })
    .await;
    assert_eq!(
        ids(&node_b).await,
        ["x", "y", "z"].map(String::from).into(),
        "exactly the store's state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_etcd_leader_under_load_fails_no_request_and_every_write_commits_whole_or_answers_503()
 {
    let mut cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-leader");
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let seed = format!(
        "[[backend]]\nid = \"a\"\nurl = {:?}\n\n[[backend]]\nid = \"b\"\nurl = {:?}\n",
        a.url(),
        b.url()
    );
    let nodes = [
        Node::start(&dir, "node-a", &cluster, &seed),
        Node::start(&dir, "node-b", &cluster, ""),
    ];
    let loads = nodes
        .each_ref()
        .map(|n| LoadGenerator::start(n.url("/"), 2));

    // Writes through node A, one after another, while the leader dies.
    let writer_url = nodes[0].admin("/admin/backends/b");
    let writer = tokio::spawn(async move {
        let mut answers = Vec::new();
        for weight in 1..=60u32 {
            let body = format!(r#"{{"weight": {weight}}}"#);
            let (status, body) =
                crate::support::admin_send("PATCH", &writer_url, Some(&body), None).await;
            answers.push((weight, status, body));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answers
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let leader = cluster.leader().await;
    cluster.kill(leader);
    let answers = writer.await.unwrap();
    for (weight, status, body) in &answers {
        assert!(
            *status == 200 || *status == 503,
            "weight {weight}: {status} {body}"
        );
    }
    assert!(
        answers
            .iter()
            .filter(|(_, status, _)| *status == 200)
            .count()
            >= 30,
        "writes resumed after the election: {answers:?}"
    );

    // The fleet converges on what the store holds.
    let store = cluster.settings(
        (0..3)
            .filter(|&i| i != leader)
            .map(|i| cluster.endpoint(i))
            .collect(),
    );
    let store = lbx::fleet::etcd::EtcdStore::connect(store).await.unwrap();
    let listed = store.list("/lbx-test/backends/b").await.unwrap();
    let stored: Value = serde_json::from_slice(&listed.kvs[0].value).unwrap();
    for node in &nodes {
        within(Duration::from_secs(5), "node converged", || async {
            node.backend("b").await.unwrap()["weight"] == stored["weight"]
        })
        .await;
    }
    for (node, load) in nodes.iter().zip(loads) {
        let stats = load.finish().await;
        assert!(stats.ok > 100, "{stats:?}");
        assert!(
            stats.failed.is_empty(),
            "{}: {:?}",
            node.process.pid(),
            stats.failed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_of_three_members_down_nodes_serve_on_writes_answer_503_and_the_fleet_converges_when_they_return()
 {
    let mut cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-quorum");
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let seed = format!("[[backend]]\nid = \"a\"\nurl = {:?}\n", a.url());
    let nodes = [
        Node::start(&dir, "node-a", &cluster, &seed),
        Node::start(&dir, "node-b", &cluster, ""),
    ];
    let loads = nodes
        .each_ref()
        .map(|n| LoadGenerator::start(n.url("/"), 2));
    cluster.kill(1);
    cluster.kill(2);
    let body = format!(r#"{{"id": "b", "url": {:?}}}"#, b.url());
    let (status, refused) = nodes[1].send("POST", "/admin/backends", Some(&body)).await;
    assert_eq!(status, 503, "{refused}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    for node in &nodes {
        assert_eq!(
            ids(node).await,
            ["a".to_string()].into(),
            "nothing changed anywhere"
        );
    }

    cluster.restart_all().await;
    // Writes are taken again once the members have a leader (503 until then). An attempt
    // whose answer was lost may have committed: then the next one finds the backend there.
    let answer = within(Duration::from_secs(15), "writes accepted again", || async {
        let (status, _) = nodes[1].send("POST", "/admin/backends", Some(&body)).await;
        status == 201 || status == 409
    })
    .await;
    eprintln!("writes accepted {answer:?} after the members returned");
    for node in &nodes {
        within(
            Duration::from_secs(15),
            "the change on every node",
            || async {
                ids(node).await.contains("b")
                    && node.json("/admin/fleet").await["connected"] == true
            },
        )
        .await;
    }
    for node in &nodes {
        assert_eq!(ids(node).await, ["a", "b"].map(String::from).into());
    }
    // And every node says so in its status key again (a lease that expired while the store
    // had no leader is replaced).
    within(Duration::from_secs(15), "every node reports it", || async {
        let fleet = nodes[0].json("/admin/fleet").await;
        let shared = fleet["shared_revision"].as_i64().unwrap();
        let listed = fleet["nodes"].as_array().unwrap().clone();
        listed.len() == 2
            && listed
                .iter()
                .all(|n| n["applied_revision"].as_i64().unwrap() >= shared)
    })
    .await;
    for load in loads {
        let stats = load.finish().await;
        assert!(stats.ok > 100 && stats.failed.is_empty(), "{stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_member_is_left_and_changes_keep_arriving_within_seconds() {
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-frozen");
    let backend = TestBackend::named("a").await;
    let seed = format!("[[backend]]\nid = \"a\"\nurl = {:?}\n", backend.url());
    let node = Node::start(&dir, "node-a", &cluster, &seed);
    // Each member in turn: whichever one carried the node's watch, it is frozen once.
    for (i, weight) in (0..3).zip(2u32..) {
        cluster.stop(i);
        let others = (0..3)
            .filter(|&m| m != i)
            .map(|m| cluster.endpoint(m))
            .collect();
        let store = lbx::fleet::etcd::EtcdStore::connect(cluster.settings(others))
            .await
            .unwrap();
        let value = format!(
            r#"{{"id": "a", "url": {:?}, "weight": {weight}}}"#,
            backend.url()
        );
        // An election follows when the leader froze.
        commit_through_an_election(&store, Txn::new().put("/lbx-test/backends/a", value)).await;
        let took = within(Duration::from_secs(6), "the change arrived", || async {
            node.backend("a").await.unwrap()["weight"] == weight
        })
        .await;
        eprintln!("member {i} frozen: change in force after {took:?}");
        cluster.cont(i);
    }
}
