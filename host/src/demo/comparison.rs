//! The table `lbx demo --llm` prints at the end: one column per routing policy, one row per
//! figure a user of the service would feel, and with two policies the ratio of the first to the
//! second. It prints what was measured and draws no conclusion: which policy does better
//! depends on the load, the replicas and the run's length, and a short run is noisy.

use std::fmt;

use crate::llm_load::Report;

/// A request sent this late (ms) gets a note: the generator (sharing the machine with the
/// replicas and lbx) fell behind its schedule, so the offered load was lower than asked. The
/// same threshold as `lbx llm-load`'s own note.
const LATE_MS: f64 = 100.0;

/// How a row's figures are printed, and whether a ratio of them means anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A number of requests: no ratio (0 against 0 is common and says nothing).
    Count,
    /// Milliseconds.
    Millis,
    /// A fraction, printed as a percentage.
    Share,
    /// A rate per second.
    PerSecond,
}

/// A figure read off a report; `None` when nothing was measured (no request succeeded).
type Read = fn(&Report) -> Option<f64>;

const ROWS: &[(&str, Kind, Read)] = &[
    ("requests sent", Kind::Count, |r| Some(r.sent as f64)),
    ("requests ok", Kind::Count, |r| Some(r.ok as f64)),
    ("shed (429)", Kind::Count, |r| Some(r.shed as f64)),
    ("errors", Kind::Count, |r| Some(r.errors as f64)),
    ("TTFT p50 ms", Kind::Millis, |r| r.ttft_ms.map(|s| s.p50)),
    ("TTFT p99 ms", Kind::Millis, |r| r.ttft_ms.map(|s| s.p99)),
    ("e2e p50 ms", Kind::Millis, |r| r.e2e_ms.map(|s| s.p50)),
    ("e2e p99 ms", Kind::Millis, |r| r.e2e_ms.map(|s| s.p99)),
    ("prefix cache hit", Kind::Share, |r| r.cache_hit_rate),
    ("output tok/s", Kind::PerSecond, |r| {
        Some(r.output_tokens_per_s)
    }),
];

/// The reports of one workload run through lbx once per policy, in the order run.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    runs: Vec<(String, Report)>,
}

impl Comparison {
    /// An empty comparison.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add the report of the run with `policy`.
    pub fn push(&mut self, policy: impl Into<String>, report: Report) {
        self.runs.push((policy.into(), report));
    }
}

fn format(kind: Kind, value: Option<f64>) -> String {
    match (kind, value) {
        (_, None) => "-".into(),
        (Kind::Count, Some(v)) => format!("{v:.0}"),
        (Kind::Millis | Kind::PerSecond, Some(v)) => format!("{v:.1}"),
        (Kind::Share, Some(v)) => format!("{:.1}%", v * 100.0),
    }
}

