//! `lbx plugin new --lang rust|python|js|c|go NAME`: a plugin project that passes its own tests, builds,
//! and passes `lbx check` as created, with a README of three commands.
//!
//! The project stands alone: the language's SDK and the contract (`wit/router.wit`) are copied
//! into it from copies embedded in this binary ([`sdk_files`]), so it builds wherever lbx is
//! installed, outside lbx's repository, and keeps building after lbx is upgraded (a newer lbx
//! still loads plugins of an older contract). What it fetches is only what its toolchain
//! fetches anyway: crates for Rust, nothing for Python (componentize-py must be installed), the
//! pinned npm packages of its lock file for JavaScript, nothing for C and Go (whose projects
//! call `lbx plugin bindings` and `lbx plugin component` for the steps that are not the
//! compiler's).

mod c;
mod go;
mod js;
mod python;
mod rust;
mod sdk_files;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// A language `lbx plugin new` can start a project in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
    /// JavaScript, built with QuickJS (`--lang js` or `--lang javascript`).
    Js,
    /// C, built with clang and wasi-libc.
    C,
    /// Go 1.24 or later, built for wasip1.
    Go,
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "rust" => Ok(Self::Rust),
            "python" => Ok(Self::Python),
            "js" | "javascript" => Ok(Self::Js),
            "c" => Ok(Self::C),
            "go" => Ok(Self::Go),
            other => Err(format!(
                "no project template for {other:?}: `rust`, `python`, `js`, `c` or `go`"
            )),
        }
    }
}

/// One file of a new project: its path inside the project and its contents.
type ProjectFile = (String, String);

/// Create the project `name` for `language` in `parent/name`; returns its directory. Refuses a
/// name that is not a plain identifier and a directory that already exists.
pub fn create(language: Language, name: &str, parent: &Path) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} already exists: choose another name or remove it",
            dir.display()
        );
    }
    let files = match language {
        Language::Rust => rust::files(name),
        Language::Python => python::files(name),
        Language::Js => js::files(name),
        Language::C => c::files(name),
        Language::Go => go::files(name),
    };
    for (path, contents) in files {
        let path = dir.join(path);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(dir)
}

/// A name usable as a Rust crate, a Python module, an npm package, a Go module and a file name
/// alike.
fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_well || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        bail!(
            "plugin name {name:?}: use lowercase letters, digits and `_`, starting with a letter \
             (it names the crate or module and the .wasm file)"
        );
    }
    if name == "lbx_guest" || name == "lbx_router" || name == "app" || name == "test" {
        bail!("plugin name {name:?} is taken by the SDK or the project's own files");
    }
    Ok(())
}

/// The contract, at `wit/router.wit` in every project.
fn contract() -> ProjectFile {
    ("wit/router.wit".into(), sdk_files::CONTRACT.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every SDK source file is embedded: a file added to an SDK without being listed in
    /// `sdk_files.rs` would give new projects an SDK that does not build.
    #[test]
    fn every_sdk_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let listed = |files: &[(&str, &str)]| -> Vec<String> {
            let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
            names.sort();
            names
        };
        let on_disk = |dir: &Path, ext: &str| -> Vec<String> {
            let mut names = Vec::new();
            let mut stack = vec![dir.to_path_buf()];
            while let Some(folder) = stack.pop() {
                for entry in std::fs::read_dir(&folder).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        if !path.ends_with("__pycache__") {
                            stack.push(path);
                        }
                    } else if path.extension().is_some_and(|e| e == ext) {
                        let relative = path.strip_prefix(dir).unwrap();
                        names.push(relative.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
            names.sort();
            names
        };
        assert_eq!(
            listed(sdk_files::RUST_SDK),
            on_disk(&root.join("guest-sdk/src"), "rs")
        );
        assert_eq!(
            listed(sdk_files::PYTHON_SDK),
            on_disk(&root.join("sdk/python/lbx_router"), "py")
        );
        // The JavaScript SDK ships its modules and types; its own tests stay behind.
        let js = root.join("sdk/js");
        let mut js_files: Vec<String> = ["js", "ts"]
            .iter()
            .flat_map(|ext| on_disk(&js, ext))
            .filter(|name| !name.starts_with("test/") && !name.starts_with("node_modules/"))
            .chain(["README.md".to_string(), "package.json".to_string()])
            .collect();
        js_files.sort();
        assert_eq!(listed(sdk_files::JS_SDK), js_files);
        assert_eq!(listed(sdk_files::C_SDK), on_disk(&root.join("sdk/c"), "h"));
        // The Go SDK ships its module and sources; its own tests stay behind.
        let go = root.join("sdk/go");
        let mut go_files: Vec<String> = on_disk(&go, "go")
            .into_iter()
            .filter(|name| !name.ends_with("_test.go"))
            .chain(["go.mod".to_string()])
            .collect();
        go_files.sort();
        assert_eq!(listed(sdk_files::GO_SDK), go_files);
    }

    #[test]
    fn names_that_cannot_name_a_crate_and_a_module_are_refused() {
        for bad in ["", "My", "9lives", "with-dash", "a b", "lbx_router", "app"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("edge_router2").unwrap();
    }
}
