//! Every configuration the repository ships passes `lbx validate`: the files under `examples/`
//! and `docs/`, and each ```` ```toml ```` block of README.md and docs/*.md, so none can drift
//! from what lbx accepts.
//!
//! Each config is validated where it sits in the repository layout, inside a scratch copy of
//! that layout: `plugins/<name>.wasm` holds the bundled plugins (what `bash plugins/build.sh`
//! puts there), `certs/` the certificates the configs name, and a file under `examples/` stays
//! under `examples/`, so its relative paths are resolved exactly as a user's `lbx run` would.
//! A README block is a config in the repository root. A block without `[[backend]]` is a
//! fragment showing one table: it is validated with one backend appended, the least a config
//! needs.

use std::path::{Path, PathBuf};

use crate::support::{LBX_BIN, TempDir, TestCa, plugins, run_lbx_to_exit};

/// The bundled plugins, under the names `plugins/build.sh` gives them.
const BUNDLED: &[(&str, &str)] = &[
    ("round_robin", plugins::ROUND_ROBIN),
    ("least_conn", plugins::LEAST_CONN),
    ("random", plugins::RANDOM),
    ("weighted_round_robin", plugins::WEIGHTED_ROUND_ROBIN),
    ("p2c_ewma", plugins::P2C_EWMA),
    ("consistent_hash", plugins::CONSISTENT_HASH),
    ("sticky_cookie", plugins::STICKY_COOKIE),
    ("header_router", plugins::HEADER_ROUTER),
];

/// A config the repository ships: where it comes from, where it goes in the scratch layout,
/// and its text.
struct Shipped {
    origin: String,
    place: PathBuf,
    text: String,
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ sits in the repository root")
        .to_path_buf()
}

/// Files under `dir` (relative to the root) whose name ends with `extension`, recursively.
fn files_under(root: &Path, dir: &str, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.join(dir)];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "node_modules" && name != "target" {
                    pending.push(path);
                }
            } else if name.ends_with(extension) {
                found.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

/// The ```` ```toml ```` blocks of a Markdown file, with the line each starts on.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```toml") => current = Some((index + 1, String::new())),
            Some(_) if fence.starts_with("```") => blocks.push(current.take().unwrap()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every config the repository ships.
fn shipped_configs(root: &Path) -> Vec<Shipped> {
    let mut configs = Vec::new();
    for dir in ["examples", "docs"] {
        for file in files_under(root, dir, ".toml") {
            configs.push(Shipped {
                origin: file.display().to_string(),
                text: std::fs::read_to_string(root.join(&file)).unwrap(),
                place: file,
            });
        }
    }
    let mut markdown = vec![PathBuf::from("README.md")];
    markdown.extend(files_under(root, "docs", ".md"));
    for file in markdown {
        let text = std::fs::read_to_string(root.join(&file)).unwrap();
        for (line, block) in toml_blocks(&text) {
            let text = if block.contains("[[backend]]") {
                block
            } else {
                format!("{block}\n[[backend]]\nurl = \"http://127.0.0.1:9001\"\n")
            };
            configs.push(Shipped {
                origin: format!("{} line {line}", file.display()),
                place: PathBuf::from(format!(
                    "{}-line-{line}.toml",
                    file.display().to_string().replace('/', "-")
                )),
                text,
            });
        }
    }
    configs
}

/// `certs/<name>.pem` and `.key` paths a config names (within quotes).
fn named_certs(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split('"')
        .filter(|part| {
            part.starts_with("certs/") && (part.ends_with(".pem") || part.ends_with(".key"))
        })
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The scratch layout with the bundled plugins in `plugins/`.
fn scratch_layout() -> TempDir {
    let root = TempDir::new("shipped-configs");
    std::fs::create_dir_all(root.join("plugins")).unwrap();
    for (name, built) in BUNDLED {
        std::fs::copy(built, root.join(&format!("plugins/{name}.wasm"))).unwrap();
    }
    root
}

/// Put every certificate `text` names beside the config in `dir`: a certificate and its key
/// where a key is named beside it (an HTTPS listener's), else a CA certificate (a backend's).
fn provide_certs(dir: &Path, text: &str, ca: &TestCa) {
    let names = named_certs(text);
    for name in &names {
        let target = dir.join(name);
        if target.exists() {
            continue;
        }
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let stem = name.trim_end_matches(".pem").trim_end_matches(".key");
        if names.contains(&format!("{stem}.key")) {
            let file = stem.trim_start_matches("certs/");
            let issued = ca.issue(file, &[&format!("{file}.example")]);
            std::fs::copy(&issued.cert, dir.join(format!("{stem}.pem"))).unwrap();
            std::fs::copy(&issued.key, dir.join(format!("{stem}.key"))).unwrap();
        } else {
            std::fs::copy(&ca.ca_pem, &target).unwrap();
        }
    }
}

#[test]
fn every_config_the_repository_ships_passes_lbx_validate() {
    let root = repository_root();
    let configs = shipped_configs(&root);
    // Discovery itself must work, or this test would pass on nothing.
    assert!(
        configs.iter().any(|c| c.origin == "examples/lbx.toml"),
        "examples/lbx.toml not found among {:?}",
        configs.iter().map(|c| &c.origin).collect::<Vec<_>>()
    );
    assert!(
        configs
            .iter()
            .any(|c| c.origin.starts_with("README.md line")),
        "no ```toml block found in README.md"
    );

    let scratch = scratch_layout();
    let ca = TestCa::new("shipped-configs");
    let mut failures = Vec::new();
    for config in &configs {
        let file = scratch.path.join(&config.place);
        let dir = file.parent().unwrap();
        std::fs::create_dir_all(dir).unwrap();
        provide_certs(dir, &config.text, &ca);
        std::fs::write(&file, &config.text).unwrap();
        let (ok, stderr) = run_lbx_to_exit(&["validate", "--config", file.to_str().unwrap()]);
        if !ok {
            failures.push(format!("{}:\n{stderr}", config.origin));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} shipped configs fail `{LBX_BIN} validate`:\n{}",
        failures.len(),
        configs.len(),
        failures.join("\n")
    );
}
