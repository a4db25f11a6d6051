//! Fleet mode end to end: real lbx processes kept in step through a real 3-member etcd
//! cluster on loopback. A change made through one node's admin API is in force on the others
//! within a second, under load and without a failed request; a plugin no node can load is
//! refused by every node, with the reason in its status key, while the last good one serves;
//! a node restarted while the whole store is down starts from the state it last applied.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    EtcdCluster, LbxProcess, LoadGenerator, TempDir, TestBackend, admin_get, admin_send,
    eventually, plugins,
};

/// One lbx node of the fleet: its config file and process.
pub struct Node {
    pub config: PathBuf,
    pub process: LbxProcess,
}

impl Node {
    /// Write `<dir>/<id>.toml` (the `[fleet]` section for `cluster`, then `extra`) and start lbx on it.
    pub fn start(dir: &TempDir, id: &str, cluster: &EtcdCluster, extra: &str) -> Self {
        Self::start_on(dir, id, &cluster.endpoints(), extra)
    }

    /// Like [`Node::start`], reaching the store only through `endpoints`.
    pub fn start_on(dir: &TempDir, id: &str, endpoints: &[String], extra: &str) -> Self {
        let config = dir.join(&format!("{id}.toml"));
        std::fs::write(&config, node_config(id, endpoints, extra)).unwrap();
        let process = LbxProcess::run(&["--config", config.to_str().unwrap()]);
        Self { config, process }
    }

