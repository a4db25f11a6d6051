//! Which samples of a scrape a signal selects, and the one number it becomes.
//!
//! A sample matches a [`Selector`] when its metric name is the selector's and it carries every
//! matched label with the matched value (a matcher with an empty value also matches a sample
//! without that label, as in PromQL). The signal's value is the **sum** of the samples that
//! match, as PromQL's `sum()`: a gauge split by label (one queue per model or engine) adds up
//! to the backend's whole; one matching sample is its own value; none at all is missing (NaN).
//! A matching sample whose value is NaN makes the sum NaN, as it does in PromQL.

use super::exposition::{self, ParseError, Sample};
use crate::config::Selector;

/// Whether `sample` is one of the series `selector` selects.
pub fn matches(selector: &Selector, sample: &Sample<'_>) -> bool {
    sample.name == selector.name
        && selector
            .matchers
            .iter()
            .all(|(label, wanted)| match sample.label(label) {
                Some(value) => value == wanted.as_str(),
                None => wanted.is_empty(),
            })
}

/// Each selector's value in the exposition `text`, in selector order: the sum of the samples it
/// matches, NaN where none does. A malformed line fails the whole scrape, as in Prometheus.
pub fn evaluate(text: &str, selectors: &[Selector]) -> Result<Box<[f64]>, ParseError> {
    let mut values: Vec<Option<f64>> = vec![None; selectors.len()];
    for sample in exposition::samples(text) {
        let sample = sample?;
        for (selector, value) in selectors.iter().zip(values.iter_mut()) {
            if matches(selector, &sample) {
                *value = Some(value.unwrap_or(0.0) + sample.value);
            }
        }
    }
    Ok(values.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selectors(texts: &[&str]) -> Vec<Selector> {
        texts.iter().map(|t| Selector::parse(t).unwrap()).collect()
    }

    const VLLM: &str = "\
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine=\"0\",model_name=\"llama\"} 3
vllm:num_requests_waiting{engine=\"1\",model_name=\"llama\"} 4
vllm:num_requests_waiting{engine=\"0\",model_name=\"qwen\"} 10
vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"llama\"} 0.5
vllm:num_requests_running 2
vllm:num_requests_running{model_name=\"llama\"} 5
";

    #[test]
    fn series_matching_a_selector_are_summed() {
        let values = evaluate(
            VLLM,
            &selectors(&[
                "vllm:num_requests_waiting",
                "vllm:num_requests_waiting{model_name=\"llama\"}",
                "vllm:num_requests_waiting{model_name=\"llama\",engine=\"1\"}",
                "vllm:kv_cache_usage_perc",
            ]),
        )
        .unwrap();
        assert_eq!(&*values, [17.0, 7.0, 4.0, 0.5]);
    }

    #[test]
    fn absent_series_are_missing_not_zero() {
        let values = evaluate(
            VLLM,
            &selectors(&[
                "vllm:gpu_cache_usage_perc",
                "vllm:num_requests_waiting{model_name=\"mistral\"}",
            ]),
        )
        .unwrap();
        assert!(values.iter().all(|v| v.is_nan()), "{values:?}");
    }

    #[test]
    fn an_empty_matcher_selects_series_without_the_label() {
        let values = evaluate(
            VLLM,
            &selectors(&["vllm:num_requests_running{model_name=\"\"}"]),
        )
        .unwrap();
        assert_eq!(&*values, [2.0]);
    }

    #[test]
    fn matching_compares_unescaped_label_values() {
        let values = evaluate(
            "m{path=\"/a\\\"b\"} 1\nm{path=\"/c\"} 2",
            &selectors(&["m{path=\"/a\\\"b\"}"]),
        )
        .unwrap();
        assert_eq!(&*values, [1.0]);
    }

    #[test]
    fn a_malformed_line_fails_the_whole_scrape() {
        let error = evaluate("a 1\n<html>", &selectors(&["a"])).unwrap_err();
        assert_eq!(error.line, 2);
    }
}
