//! A node's copies of the fleet's plugin modules: `<dir>/<sha256>.wasm`, each written only
//! after its bytes were checked against the sha256 the fleet published, so the reload path
//! loads a plugin from a local file like any other, and a node restarted while the store is
//! down still has the module of the state it last applied.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The module files of one node.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

/// Why a module was not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// The bytes are not the module the fleet published.
    #[error("the module's sha256 is {actual}, the fleet published {expected}")]
    Mismatch {
        /// What the plugin key says.
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },
    /// The disk refused.
    #[error("{0}")]
    Disk(String),
}

impl ModuleCache {
    /// The cache in `dir` (created when the first module is kept).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// Where the module with this sha256 is kept.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.wasm"))
    }

    /// The kept module with this sha256, if its file is there and still hashes to it (a file
    /// damaged on disk is treated as missing, so it is fetched again).
    pub fn get(&self, sha256: &str) -> Option<PathBuf> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        (sha256_hex(&bytes) == sha256).then_some(path)
    }

    /// Keep `bytes` as the module `expected` (its sha256), durably; its path.
    pub fn insert(&self, expected: &str, bytes: &[u8]) -> Result<PathBuf, ModuleError> {
        let actual = sha256_hex(bytes);
        if actual != expected {
            return Err(ModuleError::Mismatch {
                expected: expected.to_string(),
                actual,
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            ModuleError::Disk(format!(
                "cannot create the module directory {}: {e}",
                self.dir.display()
            ))
        })?;
        let path = self.path(expected);
        crate::durable::replace(&path, bytes).map_err(ModuleError::Disk)?;
        Ok(path)
    }

    /// Remove every kept module but those in `keep` (the ones in force and in the plugin
    /// history), so the directory does not grow with every version the fleet ran.
    pub fn retain(&self, keep: &[&str]) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if is_module_file(&path) && !keep.contains(&stem) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// A file this cache wrote: `<64 hex digits>.wasm`.
fn is_module_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        && path
            .file_stem()
            .and_then(|s| s.to_str())
            .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lbx-modules-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_module_is_kept_only_when_its_bytes_match_the_published_sha256() {
        let dir = temp_dir("match");
        let cache = ModuleCache::new(&dir);
        let bytes = b"\0asm module bytes";
        let sha = sha256_hex(bytes);
        let wrong = sha256_hex(b"another module");

        let refused = cache.insert(&wrong, bytes).unwrap_err();
        assert_eq!(
            refused,
            ModuleError::Mismatch {
                expected: wrong.clone(),
                actual: sha.clone()
            }
        );
        assert!(cache.get(&wrong).is_none());

        let path = cache.insert(&sha, bytes).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        assert_eq!(cache.get(&sha), Some(path.clone()));

        // Damaged on disk: no longer served as that module.
        std::fs::write(&path, b"damaged").unwrap();
        assert_eq!(cache.get(&sha), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn retain_removes_the_modules_not_kept_and_leaves_other_files() {
        let dir = temp_dir("retain");
        let cache = ModuleCache::new(&dir);
        let (a, b) = (b"module a".as_slice(), b"module b".as_slice());
        let (sha_a, sha_b) = (sha256_hex(a), sha256_hex(b));
        cache.insert(&sha_a, a).unwrap();
        cache.insert(&sha_b, b).unwrap();
        std::fs::write(dir.join("notes.txt"), "an operator's file").unwrap();

        cache.retain(&[&sha_b]);
        assert!(cache.get(&sha_a).is_none());
        assert!(cache.get(&sha_b).is_some());
        assert!(dir.join("notes.txt").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
