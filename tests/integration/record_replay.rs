//! Recording live routing decisions and replaying them offline: `[record]` and
//! `POST /admin/record` write a sample of first decisions to a file; `lbx replay` runs a
//! plugin against it and reports agreement, shares, traps and fallbacks.

use serde_json::Value;

use crate::support::{
    LBX_BIN, TempDir, TestBackend, TestProxy, admin_get, admin_send, config, get_with, metric,
    plugins, run_tool,
};

/// `lbx replay --json` with `args` before the recording files; its report.
async fn replay_json(args: &[&str], files: &[&std::path::Path]) -> Value {
    let (ok, stdout, stderr) = replay(args, files, true).await;
    assert!(ok, "lbx replay failed: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

async fn replay(args: &[&str], files: &[&std::path::Path], json: bool) -> (bool, String, String) {
    let mut all: Vec<String> = vec!["replay".into(), "--deadline".into(), "1s".into()];
    if json {
        all.push("--json".into());
    }
    all.extend(args.iter().map(|a| a.to_string()));
    all.extend(files.iter().map(|f| f.display().to_string()));
    run_tool(LBX_BIN, all).await
}

/// `POST /admin/record` with `json`; status and parsed answer.
async fn switch(proxy: &TestProxy, json: &str) -> (u16, Value) {
    let (status, body) =
        admin_send("POST", &proxy.admin_url("/admin/record"), Some(json), None).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn id(backend: &TestBackend) -> String {
    backend.url().trim_start_matches("http://").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_reproduces_the_live_decisions_and_shows_a_changed_plugins_differences() {
    let dir = TempDir::new("record");
    let file = dir.join("live.lbxr");
    let backends = [
        TestBackend::named("a").await,
        TestBackend::named("b").await,
        TestBackend::named("c").await,
    ];
    let extra = format!(
        "[plugin.config]\nkey = \"header:x-user\"\n[record]\npath = {:?}\n",
        file
    );
    let refs: Vec<&TestBackend> = backends.iter().collect();
    let proxy = TestProxy::start(&config(Some(plugins::CONSISTENT_HASH), &refs, &extra)).await;

    const REQUESTS: usize = 150;
    for i in 0..REQUESTS {
        let user = format!("user-{}", i % 40);
        let tenant = format!("tenant-{}", i % 7);
        let authorization = format!("Bearer secret-token-{i}");
        let cookie = format!("session=s3cr3t-{}; theme=darkmode", i % 5);
        let (status, _, _) = get_with(
            &proxy,
            &format!("/items/{i}?page={}", i % 3),
            &[
                ("x-user", &user),
                ("x-tenant", &tenant),
                ("authorization", &authorization),
                ("cookie", &cookie),
            ],
        )
        .await;
        assert_eq!(status, 200);
    }
    // Switching off writes out everything queued before it answers.
    let (status, state) = switch(&proxy, r#"{"enabled": false}"#).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["enabled"], false, "{state}");
    assert_eq!(state["written"], REQUESTS as u64, "{state}");
    assert_eq!(state["dropped"], 0, "{state}");

    // The file: a versioned header, the backend set, then decisions with no secret in clear.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["format"], "lbx-recording", "{header}");
    assert_eq!(header["version"], 1, "{header}");
    let set: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(set["type"], "backends", "{set}");
    assert_eq!(set["backends"][2]["id"], id(&backends[2]), "{set}");
    assert_eq!(lines.clone().count(), REQUESTS);
    for secret in ["secret-token", "s3cr3t", "darkmode", "Bearer"] {
        assert!(!text.contains(secret), "{secret} is in the recording");
    }
    let first: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let headers = first["headers"].as_array().unwrap();
    let field = |name: &str| {
        headers
            .iter()
            .find(|h| h[0] == name)
            .map(|h| h[1].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(field("x-user"), "user-0");
    assert!(
        field("authorization").starts_with("hmac-sha256:"),
        "{first}"
    );
    assert!(
        field("cookie").starts_with("session=hmac-sha256:")
            && field("cookie").contains("; theme=hmac-sha256:"),
        "{first}"
    );
    assert_eq!(first["target"], "/items/0?page=0", "{first}");
    assert_eq!(first["by"], "plugin", "{first}");

    // The same plugin and config: every decision as live, shares as the backends saw them.
    let same = replay_json(
        &[
            "--plugin",
            plugins::CONSISTENT_HASH,
            "--plugin-config",
            r#"{"key": "header:x-user"}"#,
        ],
        &[&file],
    )
    .await;
    assert_eq!(same["decisions"], REQUESTS as u64, "{same:#}");
    assert_eq!(same["agreement"], 1.0, "{same:#}");
    assert_eq!(same["traps"], 0, "{same:#}");
    assert_eq!(same["fallbacks"], 0, "{same:#}");
    assert!(same["us_p50"].as_f64().unwrap() > 0.0, "{same:#}");
    assert!(
        same["us_p99"].as_f64() >= same["us_p50"].as_f64(),
        "{same:#}"
    );
    assert_eq!(same["differences"], Value::Array(vec![]), "{same:#}");
    for backend in &backends {
        assert_eq!(
            same["per_backend"][id(backend)].as_u64(),
            Some(backend.requests() as u64),
            "{same:#}"
        );
    }

    // Another key: the plugin moves requests, and the replay says which.
    let moved = replay_json(
        &[
            "--plugin",
            plugins::CONSISTENT_HASH,
            "--plugin-config",
            r#"{"key": "header:x-tenant"}"#,
        ],
        &[&file],
    )
    .await;
    assert_eq!(moved["decisions"], REQUESTS as u64, "{moved:#}");
    let agreement = moved["agreement"].as_f64().unwrap();
    assert!(agreement < 1.0, "{moved:#}");
    let differences = moved["differences"].as_array().unwrap();
    assert!(!differences.is_empty(), "{moved:#}");
    let differing: u64 = differences
        .iter()
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        differing + moved["agreed"].as_u64().unwrap(),
        REQUESTS as u64
    );
    assert!(differences.iter().all(|d| d["live"] != d["replay"]));

    // Another plugin altogether, reported as text.
    let (ok, text, stderr) = replay(&["--plugin", plugins::ROUND_ROBIN], &[&file], false).await;
    assert!(ok, "{stderr}");
    assert!(text.contains("decisions 150: agreement"), "{text}");
    assert!(!text.contains("agreement 100.0%"), "{text}");
    assert!(text.contains("differences (live -> replay)"), "{text}");

    // A plugin that has no opinion without its header: every decision a fallback.
    let absent = replay_json(
        &[
            "--plugin",
            plugins::CONSISTENT_HASH,
            "--plugin-config",
            r#"{"key": "header:x-absent"}"#,
        ],
        &[&file],
    )
    .await;
    assert_eq!(absent["fallbacks"], REQUESTS as u64, "{absent:#}");
    assert_eq!(absent["agreement"], 0.0, "{absent:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_is_switched_at_runtime_and_rotated_at_its_size_bound() {
    let dir = TempDir::new("record-rotate");
    let file = dir.join("rec.lbxr");
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let extra = format!(
        "[plugin.config]\nkey = \"path\"\n[record]\nenabled = false\npath = {:?}\nmax_size = 4096\n",
        file
    );
    let proxy = TestProxy::start(&config(Some(plugins::CONSISTENT_HASH), &[&a, &b], &extra)).await;

    // Configured but off: nothing is recorded.
    let (status, body) = admin_get(&proxy.admin_url("/admin/record")).await;
    assert_eq!(status, 200);
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["enabled"], false, "{state}");
    for i in 0..5 {
        get_with(&proxy, &format!("/off/{i}"), &[]).await;
    }
    assert!(!file.exists());

    // A file that is not a recording is never moved or overwritten.
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "keep me\n").unwrap();
    let (status, refused) = switch(
        &proxy,
        &format!(r#"{{"enabled": true, "path": {:?}}}"#, notes),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not an lbx recording"),
        "{refused}"
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "keep me\n");
    let (status, refused) = switch(&proxy, r#"{"enabled": true, "sample": 1.5}"#).await;
    assert_eq!(status, 422, "{refused}");

    // A refusal while recording leaves the running session as it was.
    let (status, _) = switch(&proxy, r#"{"enabled": true}"#).await;
    assert_eq!(status, 200);
    let (status, refused) = switch(
        &proxy,
        &format!(r#"{{"enabled": true, "path": {:?}}}"#, notes),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    let (_, body) = admin_get(&proxy.admin_url("/admin/record")).await;
    let state: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(state["enabled"], true, "{state}");
    assert_eq!(state["path"], file.display().to_string(), "{state}");

    // On through the admin API, with [record]'s path (again: the same file starts afresh).
    let (status, state) = switch(&proxy, r#"{"enabled": true}"#).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["enabled"], true, "{state}");
    assert_eq!(state["path"], file.display().to_string(), "{state}");
    let (_, plugin) = admin_get(&proxy.admin_url("/admin/plugin")).await;
    let plugin: Value = serde_json::from_str(&plugin).unwrap();
    assert_eq!(plugin["record"]["enabled"], true, "{plugin}");

    const REQUESTS: usize = 60;
    let padding = "p".repeat(200);
    for i in 0..REQUESTS {
        get_with(&proxy, &format!("/on/{i}"), &[("x-padding", &padding)]).await;
    }
    let (status, state) = switch(&proxy, r#"{"enabled": false}"#).await;
    assert_eq!(status, 200, "{state}");
    assert_eq!(state["written"], REQUESTS as u64, "{state}");
    assert!(state["rotations"].as_u64().unwrap() >= 1, "{state}");
    let (_, metrics) = admin_get(&proxy.admin_url("/metrics")).await;
    assert_eq!(
        metric(&metrics, "lbx_record_samples_total{result=\"written\"}"),
        REQUESTS as f64,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "lbx_record_enabled"), 0.0, "{metrics}");

    // Two files kept, each within the bound, each readable on its own.
    let old = dir.join("rec.lbxr.1");
    let mut kept = 0;
    for path in [&old, &file] {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.len() <= 4096,
            "{} is {} bytes",
            path.display(),
            text.len()
        );
        let mut lines = text.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with(r#"{"format":"lbx-recording","version":1"#)
        );
        assert!(lines.next().unwrap().starts_with(r#"{"type":"backends""#));
        kept += lines.count();
    }
    assert!(kept > 0 && kept < REQUESTS, "{kept} decisions kept");
    // Only the last decisions are kept, and they replay as decided.
    let both = replay_json(
        &[
            "--plugin",
            plugins::CONSISTENT_HASH,
            "--plugin-config",
            r#"{"key": "path"}"#,
        ],
        &[&old, &file],
    )
    .await;
    assert_eq!(both["decisions"], kept as u64, "{both:#}");
    assert_eq!(both["agreement"], 1.0, "{both:#}");
}

/// A recording of three requests over backends `a` and `b`; in the third, `b` was down.
fn handmade_recording(path: &std::path::Path) {
    let decision = |user: &str, b_usable: u32, live: &str| {
        format!(
            r#"{{"type":"decision","at":"2026-01-01T00:00:00.000Z","set":4,"method":"GET","target":"/","version":"HTTP/1.1","authority":"example.test","client":"10.0.0.1:4000","secure":false,"headers":[["host","example.test"],["x-user","{user}"]],"stats":[1,1,0,0,0,{b_usable},1,0,0,0],"by":"plugin","live":{live}}}"#
        )
    };
    let lines = [
        r#"{"format":"lbx-recording","version":1,"lbx":"0.1.0","started":"2026-01-01T00:00:00.000Z","sample":1.0,"hash":"hmac-sha256","hashed_headers":["authorization","cookie"]}"#.to_string(),
        r#"{"type":"backends","set":4,"backends":[{"id":"a","url":"http://127.0.0.1:1","weight":1,"labels":{}},{"id":"b","url":"http://127.0.0.1:2","weight":1,"labels":{"pool":"x"}}]}"#.to_string(),
        decision("u1", 1, r#"{"backend":{"index":0,"id":"a"}}"#),
        decision("u2", 1, r#"{"backend":{"index":1,"id":"b"}}"#),
        decision("u3", 0, r#"{"backend":{"index":0,"id":"a"}}"#),
    ];
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_decides_a_recording_and_fails_on_answers_lbx_could_not_use() {
    let dir = TempDir::new("check-recording");
    let recording = dir.join("handmade.lbxr");
    handmade_recording(&recording);
    let config = |name: &str, plugin: &str, table: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("[plugin]\npath = {plugin:?}\ndeadline = \"1s\"\n[plugin.config]\n{table}\n"),
        )
        .unwrap();
        path.display().to_string()
    };
    let check = |plugin: &'static str, config: String| {
        let recording = recording.display().to_string();
        async move {
            run_tool(
                LBX_BIN,
                vec![
                    "check".into(),
                    plugin.into(),
                    "--config".into(),
                    config,
                    "--recording".into(),
                    recording,
                ],
            )
            .await
        }
    };

    let hashing = config(
        "hashing.toml",
        plugins::CONSISTENT_HASH,
        "key = \"header:x-user\"",
    );
    let (ok, stdout, stderr) = check(plugins::CONSISTENT_HASH, hashing).await;
    assert!(ok, "{stderr}\n{stdout}");
    assert!(stdout.contains("decisions 3: agreement"), "{stdout}");
    assert!(stdout.contains("traps 0, fallbacks 0"), "{stdout}");
    assert!(
        stdout.contains("ok: the plugin is usable on the recording"),
        "{stdout}"
    );

    // Always backend 1: fine while it is up, an unusable answer when the recording says down.
    let pinned = config("pinned.toml", plugins::TEST_ROUTER, "backend = 1");
    let (ok, stdout, stderr) = check(plugins::TEST_ROUTER, pinned).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr
            .contains("1 of 3 recorded decisions failed (0 traps or timeouts, 1 unusable answers)"),
        "{stderr}"
    );

    // A file that is not a recording is named as such.
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "not a recording\n").unwrap();
    let (ok, _, stderr) = replay(
        &["--plugin", plugins::ROUND_ROBIN],
        &[notes.as_path()],
        false,
    )
    .await;
    assert!(!ok);
    assert!(stderr.contains("is not an lbx recording"), "{stderr}");
}

#[test]
fn validate_names_a_record_path_lbx_could_not_record_to() {
    let dir = TempDir::new("record-validate");
    let a = dir.join("notes.txt");
    std::fs::write(&a, "keep me\n").unwrap();
    for (path, expected) in [
        (dir.join("missing/rec.lbxr"), "does not exist"),
        (a.clone(), "is not an lbx recording"),
    ] {
        let config = dir.join("lbx.toml");
        std::fs::write(
            &config,
            format!(
                "[[backend]]\nurl = \"http://127.0.0.1:9\"\n[record]\npath = {:?}\n",
                path
            ),
        )
        .unwrap();
        let (ok, stderr) =
            crate::support::run_lbx_to_exit(&["validate", "--config", config.to_str().unwrap()]);
        assert!(!ok, "{stderr}");
        assert!(
            stderr.contains("record.path") && stderr.contains(expected),
            "{stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "keep me\n");
}
