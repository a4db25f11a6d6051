//! A canary declared fleet-wide (POST /admin/fleet/canary), over real lbx nodes and a real
//! 3-member etcd cluster: every node splits its traffic alike, and the gates are judged on the
//! sum of every node's figures — here the judging node (the smallest id) sees no traffic of
//! its own, so it can only pass or fail a step on the others' figures.

use std::time::Duration;

use serde_json::Value;

use crate::fleet::{Node, within};
use crate::support::{EtcdCluster, TempDir, TestBackend, plugins};

/// `node`'s answer to GET `path` as user `user`.
async fn as_user(node: &Node, path: &str, user: &str) -> u16 {
    let request = http::Request::get(node.url(path))
        .header("x-user", user)
        .body(http_body_util::BodyExt::boxed(http_body_util::Empty::new()))
        .unwrap();
    let (status, _, _) = crate::support::send(&crate::support::http1_client(), request).await;
    status.as_u16()
}

/// Two nodes; node-a (the judge) seeds the fleet with the test router sending everything to
/// backend `a`, and takes no traffic in these tests.
async fn fleet(
    cluster: &EtcdCluster,
    dir: &TempDir,
    a: &TestBackend,
    b: &TestBackend,
) -> [Node; 2] {
    let seed = format!(
        "[plugin]\npath = {:?}\nconfig = {{ backend = 0 }}\n\n[[backend]]\nid = \"a\"\nurl = {:?}\n\n\
         [[backend]]\nid = \"b\"\nurl = {:?}\n",
        plugins::TEST_ROUTER,
        a.url(),
        b.url()
    );
    [
        Node::start(dir, "node-a", cluster, &seed),
        Node::start(dir, "node-b", cluster, ""),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_canary_that_fails_its_gates_on_the_fleets_figures_is_rolled_back_on_every_node() {
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-canary-bad");
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    b.set_health(500); // `/healthz` through lbx: 200 from a, 500 from b
    let nodes = fleet(&cluster, &dir, &a, &b).await;
    let live = nodes[0].json("/admin/plugin").await["sha256"].clone();
    // The candidate: the same module sending everything to b.
    let body = format!(
        r#"{{"sha256": {live}, "config": {{"backend": 1}}, "steps": [10, 50, 100],
            "step_duration": "1h", "key": "header:x-user", "gates": {{"min_requests": 20}}}}"#
    );
    let (status, started) = nodes[1]
        .send("POST", "/admin/fleet/canary?wait=applied", Some(&body))
        .await;
    assert_eq!(status, 201, "{started}");
    for node in &nodes {
        let report = node.json("/admin/plugin").await;
        assert_eq!(report["canary"]["state"], "running", "{report}");
    }
    // A node alone cannot start a canary of its own now.
    let (status, refused) = nodes[0]
        .send("POST", "/admin/plugin/canary", Some("{}"))
        .await;
    assert_eq!(status, 409, "{refused}");

    // Traffic through node-b only.
    let mut ended = Value::Null;
    for i in 0..3000 {
        as_user(&nodes[1], "/healthz", &format!("user-{i}")).await;
        if i % 20 == 0 {
            let fleet = nodes[1].json("/admin/fleet").await;
            if fleet["canary"]["canary"]["state"] != "running" {
                ended = fleet;
                break;
            }
        }
    }
    let canary = &ended["canary"]["canary"];
    assert_eq!(canary["state"], "rolled_back", "{ended:#}");
    let detail = canary["detail"].as_str().unwrap();
    assert!(
        detail.contains("rolled back at 10% on the fleet's figures: error rate"),
        "{detail}"
    );
    for node in &nodes {
        within(
            Duration::from_secs(3),
            "the split ended on every node",
            || async { node.json("/admin/plugin").await["canary"]["state"] == "rolled_back" },
        )
        .await;
        assert_eq!(
            node.json("/admin/plugin").await["sha256"],
            live,
            "the live one serves"
        );
    }
    for i in 0..50 {
        assert_eq!(
            as_user(&nodes[1], "/healthz", &format!("user-{i}")).await,
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_canary_that_passes_on_the_fleets_figures_is_promoted_on_every_node() {
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-canary-good");
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let nodes = fleet(&cluster, &dir, &a, &b).await;
    // The candidate's module goes to the store first, in force nowhere.
    let module = std::fs::read(plugins::ROUND_ROBIN).unwrap();
    let request = http::Request::post(nodes[1].admin("/admin/fleet/modules"))
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from(module),
        )))
        .unwrap();
    let (status, _, stored) = crate::support::send(&crate::support::http1_client(), request).await;
    assert_eq!(status, 201, "{stored}");
    let stored: Value = serde_json::from_str(&stored).unwrap();
    let body = format!(
        r#"{{"sha256": {}, "steps": [50, 100], "step_duration": "1s",
            "key": "header:x-user", "gates": {{"min_requests": 10}}}}"#,
        stored["sha256"]
    );
    let (status, started) = nodes[1]
        .send("POST", "/admin/fleet/canary", Some(&body))
        .await;
    assert_eq!(status, 201, "{started}");

    let mut sent = 0;
    let started = std::time::Instant::now();
    let promoted = crate::support::eventually(Duration::from_secs(20), || {
        sent += 1;
        let user = format!("user-{sent}");
        let node = &nodes[1];
        async move {
            for i in 0..20 {
                assert_eq!(as_user(node, "/", &format!("{user}-{i}")).await, 200);
            }
            (node.json("/admin/fleet").await["canary"]["canary"]["state"] == "promoted")
                .then_some(())
        }
    })
    .await;
    if promoted.is_none() {
        // What each node saw of the canary, to tell a judge that never ran from gates that
        // never passed.
        let mut seen = String::new();
        for node in &nodes {
            seen += &format!("\n{}", node.json("/admin/fleet").await["canary"]);
        }
        panic!("not promoted within 20 s; each node's canary:{seen}");
    }
    eprintln!("promoted after {:?}", started.elapsed());
    // A node swaps its plugin first and then shows the canary record it came with in
    // /admin/fleet: wait for both.
    for node in &nodes {
        within(
            Duration::from_secs(3),
            "the candidate live on every node, and its fleet canary promoted",
            || async {
                let plugin = node.json("/admin/plugin").await;
                let fleet = node.json("/admin/fleet").await;
                plugin["sha256"] == stored["sha256"]
                    && plugin["canary"]["state"] == "promoted"
                    && fleet["canary"]["canary"]["state"] == "promoted"
            },
        )
        .await;
    }
    let fleet = nodes[0].json("/admin/fleet").await;
    let detail = fleet["canary"]["canary"]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("every step passed"), "{detail}");
    // Judged by node-a (the smallest id), which saw none of the traffic: it could only pass
    // the steps on node-b's figures (judging on its own figures alone, the steps hold forever).
    assert!(detail.contains("node(s)"), "{detail}");
}
