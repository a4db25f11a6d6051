//! Property tests of the exposition parser (any bytes: an error or samples, never a panic;
//! generated expositions: exactly the samples generated), and how [`Signals::fill`] lays
//! readings out.
//!
//! The randomised tests run `LBX_FUZZ_CASES` cases from `LBX_FUZZ_SEED` (`lbx::fuzz_settings`):
//! a plain `cargo test` runs a fixed seed; a failure prints the seed and count that reproduce it.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use super::exposition::samples;
use super::*;
use crate::config::{Selector, SignalsConfig};
use crate::fuzz_settings::fuzz_settings;
use crate::upstream::Upstreams;

const CI_SEED: u64 = 17;
const DEFAULT_CASES: u32 = 2000;

fn run<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let (seed, cases) = fuzz_settings(CI_SEED, DEFAULT_CASES);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    };
    if let Err(error) = TestRunner::new(config).run(&strategy, test) {
        panic!("{name}: {error}\nrerun with LBX_FUZZ_SEED={seed} LBX_FUZZ_CASES={cases}");
    }
}

/// Bytes that are mostly the format's own characters, so inputs get deep into the grammar.
fn near_exposition() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"m".to_vec()),
        Just(b"vllm:x_total".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"a=".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b",".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"#".to_vec()),
        Just(b"1.5".to_vec()),
        Just(b"-Inf".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"123".to_vec()),
        Just("é".as_bytes().to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..64).prop_map(|pieces| pieces.concat())
}

#[test]
fn arbitrary_bytes_never_panic_the_parser() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        near_exposition()
    ];
    let selectors: Vec<Selector> = ["m", "m{a=\"1\"}", "vllm:x_total{a=\"\"}"]
        .iter()
        .map(|s| Selector::parse(s).unwrap())
        .collect();
    run("arbitrary bytes", bytes, |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        for sample in samples(&text).flatten() {
            // Every label of an accepted sample reads back.
            let _ = sample.labels().count();
        }
        let _ = selector::evaluate(&text, &selectors);
        Ok(())
    });
}

/// One generated sample: name, labels (distinct names), value, timestamp.
type Generated = (String, Vec<(String, String)>, f64, Option<i64>);

fn generated_sample() -> impl Strategy<Value = Generated> {
    let name = "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}";
    let label = (
        "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        prop::string::string_regex("([^\\\\\"\n]|\\\\|\"|\n|é|,|=|\\}){0,10}").unwrap(),
    );
    let labels = prop::collection::vec(label, 0..5).prop_map(|mut labels| {
        let mut seen = std::collections::HashSet::new();
        labels.retain(|(name, _)| seen.insert(name.clone()));
        labels
    });
    let value = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        (-1e6f64..1e6),
        (0u32..1000).prop_map(f64::from),
    ];
    (name, labels, value, prop::option::of(any::<i64>()))
}

/// Render samples as an exposition, with comments, blank lines, CRLFs and spacing varied by
/// `style`.
fn render(samples: &[Generated], style: &[u8]) -> String {
    let mut text = String::new();
    for (i, (name, labels, value, timestamp)) in samples.iter().enumerate() {
        let s = style.get(i).copied().unwrap_or(0);
        if s & 1 != 0 {
            text.push_str(&format!(
                "# HELP {name} some help {{ \" \\\n# TYPE {name} gauge\n"
            ));
        }
        if s & 2 != 0 {
            text.push_str(" \t\n");
        }
        let gap = if s & 4 != 0 { " \t" } else { " " };
        if s & 8 != 0 {
            text.push('\t');
        }
        text.push_str(name);
        if !labels.is_empty() || s & 16 != 0 {
            text.push('{');
            let rendered: Vec<String> = labels
                .iter()
                .map(|(label, value)| {
                    let escaped = value
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    if s & 32 != 0 {
                        format!("{label} = \"{escaped}\"")
                    } else {
                        format!("{label}=\"{escaped}\"")
                    }
                })
                .collect();
            text.push_str(&rendered.join(","));
            if s & 64 != 0 && !labels.is_empty() {
                text.push(',');
            }
            text.push('}');
        }
        text.push_str(gap);
        let value = match *value {
            v if v.is_nan() => "NaN".to_string(),
            v if v == f64::INFINITY => "+Inf".to_string(),
            v if v == f64::NEG_INFINITY => "-Inf".to_string(),
            v => format!("{v:?}"),
        };
        text.push_str(&value);
        if let Some(timestamp) = timestamp {
            text.push_str(gap);
            text.push_str(&timestamp.to_string());
        }
        text.push_str(if s & 128 != 0 { "\r\n" } else { "\n" });
    }
    text
}

