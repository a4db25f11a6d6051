//! Weighted round robin for lbx: nginx's smooth weighted round robin over the healthy
//! backends. Over any `sum(weights)` consecutive requests each backend gets exactly its weight's
//! share, interleaved (weights 5:1:1 send `a a b a c a a`, not five `a` in a row).
//!
//! Weights come from each backend's `weight` in lbx.toml, or from a label when configured:
//!
//! ```toml
//! [plugin.config]
//! weight_label = "capacity"   # optional: use the label `capacity = "5"` as the weight
//! ```
//!
//! A backend without the label (or with a non-number) keeps its configured weight. Down
//! backends and those already tried by a retry are skipped without losing their place.
//!
//! Build: `bash plugins/build.sh`. Test: `cargo test -p weighted_round_robin`.

use lbx_guest::{
    BackendInfo, Backends, Candidates, Decision, Request, RetryContext, Router, SmoothWeighted,
};
use serde::Deserialize;

/// `[plugin.config]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Label whose integer value is the weight.
    weight_label: Option<String>,
}

/// The plugin's state.
#[derive(Debug, Default)]
pub struct WeightedRoundRobin {
    settings: Settings,
    /// Weights read from labels at the last `backends-changed` (`None`: use the config weight).
    label_weights: Vec<Option<u32>>,
    smooth: SmoothWeighted,
}

impl Router for WeightedRoundRobin {
    fn init(config: &str) -> Result<Self, String> {
        Ok(Self {
            settings: lbx_guest::parse_config(config)?,
            ..Self::default()
        })
    }

    fn backends_changed(&mut self, backends: &[BackendInfo]) {
        self.label_weights = match &self.settings.weight_label {
            Some(label) => backends
                .iter()
                .map(|b| {
                    b.labels
                        .iter()
                        .find(|(k, _)| k == label)
                        .and_then(|(_, v)| v.parse().ok())
                })
                .collect(),
            None => Vec::new(),
        };
    }

    fn choose(
        &mut self,
        _req: &dyn Request,
        backends: &Backends,
        retry: &RetryContext,
    ) -> Decision {
        let candidates = Candidates::new(backends, retry);
        let label_weights = &self.label_weights;
        let weight = |i: usize| {
            label_weights
                .get(i)
                .copied()
                .flatten()
                .unwrap_or(backends[i].weight)
        };
        self.smooth
            .pick(candidates.iter(), weight, backends.len())
            .map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
    }
}

lbx_guest::export_router!(WeightedRoundRobin);

#[cfg(test)]
mod tests {
    use super::*;
    use lbx_guest::testkit::{
        FakeRequest, all_healthy, first_attempt, labeled, picked, retry, weights as weighted,
    };

    fn picks(router: &mut WeightedRoundRobin, backends: &Backends, n: usize) -> Vec<usize> {
        let req = FakeRequest::get("/");
        (0..n)
            .map(|_| picked(&router.choose(&req, backends, &first_attempt())).unwrap())
            .collect()
    }

    #[test]
    fn weights_5_1_1_over_700_requests_give_500_100_100_interleaved() {
        let mut router = WeightedRoundRobin::init("{}").unwrap();
        let sequence = picks(&mut router, &weighted(&[5, 1, 1]), 700);
        let count = |b| sequence.iter().filter(|&&i| i == b).count();
        assert_eq!((count(0), count(1), count(2)), (500, 100, 100));
        // Interleaved: every window of 7 is nginx's smooth sequence, not a burst of five.
        assert!(
            sequence.chunks(7).all(|w| w == [0, 0, 1, 0, 2, 0, 0]),
            "{:?}",
            &sequence[..14]
        );
    }

    #[test]
    fn weights_can_come_from_a_label() {
        let mut router = WeightedRoundRobin::init(r#"{"weight_label":"capacity"}"#).unwrap();
        router.backends_changed(&[labeled("a", &[("capacity", "3")]), labeled("b", &[])]);
        let sequence = picks(&mut router, &all_healthy(2), 400);
        assert_eq!(sequence.iter().filter(|&&i| i == 0).count(), 300);
    }

    #[test]
    fn down_and_tried_backends_are_skipped() {
        let mut router = WeightedRoundRobin::init("{}").unwrap();
        let mut backends = weighted(&[5, 1, 1]);
        backends[0].healthy = false;
        let sequence = picks(&mut router, &backends, 10);
        assert!(sequence.iter().all(|&i| i != 0));
        let req = FakeRequest::get("/");
        let decision = router.choose(&req, &weighted(&[1, 1, 1]), &retry(&[0, 1]));
        assert_eq!(picked(&decision), Some(2));
    }

    #[test]
    fn unknown_config_keys_are_refused() {
        let err = WeightedRoundRobin::init(r#"{"weigth_label":"x"}"#).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
    }
}
