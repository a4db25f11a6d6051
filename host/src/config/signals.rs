//! `[signals]`: which Prometheus series lbx scrapes from every backend's own `/metrics`, and
//! how often, to hand their values to the routing plugin (issue 17; scraping is in
//! `crate::signals`).
//!
//! A signal is written as a Prometheus series selector: a bare metric name
//! (`vllm:num_requests_waiting`) or a name with equality label matchers
//! (`vllm:num_requests_waiting{model_name="llama"}`). PromQL's other matchers (`!=`, `=~`,
//! `!~`) are refused by name: equality is what an operator picking one model's queue needs,
//! and a regular expression engine on every scrape is not. When several series of a scrape
//! match one selector their values are **summed**, as PromQL's `sum()` would: a gauge split by
//! label (a queue per model, per engine) adds up to the backend's whole queue. A matcher with an
//! empty value (`engine=""`) matches series without that label, as in PromQL.
//!
//! The selector syntax (metric and label names, quoted label values with `\\`, `\"` and `\n`
//! escapes) is the text exposition format's own; its lexical pieces are here, in the leaf
//! module, and the exposition parser (`crate::signals::exposition`) uses them too.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::Problem;

/// Shortest scrape interval: below it lbx would be a load on its own backends.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Smallest and largest `max_bytes`: a scrape body is held whole in memory while it is parsed.
pub const MAX_BYTES_RANGE: (u64, u64) = (1024, 64 * 1024 * 1024);

/// `[signals]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsConfig {
    /// Path scraped with GET on every backend (origin-form, like `/metrics`).
    #[serde(default = "default_path")]
    pub path: String,
    /// Time between two scrapes of a backend.
    #[serde(default = "default_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// Longest one scrape may take, connect to last byte (default: the smaller of `interval`
    /// and 1s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Largest response body read; a longer one fails the scrape. A byte count or a size with
    /// a unit (`"1MiB"`, `"512KiB"`).
    #[serde(
        default = "default_max_bytes",
        deserialize_with = "super::size::deserialize"
    )]
    pub max_bytes: ByteSize,
    /// The series to read, in slot order; none turns signals (and all scraping) off.
    #[serde(default)]
    pub metrics: Vec<String>,
}

impl Default for SignalsConfig {
    fn default() -> Self {
        Self {
            path: default_path(),
            interval: default_interval(),
            timeout: None,
            max_bytes: default_max_bytes(),
            metrics: Vec::new(),
        }
    }
}

fn default_path() -> String {
    "/metrics".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_bytes() -> ByteSize {
    ByteSize::mib(1)
}

/// `[signals]` resolved: every default filled in, every selector parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalsSpec {
    /// Path scraped with GET.
    pub path: String,
    /// Time between scrapes.
    pub interval: Duration,
    /// Bound of one whole scrape.
    pub timeout: Duration,
    /// Bound of one response body, in bytes.
    pub max_bytes: usize,
    /// The signals, in slot order (empty: signals off).
    pub selectors: Vec<Selector>,
}

impl Default for SignalsSpec {
    fn default() -> Self {
        SignalsConfig::default()
            .resolve()
            .expect("the defaults are valid")
    }
}

impl SignalsSpec {
    /// Whether any signal is configured (otherwise nothing is scraped).
    pub fn is_enabled(&self) -> bool {
        !self.selectors.is_empty()
    }
}

impl SignalsConfig {
    /// The resolved settings, or every problem, each under its `signals.*` key.
    pub fn resolve(&self) -> Result<SignalsSpec, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut problem = |key: String, message: String| problems.push(Problem { key, message });

