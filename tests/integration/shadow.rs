//! Shadow plugins: a candidate runs beside the live plugin on a sample of real requests; its
//! decisions are compared and reported, never acted on, and nothing it does reaches a live
//! request.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    LoadGenerator, TempDir, TestBackend, TestProxy, admin_get, admin_send, config, eventually, get,
    metric, plugins,
};

/// `[[plugin.shadow]]` running the test router with `config` lines, on every request.
fn shadow(name: &str, config: &str) -> String {
    format!(
        "[[plugin.shadow]]\nname = {name:?}\npath = {:?}\nsample = 1.0\n\
         [plugin.shadow.config]\n{config}\n",
        plugins::TEST_ROUTER
    )
}

/// The shadow `name` as `GET /admin/plugin/shadow` reports it.
async fn report(proxy: &TestProxy, name: &str) -> Value {
    let (status, body) = admin_get(&proxy.admin_url("/admin/plugin/shadow")).await;
    assert_eq!(status, 200, "{body}");
    let all: Value = serde_json::from_str(&body).unwrap();
    all["shadows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no shadow {name} in {body}"))
}

/// Wait until shadow `name` has decided at least `count` samples; its report then.
async fn decided(proxy: &TestProxy, name: &str, count: u64) -> Value {
    eventually(Duration::from_secs(30), || async {
        let report = report(proxy, name).await;
        (report["decisions"].as_u64() >= Some(count)).then_some(report)
    })
    .await
    .unwrap_or_else(|| panic!("shadow {name} never decided {count} samples"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_pinning_one_backend_shows_low_agreement_while_live_traffic_is_untouched() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let extra = shadow("pinned", "backend = 0");
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a, &b], &extra)).await;

    let load = LoadGenerator::start(proxy.url("/"), 4);
    let report = decided(&proxy, "pinned", 300).await;
    let stats = load.finish().await;

    // Live traffic: round robin's even split, nothing failed.
    assert!(stats.failed.is_empty(), "failed: {:?}", stats.failed);
    let (to_a, to_b) = (a.requests() as f64, b.requests() as f64);
    let share_a = to_a / (to_a + to_b);
    assert!(
        (0.45..=0.55).contains(&share_a),
        "live share of a: {share_a}"
    );

    // The shadow: always `a`, so it agrees only on round robin's half.
    let agreement = report["agreement"].as_f64().unwrap();
    assert!((0.35..=0.65).contains(&agreement), "{report:#}");
    let cell = |live: &str, shadow: &str| {
        report["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["live"] == live && c["shadow"] == shadow)
            .map_or(0, |c| c["count"].as_u64().unwrap())
    };
    let (a_id, b_id) = (
        a.url().trim_start_matches("http://").to_string(),
        b.url().trim_start_matches("http://").to_string(),
    );
    assert!(cell(&b_id, &a_id) > 100, "live b → shadow a: {report:#}");
    assert_eq!(cell(&a_id, &b_id) + cell(&b_id, &b_id), 0, "{report:#}");
    let shadow_share_a = report["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["choice"] == a_id.as_str())
        .map(|s| s["shadow"].as_f64().unwrap());
    assert_eq!(shadow_share_a, Some(1.0), "{report:#}");

    // The same figures in /metrics.
    let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
    let disagree = metric(
        &text,
        "lbx_shadow_decisions_total{shadow=\"pinned\",result=\"disagree\"}",
    );
    assert!(disagree > 100.0, "{text}");
    assert!(text.contains("lbx_shadow_agreement_ratio{shadow=\"pinned\"}"));
    assert!(text.contains("lbx_shadow_decision_seconds_count{shadow=\"pinned\"}"));
}

/// The live plugin's state and failure count from `GET /admin/plugin`.
async fn live_plugin(proxy: &TestProxy) -> Value {
    let (_, body) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadows_that_loop_or_trap_fail_no_live_request_and_are_paused_by_their_breaker() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let extra = format!(
        "disable_after_failures = 3\ndisabled_for = \"1h\"\n{}{}",
        shadow("loops", "mode = \"loop\""),
        shadow("traps", "mode = \"panic\"")
    );
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a, &b], &extra)).await;

    let load = LoadGenerator::start(proxy.url("/"), 8);
    let paused = |name: &'static str| {
        let proxy = &proxy;
        async move {
            eventually(Duration::from_secs(60), || async {
                let shadow = report(proxy, name).await;
                (shadow["paused"].as_u64() >= Some(50)).then_some(shadow)
            })
            .await
            .unwrap_or_else(|| panic!("shadow {name} was never paused"))
        }
    };
    let (loops, traps) = (paused("loops").await, paused("traps").await);
    let stats = load.finish().await;

    assert!(stats.failed.is_empty(), "failed: {:?}", stats.failed);
    // Three failures each, then the breaker holds them off for the hour.
    assert_eq!(loops["errors"]["timeout"], 3, "{loops:#}");
    assert_eq!(loops["decisions"], 3, "{loops:#}");
    assert!(traps["errors"]["trap"].as_u64() >= Some(1), "{traps:#}");
    assert_eq!(traps["decisions"], 3, "{traps:#}");
    // The live plugin neither failed nor was disabled by its shadows' failures.
    let live = live_plugin(&proxy).await;
    assert_eq!(live["state"], "active", "{live:#}");
    assert_eq!(live["failures"], 0, "{live:#}");
    let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
    let paused_series = "lbx_shadow_samples_total{shadow=\"traps\",result=\"paused\"}";
    assert!(metric(&text, paused_series) >= 50.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_falls_behind_has_samples_dropped_not_live_requests_delayed_into_failure() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    // Never paused: each sample takes the whole (test) deadline of 1 s, so the queue fills.
    let extra = format!(
        "disable_after_failures = 0\n{}",
        shadow("behind", "mode = \"loop\"")
    );
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a, &b], &extra)).await;

    let load = LoadGenerator::start(proxy.url("/"), 8);
    let loops = eventually(Duration::from_secs(60), || async {
        let loops = report(&proxy, "behind").await;
        (loops["dropped"].as_u64() > Some(0)).then_some(loops)
    })
    .await
    .expect("the looping shadow's queue never filled");
    let stats = load.finish().await;

    assert!(stats.failed.is_empty(), "failed: {:?}", stats.failed);
    assert!(stats.ok > 1024, "only {} requests", stats.ok);
    assert_eq!(loops["compared"], 0, "{loops:#}");
    assert_eq!(loops["paused"], 0, "{loops:#}");
    assert_eq!(live_plugin(&proxy).await["failures"], 0);
    let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
    let dropped = "lbx_shadow_samples_total{shadow=\"behind\",result=\"dropped\"}";
    assert!(metric(&text, dropped) > 0.0, "{text}");

    // Stopping lbx stops the worker too, with a thousand samples still queued (a second
    // each): it does not keep a core busy for a quarter of an hour.
    drop(proxy);
    let worker_gone = eventually(Duration::from_secs(20), || async {
        (!threads_named("lbx-shadow-behi")).then_some(())
    })
    .await;
    assert!(worker_gone.is_some(), "the shadow's worker outlived lbx");
}

