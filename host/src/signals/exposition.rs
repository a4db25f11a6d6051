//! A strict parser for the sample lines of the Prometheus text exposition format (0.0.4), the
//! format vLLM, SGLang, TGI and every Prometheus client library serve on `/metrics`.
//!
//! Why not a crate: of the parsers on crates.io (reviewed for issue 17), `prometheus-parse`
//! matches metric names with `\w+`, so it silently drops every name with a colon — all of
//! vLLM's (`vllm:num_requests_waiting`) — and splits labels on `,` and `=` without honouring
//! quotes; `openmetrics-parser` is LGPL-3.0 and builds whole metric families per scrape;
//! `prom_text_format_parser` had one release, on winnow 0.5; `nom-openmetrics` says it does not
//! validate. lbx needs only the samples' names, labels and values, borrowed from the body
//! without a copy, and a scrape that is not the format (an HTML error page, random bytes)
//! refused as a whole, as Prometheus refuses it. That is ~150 lines, property-tested in
//! `tests.rs` (arbitrary bytes never panic; generated expositions parse to what was generated).
//!
//! The grammar, per line (`\n`-separated, a trailing `\r` tolerated):
//! - blank, or only spaces and tabs: skipped;
//! - `#` first (after blanks): a comment, `# HELP` or `# TYPE`: skipped (lbx reads values only);
//! - a sample: `name [{label="value",...[,]}] value [timestamp]`, blanks allowed between tokens.
//!   `name` is `[a-zA-Z_:][a-zA-Z0-9_:]*`, a label name `[a-zA-Z_][a-zA-Z0-9_]*`, a label value a
//!   double-quoted string with the escapes `\\`, `\"` and `\n`; no label twice. The value is a
//!   float (`NaN`, `+Inf`, `-Inf` included); the timestamp, if any, an integer (ms).
//!
//! Anything else is an error naming the line.

use std::borrow::Cow;

use crate::config::signals::{is_blank, label_name, metric_name, quoted_value};

/// One sample line, borrowed from the scraped text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    /// The metric name (for histograms and summaries, with its `_bucket`, `_sum`... suffix).
    pub name: &'a str,
    /// The text between the braces, already checked (empty when there are none).
    labels: &'a str,
    /// The value.
    pub value: f64,
}

impl<'a> Sample<'a> {
    /// The sample's labels, in the order written, values unescaped.
    pub fn labels(&self) -> Labels<'a> {
        Labels { rest: self.labels }
    }

    /// The value of `label`, if the sample has it.
    pub fn label(&self, label: &str) -> Option<Cow<'a, str>> {
        self.labels()
            .find(|(name, _)| *name == label)
            .map(|(_, v)| v)
    }
}

/// The labels of a [`Sample`].
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        // The text was checked by `parse_labels`: re-reading it cannot fail.
        let (name, rest) = label_name(self.rest.trim_start_matches(|c| is_blank(c) || c == ','));
        if name.is_empty() {
            return None;
        }
        let rest = rest.trim_start_matches(is_blank).strip_prefix('=')?;
        let (value, rest) = quoted_value(rest.trim_start_matches(is_blank)).ok()?;
        self.rest = rest;
        Some((name, value))
    }
}

/// Why a scrape is not the text format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub message: &'static str,
}

/// Every sample of `text`, in order; the first malformed line ends the iteration with its
/// error.
pub fn samples(text: &str) -> Samples<'_> {
    Samples {
        lines: text.split('\n').enumerate(),
        failed: false,
    }
}

/// The iterator [`samples`] returns.
#[derive(Debug)]
pub struct Samples<'a> {
    lines: std::iter::Enumerate<std::str::Split<'a, char>>,
    failed: bool,
}

impl<'a> Iterator for Samples<'a> {
    type Item = Result<Sample<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        for (index, line) in self.lines.by_ref() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let line = line.trim_start_matches(is_blank);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = sample(line).map_err(|message| ParseError {
                line: index + 1,
                message,
            });
            self.failed = parsed.is_err();
            return Some(parsed);
        }
        None
    }
}

/// One sample line, without leading blanks.
fn sample(line: &str) -> Result<Sample<'_>, &'static str> {
    let (name, rest) = metric_name(line);
    if name.is_empty() {
        return Err("expected a metric name, a comment or a blank line");
    }
    let rest = rest.trim_start_matches(is_blank);
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inside) => parse_labels(inside)?,
        None => ("", rest),
    };
    let rest = rest.trim_start_matches(is_blank);
    let (value, rest) = token(rest);
    if value.is_empty() {
        return Err("expected a value after the metric name and labels");
    }
    let value = parse_value(value).ok_or("the value is not a number")?;
    let rest = rest.trim_start_matches(is_blank);
    let (timestamp, rest) = token(rest);
    if !timestamp.is_empty() && timestamp.parse::<i64>().is_err() {
        return Err("the timestamp is not an integer");
    }
    if !rest.trim_start_matches(is_blank).is_empty() {
        return Err("unexpected text after the timestamp");
    }
    Ok(Sample {
        name,
        labels,
        value,
    })
}