fn ratio(first: Option<f64>, second: Option<f64>) -> String {
    match (first, second) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = |policy: &str| policy.len().max(10) + 2;
        let with_ratio = self.runs.len() == 2;
        write!(f, "{:<18}", "")?;
        for (policy, _) in &self.runs {
            write!(f, "{policy:>w$}", w = width(policy))?;
        }
        if with_ratio {
            write!(f, "{:>8}", "ratio")?;
        }
        writeln!(f)?;
        for &(label, kind, read) in ROWS {
            write!(f, "{label:<18}")?;
            for (policy, report) in &self.runs {
                write!(f, "{:>w$}", format(kind, read(report)), w = width(policy))?;
            }
            if with_ratio && kind != Kind::Count {
                let (a, b) = (&self.runs[0].1, &self.runs[1].1);
                write!(f, "{:>8}", ratio(read(a), read(b)))?;
            }
            writeln!(f)?;
        }
        if with_ratio {
            writeln!(
                f,
                "ratio: {}'s figure over {}'s",
                self.runs[0].0, self.runs[1].0
            )?;
        }
        for (policy, report) in &self.runs {
            if !report.errors_by_kind.is_empty() {
                let kinds: Vec<String> = report
                    .errors_by_kind
                    .iter()
                    .map(|(kind, n)| format!("{kind} {n}"))
                    .collect();
                writeln!(f, "{policy} errors: {}", kinds.join(", "))?;
            }
            if report.dropped > 0 {
                writeln!(
                    f,
                    "{policy}: {} arrivals not sent (too many requests in flight)",
                    report.dropped
                )?;
            }
            if report.max_send_lag_ms >= LATE_MS {
                writeln!(
                    f,
                    "{policy}: a request went out {:.0} ms late: the machine was too busy to \
                     keep the schedule, so this run offered less load than asked",
                    report.max_send_lag_ms
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::llm_load::Summary;

    fn report(ok: u64, ttft_p50: Option<f64>, hit: Option<f64>) -> Report {
        let summary = |p50: f64| Summary {
            p50,
            p90: p50 * 2.0,
            p99: p50 * 4.0,
            mean: p50,
        };
        Report {
            url: "http://127.0.0.1:1/v1/chat/completions".into(),
            api: "chat".into(),
            model: "m".into(),
            rate: 10.0,
            duration_s: 1.0,
            seed: 7,
            scheduled: ok + 1,
            sent: ok + 1,
            ok,
            shed: 1,
            errors: 0,
            dropped: 0,
            errors_by_kind: BTreeMap::new(),
            ttft_ms: ttft_p50.map(summary),
            e2e_ms: ttft_p50.map(|t| summary(t * 10.0)),
            output_tokens: ok * 100,
            output_tokens_per_s: ok as f64 * 10.0,
            prompt_tokens: ok * 1000,
            cached_prompt_tokens: hit.map(|h| (h * (ok * 1000) as f64) as u64),
            cache_hit_rate: hit,
            elapsed_s: 10.0,
            max_send_lag_ms: 0.0,
        }
    }

    fn row<'a>(table: &'a str, label: &str) -> Vec<&'a str> {
        let line = table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no row {label:?} in\n{table}"));
        line[label.len()..].split_whitespace().collect()
    }

    #[test]
    fn each_policy_has_a_column_and_the_ratio_divides_the_first_by_the_second() {
        let mut comparison = Comparison::new();
        comparison.push("llm_router", report(40, Some(20.0), Some(0.75)));
        comparison.push("least_conn", report(50, Some(25.0), Some(0.5)));
        let table = comparison.to_string();
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(header, ["llm_router", "least_conn", "ratio"]);
        assert_eq!(
            row(&table, "requests ok"),
            ["40", "50"],
            "no ratio of counts"
        );
        assert_eq!(row(&table, "TTFT p50 ms"), ["20.0", "25.0", "0.80"]);
        assert_eq!(row(&table, "TTFT p99 ms"), ["80.0", "100.0", "0.80"]);
        assert_eq!(row(&table, "prefix cache hit"), ["75.0%", "50.0%", "1.50"]);
        assert_eq!(row(&table, "output tok/s"), ["400.0", "500.0", "0.80"]);
        assert!(
            table.contains("ratio: llm_router's figure over least_conn's"),
            "{table}"
        );
    }

    #[test]
    fn a_figure_nothing_measured_prints_a_dash_and_no_ratio() {
        let mut comparison = Comparison::new();
        comparison.push("llm_router", report(0, None, None));
        comparison.push("least_conn", report(50, Some(25.0), Some(0.0)));
        let table = comparison.to_string();
        assert_eq!(row(&table, "TTFT p50 ms"), ["-", "25.0", "-"]);
        assert_eq!(row(&table, "prefix cache hit"), ["-", "0.0%", "-"]);
    }

    #[test]
    fn errors_by_kind_and_a_late_generator_are_noted_under_the_table() {
        let mut late = report(10, Some(20.0), None);
        late.errors = 2;
        late.errors_by_kind.insert("status_502".into(), 2);
        late.max_send_lag_ms = 250.0;
        let mut comparison = Comparison::new();
        comparison.push("least_conn", late);
        let table = comparison.to_string();
        assert!(table.contains("least_conn errors: status_502 2"), "{table}");
        assert!(table.contains("250 ms late"), "{table}");
        assert!(!table.contains("ratio"), "one policy, no ratio: {table}");
    }
}
