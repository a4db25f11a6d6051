//! Backends added, drained, re-weighted and removed through the admin API while traffic flows,
//! and kept across config reloads and restarts through the state file.

use std::time::Duration;

use serde_json::Value;

use crate::support::{
    LBX_BIN, LbxProcess, LoadGenerator, TempDir, TestBackend, TestProxy, admin_get, admin_post,
    admin_send, config, eventually, get, http1_client, plugins, run_lbx_to_exit, run_tool, send,
    tally,
};

/// The backends `GET /admin/backends` lists.
async fn backends(admin: &str) -> Vec<Value> {
    let (status, body) = admin_get(&format!("{admin}/admin/backends")).await;
    assert_eq!(status, 200, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    json["backends"].as_array().unwrap().clone()
}

async fn ids(admin: &str) -> Vec<String> {
    backends(admin)
        .await
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

async fn backend(admin: &str, id: &str) -> Option<Value> {
    backends(admin).await.into_iter().find(|b| b["id"] == id)
}

/// Bodies of `n` sequential GETs (each backend answers with its name).
async fn answers(url: &str, n: usize) -> std::collections::HashMap<String, usize> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        let (status, _, body) = get(url).await;
        assert_eq!(status, 200, "{body}");
        bodies.push(body);
    }
    tally(bodies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_added_by_the_api_serves_and_survives_a_config_reload_and_a_restart() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let c = TestBackend::named("c").await;
    let dir = TempDir::new("runtime-add");
    let file = dir.join("lbx.toml");
    // Round robin over the backends the plugin was told about: the API's backend gets traffic
    // only if the plugin received `backends-changed`.
    let plugin = Some(plugins::ROUND_ROBIN);
    std::fs::write(&file, config(plugin, &[&a], "[reload]\nwatch = false\n")).unwrap();
    let args = ["--config", file.to_str().unwrap()];
    let lbx = LbxProcess::run(&args);
    let admin = format!("http://{}", lbx.admin);
    let proxy = format!("http://{}/", lbx.addr);

    let posted = format!(
        r#"{{"url": "{}", "id": "web-b", "weight": 2, "labels": {{"pool": "api"}}}}"#,
        b.url()
    );
    let (status, body) = admin_send(
        "POST",
        &format!("{admin}/admin/backends"),
        Some(&posted),
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(created["id"], "web-b");
    assert_eq!(created["source"], "api");
    assert_eq!(created["weight"], 2);
    assert_eq!(created["labels"]["pool"], "api");
    let seen = answers(&proxy, 20).await;
    assert_eq!(seen.get("b"), Some(&10), "{seen:?}");

    // The file gains a backend; the API's one stays.
    std::fs::write(
        &file,
        config(plugin, &[&a, &c], "[reload]\nwatch = false\n"),
    )
    .unwrap();
    let (status, body) = admin_post(&format!("{admin}/admin/reload")).await;
    assert_eq!(status, 200, "{body}");
    let id_of = |backend: &TestBackend| backend.url()["http://".len()..].to_string();
    assert_eq!(ids(&admin).await, [id_of(&a), id_of(&c), "web-b".into()]);
    let seen = answers(&proxy, 30).await;
    assert_eq!(
        seen.get("b"),
        Some(&10),
        "a, c and the API's b share: {seen:?}"
    );

    // A restart re-applies the state file.
    drop(lbx);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("lbx.state.json")).unwrap())
            .unwrap();
    assert_eq!(state["added"][0]["backend"]["id"], "web-b", "{state}");
    let lbx = LbxProcess::run(&args);
    let admin = format!("http://{}", lbx.admin);
    let restored = backend(&admin, "web-b").await.expect("web-b after restart");
    assert_eq!(
        (restored["source"].clone(), restored["weight"].clone()),
        ("api".into(), 2.into())
    );
    let before = b.requests();
    answers(&format!("http://{}/", lbx.addr), 30).await;
    assert!(b.requests() > before, "web-b serves after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_conflicting_changes_are_refused_naming_the_problem() {
    let a = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(None, &[&a], "")).await;
    let url = proxy.admin_url("/admin/backends");
    let post = |json: &'static str| {
        let url = url.clone();
        async move { admin_send("POST", &url, Some(json), None).await }
    };
    for (json, field) in [
        (r#"{"url": "ftp://127.0.0.1:1", "id": "x"}"#, "url"),
        (
            r#"{"url": "http://127.0.0.1:1", "id": "x", "weight": 0}"#,
            "weight",
        ),
        (
            r#"{"url": "http://127.0.0.1:1", "id": "x", "weight": "heavy"}"#,
            "weight",
        ),
        (
            r#"{"url": "http://127.0.0.1:1", "id": "x", "wieght": 2}"#,
            "wieght",
        ),
        (r#"{"id": "x"}"#, "url"),
        (r#"{"url": "http://127.0.0.1:1", "id": ""}"#, "id"),
        (
            r#"{"url": "http://127.0.0.1:1", "labels": {"pool": 5}}"#,
            "labels.pool",
        ),
    ] {
        let (status, body) = post(json).await;
        assert_eq!(status, 422, "{json}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["problems"][0]["field"], field, "{json}: {body}");
    }
    let (status, body) = post(r#"{"url": "http://127.0.0.1:1", "id": "x"}"#).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = post(r#"{"url": "http://127.0.0.1:2", "id": "x"}"#).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("already exists"), "{body}");
    let (status, _) = admin_send("PATCH", &format!("{url}/nope"), Some("{}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = admin_send("DELETE", &format!("{url}/nope"), None, None).await;
    assert_eq!(status, 404);
    let (status, body) =
        admin_send("PATCH", &format!("{url}/x"), Some(r#"{"weight": 0}"#), None).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        ids(&proxy.admin_url("")).await.len(),
        2,
        "nothing else changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_backend_gets_no_new_requests_until_undrained() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let proxy = TestProxy::start(&config(None, &[&a, &b], "")).await;
    let admin = proxy.admin_url("");
    let b_id = &b.url()["http://".len()..];
    let patch = |drain: bool| {
        let url = format!("{admin}/admin/backends/{b_id}");
        async move {
            let json = format!(r#"{{"drain": {drain}}}"#);
            admin_send("PATCH", &url, Some(&json), None).await
        }
    };
    let (status, body) = patch(true).await;
    assert_eq!(status, 200, "{body}");
    let drained: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (drained["state"].clone(), drained["usable"].clone()),
        ("draining".into(), false.into())
    );
    assert_eq!(answers(&proxy.url("/"), 20).await.get("b"), None);

    let (status, _) = patch(false).await;
    assert_eq!(status, 200);
    let seen = answers(&proxy.url("/"), 20).await;
    assert!(seen.contains_key("b"), "undrained b serves again: {seen:?}");
    assert_eq!(backend(&admin, b_id).await.unwrap()["state"], "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_backend_under_load_fails_no_request() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::slow("b", Duration::from_millis(5)).await;
    let proxy = TestProxy::start(&config(None, &[&a, &b], "")).await;
    let admin = proxy.admin_url("");
    let load = LoadGenerator::start(proxy.url("/"), 8);
    eventually(Duration::from_secs(5), || async {
        (b.requests() > 20).then_some(())
    })
    .await
    .expect("b takes traffic");

    let b_id = &b.url()["http://".len()..];
    let (status, body) = admin_send(
        "DELETE",
        &format!("{admin}/admin/backends/{b_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually(Duration::from_secs(10), || async {
        (backend(&admin, b_id).await.is_none()).then_some(())
    })
    .await
    .expect("b leaves the set once its requests are done");
    let after_removal = b.requests();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = load.finish().await;
    assert!(
        stats.failed.is_empty(),
        "{:?}",
        &stats.failed[..stats.failed.len().min(5)]
    );
    assert!(stats.ok > 100, "load kept flowing: {}", stats.ok);
    assert_eq!(
        b.requests(),
        after_removal,
        "no request reached b after it left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_lets_in_flight_requests_finish_and_now_removes_at_once() {
    let slow = TestBackend::slow("slow", Duration::from_millis(800)).await;
    let fast = TestBackend::named("fast").await;
    let other = TestBackend::named("other").await;
    let proxy = TestProxy::start(&config(None, &[&slow, &fast, &other], "")).await;
    let admin = proxy.admin_url("");
    let slow_id = slow.url()["http://".len()..].to_string();
    let fast_id = fast.url()["http://".len()..].to_string();
    let other_id = other.url()["http://".len()..].to_string();
    for id in [&fast_id, &other_id] {
        let url = format!("{admin}/admin/backends/{id}");
        assert_eq!(
            admin_send("PATCH", &url, Some(r#"{"drain": true}"#), None)
                .await
                .0,
            200
        );
    }
    // Only `slow` is usable: this request goes there and takes 800 ms.
    let url = proxy.url("/");
    let in_flight = tokio::spawn(async move { get(&url).await });
    eventually(Duration::from_secs(5), || async {
        (slow.requests() == 1).then_some(())
    })
    .await
    .unwrap();
    for id in [&fast_id, &other_id] {
        let url = format!("{admin}/admin/backends/{id}");
        assert_eq!(
            admin_send("PATCH", &url, Some(r#"{"drain": false}"#), None)
                .await
                .0,
            200
        );
    }
    let (status, body) = admin_send(
        "DELETE",
        &format!("{admin}/admin/backends/{slow_id}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let removing = backend(&admin, &slow_id)
        .await
        .expect("still listed while in flight");
    assert_eq!(
        (removing["state"].clone(), removing["removing"].clone()),
        ("draining".into(), true.into())
    );
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow"));
    eventually(Duration::from_secs(5), || async {
        backend(&admin, &slow_id).await.is_none().then_some(())
    })
    .await
    .expect("gone once idle");

    // `now=true` takes it out at once, however busy.
    let url = format!("{admin}/admin/backends/{fast_id}?now=true");
    let (status, body) = admin_send("DELETE", &url, None, None).await;
    assert_eq!(status, 202, "{body}");
    assert!(body.contains("\"removed\""), "{body}");
    assert_eq!(ids(&admin).await, std::slice::from_ref(&other_id));
    // The last backend is kept: removing it would leave nothing to route to.
    let url = format!("{admin}/admin/backends/{other_id}");
    assert_eq!(admin_send("DELETE", &url, None, None).await.0, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_wins_over_an_api_change_it_edits_and_other_changes_are_kept() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let c = TestBackend::named("c").await;
    let dir = TempDir::new("runtime-merge");
    let file = dir.join("lbx.toml");
    let write = |weight_a: u32| {
        let text = format!(
            "[reload]\nwatch = false\n[[backend]]\nurl = \"{}\"\nid = \"a\"\nweight = {weight_a}\n\
             [[backend]]\nurl = \"{}\"\nid = \"b\"\n[[backend]]\nurl = \"{}\"\nid = \"c\"\n",
            a.url(),
            b.url(),
            c.url()
        );
        std::fs::write(&file, text).unwrap();
    };
    write(1);
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let admin = format!("http://{}", lbx.admin);
    let send = |method: &'static str, path: &'static str, json: Option<&'static str>| {
        let url = format!("{admin}{path}");
        async move { admin_send(method, &url, json, None).await }
    };
    assert_eq!(
        send("PATCH", "/admin/backends/a", Some(r#"{"weight": 5}"#))
            .await
            .0,
        200
    );
    assert_eq!(
        send("PATCH", "/admin/backends/b", Some(r#"{"drain": true}"#))
            .await
            .0,
        200
    );
    assert_eq!(
        send("DELETE", "/admin/backends/c?now=true", None).await.0,
        202
    );

    // An edit of `a` in the file: the file's weight wins and the override is cleared. `b`'s drain
    // and `c`'s removal were made against entries the file did not touch: they stay.
    write(3);
    let (status, body) = admin_post(&format!("{admin}/admin/reload")).await;
    assert_eq!(status, 200, "{body}");
    let listed = backends(&admin).await;
    let ids: Vec<_> = listed.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(listed[0]["weight"], 3);
    assert_eq!(listed[1]["state"], "draining");
    let state = std::fs::read_to_string(dir.join("lbx.state.json")).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(state["overrides"].as_array().unwrap().len(), 1, "{state}");
    assert_eq!(state["overrides"][0]["id"], "b");
    assert_eq!(state["removed"][0]["id"], "c");
    // The log is written by lbx's writer thread and read by ours: give it a moment.
    let logged = eventually(Duration::from_secs(5), || async {
        lbx.log()
            .contains("the file's version is in force")
            .then_some(())
    })
    .await;
    assert!(logged.is_some(), "{}", lbx.log());

    let (status, body) = admin_get(&format!("{admin}/admin/reloads")).await;
    assert_eq!(status, 200);
    let history: Value = serde_json::from_str(&body).unwrap();
    let whats: Vec<_> = history["reloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["what"].as_str().unwrap())
        .collect();
    assert_eq!(
        whats,
        ["config", "backends", "backends", "backends"],
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_changes_need_it() {
    let a = TestBackend::named("a").await;
    let dir = TempDir::new("runtime-token");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "0123456789abcdef0123\n").unwrap();
    let extra = format!("[admin]\ntoken_file = {:?}\n", token_file.to_str().unwrap());
    let proxy = TestProxy::start(&config(None, &[&a], &extra)).await;
    let url = proxy.admin_url("/admin/backends");
    let json = r#"{"url": "http://127.0.0.1:1", "id": "x"}"#;
    assert_eq!(admin_send("POST", &url, Some(json), None).await.0, 401);
    assert_eq!(
        admin_send("POST", &url, Some(json), Some("wrong")).await.0,
        401
    );
    let (status, body) = admin_send("POST", &url, Some(json), Some("0123456789abcdef0123")).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_the_state_file_and_run_refuses_a_damaged_one() {
    let a = TestBackend::named("a").await;
    let dir = TempDir::new("runtime-state-check");
    let file = dir.join("lbx.toml");
    std::fs::write(&file, config(None, &[&a], "")).unwrap();
    let state = dir.join("lbx.state.json");
    let config_arg = file.to_str().unwrap();

    // A backend added by the API is part of what validate builds and lists.
    let added =
        r#"{"version": 1, "added": [{"backend": {"url": "http://127.0.0.1:1", "id": "web-9"}}]}"#;
    std::fs::write(&state, added).unwrap();
    let (ok, stdout, stderr) = run_tool(LBX_BIN, args(&["validate", "--config", config_arg])).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("web-9"), "{stdout}");

    // A damaged state file: validate names it, and run refuses to start rather than serve a
    // set the operator did not build.
    std::fs::write(&state, "{\"version\": 1, \"added\": [").unwrap();
    let (ok, stdout, stderr) = run_tool(LBX_BIN, args(&["validate", "--config", config_arg])).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("admin.state_file") && stderr.contains("lbx.state.json"),
        "{stderr}"
    );
    let (ok, stderr) = run_lbx_to_exit(&[
        "run",
        "--config",
        config_arg,
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("lbx.state.json") && stderr.contains("not valid"),
        "{stderr}"
    );
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A config file over backends with ids `a`, `one` and `b` (with `b_weight`), in that order,
/// round robin (so each backend in force gets an exact share), no file watching.
fn named_backends_file(
    a: &TestBackend,
    one: &TestBackend,
    b: &TestBackend,
    b_weight: u32,
) -> String {
    let mut toml = format!(
        "[plugin]\npath = {:?}\ndeadline = \"1s\"\n[reload]\nwatch = false\n",
        plugins::ROUND_ROBIN
    );
    for (backend, id, weight) in [(a, "a", 1), (one, "one", 1), (b, "b", b_weight)] {
        toml.push_str(&format!(
            "[[backend]]\nurl = {:?}\nid = {id:?}\nweight = {weight}\n",
            backend.url()
        ));
    }
    toml
}

/// The state file as JSON (`{}` if there is none).
fn state(dir: &TempDir) -> Value {
    match std::fs::read_to_string(dir.join("lbx.state.json")) {
        Ok(text) => serde_json::from_str(&text).unwrap(),
        Err(_) => serde_json::json!({}),
    }
}

/// The ids a section of the state file (`added`, `overrides`, `removed`) names.
fn state_ids(dir: &TempDir, section: &str) -> Vec<String> {
    let state = state(dir);
    let entries = state[section].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .map(|e| {
            let id = e.get("id").unwrap_or(&e["backend"]["id"]);
            id.as_str().unwrap().to_string()
        })
        .collect()
}

/// How many requests `backend` served out of `n` sent through `proxy`.
async fn share(proxy: &str, backend: &TestBackend, n: usize) -> usize {
    let before = backend.requests();
    answers(proxy, n).await;
    backend.requests() - before
}

/// POST a backend body; returns status, `Location` and body.
async fn post_backend(admin: &str, json: &str) -> (u16, Option<String>, String) {
    let request = http::Request::post(format!("{admin}/admin/backends"))
        .header("content-type", "application/json")
        .body(http_body_util::BodyExt::boxed(http_body_util::Full::new(
            bytes::Bytes::from(json.to_string()),
        )))
        .unwrap();
    let (status, headers, body) = send(&http1_client(), request).await;
    let location = headers
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    (status.as_u16(), location, body)
}

/// Reload the config through SIGHUP and wait until the reload history shows it applied (so
/// the file must have changed).
async fn sighup_reload(lbx: &LbxProcess, admin: &str) {
    let configs = || async {
        let (_, body) = admin_get(&format!("{admin}/admin/reloads")).await;
        let history: Value = serde_json::from_str(&body).unwrap();
        history["reloads"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["what"] == "config" && r["result"] == "applied")
            .count()
    };
    let before = configs().await;
    let status = std::process::Command::new("kill")
        .args(["-HUP", &lbx.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    eventually(Duration::from_secs(10), || async {
        (configs().await > before).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("SIGHUP did not reload:\n{}", lbx.log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backend_removed_and_posted_again_serves_and_stays_across_reloads_and_restarts() {
    let a = TestBackend::named("a").await;
    let one = TestBackend::named("one").await;
    let b = TestBackend::named("b").await;
    let dir = TempDir::new("runtime-readd");
    let file = dir.join("lbx.toml");
    std::fs::write(&file, named_backends_file(&a, &one, &b, 1)).unwrap();
    let args = ["--config", file.to_str().unwrap()];
    let mut lbx = LbxProcess::run(&args);
    let mut admin = format!("http://{}", lbx.admin);
    let mut proxy = format!("http://{}/", lbx.addr);
    assert_eq!(share(&proxy, &one, 30).await, 10, "one serves at first");

    // Removed at once: gone from the API, the traffic and (as a removal) the state file, and it
    // stays removed across a reload and a restart.
    let url = format!("{admin}/admin/backends/one?now=true");
    let (status, body) = admin_send("DELETE", &url, None, None).await;
    assert_eq!(status, 202, "{body}");
    for step in ["removed", "reloaded", "restarted"] {
        match step {
            "reloaded" => {
                let (status, body) = admin_post(&format!("{admin}/admin/reload")).await;
                assert_eq!(status, 200, "{body}");
            }
            "restarted" => {
                drop(lbx);
                lbx = LbxProcess::run(&args);
                admin = format!("http://{}", lbx.admin);
                proxy = format!("http://{}/", lbx.addr);
            }
            _ => {}
        }
        assert_eq!(ids(&admin).await, ["a", "b"], "{step}");
        let (status, _) = admin_get(&format!("{admin}/admin/backends/one")).await;
        assert_eq!(status, 404, "{step}");
        assert_eq!(share(&proxy, &one, 20).await, 0, "{step}: one gets nothing");
        assert_eq!(state_ids(&dir, "removed"), ["one"], "{step}");
    }

    // Posted again with the file's settings: the removal is undone, the file's entry is back
    // in its place, and the answer says so.
    let posted = format!(r#"{{"url": "{}", "id": "one"}}"#, one.url());
    let (status, location, body) = post_backend(&admin, &posted).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(location.as_deref(), Some("/admin/backends/one"));
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (created["id"].as_str(), created["source"].as_str()),
        (Some("one"), Some("config")),
        "{body}"
    );
    assert!(
        state(&dir)
            .get("removed")
            .is_none_or(|r| r == &Value::Array(vec![]))
    );
    for step in ["posted", "reloaded by SIGHUP", "restarted"] {
        match step {
            "reloaded by SIGHUP" => {
                // An edit of another backend: `one`'s restored entry is untouched by it.
                std::fs::write(&file, named_backends_file(&a, &one, &b, 2)).unwrap();
                sighup_reload(&lbx, &admin).await;
            }
            "restarted" => {
                drop(lbx);
                lbx = LbxProcess::run(&args);
                admin = format!("http://{}", lbx.admin);
                proxy = format!("http://{}/", lbx.addr);
            }
            _ => {}
        }
        assert_eq!(ids(&admin).await, ["a", "one", "b"], "{step}");
        let (status, body) = admin_get(&format!("{admin}/admin/backends/one")).await;
        assert_eq!(status, 200, "{step}: {body}");
        assert_eq!(
            share(&proxy, &one, 30).await,
            10,
            "{step}: one serves its share"
        );
        assert!(
            state_ids(&dir, "removed").is_empty(),
            "{step}: {}",
            state(&dir)
        );
        assert!(
            state_ids(&dir, "added").is_empty(),
            "{step}: {}",
            state(&dir)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_backend_posted_again_with_other_settings_is_overridden_or_refused() {
    let a = TestBackend::named("a").await;
    let one = TestBackend::named("one").await;
    let b = TestBackend::named("b").await;
    let elsewhere = TestBackend::named("elsewhere").await;
    let dir = TempDir::new("runtime-readd-override");
    let file = dir.join("lbx.toml");
    std::fs::write(&file, named_backends_file(&a, &one, &b, 1)).unwrap();
    let args = ["--config", file.to_str().unwrap()];
    let lbx = LbxProcess::run(&args);
    let admin = format!("http://{}", lbx.admin);

    // An id the file defines and that is in force is taken.
    let (status, _, body) =
        post_backend(&admin, &format!(r#"{{"url": "{}", "id": "a"}}"#, a.url())).await;
    assert_eq!(status, 409, "{body}");

    let url = format!("{admin}/admin/backends/one?now=true");
    assert_eq!(admin_send("DELETE", &url, None, None).await.0, 202);
    // Another address under the file's id: the file says where `one` is; refused, and nothing
    // changes.
    let (status, _, body) = post_backend(
        &admin,
        &format!(r#"{{"url": "{}", "id": "one"}}"#, elsewhere.url()),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("url"), "{body}");
    assert_eq!(ids(&admin).await, ["a", "b"]);
    assert_eq!(state_ids(&dir, "removed"), ["one"]);

    // Another weight and labels: the file's entry is back, with them as an override.
    let posted = format!(
        r#"{{"url": "{}", "id": "one", "weight": 3, "labels": {{"pool": "canary"}}}}"#,
        one.url()
    );
    let (status, _, body) = post_backend(&admin, &posted).await;
    assert_eq!(status, 201, "{body}");
    let created: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (created["weight"].clone(), created["labels"]["pool"].clone()),
        (3.into(), "canary".into()),
        "{body}"
    );
    assert_eq!(state_ids(&dir, "overrides"), ["one"]);
    assert_eq!(state(&dir)["overrides"][0]["weight"], 3);

    // A patch of a file backend, too, is kept across a restart.
    let url = format!("{admin}/admin/backends/b");
    let (status, body) = admin_send("PATCH", &url, Some(r#"{"drain": true}"#), None).await;
    assert_eq!(status, 200, "{body}");
    drop(lbx);
    let lbx = LbxProcess::run(&args);
    let admin = format!("http://{}", lbx.admin);
    let proxy = format!("http://{}/", lbx.addr);
    let restored = backend(&admin, "one").await.expect("one after the restart");
    assert_eq!(
        (restored["weight"].clone(), restored["source"].clone()),
        (3.into(), "config".into())
    );
    assert_eq!(backend(&admin, "b").await.unwrap()["state"], "draining");
    assert_eq!(share(&proxy, &b, 20).await, 0, "drained b gets nothing");
    assert!(share(&proxy, &one, 20).await > 0, "one serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_several_problems_is_refused_naming_every_one() {
    let a = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(None, &[&a], "")).await;
    let url = proxy.admin_url("/admin/backends");
    let a_id = &a.url()["http://".len()..];
    let fields = |body: &str| -> Vec<String> {
        let answer: Value = serde_json::from_str(body).unwrap();
        let mut fields: Vec<String> = answer["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["field"].as_str().unwrap().to_string())
            .collect();
        fields.sort();
        fields
    };
    for (method, path, json, expected) in [
        (
            "POST",
            String::new(),
            r#"{"url": 5, "wieght": 2, "weight": "x"}"#,
            &["url", "weight", "wieght"][..],
        ),
        // Type errors and problems of valid values, together.
        (
            "POST",
            String::new(),
            r#"{"url": "ftp://127.0.0.1:1", "id": "", "labels": {"pool": 5, "zone": true},
                "health": {"path": "/h", "rise": "x", "fall": -1}}"#,
            &[
                "health.fall",
                "health.rise",
                "id",
                "labels.pool",
                "labels.zone",
                "url",
            ][..],
        ),
        (
            "POST",
            String::new(),
            r#"{"weight": "x"}"#,
            &["url", "weight"][..],
        ),
        (
            "PATCH",
            format!("/{a_id}"),
            r#"{"weight": 0, "drain": "yes", "colour": 1}"#,
            &["colour", "drain", "weight"][..],
        ),
    ] {
        let (status, body) = admin_send(method, &format!("{url}{path}"), Some(json), None).await;
        assert_eq!(status, 422, "{json}: {body}");
        assert_eq!(fields(&body), expected, "{json}: {body}");
    }
    assert_eq!(ids(&proxy.admin_url("")).await, [a_id], "nothing changed");
}