    /// Kill the process (SIGKILL: nothing is saved on the way out) and start lbx again on the
    /// same file.
    pub fn kill_and_restart(&mut self) {
        let pid = self.process.pid().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        assert!(killed.unwrap().success());
        self.process.wait();
        self.process = LbxProcess::run(&["--config", self.config.to_str().unwrap()]);
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.process.admin)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.process.addr)
    }

    pub async fn json(&self, path: &str) -> Value {
        let (status, body) = admin_get(&self.admin(path)).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// The backend `id` as this node has it in force, if it does.
    pub async fn backend(&self, id: &str) -> Option<Value> {
        let listed = self.json("/admin/backends").await;
        listed["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .cloned()
    }

    /// `method path` with a JSON body; status and parsed body.
    pub async fn send(&self, method: &str, path: &str, json: Option<&str>) -> (u16, Value) {
        let (status, body) = admin_send(method, &self.admin(path), json, None).await;
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }
}

pub fn node_config(id: &str, endpoints: &[String], extra: &str) -> String {
    let endpoints: Vec<String> = endpoints.iter().map(|e| format!("{e:?}")).collect();
    format!(
        "[fleet]\nendpoints = [{}]\nnode_id = {id:?}\nprefix = \"/lbx-test\"\n\
         keepalive = \"500ms\"\nrequest_timeout = \"2s\"\nconnect_timeout = \"1s\"\n\
         status_ttl = \"3s\"\n\n{extra}",
        endpoints.join(", ")
    )
}

/// Within `limit`, poll until `check` holds; how long it took.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    let held = eventually(limit, || {
        let checked = check();
        async move { checked.await.then_some(()) }
    })
    .await;
    assert!(held.is_some(), "{what}: not within {limit:?}");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backend_added_drained_and_removed_on_one_node_is_in_force_on_the_other_within_a_second_under_load()
 {
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-ab");
    let (a, b, c) = (
        TestBackend::named("a").await,
        TestBackend::named("b").await,
        TestBackend::named("c").await,
    );
    // Node A's file seeds the empty store (backends and plugin); node B's has none of its own.
    let seed = format!(
        "[plugin]\npath = {:?}\n\n[[backend]]\nid = \"a\"\nurl = {:?}\n\n[[backend]]\nid = \"b\"\nurl = {:?}\n",
        plugins::LEAST_CONN,
        a.url(),
        b.url()
    );
    let node_a = Node::start(&dir, "node-a", &cluster, &seed);
    let node_b = Node::start(&dir, "node-b", &cluster, "");
    for node in [&node_a, &node_b] {
        let listed = node.json("/admin/backends").await;
        let ids: Vec<&str> = listed["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"], "{listed}");
    }
    // The plugin came through the store: both run the module A's file named.
    let sha_a = node_a.json("/admin/plugin").await["sha256"].clone();
    assert!(sha_a.is_string());
    assert_eq!(node_b.json("/admin/plugin").await["sha256"], sha_a);

    // An idle fleet is in sync seen from either node: a node that listed the store after the
    // others wrote their status keys must not see them as behind.
    for node in [&node_a, &node_b] {
        within(Duration::from_secs(3), "every node in sync", || async {
            let fleet = node.json("/admin/fleet").await;
            let nodes = fleet["nodes"].as_array().unwrap().clone();
            nodes.len() == 2 && nodes.iter().all(|n| n["state"] == "in_sync")
        })
        .await;
    }

    let load_a = LoadGenerator::start(node_a.url("/"), 2);
    let load_b = LoadGenerator::start(node_b.url("/"), 2);

    // Added on A: served by B.
    let body = format!(r#"{{"id": "c", "url": {:?}}}"#, c.url());
    let (status, added) = node_a.send("POST", "/admin/backends", Some(&body)).await;
    assert_eq!(status, 201, "{added}");
    assert!(added["revision"].as_i64().unwrap() > 0, "{added}");
    let took = within(
        Duration::from_secs(1),
        "c served through node B",
        || async {
            node_b
                .backend("c")
                .await
                .is_some_and(|c| c["requests"].as_u64().unwrap() > 0)
        },
    )
    .await;
    eprintln!("added on A, served through B after {took:?}");

    // Drained on A: B sends it nothing new.
    let (status, patched) = node_a
        .send("PATCH", "/admin/backends/c", Some(r#"{"drain": true}"#))
        .await;
    assert_eq!(status, 200, "{patched}");
    let took = within(Duration::from_secs(1), "c draining on node B", || async {
        node_b
            .backend("c")
            .await
            .is_some_and(|c| c["state"] == "draining")
    })
    .await;
    eprintln!("drained on A, draining on B after {took:?}");
    let before = node_b.backend("c").await.unwrap()["requests"]
        .as_u64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = node_b.backend("c").await.unwrap()["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(before, after, "node B kept sending to the drained backend");

    // Removed on A: gone from B.
    let (status, removed) = node_a.send("DELETE", "/admin/backends/c", None).await;
    assert_eq!(status, 202, "{removed}");
    let took = within(Duration::from_secs(1), "c gone from node B", || async {
        node_b.backend("c").await.is_none()
    })
    .await;
    eprintln!("removed on A, gone from B after {took:?}");

    let (stats_a, stats_b) = (load_a.finish().await, load_b.finish().await);
    assert!(
        stats_a.ok > 100 && stats_b.ok > 100,
        "{stats_a:?} {stats_b:?}"
    );
    assert!(
        stats_a.failed.is_empty(),
        "node A failed: {:?}",
        stats_a.failed
    );
    assert!(
        stats_b.failed.is_empty(),
        "node B failed: {:?}",
        stats_b.failed
    );

    // Both nodes report the last revision applied, in their status keys (written once the
    // change is in force, so a moment after it).
    within(Duration::from_secs(2), "both nodes report it", || async {
        let fleet = node_b.json("/admin/fleet").await;
        let nodes = fleet["nodes"].as_array().unwrap().clone();
        nodes.len() == 2
            && nodes.iter().all(|node| {
                node["state"] == "in_sync"
                    && node["applied_revision"].as_i64().unwrap()
                        >= removed["revision"].as_i64().unwrap()
            })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_no_node_can_load_is_refused_by_every_node_with_the_reason_and_the_next_good_one_is_applied_everywhere()
 {
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-nack");
    let a = TestBackend::named("a").await;
    let seed = format!(
        "[plugin]\npath = {:?}\n\n[[backend]]\nid = \"a\"\nurl = {:?}\n",
        plugins::LEAST_CONN,
        a.url()
    );
    let nodes = [
        Node::start(&dir, "node-a", &cluster, &seed),
        Node::start(&dir, "node-b", &cluster, ""),
    ];
    let running = nodes[0].json("/admin/plugin").await["sha256"].clone();

    // A module whose init refuses its config (the header router knows no "bogus" setting).
    let header_router = std::fs::read(plugins::HEADER_ROUTER).unwrap();
    let published = publish(&nodes[0], header_router, r#"{"bogus": 1}"#).await;
    assert_eq!(published.0, 422, "no node can apply it: {}", published.1);
    let refused = &published.1["refused"];
    for node in ["node-a", "node-b"] {
        let reason = refused[node].as_str().unwrap_or_default();
        assert!(
            reason.contains("bogus"),
            "{node}'s refusal names the field: {published:?}"
        );
    }
    for node in &nodes {
        let fleet = node.json("/admin/fleet").await;
        // At or past it: a node whose first listing came after the change reports that
        // listing's revision, whose state includes it.
        assert!(
            fleet["self"]["refused"]["revision"].as_i64().unwrap()
                >= published.1["revision"].as_i64().unwrap(),
            "{fleet}"
        );
        assert_eq!(
            node.json("/admin/plugin").await["sha256"],
            running,
            "the old one serves"
        );
        let (status, _, body) = crate::support::get(&node.url("/")).await;
        assert_eq!((status.as_u16(), body.as_str()), (200, "a"));
    }
    // Node B sees both refusals too (node A's status reaches it through the store).
    within(
        Duration::from_secs(3),
        "node B sees both nodes refusing",
        || async {
            let listed = nodes[1].json("/admin/fleet").await["nodes"].clone();
            let listed = listed.as_array().unwrap();
            listed.len() == 2 && listed.iter().all(|n| n["state"] == "refusing")
        },
    )
    .await;
    // The operator's view, straight from etcd, and each node's own metrics.
    let printed = std::process::Command::new(crate::support::LBX_BIN)
        .args(["fleet", "status", "--config"])
        .arg(&nodes[1].config)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.status.success(),
        "{table} {}",
        String::from_utf8_lossy(&printed.stderr)
    );
    for node in ["node-a", "node-b"] {
        let line = table
            .lines()
            .find(|l| l.starts_with(node))
            .unwrap_or_default();
        assert!(
            line.contains("refusing") && line.contains("bogus"),
            "{table}"
        );
    }
    let (_, metrics) = crate::support::admin_get(&nodes[1].admin("/metrics")).await;
    assert_eq!(
        crate::support::metric(&metrics, "lbx_fleet_nodes"),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        crate::support::metric(&metrics, "lbx_fleet_applies_total{result=\"refused\"}"),
        1.0
    );
    assert!(
        crate::support::metric(&metrics, "lbx_fleet_shared_revision")
            >= published.1["revision"].as_f64().unwrap()
    );
    assert!(
        crate::support::metric(&metrics, "lbx_fleet_applied_revision")
            < published.1["revision"].as_f64().unwrap(),
        "the refused revision is not the one in force"
    );

    // A plugin key naming bytes that are not its module: every node refuses, naming both
    // digests.
    let store = cluster.store().await;
    let fake = "0".repeat(64);
    let url = format!("http://{}/module.wasm", a.addr);
    let txn = lbx::fleet::store::Txn::new().put(
        "/lbx-test/plugin",
        format!(r#"{{"sha256": "{fake}", "url": "{url}"}}"#),
    );
    use lbx::fleet::store::Store;
    store.commit(txn).await.unwrap();
    for node in &nodes {
        within(
            Duration::from_secs(5),
            "the wrong digest refused",
            || async {
                let fleet = node.json("/admin/fleet").await;
                fleet["self"]["refused"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains(&fake))
            },
        )
        .await;
        assert_eq!(node.json("/admin/plugin").await["sha256"], running);
    }

    // The next good one is applied everywhere.
    let round_robin = std::fs::read(plugins::ROUND_ROBIN).unwrap();
    let published = publish(&nodes[1], round_robin, "{}").await;
    assert_eq!(published.0, 201, "{}", published.1);
    assert_eq!(published.1["applied"], true, "{}", published.1);
    for node in &nodes {
        assert_eq!(
            node.json("/admin/plugin").await["sha256"],
            published.1["sha256"]
        );
        let fleet = node.json("/admin/fleet").await;
        // At or past it: a node whose first listing came after the change reports that
        // listing's revision, whose state includes it.
        assert!(
            fleet["self"]["applied_revision"].as_i64().unwrap()
                >= published.1["revision"].as_i64().unwrap(),
            "{fleet}"
        );
    }
}

/// Publish `module` with `config` through `node`, waiting until every node applied it.
async fn publish(node: &Node, module: Vec<u8>, config: &str) -> (u16, Value) {
    let config: String = form_urlencoded::byte_serialize(config.as_bytes()).collect();
    let url = node.admin(&format!(
        "/admin/fleet/plugin?wait=applied&timeout=5s&config={config}"
    ));
    let request = http::Request::post(url)
        .header("content-type", "application/wasm")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from(module),
        )))
        .unwrap();
    let (status, _, body) = crate::support::send(&crate::support::http1_client(), request).await;
    (
        status.as_u16(),
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restarted_while_the_whole_store_is_down_starts_from_its_state_file_and_serves() {
    let mut cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-down");
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let seed = format!(
        "[plugin]\npath = {:?}\n\n[[backend]]\nid = \"a\"\nurl = {:?}\n",
        plugins::ROUND_ROBIN,
        a.url()
    );
    let mut node = Node::start(&dir, "node-a", &cluster, &seed);
    let body = format!(r#"{{"id": "b", "url": {:?}}}"#, b.url());
    let (status, added) = node
        .send("POST", "/admin/backends?wait=applied", Some(&body))
        .await;
    assert_eq!(status, 201, "{added}");

    for member in 0..3 {
        cluster.kill(member);
    }
    // The store is gone: a change is refused whole, and the node serves on.
    let (status, refused) = node
        .send("PATCH", "/admin/backends/b", Some(r#"{"weight": 3}"#))
        .await;
    assert_eq!(status, 503, "{refused}");
    assert!(node.backend("b").await.unwrap()["weight"] == 1);

    // Restarted with no store at all: it starts from what it last applied.
    node.kill_and_restart();
    assert!(
        node.process
            .log()
            .contains("starting from the state this node last applied"),
        "{}",
        node.process.log()
    );
    let mut answers = Vec::new();
    for _ in 0..4 {
        let (status, _, body) = crate::support::get(&node.url("/")).await;
        assert_eq!(status, 200);
        answers.push(body);
    }
    answers.sort();
    assert_eq!(answers, ["a", "a", "b", "b"], "both backends, round robin");
    let fleet = node.json("/admin/fleet").await;
    // At or past it: a node whose first listing came after the change reports that
    // listing's revision, whose state includes it.
    assert!(
        fleet["self"]["applied_revision"].as_i64().unwrap() >= added["revision"].as_i64().unwrap(),
        "{fleet}"
    );
    assert_eq!(fleet["connected"], false, "{fleet}");

    // The store comes back: the node catches up and takes writes again.
    cluster.restart_all().await;
    within(Duration::from_secs(15), "node reconnected", || async {
        node.json("/admin/fleet").await["connected"] == true
    })
    .await;
    let (status, patched) = node
        .send(
            "PATCH",
            "/admin/backends/b?wait=applied",
            Some(r#"{"weight": 3}"#),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(node.backend("b").await.unwrap()["weight"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_wide_health_section_written_through_one_node_checks_backends_from_every_node() {
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-settings");
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
    // A bad value is refused before it reaches any node, naming the field.
    let (status, refused) = nodes[0]
        .send(
            "PUT",
            "/admin/fleet/settings/health",
            Some(r#"{"path": "/healthz", "interval": 5}"#),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("interval"),
        "{refused}"
    );

    let (status, written) = nodes[0]
        .send(
            "PUT",
            "/admin/fleet/settings/health?wait=applied",
            Some(r#"{"path": "/healthz", "interval": "100ms", "fall": 1}"#),
        )
        .await;
    assert_eq!(status, 200, "{written}");
    assert_eq!(written["applied"], true, "{written}");
    b.set_health(503);
    for node in &nodes {
        within(Duration::from_secs(3), "b down on every node", || async {
            node.backend("b").await.unwrap()["state"] == "down"
        })
        .await;
        assert_eq!(node.backend("a").await.unwrap()["state"], "up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_chromium_the_dashboard_shows_every_node_of_the_fleet_and_where_it_stands() {
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-dashboard");
    let a = TestBackend::named("a").await;
    let seed = format!(
        "[plugin]\npath = {:?}\n\n[[backend]]\nid = \"a\"\nurl = {:?}\n",
        plugins::LEAST_CONN,
        a.url()
    );
    let nodes = [
        Node::start(&dir, "node-a", &cluster, &seed),
        Node::start(&dir, "node-b", &cluster, ""),
    ];
    // A change made through node A, applied by both.
    let (status, written) = nodes[0]
        .send(
            "PATCH",
            "/admin/backends/a?wait=applied",
            Some(r#"{"weight": 2}"#),
        )
        .await;
    assert_eq!(status, 200, "{written}");
    // Every node's status key says so (a node that had not written its status yet when the
    // change was made is not waited for by ?wait=applied).
    within(Duration::from_secs(5), "both nodes in sync", || async {
        let fleet = nodes[0].json("/admin/fleet").await;
        let listed = fleet["nodes"].as_array().unwrap().clone();
        listed.len() == 2 && listed.iter().all(|n| n["state"] == "in_sync")
    })
    .await;
    let (mut browser, _) = crate::support::Browser::open(&nodes[0].admin("/"), None).await;
    browser.wait_polls(2).await;
    let page = browser.snapshot().await;
    assert_eq!(page["errors"], Value::Array(vec![]), "{page}");
    assert_eq!(page["fleet_hidden"], false, "{page}");
    let api = nodes[0].json("/admin/fleet").await;
    let shown = page["fleet"].as_array().unwrap();
    assert_eq!(shown.len(), 2, "{page}");
    for (row, node) in shown.iter().zip(api["nodes"].as_array().unwrap()) {
        assert_eq!(row["node"], node["node"]);
        assert_eq!(row["state"], "in_sync", "{page}");
        assert_eq!(
            row["applied_revision"],
            node["applied_revision"].to_string(),
            "{page} {api}"
        );
        // At or past the change (a node that listed the store later applied its revision).
        let applied: i64 = row["applied_revision"].as_str().unwrap().parse().unwrap();
        assert!(applied >= written["revision"].as_i64().unwrap(), "{page}");
        assert_eq!(row["store"], "connected");
        let sha = node["plugin_sha256"].as_str().unwrap();
        assert_eq!(row["plugin"], &sha[..12]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_conditional_on_a_revision_is_refused_with_412_once_the_backend_changed_after_it()
{
    let cluster = EtcdCluster::start(3).await;
    let dir = TempDir::new("fleet-if-match");
    let a = TestBackend::named("a").await;
    let seed = format!("[[backend]]\nid = \"a\"\nurl = {:?}\n", a.url());
    let nodes = [
        Node::start(&dir, "node-a", &cluster, &seed),
        Node::start(&dir, "node-b", &cluster, ""),
    ];
    // Two operators read the set at the same revision, through different nodes.
    let read = nodes[0].json("/admin/backends").await["fleet_revision"]
        .as_i64()
        .unwrap();
    assert!(read > 0);
    let patch = |node: &Node, revision: String, weight: u32| {
        let url = node.admin("/admin/backends/a");
        async move {
            let request = http::Request::patch(url)
                .header("if-match", revision)
                .header("content-type", "application/json")
                .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
                    bytes::Bytes::from(format!(r#"{{"weight": {weight}}}"#)),
                )))
                .unwrap();
            let (status, _, body) =
                crate::support::send(&crate::support::http1_client(), request).await;
            (status.as_u16(), body)
        }
    };
    let (status, first) = patch(&nodes[0], format!("\"{read}\""), 2).await;
    assert_eq!(status, 200, "{first}");
    // The second, based on what it read before the first change, is refused.
    let (status, second) = patch(&nodes[1], read.to_string(), 5).await;
    assert_eq!(status, 412, "{second}");
    assert!(second.contains("changed at revision"), "{second}");
    // Read again, then it goes through.
    let revision: Value = serde_json::from_str(&first).unwrap();
    let (status, third) = patch(&nodes[1], revision["revision"].to_string(), 5).await;
    assert_eq!(status, 200, "{third}");
    let (status, bad) = patch(&nodes[1], "yesterday".into(), 7).await;
    assert_eq!(status, 400, "{bad}");
    within(Duration::from_secs(2), "weight 5 everywhere", || async {
        nodes[0].backend("a").await.unwrap()["weight"] == 5
            && nodes[1].backend("a").await.unwrap()["weight"] == 5
    })
    .await;
}