/// Whether a thread of this process has this (kernel-truncated, 15-byte) name.
fn threads_named(name: &str) -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .any(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_reads_the_live_key_value_store_but_its_writes_stay_its_own() {
    let a = TestBackend::named("a").await;
    // Live and shadow both count requests under the same key; the live count must not move
    // with the shadow's.
    let extra = format!(
        "[plugin.config]\nmode = \"count\"\n{}",
        shadow("counter", "mode = \"count\"")
    );
    let proxy = TestProxy::start(&config(Some(plugins::TEST_ROUTER), &[&a], &extra)).await;
    let number = || async {
        let (status, headers, _) = get(&proxy.url("/")).await;
        assert_eq!(status, 200);
        headers["x-request-number"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let first = number().await;
    for _ in 0..40 {
        number().await;
    }
    decided(&proxy, "counter", 41).await;
    assert_eq!(
        number().await,
        first + 41,
        "the shadow's counting reached the live store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadows_are_started_listed_and_stopped_through_the_admin_api() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a, &b], "")).await;
    let url = proxy.admin_url("/admin/plugin/shadow");

    // From a path, with its config.
    let body = format!(
        r#"{{"path": {:?}, "name": "pin-b", "config": {{"backend": 1}}, "sample": 0.5}}"#,
        plugins::TEST_ROUTER
    );
    let (status, answer) = admin_send("POST", &url, Some(&body), None).await;
    assert_eq!(status, 200, "{answer}");
    let started: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(started["shadow"]["sample"], 0.5, "{answer}");

    // Uploaded bytes.
    let bytes = std::fs::read(plugins::LEAST_CONN).unwrap();
    let request = http::Request::post(format!("{url}?name=uploaded&sample=1"))
        .header("content-type", "application/wasm")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from(bytes),
        )))
        .unwrap();
    let (status, _, answer) = crate::support::send(&crate::support::http1_client(), request).await;
    assert_eq!(status, 200, "{answer}");

    for _ in 0..100 {
        assert_eq!(get(&proxy.url("/")).await.0, 200);
    }
    let pin = decided(&proxy, "pin-b", 20).await;
    assert!(
        pin["offered"].as_u64() < Some(90),
        "sampled about half: {pin:#}"
    );
    decided(&proxy, "uploaded", 100).await;
    let (_, listed) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    assert!(
        listed.contains("\"uploaded\"") && listed.contains("\"pin-b\""),
        "{listed}"
    );

    // Refusals name the problem, and change nothing.
    let dir = TempDir::new("shadow");
    let garbage = dir.join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm").unwrap();
    for (body, expected) in [
        (format!(r#"{{"path": {garbage:?}}}"#), "garbage"),
        (
            format!(r#"{{"path": {:?}, "sample": 2}}"#, plugins::LEAST_CONN),
            "sample",
        ),
        (
            r#"{"path": "/nonexistent.wasm"}"#.to_string(),
            "cannot read",
        ),
        (r#"{"wasm": "x"}"#.to_string(), "unknown field"),
    ] {
        let (status, answer) = admin_send("POST", &url, Some(&body), None).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer.contains(expected), "{body}: {answer}");
    }

    let (status, _) = admin_send("DELETE", &format!("{url}/pin-b"), None, None).await;
    assert_eq!(status, 200);
    let (status, _) = admin_send("DELETE", &format!("{url}/pin-b"), None, None).await;
    assert_eq!(status, 404);
    let (_, listed) = admin_get(&url).await;
    assert!(
        !listed.contains("pin-b") && listed.contains("uploaded"),
        "{listed}"
    );
    let (_, reloads) = admin_get(&proxy.admin_url("/admin/reloads")).await;
    assert!(reloads.contains("shadow pin-b stopped"), "{reloads}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_keeps_an_unchanged_shadow_and_stops_a_removed_one() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let dir = TempDir::new("shadow-reload");
    let config_file = dir.join("lbx.toml");
    // Reloads on request only, so each answer is about the change just written.
    let write = |extra: &str| {
        let extra = format!("{extra}[reload]\nwatch = false\n");
        let toml = config(Some(plugins::ROUND_ROBIN), &[&a, &b], &extra);
        std::fs::write(&config_file, toml).unwrap();
    };
    let with_shadow = shadow("pinned", "backend = 0");
    write(&with_shadow);
    let lbx = crate::support::LbxProcess::run(&["--config", config_file.to_str().unwrap()]);
    let admin = |path: &str| format!("http://{}{path}", lbx.admin);
    let shadows = || async {
        let (_, body) = admin_get(&admin("/admin/plugin/shadow")).await;
        serde_json::from_str::<Value>(&body).unwrap()["shadows"].clone()
    };
    for _ in 0..20 {
        assert_eq!(get(&format!("http://{}/", lbx.addr)).await.0, 200);
    }
    let decided = eventually(Duration::from_secs(20), || async {
        let decided = shadows().await[0]["decisions"].as_u64().unwrap_or(0);
        (decided >= 20).then_some(decided)
    })
    .await
    .expect("the configured shadow never decided");

    // Another part of the config changes: the shadow runs on, figures and all.
    write(&format!("{with_shadow}[log]\naccess = false\n"));
    let (status, answer) = crate::support::admin_post(&admin("/admin/reload")).await;
    assert_eq!(status, 200, "{answer}");
    assert!(shadows().await[0]["decisions"].as_u64() >= Some(decided));

    // A shadow that cannot load refuses the whole reload, naming it.
    write(&shadow("broken", "mode = \"no-such-mode\""));
    let (status, answer) = crate::support::admin_post(&admin("/admin/reload")).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("shadow broken"), "{answer}");
    assert_eq!(shadows().await[0]["name"], "pinned");

    // Removed from the config: stopped.
    write("");
    let (status, answer) = crate::support::admin_post(&admin("/admin/reload")).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("shadows: none"), "{answer}");
    assert_eq!(shadows().await, serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_shadow_swaps_it_in_under_load_and_a_reload_of_the_unchanged_file_keeps_it() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let extra = shadow("pin-a", "backend = 0");
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a, &b], &extra)).await;
    let url = |path: &str| proxy.admin_url(path);

    let load = LoadGenerator::start(proxy.url("/"), 4);
    decided(&proxy, "pin-a", 50).await;
    let (status, answer) =
        crate::support::admin_post(&url("/admin/plugin/shadow/pin-a/promote")).await;
    assert_eq!(status, 200, "{answer}");
    let promoted: Value = serde_json::from_str(&answer).unwrap();
    let sha = promoted["sha256"].as_str().unwrap().to_string();
    assert_eq!(promoted["plugin"]["sha256"], sha.as_str(), "{answer}");
    assert_eq!(
        promoted["plugin"]["shadows"],
        serde_json::json!([]),
        "{answer}"
    );

    // From now on every request goes where the shadow said: backend a.
    let b_before = b.requests();
    let a_before = a.requests();
    eventually(Duration::from_secs(20), || async {
        (a.requests() >= a_before + 200).then_some(())
    })
    .await
    .expect("the load stopped");
    // A request that had already been decided by round robin may still land on b.
    assert!(
        b.requests() <= b_before + 4,
        "b got {} more",
        b.requests() - b_before
    );
    let stats = load.finish().await;
    assert!(stats.failed.is_empty(), "failed: {:?}", stats.failed);

    // The plugin file still holds round robin; re-reading it does not undo the promotion.
    let (status, _) = crate::support::admin_post(&url("/admin/plugin/reload")).await;
    assert_eq!(status, 200);
    let (_, history) = admin_get(&url("/admin/plugin/history")).await;
    let history: Value = serde_json::from_str(&history).unwrap();
    let in_force = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["in_force"] == true)
        .cloned()
        .unwrap();
    assert_eq!(in_force["sha256"], sha.as_str(), "{history:#}");
    assert_eq!(in_force["source"], "shadow", "{history:#}");

    let (status, _) = crate::support::admin_post(&url("/admin/plugin/shadow/nope/promote")).await;
    assert_eq!(status, 404);
}