        if let Err(message) = check_path(&self.path) {
            problem("signals.path".into(), message);
        }
        if self.interval < MIN_INTERVAL {
            problem(
                "signals.interval".into(),
                format!(
                    "must be at least {} (every backend is scraped this often)",
                    humantime::format_duration(MIN_INTERVAL)
                ),
            );
        }
        super::check_duration("signals.interval", self.interval, &mut problem);
        let timeout = self
            .timeout
            .unwrap_or_else(|| self.interval.min(Duration::from_secs(1)));
        if timeout.is_zero() {
            problem("signals.timeout".into(), "must be greater than 0".into());
        } else if timeout > self.interval {
            problem(
                "signals.timeout".into(),
                format!(
                    "{} is longer than signals.interval ({}): a scrape must end before the next \
                     one starts",
                    humantime::format_duration(timeout),
                    humantime::format_duration(self.interval)
                ),
            );
        }
        let (least, most) = MAX_BYTES_RANGE;
        if !(least..=most).contains(&self.max_bytes.as_u64()) {
            problem(
                "signals.max_bytes".into(),
                format!(
                    "{} is not between {} and {}",
                    self.max_bytes.display().iec(),
                    ByteSize(least).display().iec(),
                    ByteSize(most).display().iec()
                ),
            );
        }
        let mut selectors = Vec::with_capacity(self.metrics.len());
        let mut seen: HashMap<(String, Vec<(String, String)>), usize> = HashMap::new();
        for (i, text) in self.metrics.iter().enumerate() {
            let key = format!("signals.metrics[{i}]");
            match Selector::parse(text) {
                Ok(selector) => match seen.get(&selector.identity()) {
                    Some(first) => problem(
                        key,
                        format!(
                            "{text:?} selects the same series as signals.metrics[{first}] ({:?})",
                            self.metrics[*first]
                        ),
                    ),
                    None => {
                        seen.insert(selector.identity(), i);
                        selectors.push(selector);
                    }
                },
                Err(message) => problem(key, format!("{text:?}: {message}")),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(SignalsSpec {
            path: self.path.clone(),
            interval: self.interval,
            timeout,
            max_bytes: usize::try_from(self.max_bytes.as_u64()).unwrap_or(usize::MAX),
            selectors,
        })
    }
}

/// An origin-form request target: `/path` with an optional `?query`, nothing else.
fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "{path:?} must be a path starting with / (origin-form, like /metrics)"
        ));
    }
    if path.contains('#') {
        return Err(format!("{path:?} must not have a #fragment"));
    }
    path.parse::<http::uri::PathAndQuery>()
        .map(drop)
        .map_err(|e| format!("{path:?} is not a valid request path ({e})"))
}

/// One signal: a metric name and the label values its series must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    /// As the operator wrote it: the signal's name for plugins, the admin API and `/metrics`.
    pub text: String,
    /// The metric name.
    pub name: String,
    /// `(label, value)` pairs a series must carry, in the order written; a series matches when
    /// it has every one (an empty value matches a series without the label).
    pub matchers: Vec<(String, String)>,
}

impl Selector {
    /// Parse `name` or `name{label="value", ...}`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text.trim_matches(is_blank);
        if rest.is_empty() {
            return Err("is empty: name a metric, e.g. vllm:num_requests_waiting".into());
        }
        let (name, mut rest) = metric_name(rest);
        if name.is_empty() {
            return Err(
                "must start with a metric name (letters, digits, _ and :, not starting with a \
                 digit)"
                    .into(),
            );
        }
        rest = rest.trim_start_matches(is_blank);
        let mut matchers: Vec<(String, String)> = Vec::new();
        if let Some(inside) = rest.strip_prefix('{') {
            rest = inside;
            loop {
                rest = rest.trim_start_matches(is_blank);
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (label, after) = label_name(rest);
                if label.is_empty() {
                    return Err(format!(
                        "expected a label name or }} at {:?}",
                        excerpt(rest)
                    ));
                }
                rest = after.trim_start_matches(is_blank);
                for refused in ["!=", "=~", "!~"] {
                    if rest.starts_with(refused) {
                        return Err(format!(
                            "only equality matchers (label=\"value\") are supported, not \
                             {label}{refused}"
                        ));
                    }
                }
                let Some(after) = rest.strip_prefix('=') else {
                    return Err(format!("expected = after the label name {label}"));
                };
                rest = after.trim_start_matches(is_blank);
                if !rest.starts_with('"') {
                    return Err(format!(
                        "the value of {label} must be in double quotes, like {label}=\"value\""
                    ));
                }
                let (value, after) = quoted_value(rest).map_err(|e| format!("{label}: {e}"))?;
                if matchers.iter().any(|(seen, _)| seen == label) {
                    return Err(format!("the label {label} is matched twice"));
                }
                matchers.push((label.to_string(), value.into_owned()));
                rest = after.trim_start_matches(is_blank);
                if let Some(after) = rest.strip_prefix(',') {
                    rest = after;
                } else if !rest.starts_with('}') {
                    return Err(format!(
                        "expected , or }} after {label}'s value, found {:?}",
                        excerpt(rest)
                    ));
                }
            }
            rest = rest.trim_start_matches(is_blank);
        }
        if !rest.is_empty() {
            return Err(format!(
                "unexpected {:?} after the selector (write name or name{{label=\"value\"}})",
                excerpt(rest)
            ));
        }
        Ok(Self {
            text: text.to_string(),
            name: name.to_string(),
            matchers,
        })
    }

    /// What the selector selects, whatever the spacing and matcher order it was written with.
    fn identity(&self) -> (String, Vec<(String, String)>) {
        let mut matchers = self.matchers.clone();
        matchers.sort();
        (self.name.clone(), matchers)
    }
}

