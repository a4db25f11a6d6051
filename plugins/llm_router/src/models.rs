//! Which backends serve which model, from a backend label (`model` by default): a
//! comma-separated list of the model names a backend serves, e.g.
//! `labels = { model = "llama-3-8b, llama-3-8b-instruct" }`. Names match exactly, as vLLM's
//! `--served-model-name` does.
//!
//! A backend without the label (or with an empty one) serves any model: a pool of identical
//! replicas needs no labels at all, and a catch-all backend can sit beside labelled ones.
//! Built once per backend set, so a request's filter is one map lookup.

use std::collections::HashMap;

use lbx_guest::BackendInfo;

/// The backends a request may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligible<'a> {
    /// These backend indexes, in order (every backend for a request without a model).
    Backends(&'a [usize]),
    /// None serves the requested model.
    UnknownModel,
}

/// The model → backends map of one backend set.
#[derive(Debug, Default)]
pub struct ModelFilter {
    /// For each named model: the backends listing it plus those serving any model.
    served: HashMap<String, Vec<usize>>,
    /// Backends without the label.
    any: Vec<usize>,
    /// Every backend.
    all: Vec<usize>,
}

impl ModelFilter {
    /// The filter over `backends`, reading label `label`.
    pub fn new(backends: &[BackendInfo], label: &str) -> Self {
        let mut served: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any = Vec::new();
        for (index, backend) in backends.iter().enumerate() {
            let models = backend
                .labels
                .iter()
                .find(|(key, _)| key == label)
                .map(|(_, value)| value.as_str())
                .unwrap_or("");
            let mut named = models
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .peekable();
            if named.peek().is_none() {
                any.push(index);
            }
            for model in named {
                let list = served.entry(model.to_owned()).or_default();
                if list.last() != Some(&index) {
                    list.push(index);
                }
            }
        }
        for list in served.values_mut() {
            list.extend_from_slice(&any);
            list.sort_unstable();
        }
        ModelFilter {
            served,
            any,
            all: (0..backends.len()).collect(),
        }
    }

    /// The backends for a request naming `model` (every backend when it names none).
    pub fn eligible(&self, model: Option<&str>) -> Eligible<'_> {
        let list = match model {
            None => &self.all,
            Some(model) => self.served.get(model).unwrap_or(&self.any),
        };
        if list.is_empty() && model.is_some() {
            Eligible::UnknownModel
        } else {
            Eligible::Backends(list)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbx_guest::testkit::labeled;

    fn filter() -> ModelFilter {
        ModelFilter::new(
            &[
                labeled("a", &[("model", "llama")]),
                labeled("b", &[("model", " llama , mistral,")]),
                labeled("c", &[("model", "mistral")]),
                labeled("d", &[("pool", "gpu")]),
            ],
            "model",
        )
    }

    #[test]
    fn a_model_goes_to_the_backends_listing_it_and_those_serving_any() {
        let f = filter();
        assert_eq!(f.eligible(Some("llama")), Eligible::Backends(&[0, 1, 3]));
        assert_eq!(f.eligible(Some("mistral")), Eligible::Backends(&[1, 2, 3]));
        assert_eq!(
            f.eligible(Some("gpt")),
            Eligible::Backends(&[3]),
            "d serves any"
        );
        assert_eq!(f.eligible(None), Eligible::Backends(&[0, 1, 2, 3]));
    }

    #[test]
    fn a_model_no_backend_serves_is_unknown() {
        let f = ModelFilter::new(&[labeled("a", &[("model", "llama")])], "model");
        assert_eq!(
            f.eligible(Some("Llama")),
            Eligible::UnknownModel,
            "exact match"
        );
        assert_eq!(f.eligible(None), Eligible::Backends(&[0]));
    }

    #[test]
    fn the_label_name_is_configurable_and_a_set_without_labels_serves_everything() {
        let f = ModelFilter::new(
            &[labeled("a", &[("served", "x")]), labeled("b", &[])],
            "served",
        );
        assert_eq!(f.eligible(Some("x")), Eligible::Backends(&[0, 1]));
        let f = ModelFilter::new(&[labeled("a", &[]), labeled("b", &[])], "model");
        assert_eq!(f.eligible(Some("anything")), Eligible::Backends(&[0, 1]));
        assert_eq!(
            ModelFilter::default().eligible(None),
            Eligible::Backends(&[])
        );
    }
}