/// Linux's number for the `SCHED_IDLE` scheduling policy.
const SCHED_IDLE: i64 = 5;

/// The scheduling policy of this process's thread named `name`, from `/proc/self/task/*/stat`
/// (0: normal, 5: `SCHED_IDLE`).
fn policy_of_thread(name: &str) -> Option<i64> {
    std::fs::read_dir("/proc/self/task").ok()?.find_map(|task| {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the parenthesised command: state is field 3, policy field 41.
        let after = &stat[stat.rfind(')')? + 2..];
        after.split(' ').nth(41 - 3)?.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_that_overruns_its_deadline_is_moved_to_idle_cpu_and_a_healthy_one_is_not() {
    let a = TestBackend::named("a").await;
    // Worker threads are named "lbx-shadow-NAME", cut to the 15 bytes Linux keeps.
    let shadows = format!(
        "disable_after_failures = 0\n{}{}",
        shadow("slow", "mode = \"loop\""),
        shadow("good", "backend = 0")
    );
    let proxy = TestProxy::start(&config(Some(plugins::ROUND_ROBIN), &[&a], &shadows)).await;
    // Three overruns in a row move a worker; one is forgiven (a busy machine can cause it).
    for _ in 0..4 {
        assert_eq!(get(&proxy.url("/")).await.0, 200);
    }
    decided(&proxy, "good", 4).await;
    decided(&proxy, "slow", 4).await;
    assert_eq!(
        policy_of_thread("lbx-shadow-slow"),
        Some(SCHED_IDLE),
        "the looping shadow's worker should run under SCHED_IDLE"
    );
    assert_eq!(
        policy_of_thread("lbx-shadow-good"),
        Some(0),
        "the healthy shadow's worker should keep the normal policy"
    );
}