/// The start of `text`, for an error message.
fn excerpt(text: &str) -> String {
    text.chars().take(20).collect()
}

/// Blanks separating tokens on one line of the exposition format.
pub(crate) fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Split off the longest prefix made of `[a-zA-Z_:][a-zA-Z0-9_:]*` (empty if none).
pub(crate) fn metric_name(text: &str) -> (&str, &str) {
    split_name(text, |b| b == b':')
}

/// Split off the longest prefix made of `[a-zA-Z_][a-zA-Z0-9_]*` (empty if none).
pub(crate) fn label_name(text: &str) -> (&str, &str) {
    split_name(text, |_| false)
}

fn split_name(text: &str, also: impl Fn(u8) -> bool) -> (&str, &str) {
    let bytes = text.as_bytes();
    let ok = |b: u8, first: bool| {
        b.is_ascii_alphabetic() || b == b'_' || also(b) || (!first && b.is_ascii_digit())
    };
    let end = bytes
        .iter()
        .enumerate()
        .find(|&(i, &b)| !ok(b, i == 0))
        .map_or(bytes.len(), |(i, _)| i);
    text.split_at(end)
}

/// A label value at the start of `text` (which starts with `"`), unescaped, and what follows
/// its closing quote. Only `\\`, `\"` and `\n` are escapes, as in the text exposition format.
pub(crate) fn quoted_value(text: &str) -> Result<(Cow<'_, str>, &str), &'static str> {
    let body = text
        .strip_prefix('"')
        .ok_or("a label value must start with \"")?;
    let bytes = body.as_bytes();
    let mut owned: Option<String> = None;
    let mut copied = 0; // bytes of `body` already in `owned`
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let value = match owned {
                    Some(mut value) => {
                        value.push_str(&body[copied..i]);
                        Cow::Owned(value)
                    }
                    None => Cow::Borrowed(&body[..i]),
                };
                return Ok((value, &body[i + 1..]));
            }
            b'\\' => {
                let unescaped = match bytes.get(i + 1) {
                    Some(b'\\') => '\\',
                    Some(b'"') => '"',
                    Some(b'n') => '\n',
                    Some(_) => {
                        return Err("invalid escape in a label value (only \\\\, \\\" and \\n)");
                    }
                    None => return Err("unterminated label value (no closing \")"),
                };
                let value = owned.get_or_insert_with(String::new);
                value.push_str(&body[copied..i]);
                value.push(unescaped);
                i += 2;
                copied = i;
            }
            _ => i += 1,
        }
    }
    Err("unterminated label value (no closing \")")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<SignalsSpec, Vec<Problem>> {
        toml::from_str::<SignalsConfig>(toml).unwrap().resolve()
    }

    fn problems(toml: &str) -> Vec<(String, String)> {
        parse(toml)
            .unwrap_err()
            .into_iter()
            .map(|p| (p.key, p.message))
            .collect()
    }

    #[test]
    fn defaults_scrape_nothing_every_second_from_metrics() {
        let spec = parse("").unwrap();
        assert!(!spec.is_enabled());
        assert_eq!(spec.path, "/metrics");
        assert_eq!(spec.interval, Duration::from_secs(1));
        assert_eq!(spec.timeout, Duration::from_secs(1));
        assert_eq!(spec.max_bytes, 1024 * 1024);
        assert_eq!(spec, SignalsSpec::default());
    }

    #[test]
    fn every_key_parses() {
        let spec = parse(
            r#"
            path = "/stats/prometheus?format=text"
            interval = "250ms"
            timeout = "200ms"
            max_bytes = "512KiB"
            metrics = ["vllm:num_requests_waiting", 'vllm:kv_cache_usage_perc{model_name="llama"}']
            "#,
        )
        .unwrap();
        assert_eq!(spec.path, "/stats/prometheus?format=text");
        assert_eq!(spec.interval, Duration::from_millis(250));
        assert_eq!(spec.timeout, Duration::from_millis(200));
        assert_eq!(spec.max_bytes, 512 * 1024);
        let texts: Vec<_> = spec.selectors.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "vllm:num_requests_waiting",
                "vllm:kv_cache_usage_perc{model_name=\"llama\"}"
            ]
        );
        assert_eq!(
            spec.selectors[1].matchers,
            [("model_name".to_string(), "llama".to_string())]
        );
        // A byte count works as the other size keys do.
        assert_eq!(parse("max_bytes = 4096").unwrap().max_bytes, 4096);
    }

    #[test]
    fn timeout_defaults_to_the_interval_when_that_is_shorter_than_a_second() {
        assert_eq!(
            parse("interval = \"100ms\"").unwrap().timeout,
            Duration::from_millis(100)
        );
        assert_eq!(
            parse("interval = \"5s\"").unwrap().timeout,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn bad_settings_are_named_by_key() {
        let found = problems(
            r#"
            path = "metrics"
            interval = "1ms"
            max_bytes = "100GiB"
            "#,
        );
        let keys: Vec<_> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["signals.path", "signals.interval", "signals.max_bytes"],
            "{found:?}"
        );
        let found = problems("interval = \"1s\"\ntimeout = \"2s\"");
        assert_eq!(found[0].0, "signals.timeout");
        assert!(
            found[0].1.contains("longer than signals.interval"),
            "{found:?}"
        );
        assert_eq!(problems("timeout = \"0s\"")[0].0, "signals.timeout");
        assert_eq!(problems("path = \"/m#x\"")[0].0, "signals.path");
        assert_eq!(problems("path = \"/a b\"")[0].0, "signals.path");
    }

    #[test]
    fn unknown_keys_and_unparsable_sizes_are_refused() {
        assert!(toml::from_str::<SignalsConfig>("intervall = \"1s\"").is_err());
        assert!(toml::from_str::<SignalsConfig>("max_bytes = \"lots\"").is_err());
    }

    #[test]
    fn malformed_and_duplicate_selectors_name_their_entry() {
        let found = problems(
            r#"metrics = [
                "a",
                "2bad",
                'b{x=~"y"}',
                "a",
                'c{ y="2", x="1" }',
                'c{x="1",y="2",}',
                "",
            ]"#,
        );
        let keys: Vec<_> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "signals.metrics[1]",
                "signals.metrics[2]",
                "signals.metrics[3]",
                "signals.metrics[5]",
                "signals.metrics[6]",
            ],
            "{found:?}"
        );
        assert!(found[1].1.contains("only equality matchers"), "{found:?}");
        assert!(found[2].1.contains("signals.metrics[0]"), "{found:?}");
        assert!(found[3].1.contains("signals.metrics[4]"), "{found:?}");
    }

    #[test]
    fn selectors_parse_names_matchers_and_escapes() {
        let s = Selector::parse(r#" vllm:x_total { a = "1" , b="q\"\\\n" } "#).unwrap();
        assert_eq!(s.name, "vllm:x_total");
        assert_eq!(
            s.matchers,
            [("a".into(), "1".into()), ("b".into(), "q\"\\\n".into())]
        );
        assert!(Selector::parse("x{}").unwrap().matchers.is_empty());
        for (bad, says) in [
            ("x{a!=\"1\"}", "only equality matchers"),
            ("x{a=~\"1\"}", "only equality matchers"),
            ("x{a='1'}", "double quotes"),
            ("x{a=\"1\"", "expected , or }"),
            ("x{a=\"1}", "unterminated"),
            ("x{a=\"\\t\"}", "invalid escape"),
            ("x{a=\"1\",a=\"2\"}", "matched twice"),
            ("x{:a=\"1\"}", "label name"),
            ("x y", "unexpected"),
            ("{a=\"1\"}", "metric name"),
            ("x{a}", "expected ="),
            ("x{a=\"1\"} z", "unexpected"),
        ] {
            let message = Selector::parse(bad).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
        }
    }
}
