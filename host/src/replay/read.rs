//! Reading recording files (see `recording::format`): each must start with a header this lbx
//! reads; its `backends` lines and decisions are returned in file order, the files in the
//! order given (`lbx replay rec.lbxr.1 rec.lbxr` replays a rotated recording oldest first).

use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, bail};

use crate::recording::format::{BackendsLine, DecisionLine, FileHeader, Line};

/// One line of a recording after its header, tagged with its file so that set numbers of
/// different files never mix.
#[derive(Debug)]
pub enum Entry {
    /// A backend set of file `file`.
    Backends {
        /// Position of its file among those given.
        file: usize,
        /// The set.
        line: BackendsLine,
    },
    /// A decision of file `file`.
    Decision {
        /// Position of its file among those given.
        file: usize,
        /// The decision.
        line: Box<DecisionLine>,
    },
}

/// Every entry of `files`, in order.
pub fn entries(files: &[impl AsRef<Path>]) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (file, path) in files.iter().enumerate() {
        let path = path.as_ref();
        let reader = std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        );
        let mut lines = reader.lines();
        let header = lines
            .next()
            .transpose()
            .with_context(|| format!("cannot read {}", path.display()))?
            .with_context(|| format!("{} is empty, not an lbx recording", path.display()))?;
        let header: FileHeader = serde_json::from_str(&header).with_context(|| {
            format!(
                "{} is not an lbx recording (its first line is not a recording header)",
                path.display()
            )
        })?;
        if let Some(problem) = header.problem() {
            bail!("{}: {problem}", path.display());
        }
        for (number, line) in lines.enumerate() {
            let line = line.with_context(|| format!("cannot read {}", path.display()))?;
            if line.trim().is_empty() {
                continue;
            }
            // The last line of a file lbx was still writing may be cut short: it is skipped.
            let parsed = match serde_json::from_str::<Line>(&line) {
                Ok(parsed) => parsed,
                Err(_) if is_last_and_truncated(&line) => break,
                Err(e) => bail!("{} line {}: {e}", path.display(), number + 2),
            };
            entries.push(match parsed {
                Line::Backends(line) => Entry::Backends { file, line },
                Line::Decision(line) => Entry::Decision { file, line },
            });
        }
    }
    Ok(entries)
}

fn is_last_and_truncated(line: &str) -> bool {
    !line.trim_end().ends_with('}')
}
