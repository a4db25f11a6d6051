//! The real binary refuses bad input at start with a message naming the problem, and the
//! demo runs as the README says.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{LBX_BIN, plugins, run_lbx_to_exit};

fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lbx-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Start `lbx run --plugin <plugin>` in front of an unused backend; it must fail at start.
/// Returns what it printed.
fn run_with_plugin_must_fail(plugin: &str) -> String {
    let (ok, stderr) = run_lbx_to_exit(&[
        "run",
        "--plugin",
        plugin,
        "--backend",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert!(!ok, "lbx started with plugin {plugin}");
    stderr
}

#[test]
fn missing_plugin_file_fails_at_start_naming_the_file() {
    let stderr = run_with_plugin_must_fail("/nonexistent/router.wasm");
    assert!(
        stderr.contains("cannot read plugin /nonexistent/router.wasm"),
        "{stderr}"
    );
}

#[test]
fn garbage_plugin_file_fails_at_start_as_not_a_component() {
    let garbage = temp_file("garbage.wasm", b"this is not wasm at all");
    let stderr = run_with_plugin_must_fail(garbage.to_str().unwrap());
    assert!(
        stderr.contains("is not a valid WebAssembly component"),
        "{stderr}"
    );
}

#[test]
fn core_module_instead_of_component_is_refused() {
    // The smallest valid core module: magic + version, no sections.
    let module = temp_file("core.wasm", b"\0asm\x01\0\0\0");
    let stderr = run_with_plugin_must_fail(module.to_str().unwrap());
    assert!(
        stderr.contains("core.wasm") && stderr.contains("not a component"),
        "{stderr}"
    );
}

#[test]
fn unknown_config_key_fails_at_start_naming_the_key() {
    let config = temp_file(
        "unknown-key.toml",
        b"listen = \"127.0.0.1:0\"\nworkerz = 2\n[[backend]]\nurl = \"http://127.0.0.1:9\"\n",
    );
    let (ok, stderr) = run_lbx_to_exit(&["run", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("workerz"), "{stderr}");
}

#[test]
fn a_plugin_rejecting_its_config_stops_lbx_at_start_with_the_plugin_s_message() {
    let config = temp_file(
        "bad-plugin-config.toml",
        format!(
            "listen = \"127.0.0.1:0\"\n[admin]\nenabled = false\n\
             [plugin]\npath = {:?}\n[plugin.config]\nrules = [{{ percent = 150.0, group = {{ v = \"x\" }} }}]\n\
             [[backend]]\nurl = \"http://127.0.0.1:9\"\n",
            plugins::HEADER_ROUTER
        )
        .as_bytes(),
    );
    let (ok, stderr) = run_lbx_to_exit(&["run", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("rejected its configuration: plugin.config.rules[0]: percent 150"),
        "{stderr}"
    );
}

#[test]
fn invalid_config_values_are_all_reported_with_their_keys() {
    let config = temp_file(
        "invalid-values.toml",
        b"listen = \"not-an-address\"\n[[backend]]\nurl = \"ftp://127.0.0.1:9\"\nweight = 0\n",
    );
    let (ok, stderr) = run_lbx_to_exit(&["run", "--config", config.to_str().unwrap()]);
    assert!(!ok);
    for key in ["listen:", "backend[0].url:", "backend[0].weight:"] {
        assert!(stderr.contains(key), "missing {key} in: {stderr}");
    }
}

#[test]
fn values_that_would_overflow_or_exhaust_the_machine_are_refused_at_start() {
    let config = temp_file(
        "huge-values.toml",
        b"listen = \"127.0.0.1:0\"\nworkers = 100000\n\
          [timeouts]\nrequest = \"18446744073709551615s\"\n\
          [outlier]\nbase_ejection = \"18446744073709551615s\"\nmax_ejection = \"18446744073709551615s\"\n\
          [[backend]]\nurl = \"http://127.0.0.1:9\"\n",
    );
    let (ok, stderr) = run_lbx_to_exit(&["run", "--config", config.to_str().unwrap()]);
    assert!(!ok, "lbx started");
    for key in [
        "workers:",
        "timeouts.request:",
        "outlier.base_ejection:",
        "outlier.max_ejection:",
    ] {
        assert!(stderr.contains(key), "missing {key} in: {stderr}");
    }
}

#[test]
fn missing_backends_fail_at_start() {
    let (ok, stderr) = run_lbx_to_exit(&["run", "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(stderr.contains("no backends configured"), "{stderr}");
}

#[test]
fn demo_answers_sample_requests_and_stops_cleanly_on_sigint() {
    let mut demo = Command::new(LBX_BIN)
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(demo.stdout.take().unwrap());
    let mut printed = String::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    // 30 sample requests spread over the three backends; the slow one gets the fewest.
    let count = |name: &str| -> u32 {
        printed
            .lines()
            .find(|l| l.trim_start().starts_with(name) && l.contains('#'))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (alpha, beta, gamma) = (count("alpha"), count("beta"), count("gamma"));
    assert_eq!(alpha + beta + gamma, 30, "{printed}");
    assert!(gamma < alpha && gamma < beta, "{printed}");

    let status = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        demo.wait().unwrap().success(),
        "demo should exit 0 on SIGINT"
    );
}