#[test]
fn generated_expositions_parse_to_the_samples_generated() {
    let strategy = (
        prop::collection::vec(generated_sample(), 0..12),
        prop::collection::vec(any::<u8>(), 12),
    );
    run("generated expositions", strategy, |(generated, style)| {
        let text = render(&generated, &style);
        let parsed: Vec<Generated> = samples(&text)
            .map(|sample| {
                let sample = sample.map_err(|e| TestCaseError::fail(format!("{e} in {text:?}")))?;
                let labels = sample
                    .labels()
                    .map(|(k, v)| (k.to_string(), v.into_owned()))
                    .collect();
                Ok((sample.name.to_string(), labels, sample.value, None))
            })
            .collect::<Result<_, TestCaseError>>()?;
        prop_assert_eq!(parsed.len(), generated.len(), "{}", text);
        for (got, want) in parsed.iter().zip(&generated) {
            prop_assert_eq!(&got.0, &want.0);
            prop_assert_eq!(&got.1, &want.1);
            let same = got.2 == want.2 || (got.2.is_nan() && want.2.is_nan());
            prop_assert!(same, "{} parsed as {} in {:?}", want.2, got.2, text);
        }
        Ok(())
    });
}

fn spec(metrics: &[&str]) -> crate::config::SignalsSpec {
    SignalsConfig {
        metrics: metrics.iter().map(|m| m.to_string()).collect(),
        ..SignalsConfig::default()
    }
    .resolve()
    .unwrap()
}

fn two_backends() -> Arc<Upstreams> {
    use crate::upstream::tests::{backend, pool_settings};
    let specs = [
        backend("http://127.0.0.1:1", Some("a")),
        backend("http://127.0.0.1:2", Some("b")),
    ];
    Arc::new(Upstreams::new(&specs, pool_settings()).unwrap())
}

#[test]
fn no_signals_fill_nothing() {
    let upstreams = two_backends();
    let mut out = vec![1.0];
    Signals::default().fill(&upstreams.snapshot(), &mut out);
    assert_eq!(out, [1.0]);
    assert!(!Signals::default().is_enabled());
}

#[test]
fn fill_lays_out_age_then_values_per_backend_with_nan_for_missing() {
    let upstreams = two_backends();
    let signals = Signals::new(spec(&["q", "kv"]));
    assert_eq!(signals.names(), ["q", "kv"]);
    let set = upstreams.snapshot();
    set.backends[0].signals.record_success(Reading {
        layout: signals.layout,
        at: Instant::now() - Duration::from_millis(250),
        values: vec![3.0, f64::NAN].into(),
    });
    // A failure keeps the reading; only its age grows.
    set.backends[0].signals.record_failure("refused".into());
    let mut out = Vec::new();
    signals.fill(&set, &mut out);
    assert_eq!(out.len(), 6);
    assert!((250.0..10_000.0).contains(&out[0]), "age in ms: {out:?}");
    assert_eq!(out[1], 3.0);
    assert!(out[2].is_nan(), "absent from the scrape");
    assert!(
        out[3..].iter().all(|v| v.is_nan()),
        "never scraped: {out:?}"
    );
}

#[test]
fn a_reload_keeps_readings_of_the_same_signals_and_drops_those_of_others() {
    let upstreams = two_backends();
    let scraper = Scraper::new(spec(&["q"]), upstreams.clone());
    let set = upstreams.snapshot();
    set.backends[1].signals.record_success(Reading {
        layout: scraper.signals().layout,
        at: Instant::now(),
        values: vec![7.0].into(),
    });
    let slower = crate::config::SignalsSpec {
        interval: Duration::from_secs(5),
        ..spec(&["q"])
    };
    assert!(scraper.reconfigure(slower.clone()));
    assert!(!scraper.reconfigure(slower), "nothing changed");
    let mut out = Vec::new();
    scraper.signals().fill(&set, &mut out);
    assert_eq!(out[3], 7.0, "same signals, same slots: {out:?}");

    assert!(scraper.reconfigure(spec(&["kv", "q"])));
    out.clear();
    scraper.signals().fill(&set, &mut out);
    assert_eq!(out.len(), 6);
    assert!(out.iter().all(|v| v.is_nan()), "other slots: {out:?}");
}
