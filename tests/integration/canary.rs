//! Canary plugins: a new version takes a growing share of real traffic by steps, a user stays
//! on one version, and gates comparing its outcomes with the live version's promote it or roll
//! it back.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    TestBackend, TestProxy, admin_get, admin_send, config, eventually, get_with, plugins,
};

/// lbx over `a` and `b` whose live plugin (the test router) sends everything to `a`.
async fn live_on_a(a: &TestBackend, b: &TestBackend) -> TestProxy {
    let extra = "[plugin.config]\nbackend = 0\n";
    TestProxy::start(&config(Some(plugins::TEST_ROUTER), &[a, b], extra)).await
}

/// Start a canary of the test router sending everything to backend index `backend`.
async fn start_canary(
    proxy: &TestProxy,
    backend: u32,
    steps: &str,
    step: &str,
    gates: Value,
) -> Value {
    let body = format!(
        r#"{{"path": {:?}, "config": {{"backend": {backend}}}, "steps": {steps},
            "step_duration": {step:?}, "key": "header:x-user", "gates": {gates}}}"#,
        plugins::TEST_ROUTER
    );
    let (status, answer) = admin_send(
        "POST",
        &proxy.admin_url("/admin/plugin/canary"),
        Some(&body),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

async fn canary(proxy: &TestProxy) -> Value {
    let (_, body) = admin_get(&proxy.admin_url("/admin/plugin/canary")).await;
    serde_json::from_str(&body).unwrap()
}

/// GET `path` as user `user`: (status, body).
async fn as_user(proxy: &TestProxy, path: &str, user: &str) -> (u16, String) {
    let (status, _, body) = get_with(proxy, path, &[("x-user", user)]).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_choice_causes_5xx_is_rolled_back_at_its_first_step() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    b.set_health(500); // `/healthz` through lbx: 200 from a, 500 from b
    let proxy = live_on_a(&a, &b).await;
    start_canary(
        &proxy,
        1,
        "[10, 50, 100]",
        "1h",
        json!({"min_requests": 20}),
    )
    .await;

    let (mut sent, mut failed) = (0, 0);
    let mut report = Value::Null;
    for i in 0..3000 {
        let (status, _) = as_user(&proxy, "/healthz", &format!("user-{i}")).await;
        sent += 1;
        if status != 200 {
            failed += 1;
        }
        if i % 10 == 0 {
            report = canary(&proxy).await;
            if report["state"] == "rolled_back" {
                break;
            }
        }
    }
    assert_eq!(report["state"], "rolled_back", "{report:#}");
    let story = report["transitions"].to_string();
    assert!(story.contains("rolled back at 10%: error rate"), "{story}");
    // (b's 5xx also get it ejected by outlier detection; the candidate's picks of it then fall
    // back, which its fallback-rate gate counts too.)
    // The gate saw the candidate's errors; clients saw at most the step's share of them (a
    // retry on the live side's choice rescues some), and only before it was gone.
    assert!(
        report["candidate"]["errors"].as_u64() >= Some(5),
        "{report:#}"
    );
    assert_eq!(report["live"]["errors"], 0, "{report:#}");
    let share = failed as f64 / sent as f64;
    assert!(share < 0.15, "{failed} of {sent} failed");

    // The live version decides every request again.
    for i in 0..100 {
        assert_eq!(
            as_user(&proxy, "/healthz", &format!("user-{i}")).await.0,
            200
        );
    }
    let (_, reloads) = admin_get(&proxy.admin_url("/admin/reloads")).await;
    assert!(reloads.contains("rolled back at 10%"), "{reloads}");
    let (_, text) = admin_get(&proxy.admin_url("/metrics")).await;
    assert!(
        text.contains("lbx_canaries_ended_total{result=\"rolled_back\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_is_promoted_through_every_step_and_users_stay_on_one_version() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let proxy = live_on_a(&a, &b).await;
    // The candidate sends everything to b: which backend answers tells the version apart.
    let started = start_canary(
        &proxy,
        1,
        "[20, 50, 100]",
        "1500ms",
        // This test is about the steps and stickiness, not the p99 gate: on a machine loaded
        // by the whole suite, the p99 of a few dozen requests per side differed by more than
        // the default 5 ms slack once and rolled this good canary back.
        json!({"min_requests": 10, "p99_slack_ms": 250}),
    )
    .await;
    assert_eq!(started["canary"]["share_percent"], 20.0, "{started:#}");

    // At 20%: each user gets the same version every time, and about a fifth of them get it.
    let mut seen: HashMap<String, String> = HashMap::new();
    for round in 0..2 {
        for user in 0..100 {
            let user = format!("user-{user}");
            let (status, body) = as_user(&proxy, "/", &user).await;
            assert_eq!(status, 200);
            if round == 0 {
                seen.insert(user, body);
            } else if canary(&proxy).await["step"] == 0 {
                assert_eq!(seen[&user], body, "{user} changed version within a step");
            }
        }
    }
    let on_canary = seen.values().filter(|b| b.as_str() == "b").count();
    assert!(
        (5..=40).contains(&on_canary),
        "{on_canary} of 100 users on the canary at 20%"
    );

    // Keep traffic flowing until every step has passed and the candidate is in force.
    let mut user = 0;
    let promoted = eventually(Duration::from_secs(60), || {
        user += 1;
        let name = format!("user-{}", user % 200);
        let proxy = &proxy;
        async move {
            for _ in 0..10 {
                assert_eq!(as_user(proxy, "/", &name).await.0, 200);
            }
            let report = canary(proxy).await;
            (report["state"] == "promoted").then_some(report)
        }
    })
    .await;
    let Some(promoted) = promoted else {
        panic!("the canary was never promoted: {:#}", canary(&proxy).await);
    };
    let story: Vec<String> = promoted["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| format!("{}: {}", t["what"], t["detail"]))
        .collect();
    let steps = story.iter().filter(|t| t.starts_with("\"step\"")).count();
    assert_eq!(steps, 2, "20→50 and 50→100: {story:#?}");
    assert!(
        story.last().unwrap().contains("every step passed"),
        "{story:#?}"
    );

    // Promoted: every request now goes to b, and the history says a canary put it there.
    for i in 0..20 {
        assert_eq!(as_user(&proxy, "/", &format!("new-{i}")).await.1, "b");
    }
    let (_, history) = admin_get(&proxy.admin_url("/admin/plugin/history")).await;
    let history: Value = serde_json::from_str(&history).unwrap();
    let in_force = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["in_force"] == true)
        .cloned()
        .unwrap();
    assert_eq!(in_force["source"], "canary", "{history:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_requests_are_checked_and_only_one_runs_at_a_time() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let proxy = live_on_a(&a, &b).await;
    let url = proxy.admin_url("/admin/plugin/canary");
    let post = |body: String| {
        let url = url.clone();
        async move { admin_send("POST", &url, Some(&body), None).await }
    };
    let path = format!("{:?}", plugins::TEST_ROUTER);
    for (body, expected) in [
        (
            format!(r#"{{"path": {path}, "steps": [50, 10]}}"#),
            "shares must increase",
        ),
        (
            format!(r#"{{"path": {path}, "key": "query:x"}}"#),
            "is not a key",
        ),
        (
            format!(r#"{{"path": {path}, "step_duration": "1ms"}}"#),
            "step_duration",
        ),
        (
            format!(r#"{{"path": {path}, "gates": {{"max_p99_ratio": 0.5}}}}"#),
            "max_p99_ratio",
        ),
        (
            r#"{"path": "/nonexistent.wasm"}"#.to_string(),
            "cannot read",
        ),
    ] {
        let (status, answer) = post(body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer.contains(expected), "{body}: {answer}");
    }
    let (status, _) = admin_send("POST", &format!("{url}/abort"), None, None).await;
    assert_eq!(status, 409, "nothing to abort");

    let (status, _) = post(format!(r#"{{"path": {path}, "step_duration": "1h"}}"#)).await;
    assert_eq!(status, 200);
    let (status, answer) = post(format!(r#"{{"path": {path}}}"#)).await;
    assert_eq!(status, 409, "{answer}");
    let (_, plugin) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    let plugin: Value = serde_json::from_str(&plugin).unwrap();
    assert_eq!(plugin["canary"]["state"], "running", "{plugin:#}");
    assert_eq!(plugin["canary"]["share_percent"], 1.0, "{plugin:#}");

    let (status, answer) = admin_send("POST", &format!("{url}/abort"), None, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(canary(&proxy).await["state"], "aborted");
    let (status, _) = admin_send("POST", &format!("{url}/promote"), None, None).await;
    assert_eq!(status, 409, "nothing to promote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_a_canary_or_aborts_it_as_it_asked_and_never_promotes_it() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let dir = crate::support::TempDir::new("canary-restart");
    let live = dir.join("live.wasm");
    std::fs::copy(plugins::TEST_ROUTER, &live).unwrap();
    let config_file = dir.join("lbx.toml");
    let extra = "[plugin.config]\nbackend = 0\n[reload]\nwatch = false\n";
    std::fs::write(
        &config_file,
        config(Some(live.to_str().unwrap()), &[&a, &b], extra),
    )
    .unwrap();
    let run = || crate::support::LbxProcess::run(&["--config", config_file.to_str().unwrap()]);
    let get = |lbx: &crate::support::LbxProcess, path: &str| {
        let url = format!("http://{}{path}", lbx.admin);
        async move {
            let (_, body) = admin_get(&url).await;
            serde_json::from_str::<Value>(&body).unwrap()
        }
    };
    let start = |lbx: &crate::support::LbxProcess, on_restart: &str| {
        let url = format!("http://{}/admin/plugin/canary", lbx.admin);
        let body = format!(
            r#"{{"path": {:?}, "config": {{"backend": 1}}, "steps": [20, 100],
                "step_duration": "1h", "key": "header:x-user", "on_restart": "{on_restart}"}}"#,
            plugins::TEST_ROUTER
        );
        async move {
            let (status, answer) = admin_send("POST", &url, Some(&body), None).await;
            assert_eq!(status, 200, "{answer}");
        }
    };

    // Resume: after a restart the canary takes its share again, and was not promoted.
    let lbx = run();
    start(&lbx, "resume").await;
    let live_sha = get(&lbx, "/admin/plugin").await["sha256"].clone();
    drop(lbx);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lbx.canary.json")).unwrap())
            .unwrap();
    assert_eq!(saved["state"], "running", "{saved:#}");
    let lbx = run();
    let resumed = get(&lbx, "/admin/plugin/canary").await;
    assert_eq!(resumed["state"], "running", "{resumed:#}");
    assert_eq!(resumed["share_percent"], 20.0);
    assert_eq!(
        get(&lbx, "/admin/plugin").await["sha256"],
        live_sha,
        "never promoted"
    );
    let (_, reloads) = admin_get(&format!("http://{}/admin/reloads", lbx.admin)).await;
    assert!(
        reloads.contains("canary resumed after a restart"),
        "{reloads}"
    );

    // Aborted by the operator: a restart leaves it ended.
    let (status, _) = admin_send(
        "POST",
        &format!("http://{}/admin/plugin/canary/abort", lbx.admin),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200);
    drop(lbx);
    let lbx = run();
    assert_eq!(get(&lbx, "/admin/plugin/canary").await, Value::Null);

    // Abort on restart: ended by the restart, recorded as such.
    start(&lbx, "abort").await;
    drop(lbx);
    let lbx = run();
    assert_eq!(get(&lbx, "/admin/plugin/canary").await, Value::Null);
    let (_, reloads) = admin_get(&format!("http://{}/admin/reloads", lbx.admin)).await;
    assert!(reloads.contains("aborted by a restart"), "{reloads}");
    let saved = std::fs::read_to_string(dir.join("lbx.canary.json")).unwrap();
    assert!(saved.contains("\"aborted\""), "{saved}");
    assert_eq!(
        get(&lbx, "/admin/plugin").await["sha256"],
        live_sha,
        "never promoted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_from_the_config_starts_with_lbx_and_with_a_reload_that_changes_it_but_only_once()
{
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let dir = crate::support::TempDir::new("canary-config");
    let live = dir.join("live.wasm");
    std::fs::copy(plugins::TEST_ROUTER, &live).unwrap();
    let config_file = dir.join("lbx.toml");
    let write = |steps: &str| {
        let extra = format!(
            "[plugin.config]\nbackend = 0\n[plugin.canary]\npath = {:?}\nsteps = {steps}\n\
             step_duration = \"1h\"\nkey = \"header:x-user\"\nconfig = {{ backend = 1 }}\n\
             [reload]\nwatch = false\n",
            plugins::TEST_ROUTER
        );
        let toml = config(Some(live.to_str().unwrap()), &[&a, &b], &extra);
        std::fs::write(&config_file, toml).unwrap();
    };
    write("[20, 100]");
    let run = || crate::support::LbxProcess::run(&["--config", config_file.to_str().unwrap()]);
    let canary_of = |lbx: &crate::support::LbxProcess| {
        let url = format!("http://{}/admin/plugin/canary", lbx.admin);
        async move { serde_json::from_str::<Value>(&admin_get(&url).await.1).unwrap() }
    };

    let lbx = run();
    let started = canary_of(&lbx).await;
    assert_eq!(started["state"], "running", "{started:#}");
    assert_eq!(started["share_percent"], 20.0);
    drop(lbx);

    // A restart aborts it (the default on_restart) and does not start the same one again.
    let lbx = run();
    assert_eq!(canary_of(&lbx).await, Value::Null);
    let (_, reloads) = admin_get(&format!("http://{}/admin/reloads", lbx.admin)).await;
    assert!(reloads.contains("aborted by a restart"), "{reloads}");

    // A reload that changes the table starts the new canary.
    write("[30, 100]");
    let (status, answer) =
        crate::support::admin_post(&format!("http://{}/admin/reload", lbx.admin)).await;
    assert_eq!(status, 200, "{answer}");
    let restarted = canary_of(&lbx).await;
    assert_eq!(restarted["state"], "running", "{restarted:#}");
    assert_eq!(restarted["share_percent"], 30.0);
}
