//! What a replay found, as text for a person and as one JSON object for CI.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// The result of replaying a recording.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The plugin replayed.
    pub plugin: String,
    /// Hex SHA-256 of its bytes.
    pub sha256: String,
    /// The recording files, in the order replayed.
    pub recordings: Vec<String>,
    /// Decisions replayed.
    pub decisions: u64,
    /// Decisions where the plugin went where the live side went.
    pub agreed: u64,
    /// `agreed / decisions` (1 when there were none).
    pub agreement: f64,
    /// The replayed plugin's picks per backend id (every backend of the sets, 0 included).
    pub per_backend: BTreeMap<String, u64>,
    /// The live side's picks per backend id, as recorded.
    pub live_per_backend: BTreeMap<String, u64>,
    /// The replayed plugin's rejections by status.
    pub rejects: BTreeMap<String, u64>,
    /// Decisions that trapped or ran out of time (lbx would have fallen back).
    pub traps: u64,
    /// Traps by kind (`trap`, `timeout`, …).
    pub trap_kinds: BTreeMap<String, u64>,
    /// Decisions answered with no opinion or an unusable answer (lbx would have fallen back).
    pub fallbacks: u64,
    /// Of the fallbacks, the unusable answers (a backend out of range or down, a bad status):
    /// a plugin error, as `lbx check` counts it.
    pub unusable: u64,
    /// Median time per decision, in µs.
    pub us_p50: f64,
    /// 99th percentile time per decision, in µs.
    pub us_p99: f64,
    /// Where the replay went elsewhere than the live side: `live` and `replay` name a backend
    /// id, `reject N`, or `fallback`; most frequent first.
    pub differences: Vec<Difference>,
}

/// A pair of choices that differed, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// Where the live side sent the request.
    pub live: String,
    /// Where the replayed plugin sent it.
    pub replay: String,
    /// How many decisions.
    pub count: u64,
}

/// Differences shown in the text report at most.
const SHOWN_DIFFERENCES: usize = 20;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "replay of {}", self.recordings.join(", "))?;
        writeln!(f, "  plugin {} (sha256 {})", self.plugin, self.sha256)?;
        writeln!(
            f,
            "decisions {}: agreement {:.1}% ({} of {} as recorded live)",
            self.decisions,
            self.agreement * 100.0,
            self.agreed,
            self.decisions
        )?;
        writeln!(
            f,
            "  traps {}, fallbacks {} ({} unusable answers)",
            self.traps, self.fallbacks, self.unusable
        )?;
        for (kind, count) in &self.trap_kinds {
            writeln!(f, "    {kind}: {count}")?;
        }
        writeln!(
            f,
            "  time per decision: p50 {:.1} µs, p99 {:.1} µs",
            self.us_p50, self.us_p99
        )?;
        writeln!(f, "per backend         replay       live")?;
        for (id, replay) in &self.per_backend {
            let live = self.live_per_backend.get(id).copied().unwrap_or(0);
            writeln!(f, "  {id:<16} {replay:>9} {live:>10}")?;
        }
        for (status, count) in &self.rejects {
            writeln!(f, "  reject {status:<9} {count:>9}")?;
        }
        if self.differences.is_empty() {
            writeln!(f, "no differences")?;
        } else {
            writeln!(f, "differences (live -> replay)")?;
            for d in self.differences.iter().take(SHOWN_DIFFERENCES) {
                writeln!(f, "  {} -> {}: {}", d.live, d.replay, d.count)?;
            }
            if self.differences.len() > SHOWN_DIFFERENCES {
                writeln!(
                    f,
                    "  … {} more pairs (--json lists all)",
                    self.differences.len() - SHOWN_DIFFERENCES
                )?;
            }
        }
        Ok(())
    }
}

/// The `q` quantile (0–1) of sorted nanosecond timings, in µs.
pub fn quantile_us(sorted_ns: &[u64], q: f64) -> f64 {
    if sorted_ns.is_empty() {
        return 0.0;
    }
    let rank = ((sorted_ns.len() as f64 * q).ceil() as usize).clamp(1, sorted_ns.len());
    sorted_ns[rank - 1] as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile_us(&ns, 0.5), 50.0);
        assert_eq!(quantile_us(&ns, 0.99), 99.0);
        assert_eq!(quantile_us(&[7000], 0.99), 7.0);
        assert_eq!(quantile_us(&[], 0.5), 0.0);
    }
}