/// The labels after `{`: the text up to the closing brace, and what follows it.
fn parse_labels(inside: &str) -> Result<(&str, &str), &'static str> {
    let mut rest = inside;
    // Label names seen so far, to refuse a repeat; a sample rarely has more than a handful.
    let mut seen: [&str; 16] = [""; 16];
    let mut count = 0;
    loop {
        rest = rest.trim_start_matches(is_blank);
        if let Some(after) = rest.strip_prefix('}') {
            let labels = &inside[..inside.len() - rest.len()];
            return Ok((labels, after));
        }
        let (name, after) = label_name(rest);
        if name.is_empty() {
            return Err("expected a label name or }");
        }
        let repeated = match seen.get_mut(count) {
            Some(slot) => {
                *slot = name;
                seen[..count].contains(&name)
            }
            None => repeats(inside, rest, name),
        };
        if repeated {
            return Err("a label appears twice");
        }
        count += 1;
        rest = after.trim_start_matches(is_blank);
        rest = rest
            .strip_prefix('=')
            .ok_or("expected = after a label name")?;
        rest = rest.trim_start_matches(is_blank);
        if !rest.starts_with('"') {
            return Err("a label value must be in double quotes");
        }
        rest = quoted_value(rest)?.1;
        rest = rest.trim_start_matches(is_blank);
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label value");
        }
    }
}

/// Whether `name` is among the labels of `inside` before `at` (past the first 16 labels, where
/// the fixed list of names seen no longer reaches).
fn repeats(inside: &str, at: &str, name: &str) -> bool {
    let before = Labels {
        rest: &inside[..inside.len() - at.len()],
    };
    before.map(|(seen, _)| seen).any(|seen| seen == name)
}

/// The next run of non-blank characters, and what follows.
fn token(text: &str) -> (&str, &str) {
    text.split_at(text.find(is_blank).unwrap_or(text.len()))
}

/// A sample value as Go's `strconv.ParseFloat` (what Prometheus uses) reads the ones clients
/// write: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
fn parse_value(text: &str) -> Option<f64> {
    // Rust also takes "infinity" and "nan" in any case; so does Go. It refuses hex floats,
    // which no client library writes.
    text.parse::<f64>().ok()
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    /// A sample as owned parts: name, labels, value.
    type Owned = (String, Vec<(String, String)>, f64);

    fn all(text: &str) -> Result<Vec<Owned>, ParseError> {
        samples(text)
            .map(|s| {
                s.map(|s| {
                    let labels = s
                        .labels()
                        .map(|(k, v)| (k.to_string(), v.into_owned()))
                        .collect();
                    (s.name.to_string(), labels, s.value)
                })
            })
            .collect()
    }

    #[test]
    fn a_vllm_exposition_parses() {
        let text = "# HELP vllm:num_requests_waiting Number of requests waiting.\n\
                    # TYPE vllm:num_requests_waiting gauge\n\
                    vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} 3.0\n\
                    \n\
                    vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"llama\"} 0.25 1712345678901\n\
                    vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\",model_name=\"llama\"} 12\r\n\
                    up 1\n\
                    \t nan_metric NaN\n\
                    inf_metric{a=\"x\",} -Inf\n";
        let parsed = all(text).unwrap();
        assert_eq!(parsed.len(), 6);
        assert_eq!(parsed[0].0, "vllm:num_requests_waiting");
        assert_eq!(
            parsed[0].1,
            [
                ("engine".to_string(), "0".to_string()),
                ("model_name".into(), "llama".into())
            ]
        );
        assert_eq!(parsed[0].2, 3.0);
        assert_eq!(parsed[1].2, 0.25);
        assert_eq!(parsed[2].1[0].1, "+Inf");
        assert_eq!(parsed[3], ("up".into(), vec![], 1.0));
        assert!(parsed[4].2.is_nan());
        assert_eq!(parsed[5].2, f64::NEG_INFINITY);
    }

    #[test]
    fn label_values_are_unescaped_and_may_hold_anything() {
        let parsed = all("m{path=\"/a,b=\\\"c\\\"}\\\\\\n\",x = \"ü\"} 1").unwrap();
        assert_eq!(parsed[0].1[0].1, "/a,b=\"c\"}\\\n");
        assert_eq!(parsed[0].1[1], ("x".into(), "ü".into()));
    }

    #[test]
    fn malformed_lines_are_refused_by_line() {
        for (text, line, says) in [
            ("<html><body>500</body></html>", 1, "metric name"),
            ("ok 1\nm{a=\"1\" 2", 2, "expected , or }"),
            ("m 1 2 3", 1, "after the timestamp"),
            ("m one", 1, "not a number"),
            ("m", 1, "expected a value"),
            ("m{a=\"1\",a=\"2\"} 1", 1, "twice"),
            ("m{a=1} 1", 1, "double quotes"),
            ("m{a=\"\\x\"} 1", 1, "invalid escape"),
            ("m{a=\"1} 1", 1, "unterminated"),
            ("m 1 1.5", 1, "timestamp"),
            ("m{1a=\"\"} 1", 1, "label name"),
            ("\n\n  9lives 1", 3, "metric name"),
        ] {
            let error = all(text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(says), "{text:?}: {error}");
        }
    }

    #[test]
    fn a_label_repeated_past_the_sixteenth_is_still_caught() {
        let labels: Vec<String> = (0..20).map(|i| format!("l{i}=\"v\"")).collect();
        let fine = format!("m{{{}}} 1", labels.join(","));
        assert_eq!(all(&fine).unwrap()[0].1.len(), 20);
        let repeated = format!("m{{{},l3=\"again\"}} 1", labels.join(","));
        assert!(all(&repeated).unwrap_err().message.contains("twice"));
    }

    #[test]
    fn iteration_stops_at_the_first_error() {
        let mut it = samples("a 1\nb x\nc 3");
        assert!(it.next().unwrap().is_ok());
        assert_eq!(it.next().unwrap().unwrap_err().line, 2);
        assert!(it.next().is_none());
    }
}
