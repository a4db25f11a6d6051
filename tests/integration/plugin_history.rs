//! Plugin version history and rollback: `GET /admin/plugin/history` lists the versions put in
//! force, `POST /admin/plugin/rollback` goes back to one (by sha256 or by steps) under load with
//! no failed request, from the compile cache when it still holds the version and from the kept
//! bytes when not; the file watcher does not undo a rollback; wrong requests get 400/404/409.

use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{
    LoadGenerator, TempDir, TestBackend, TestProxy, admin_get, admin_post, admin_send, config,
    eventually, get, metric, plugins, replace_atomically, run_lbx_to_exit, with_custom_section,
};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `GET /admin/plugin/history`, parsed.
async fn history(proxy: &TestProxy) -> Value {
    let (status, body) = admin_get(&proxy.admin_url("/admin/plugin/history")).await;
    assert_eq!(status, 200, "{body}");
    json(&body)
}

/// The sha256 of the plugin in force.
async fn in_force(proxy: &TestProxy) -> String {
    let (_, body) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    json(&body)["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Wait until the plugin in force is `sha` (a hot swap by the file watcher).
async fn wait_in_force(proxy: &TestProxy, sha: &str) {
    eventually(Duration::from_secs(30), || async {
        (in_force(proxy).await == sha).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{sha} never came in force"));
}

/// `POST /admin/plugin/rollback` with `body`; status and parsed answer.
async fn rollback(proxy: &TestProxy, body: &str) -> (u16, Value) {
    let (status, text) = admin_send(
        "POST",
        &proxy.admin_url("/admin/plugin/rollback"),
        Some(body),
        None,
    )
    .await;
    (status, json(&text))
}

/// Each listed version's sha256 and source, newest first.
fn listed(history: &Value) -> Vec<(String, String)> {
    history["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            (
                v["sha256"].as_str().unwrap().to_string(),
                v["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Over `n` requests: how many the counting test router answered (it always picks the first
/// backend and numbers its answers), and how many each backend served.
async fn served(proxy: &TestProxy, n: usize) -> (usize, usize, usize) {
    let (mut counted, mut a, mut b) = (0, 0, 0);
    for _ in 0..n {
        let (status, headers, body) = get(&proxy.url("/")).await;
        assert_eq!(status, 200, "{body}");
        counted += usize::from(headers.contains_key("x-request-number"));
        match body.as_str() {
            "a" => a += 1,
            "b" => b += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (counted, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_the_versions_the_watcher_put_in_force_newest_first_with_their_sha256() {
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let dir = TempDir::new("history");
    let plugin = dir.join("plugin.wasm");
    let versions = [
        std::fs::read(plugins::TEST_ROUTER).unwrap(),
        std::fs::read(plugins::ROUND_ROBIN).unwrap(),
        with_custom_section(&std::fs::read(plugins::TEST_ROUTER).unwrap(), "3"),
    ];
    std::fs::write(&plugin, &versions[0]).unwrap();
    let proxy = TestProxy::start(&config(Some(plugin.to_str().unwrap()), &[&a, &b], "")).await;
    // The admin API answers once the file watch is set up: a change before would be missed.
    assert_eq!(in_force(&proxy).await, sha256_hex(&versions[0]));

    // Two hot swaps: the file rewritten, picked up by the watcher.
    for version in &versions[1..] {
        replace_atomically(&plugin, version);
        wait_in_force(&proxy, &sha256_hex(version)).await;
    }

    let history = history(&proxy).await;
    let expected: Vec<(String, String)> = versions
        .iter()
        .rev()
        .map(|v| (sha256_hex(v), "file".to_string()))
        .collect();
    assert_eq!(listed(&history), expected, "{history:#}");
    assert_eq!(history["capacity"], 10, "{history:#}");
    let listed_versions = history["versions"].as_array().unwrap();
    let in_force: Vec<bool> = listed_versions
        .iter()
        .map(|v| v["in_force"].as_bool().unwrap())
        .collect();
    assert_eq!(in_force, [true, false, false], "{history:#}");
    for (version, bytes) in listed_versions.iter().zip(versions.iter().rev()) {
        assert_eq!(version["path"], plugin.to_str().unwrap(), "{history:#}");
        assert_eq!(version["bytes"], bytes.len(), "{history:#}");
        assert!(version["at"].as_str().is_some(), "{history:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_by_steps_then_by_sha_changes_the_routing_under_load_with_no_failed_request() {
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let dir = TempDir::new("rollback");
    let plugin = dir.join("plugin.wasm");
    // Observably different: the counting router always picks `a` and numbers its answers;
    // round robin alternates between `a` and `b` and numbers nothing.
    let counting = std::fs::read(plugins::TEST_ROUTER).unwrap();
    let round_robin = std::fs::read(plugins::ROUND_ROBIN).unwrap();
    std::fs::write(&plugin, &counting).unwrap();
    let proxy = TestProxy::start(&config(
        Some(plugin.to_str().unwrap()),
        &[&a, &b],
        "[reload]\nwatch = false\n",
    ))
    .await;
    replace_atomically(&plugin, &round_robin);
    let (status, body) = admin_post(&proxy.admin_url("/admin/plugin/reload")).await;
    assert_eq!(status, 200, "{body}");
    let (counted, _, to_b) = served(&proxy, 10).await;
    assert_eq!(counted, 0);
    assert!(to_b >= 4, "round robin sent {to_b} of 10 to b");

    let load = LoadGenerator::start(proxy.url("/"), 4);

    // One step back: the counting router again, compiled long ago and still in the cache.
    let (status, answer) = rollback(&proxy, r#"{"steps": 1}"#).await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["result"], "applied", "{answer:#}");
    assert_eq!(
        answer["version"]["sha256"],
        sha256_hex(&counting),
        "{answer:#}"
    );
    assert_eq!(answer["from_compile_cache"], true, "{answer:#}");
    assert_eq!(in_force(&proxy).await, sha256_hex(&counting));
    // Requests decided before the swap may still be reaching `b`; after these, none is.
    served(&proxy, 10).await;
    let b_before = b.requests();
    let (counted, to_a, to_b) = served(&proxy, 20).await;
    assert_eq!((counted, to_a, to_b), (20, 20, 0));
    assert_eq!(b.requests(), b_before, "the load still reached b");

    // Forward again by a prefix of round robin's sha256.
    let prefix = &sha256_hex(&round_robin)[..12];
    let (status, answer) = rollback(&proxy, &format!(r#"{{"sha256": "{prefix}"}}"#)).await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(
        answer["version"]["sha256"],
        sha256_hex(&round_robin),
        "{answer:#}"
    );
    assert_eq!(answer["from_compile_cache"], true, "{answer:#}");
    assert_eq!(
        served(&proxy, 10).await.0,
        0,
        "the counting router still answers"
    );
    let b_before = b.requests();
    eventually(Duration::from_secs(10), || async {
        (b.requests() >= b_before + 10).then_some(())
    })
    .await
    .expect("round robin is back but the load does not reach b");

    let stats = load.finish().await;
    assert!(stats.failed.is_empty(), "failed: {:?}", stats.failed);
    assert!(stats.ok > 20, "only {} requests", stats.ok);

    // Both rollbacks are versions of their own in the history, and reloads in the reload log.
    let history = history(&proxy).await;
    let sources: Vec<(String, String)> = listed(&history);
    assert_eq!(
        sources,
        [
            (sha256_hex(&round_robin), "rollback".to_string()),
            (sha256_hex(&counting), "rollback".to_string()),
            (sha256_hex(&round_robin), "api".to_string()),
            (sha256_hex(&counting), "file".to_string()),
        ],
        "{history:#}"
    );
    let (_, reloads) = admin_get(&proxy.admin_url("/admin/reloads")).await;
    let reloads = json(&reloads);
    let rollbacks: Vec<&Value> = reloads["reloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["detail"].as_str().unwrap().starts_with("rollback"))
        .collect();
    assert_eq!(rollbacks.len(), 2, "{reloads:#}");
    assert!(
        rollbacks.iter().all(|r| r["result"] == "applied"),
        "{reloads:#}"
    );
    let (_, metrics) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(&metrics, "lbx_plugin_rollbacks_total{result=\"applied\"}"),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_watcher_does_not_undo_a_rollback_until_the_plugin_file_changes() {
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let dir = TempDir::new("hold");
    let plugin = dir.join("plugin.wasm");
    let counting = std::fs::read(plugins::TEST_ROUTER).unwrap();
    let round_robin = std::fs::read(plugins::ROUND_ROBIN).unwrap();
    std::fs::write(&plugin, &counting).unwrap();
    let proxy = TestProxy::start(&config(Some(plugin.to_str().unwrap()), &[&a, &b], "")).await;
    // The admin API answers once the file watch is set up: a change before would be missed.
    assert_eq!(in_force(&proxy).await, sha256_hex(&counting));
    replace_atomically(&plugin, &round_robin);
    wait_in_force(&proxy, &sha256_hex(&round_robin)).await;

    let (status, answer) = rollback(&proxy, r#"{"steps": 1}"#).await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(in_force(&proxy).await, sha256_hex(&counting));
    let held = history(&proxy).await;
    assert_eq!(
        held["held"]["file_sha256"],
        sha256_hex(&round_robin),
        "{held:#}"
    );

    // The unchanged file, written again (a deploy tool re-syncing) and in place: the watcher
    // sees it, re-reads it, and leaves the rollback in force. Proving that nothing happens
    // needs a wait: several debounce periods (100 ms) pass.
    replace_atomically(&plugin, &round_robin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&plugin, &round_robin).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(in_force(&proxy).await, sha256_hex(&counting));
    assert_eq!(served(&proxy, 4).await, (4, 4, 0));
    // An explicit reload of the same file holds too: going forward is a rollback to it.
    let (status, body) = admin_post(&proxy.admin_url("/admin/plugin/reload")).await;
    assert_eq!(
        (status, json(&body)["result"].clone()),
        (200, "unchanged".into())
    );
    assert_eq!(in_force(&proxy).await, sha256_hex(&counting));

    // A new plugin file ends the hold: the watcher puts it in force.
    let rebuilt = with_custom_section(&round_robin, "3");
    replace_atomically(&plugin, &rebuilt);
    wait_in_force(&proxy, &sha256_hex(&rebuilt)).await;
    let history = history(&proxy).await;
    assert!(history["held"].is_null(), "{history:#}");
    assert_eq!(
        listed(&history)[0],
        (sha256_hex(&rebuilt), "file".to_string()),
        "{history:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_to_a_version_evicted_from_the_compile_cache_is_compiled_from_its_kept_bytes() {
    let (a, b) = (TestBackend::named("a").await, TestBackend::named("b").await);
    let dir = TempDir::new("evicted");
    let plugin = dir.join("plugin.wasm");
    let counting = std::fs::read(plugins::TEST_ROUTER).unwrap();
    std::fs::write(&plugin, &counting).unwrap();
    let proxy = TestProxy::start(&config(
        Some(plugin.to_str().unwrap()),
        &[&a, &b],
        "[reload]\nwatch = false\n",
    ))
    .await;
    // Five more versions through the API: more than the compile cache keeps (4), and the
    // file no longer holds the first one's bytes.
    let round_robin = std::fs::read(plugins::ROUND_ROBIN).unwrap();
    for n in 0..5 {
        replace_atomically(&plugin, &with_custom_section(&round_robin, &n.to_string()));
        let (status, body) = admin_post(&proxy.admin_url("/admin/plugin/reload")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(served(&proxy, 4).await.0, 0);

    let (status, answer) = rollback(
        &proxy,
        &format!(r#"{{"sha256": "{}"}}"#, sha256_hex(&counting)),
    )
    .await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["from_compile_cache"], false, "{answer:#}");
    assert_eq!(in_force(&proxy).await, sha256_hex(&counting));
    assert_eq!(served(&proxy, 4).await, (4, 4, 0));
    assert_eq!(
        history(&proxy).await["versions"].as_array().unwrap().len(),
        7
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_rollbacks_are_answered_400_404_or_409_and_nothing_changes() {
    let backend = TestBackend::named("a").await;
    let dir = TempDir::new("rollback-errors");
    let plugin = dir.join("plugin.wasm");
    let counting = std::fs::read(plugins::TEST_ROUTER).unwrap();
    let round_robin = std::fs::read(plugins::ROUND_ROBIN).unwrap();
    std::fs::write(&plugin, &counting).unwrap();
    let proxy = TestProxy::start(&config(
        Some(plugin.to_str().unwrap()),
        &[&backend],
        "[reload]\nwatch = false\n",
    ))
    .await;
    replace_atomically(&plugin, &round_robin);
    assert_eq!(
        admin_post(&proxy.admin_url("/admin/plugin/reload")).await.0,
        200
    );

    let cases: &[(&str, u16)] = &[
        (r#"{"sha256": "0000000000000000"}"#, 404),
        (r#"{"steps": 2}"#, 404),
        (
            &format!(r#"{{"sha256": "{}"}}"#, sha256_hex(&round_robin)),
            409,
        ),
        (r#"{"steps": 0}"#, 400),
        (r#"{}"#, 400),
        (r#"{"steps": 1, "sha256": "abcd"}"#, 400),
        (r#"{"sha256": "not hex"}"#, 400),
        (r#"{"sha256": 7}"#, 400),
        (r#"{"step": 1}"#, 400),
        ("not JSON", 400),
    ];
    for (body, expected) in cases {
        let (status, text) = admin_send(
            "POST",
            &proxy.admin_url("/admin/plugin/rollback"),
            Some(body),
            None,
        )
        .await;
        assert_eq!(status, *expected, "{body}: {text}");
        assert_eq!(json(&text)["result"], "refused", "{body}: {text}");
    }
    assert_eq!(in_force(&proxy).await, sha256_hex(&round_robin));
    assert_eq!(listed(&history(&proxy).await).len(), 2);

    // Wrong methods, as the neighbouring endpoints answer them.
    let (status, _) = admin_get(&proxy.admin_url("/admin/plugin/rollback")).await;
    assert_eq!(status, 405);
    let (status, _) = admin_post(&proxy.admin_url("/admin/plugin/history")).await;
    assert_eq!(status, 405);

    // A plugin compiled into the binary cannot be rolled back.
    let embedded = TestProxy::start_embedded(
        &config(None, &[&backend], ""),
        "least_conn (embedded)",
        lbx::EMBEDDED_LEAST_CONN,
    )
    .await;
    let (status, answer) = rollback(&embedded, r#"{"steps": 1}"#).await;
    assert_eq!(status, 409, "{answer:#}");
    assert!(
        answer["reason"].as_str().unwrap().contains("embedded"),
        "{answer:#}"
    );
}

#[test]
fn a_history_length_outside_1_to_100_is_a_config_error_naming_the_key() {
    let dir = TempDir::new("history-config");
    let file = dir.join("lbx.toml");
    for value in [0, 101] {
        std::fs::write(
            &file,
            format!(
                "[plugin]\npath = {:?}\nhistory = {value}\n[[backend]]\nurl = \"http://127.0.0.1:1\"\n",
                plugins::ROUND_ROBIN
            ),
        )
        .unwrap();
        let (ok, stderr) = run_lbx_to_exit(&["validate", "--config", file.to_str().unwrap()]);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("plugin.history: must be between 1 and 100"),
            "{stderr}"
        );
    }
}
