//! Operating a running lbx: `lbx validate` reports every problem `lbx run` would stop at;
//! `lbx reload` asks a running lbx to reload and says what was applied or why it was refused;
//! `/live` and `/ready` on the admin port, with `/ready` at 503 while a SIGTERM drain runs.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    LBX_BIN, LbxProcess, RawClient, RefusingPort, TempDir, TestBackend, TestCa, TestProxy,
    admin_get, config, eventually, get, plugins, run_tool, tls_section,
};

/// A token long enough for `[admin] token_file`.
const TOKEN: &str = "s3cret-token-for-the-tests";

/// Run `lbx <args>` to completion; returns (success, stdout, stderr).
fn lbx(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(LBX_BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `lbx reload <args>` off the async threads (the test's own backends keep serving).
async fn reload(args: &[&str]) -> (bool, String, String) {
    let args = std::iter::once("reload")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    run_tool(LBX_BIN, args).await
}

#[test]
fn validate_accepts_a_good_config_and_says_what_would_run() {
    let dir = TempDir::new("validate-ok");
    let ca = TestCa::new("validate-ok");
    let site = ca.issue("site", &["site.example"]);
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let file = dir.join("lbx.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\n[admin]\ntoken_file = \"token\"\n{}\
             [plugin]\npath = {:?}\ndeadline = \"1s\"\n\
             [[backend]]\nurl = \"http://127.0.0.1:9\"\nid = \"only\"\n",
            tls_section(&[&site]),
            plugins::LEAST_CONN
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = lbx(&["validate", "--config", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    for expected in [
        "is valid",
        "https 127.0.0.1:0 (1 certificate)",
        "(bearer token)",
        "1 backend: only (http://127.0.0.1:9)",
        "init accepted its config; trial decision: backend 0 (only)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in: {stdout}"
        );
    }

    // The flags `run` takes override the file here too.
    let (ok, _, stderr) = lbx(&[
        "validate",
        "--config",
        file.to_str().unwrap(),
        "--plugin",
        "/nonexistent/router.wasm",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("plugin.path: cannot read plugin /nonexistent/router.wasm"),
        "{stderr}"
    );
}

#[test]
fn validate_prints_every_problem_not_just_the_first() {
    let dir = TempDir::new("validate-problems");
    let file = dir.join("lbx.toml");
    std::fs::write(
        &file,
        "listen = \"nowhere\"\n[admin]\ntoken_file = \"missing.token\"\n\
         [plugin]\npath = \"missing.wasm\"\n\
         [tls]\nlisten = \"127.0.0.1:0\"\n[[tls.certificate]]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n\
         [[backend]]\nurl = \"ftp://127.0.0.1:9\"\n\
         [[backend]]\nurl = \"https://127.0.0.1:10\"\nca = \"missing-ca.pem\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = lbx(&["validate", "--config", file.to_str().unwrap()]);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("has 6 problems:"), "{stderr}");
    for line in [
        "  listen: \"nowhere\" is not an address",
        "  backend[0].url: \"ftp://127.0.0.1:9\": scheme \"ftp\" is not supported",
        "  tls.certificate[0]: cannot read ",
        "  admin.token_file: cannot read ",
        "  backend[1].ca: cannot read ",
        "  plugin.path: cannot read plugin ",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in: {stderr}");
    }
    for file in [
        "missing.pem",
        "missing.token",
        "missing-ca.pem",
        "missing.wasm",
    ] {
        assert!(stderr.contains(file), "missing {file} in: {stderr}");
    }
}

#[test]
fn validate_names_a_plugin_whose_init_refuses_its_config_beside_the_other_problems() {
    let dir = TempDir::new("validate-init");
    let file = dir.join("lbx.toml");
    std::fs::write(
        &file,
        format!(
            "[plugin]\npath = {:?}\ndeadline = \"1s\"\n[plugin.config]\nmode = \"fly\"\n\
             [[backend]]\nurl = \"http://127.0.0.1:9\"\nweight = 0\n",
            plugins::TEST_ROUTER
        ),
    )
    .unwrap();
    let (ok, _, stderr) = lbx(&["validate", "--config", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("backend[0].weight: must be at least 1"),
        "{stderr}"
    );
    assert!(
        stderr.contains("plugin.config: plugin ")
            && stderr.contains("rejected its configuration: unknown mode \"fly\""),
        "{stderr}"
    );
}

#[test]
fn validate_names_the_key_inside_plugin_config_for_unknown_fields_and_wrong_types() {
    // The operator wrote TOML; lbx hands the plugin JSON. The error must point into the TOML
    // table (`plugin.config.rules[0]`), not at a line and column of JSON nobody wrote.
    let dir = TempDir::new("validate-plugin-config");
    let file = dir.join("lbx.toml");
    let with_rule = |rule: &str| {
        format!(
            "[plugin]\npath = {:?}\ndeadline = \"1s\"\n[plugin.config]\nrules = [ {rule} ]\n\
             [[backend]]\nurl = \"http://127.0.0.1:9\"\n",
            plugins::HEADER_ROUTER
        )
    };

    std::fs::write(
        &file,
        with_rule(r#"{ path_prefix = "/a", group = { pool = "x" }, nonsense = 1 }"#),
    )
    .unwrap();
    let (ok, _, stderr) = lbx(&["validate", "--config", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "rejected its configuration: plugin.config.rules[0]: unknown field `nonsense`"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("column"), "{stderr}");

    std::fs::write(
        &file,
        with_rule(r#"{ header = 1, group = { pool = "x" } }"#),
    )
    .unwrap();
    let (ok, _, stderr) = lbx(&["validate", "--config", file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "rejected its configuration: plugin.config.rules[0].header: invalid type: \
             integer `1`, expected a string"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("column"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_an_edited_config_and_refuses_a_broken_one() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let dir = TempDir::new("reload-cli");
    let file = dir.join("lbx.toml");
    // No file watching: the reload under test is the one `lbx reload` asks for.
    let no_watch = "[reload]\nwatch = false\n";
    std::fs::write(&file, config(None, &[&a], no_watch)).unwrap();
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let admin = lbx.admin.to_string();
    let proxy = format!("http://{}/", lbx.addr);
    assert_eq!(get(&proxy).await.2, "a");

    std::fs::write(
        &file,
        format!("[[backend]]\nurl = \"ftp://{}\"\n{no_watch}", b.addr),
    )
    .unwrap();
    let (ok, stdout, stderr) = reload(&["--admin", &admin]).await;
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("reload refused: ") && stderr.contains("backend[0].url"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the running configuration keeps serving"),
        "{stderr}"
    );
    assert_eq!(get(&proxy).await.2, "a", "the old config keeps serving");

    std::fs::write(&file, config(None, &[&b], no_watch)).unwrap();
    let (ok, stdout, stderr) = reload(&["--admin", &admin]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("applied: 1 backend"), "{stdout}");
    assert_eq!(get(&proxy).await.2, "b", "the new backend serves");

    let (ok, stdout, stderr) = reload(&["--admin", &admin]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("unchanged"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_nothing_listening_asks_whether_lbx_runs_there() {
    let nothing = RefusingPort::reserve();
    let addr = nothing.addr.to_string();
    let (ok, _, stderr) = reload(&["--admin", &addr]).await;
    assert!(!ok);
    assert!(
        stderr.contains(&format!("is lbx running with its admin API on {addr}?")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_need_no_token_and_reload_takes_the_token_from_the_config() {
    let backend = TestBackend::named("a").await;
    let dir = TempDir::new("probes-token");
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let file = dir.join("lbx.toml");
    std::fs::write(
        &file,
        config(None, &[&backend], "[admin]\ntoken_file = \"token\"\n"),
    )
    .unwrap();
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let admin = lbx.admin.to_string();

    assert_eq!(
        admin_get(&format!("http://{admin}/live")).await,
        (200, "live\n".into())
    );
    assert_eq!(
        admin_get(&format!("http://{admin}/ready")).await,
        (200, "ready\n".into())
    );
    assert_eq!(
        admin_get(&format!("http://{admin}/admin/plugin")).await.0,
        401,
        "everything else still needs the token"
    );
    // The Host rule still applies to probes.
    let answer = RawClient::exchange(
        lbx.admin,
        "GET /ready HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");

    let (ok, _, stderr) = reload(&["--admin", &admin]).await;
    assert!(!ok);
    assert!(stderr.contains("refused the token (401)"), "{stderr}");
    let (ok, stdout, stderr) =
        reload(&["--admin", &admin, "--config", file.to_str().unwrap()]).await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("unchanged"), "{stdout}");
    let token_file = dir.join("token");
    let (ok, stdout, stderr) = reload(&[
        "--admin",
        &admin,
        "--token-file",
        token_file.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("unchanged"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_answers_503_while_a_sigterm_drain_finishes_the_requests_in_flight() {
    let slow = TestBackend::slow("slow", Duration::from_secs(4)).await;
    let mut lbx = LbxProcess::run(&["--backend", &slow.url(), "--drain-secs", "20"]);
    let ready = format!("http://{}/ready", lbx.admin);
    let live = format!("http://{}/live", lbx.admin);
    assert_eq!(admin_get(&ready).await, (200, "ready\n".into()));

    let url = format!("http://{}/", lbx.addr);
    let in_flight = tokio::spawn(async move { get(&url).await });
    eventually(Duration::from_secs(5), || async {
        (slow.requests() == 1).then_some(())
    })
    .await
    .expect("the request reached the backend");

    let killed = Command::new("kill")
        .args(["-TERM", &lbx.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let draining = eventually(Duration::from_secs(3), || async {
        let answer = admin_get(&ready).await;
        (answer.0 == 503).then_some(answer)
    })
    .await
    .expect("/ready turns 503 once shutdown starts");
    assert_eq!(draining, (503, "draining\n".into()));
    assert!(
        !in_flight.is_finished(),
        "the request is still in flight while /ready says 503"
    );
    assert_eq!(admin_get(&live).await, (200, "live\n".into()));

    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow"));
    let admin = lbx.admin;
    let exit = tokio::task::spawn_blocking(move || lbx.wait())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(
        tokio::net::TcpStream::connect(admin).await.is_err(),
        "the admin port closes when the drain ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_says_ready_in_process_and_probes_take_only_get_and_head() {
    let backend = TestBackend::named("a").await;
    let proxy = TestProxy::start(&config(None, &[&backend], "")).await;
    assert_eq!(admin_get(&proxy.admin_url("/ready")).await.0, 200);
    let answer = RawClient::exchange(
        proxy.admin,
        "POST /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n")
            && answer.contains("allow: GET, HEAD"),
        "{answer}"
    );
    let answer = RawClient::exchange(
        proxy.admin,
        "HEAD /live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}

#[test]
fn validate_warns_once_about_a_backend_whose_certificate_is_not_verified() {
    let dir = TempDir::new("validate-insecure");
    let file = dir.join("lbx.toml");
    std::fs::write(
        &file,
        "[[backend]]\nurl = \"https://127.0.0.1:9\"\ninsecure_skip_verify = true\n\
         [[backend]]\nurl = \"http://127.0.0.1:10\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = lbx(&["validate", "--config", file.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert_eq!(
        stderr.matches("insecure_skip_verify").count(),
        1,
        "one warning for one backend: {stderr}"
    );
}

/// Plugin files that are not components, with what the one-line reason must say.
const NOT_COMPONENTS: [(&str, &[u8], &str); 3] = [
    (
        "text.wasm",
        b"hello\n",
        "the file starts with `hello\\n`, not the Wasm magic bytes `\\0asm`",
    ),
    ("empty.wasm", b"", "the file is empty"),
    ("core.wasm", b"\0asm\x01\0\0\0", "it is a core Wasm module"),
];

/// Whether `text` shows the debug dump of byte arrays wasmparser's own message holds.
fn dumps_bytes(text: &str) -> bool {
    text.contains("expected=[") || text.contains("0x61")
}

#[test]
fn check_and_validate_refuse_a_file_that_is_not_a_component_in_one_line() {
    let dir = TempDir::new("not-a-component");
    for (name, bytes, reason) in NOT_COMPONENTS {
        let plugin = dir.join(name);
        std::fs::write(&plugin, bytes).unwrap();
        let (ok, _, stderr) = lbx(&["check", plugin.to_str().unwrap()]);
        assert!(!ok, "{name}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
        assert!(!dumps_bytes(&stderr), "{name}: {stderr}");

        let file = dir.join("lbx.toml");
        std::fs::write(
            &file,
            format!("[plugin]\npath = {plugin:?}\n[[backend]]\nurl = \"http://127.0.0.1:9\"\n"),
        )
        .unwrap();
        let (ok, _, stderr) = lbx(&["validate", "--config", file.to_str().unwrap()]);
        assert!(!ok, "{name}");
        let problem = stderr
            .lines()
            .find(|l| l.starts_with("  plugin.path: "))
            .unwrap_or_else(|| panic!("{name}: {stderr}"));
        assert!(problem.contains(reason), "{name}: {stderr}");
        assert!(!dumps_bytes(&stderr), "{name}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_refusing_a_file_that_is_not_a_component_says_why_in_one_line() {
    let backend = TestBackend::named("a").await;
    let dir = TempDir::new("reload-not-a-component");
    let plugin = dir.join("plugin.wasm");
    std::fs::copy(plugins::TEST_ROUTER, &plugin).unwrap();
    let file = dir.join("lbx.toml");
    let no_watch = "[reload]\nwatch = false\n";
    std::fs::write(
        &file,
        config(Some(plugin.to_str().unwrap()), &[&backend], no_watch),
    )
    .unwrap();
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let admin = lbx.admin.to_string();
    let (_, text, reason) = NOT_COMPONENTS[0];
    std::fs::write(&plugin, text).unwrap();

    let (ok, stdout, stderr) = reload(&["--admin", &admin]).await;
    assert!(!ok, "{stdout}");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains("reload refused: ") && first.contains(reason),
        "{stderr}"
    );
    assert!(!dumps_bytes(&stderr), "{stderr}");

    let (status, body) = crate::support::admin_post(&format!("http://{admin}/admin/reload")).await;
    assert_eq!(status, 422, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let refused = json["reason"].as_str().unwrap();
    assert!(
        refused.contains(reason) && !refused.contains('\n') && !dumps_bytes(refused),
        "{body}"
    );

    let log = lbx.log();
    let logged = log
        .lines()
        .find(|l| l.contains("reload refused"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(logged.contains(reason), "{log}");
    assert!(!dumps_bytes(&log), "{log}");
    assert_eq!(get(&format!("http://{}/", lbx.addr)).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_names_the_changed_settings_that_take_effect_after_a_restart() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let dir = TempDir::new("reload-restart");
    let file = dir.join("lbx.toml");
    let no_watch = "[reload]\nwatch = false\n";
    std::fs::write(&file, config(None, &[&a], no_watch)).unwrap();
    let lbx = LbxProcess::run(&["--config", file.to_str().unwrap()]);
    let admin = lbx.admin.to_string();

    std::fs::write(
        &file,
        config(
            None,
            &[&a],
            &format!("[retry]\nmax_attempts = 2\n{no_watch}"),
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = reload(&["--admin", &admin]).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        "applied: nothing changed now; retry changed; it takes effect after a restart"
    );

    // With something applied beside them, and more than one.
    std::fs::write(
        &file,
        config(
            None,
            &[&b],
            &format!("[retry]\nmax_attempts = 2\n[pool]\nmax_idle_per_backend = 3\n{no_watch}"),
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = reload(&["--admin", &admin]).await;
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.trim_end(),
        "applied: 1 backend; retry and pool changed; they take effect after a restart"
    );
    assert_eq!(get(&format!("http://{}/", lbx.addr)).await.2, "b");
}
