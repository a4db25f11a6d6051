//! `lbx check`: a usable plugin gets its decisions and timings printed; an unusable one is
//! refused with the reason and a non-zero exit.

use std::process::{Command, Stdio};

use crate::support::{LBX_BIN, TempDir, plugins};

fn check(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(LBX_BIN)
        .arg("check")
        .args(args)
        .args(["--iterations", "200"])
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

#[test]
fn check_prints_each_synthetic_decision_with_its_time() {
    // The default 5 ms deadline is for production; a debug build sharing two cores with
    // the rest of the suite can be preempted for longer than that.
    let dir = TempDir::new("check-ok");
    let config = dir.join("lbx.toml");
    std::fs::write(
        &config,
        "[plugin]\npath = \"unused.wasm\"\ndeadline = \"1s\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = check(&[plugins::LEAST_CONN, "--config", config.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("sha256 "), "{stdout}");
    // The retry avoids the backend that failed; the down backend is avoided.
    assert!(
        stdout.contains("GET / retry after the first pick failed      -> backend 1 (b2)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("GET / with backend 0 down") && !stdout.contains("down  -> backend 0"),
        "{stdout}"
    );
    // Who made it, what it costs to build and start, each decision's p50 and p99, memory.
    assert!(
        stdout.contains("\n  language Rust (wit-bindgen-rust "),
        "{stdout}"
    );
    assert!(
        stdout.contains(" bytes, compiled in ") && stdout.contains(" ms, started in "),
        "{stdout}"
    );
    let first = stdout
        .lines()
        .find(|line| line.contains("GET / from 127.0.0.1 "))
        .unwrap_or_else(|| panic!("no first decision:\n{stdout}"));
    let micros = |label: &str| -> f64 {
        first
            .split(label)
            .nth(1)
            .and_then(|rest| rest.split(" µs").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {label} in {first:?}"))
    };
    let (p50, p99) = (micros("[p50 "), micros(", p99 "));
    assert!(p50 > 0.0 && p99 >= p50, "{first}");
    let memory = stdout
        .lines()
        .skip_while(|line| *line != "memory")
        .nth(1)
        .and_then(|line| line.trim().split(" MiB").next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no memory figure:\n{stdout}"));
    // A Rust plugin's instance holds about a MiB (its stack and heap); never nothing.
    assert!(memory > 0.0 && memory < 64.0, "{memory} MiB");
    // What an access line's decision_us shows on a quiet proxy: a figure, not just the
    // back-to-back mean.
    let cold = stdout
        .lines()
        .skip_while(|line| !line.starts_with("with cold caches"))
        .nth(1)
        .unwrap_or_else(|| panic!("no cold-cache figure:\n{stdout}"));
    let micros: f64 = cold
        .rsplit('[')
        .next()
        .and_then(|s| s.strip_suffix(" µs]"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no time in {cold:?}"));
    assert!(micros > 0.0, "{cold}");
    assert!(stdout.contains("ok: the plugin is usable"), "{stdout}");
}

#[test]
fn check_uses_the_config_and_reports_an_init_refusal() {
    let dir = TempDir::new("check");
    let config = dir.join("lbx.toml");
    std::fs::write(
        &config,
        "[[backend]]\nurl = \"http://127.0.0.1:9\"\nid = \"only\"\n\
         [plugin]\npath = \"unused.wasm\"\n[plugin.config]\nmode = \"fly\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = check(&[plugins::TEST_ROUTER, "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("rejected its configuration: unknown mode \"fly\""),
        "{stderr}"
    );

    std::fs::write(
        &config,
        "[[backend]]\nurl = \"http://127.0.0.1:9\"\nid = \"only\"\n\
         [plugin]\npath = \"unused.wasm\"\ndeadline = \"1s\"\n[plugin.config]\nmode = \"count\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = check(&[plugins::TEST_ROUTER, "--config", config.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("0: only (127.0.0.1:9)"), "{stdout}");
    assert!(stdout.contains("response x-request-number: 1"), "{stdout}");
}

#[test]
fn check_refuses_other_worlds_and_plugins_that_overrun_their_deadline() {
    let (ok, _, stderr) = check(&[plugins::NOT_A_ROUTER]);
    assert!(!ok);
    assert!(
        stderr.contains("does not implement the lbx:router@0.1.0 `plugin` world"),
        "{stderr}"
    );

    let dir = TempDir::new("check-loop");
    let config = dir.join("lbx.toml");
    std::fs::write(
        &config,
        "[plugin]\npath = \"unused.wasm\"\ndeadline = \"20ms\"\n[plugin.config]\nmode = \"loop\"\n",
    )
    .unwrap();
    let (ok, _, stderr) = check(&[plugins::TEST_ROUTER, "--config", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "decision for GET / from 127.0.0.1 failed: decision exceeded its 20ms deadline"
        ),
        "{stderr}"
    );
}

#[test]
fn check_refuses_a_config_lbx_run_would_refuse_naming_the_key() {
    let dir = TempDir::new("check-invalid");
    let config = dir.join("lbx.toml");
    std::fs::write(
        &config,
        "[plugin]\npath = \"unused.wasm\"\ndeadline = \"1s\"\n\
         [[backend]]\nurl = \"http://127.0.0.1:9\"\nweight = 0\n\
         [[backend]]\nurl = \"http://127.0.0.1:10/api\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = check(&[plugins::LEAST_CONN, "--config", config.to_str().unwrap()]);
    assert!(!ok, "{stdout}");
    assert!(
        stderr.contains("backend[0].weight: must be at least 1"),
        "{stderr}"
    );
    assert!(stderr.contains("backend[1].url: "), "{stderr}");
    assert!(!stdout.contains("decisions"), "no plugin run: {stdout}");
}

/// `LBX_PERF_MAP=1`: wasmtime writes the plugin's compiled functions to `/tmp/perf-<pid>.map`
/// (address, size, name per line), which is what lets `perf report` name them; unset or `0`,
/// nothing is written.
#[test]
fn perf_map_lists_the_plugins_functions_only_when_asked() {
    let run = |value: Option<&str>| -> (std::path::PathBuf, std::time::SystemTime) {
        // A file's mtime comes from the kernel's coarse clock, up to a tick behind `now()`.
        let started = std::time::SystemTime::now() - std::time::Duration::from_secs(1);
        let mut command = Command::new(LBX_BIN);
        command
            .args(["check", plugins::LEAST_CONN, "--iterations", "20"])
            .env_remove("LBX_PERF_MAP")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(value) = value {
            command.env("LBX_PERF_MAP", value);
        }
        let child = command.spawn().unwrap();
        let map = std::path::PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        (map, started)
    };
    // Written by this run: a file left by an earlier process with the same pid is older.
    let written_since = |map: &std::path::Path, started: std::time::SystemTime| {
        std::fs::metadata(map)
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified >= started)
    };

    let (map, started) = run(Some("1"));
    let fresh = written_since(&map, started);
    let listed = std::fs::read_to_string(&map);
    let _ = std::fs::remove_file(&map);
    let listed = listed.unwrap_or_else(|e| panic!("no perf map at {}: {e}", map.display()));
    assert!(fresh, "{} was not written by this run", map.display());
    let functions: Vec<&str> = listed
        .lines()
        .filter(|line| line.contains(" wasm[0]::function["))
        .collect();
    assert!(functions.len() >= 10, "{listed}");
    for line in &functions {
        let fields: Vec<&str> = line.splitn(3, ' ').collect();
        assert!(
            fields.len() == 3
                && fields[0].starts_with("0x")
                && u64::from_str_radix(&fields[0][2..], 16).is_ok()
                && u64::from_str_radix(fields[1], 16).is_ok(),
            "not `address size name`: {line}"
        );
    }

    for value in [None, Some("0")] {
        let (map, started) = run(value);
        assert!(
            !written_since(&map, started),
            "LBX_PERF_MAP={value:?} wrote {}",
            map.display()
        );
    }
}
