//! Rule-based routing for lbx: by path prefix, header value or percentage, to groups of
//! backends selected by labels. Canary releases and API/web splits without recompiling lbx.
//!
//! ```toml
//! [plugin.config]
//! default = { version = "stable" }                  # group for requests no rule matches
//! rules = [
//!   { path_prefix = "/api", group = { pool = "api" } },
//!   { header = "x-canary", equals = "1", group = { version = "canary" } },
//!   { percent = 5.0, group = { version = "canary" } },
//! ]
//! ```
//!
//! Rules are tried in order; the first that matches picks the group. A rule matches on
//! `path_prefix`, on `header` (present, or equal to `equals` when given), or on `percent`
//! (that share of the requests reaching it, at random). Within a group the healthy backend
//! with the fewest requests in flight wins. A group with no healthy backend falls back to the
//! default group, and that to lbx's built-in choice (`no-opinion`).
//!
//! Build: `bash plugins/build.sh`. Test: `cargo test -p header_router`.

use std::collections::BTreeMap;

use lbx_guest::{
    BackendInfo, BackendTable, Backends, Candidates, Decision, FastRng, Request, RetryContext,
    Router,
};
use serde::Deserialize;

/// One rule of `[plugin.config] rules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    path_prefix: Option<String>,
    header: Option<String>,
    equals: Option<String>,
    percent: Option<f64>,
    group: BTreeMap<String, String>,
}

/// `[plugin.config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    default: BTreeMap<String, String>,
}

/// What a rule tests.
#[derive(Debug)]
enum Condition {
    PathPrefix(String),
    Header {
        name: String,
        equals: Option<String>,
    },
    /// Matches this fraction of requests, in millionths.
    Sample(u32),
}

/// A validated rule.
#[derive(Debug)]
struct Route {
    condition: Condition,
    group: Vec<(String, String)>,
}

/// The plugin's state.
#[derive(Debug)]
pub struct HeaderRouter {
    routes: Vec<Route>,
    default_group: Vec<(String, String)>,
    table: BackendTable,
    rng: FastRng,
}

impl HeaderRouter {
    /// A router with a fixed random seed, for reproducible tests.
    pub fn with_seed(config: &str, seed: u64) -> Result<Self, String> {
        let mut router = Self::init(config)?;
        router.rng = FastRng::new(seed);
        Ok(router)
    }

    fn matches(&mut self, condition_index: usize, req: &dyn Request) -> bool {
        match &self.routes[condition_index].condition {
            Condition::PathPrefix(prefix) => req.path().starts_with(prefix.as_str()),
            Condition::Header { name, equals } => match (req.header(name), equals) {
                (Some(value), Some(expected)) => value == *expected,
                (Some(_), None) => true,
                (None, _) => false,
            },
            Condition::Sample(millionths) => {
                let millionths = *millionths;
                (self.rng.below(1_000_000) as u32) < millionths
            }
        }
    }

    fn least_loaded_in(
        &self,
        group: &[(String, String)],
        backends: &Backends,
        candidates: Candidates<'_>,
    ) -> Option<usize> {
        self.table
            .matching(group)
            .filter(|&i| candidates.contains(i))
            .min_by_key(|&i| backends[i].in_flight)
    }
}

fn validate(index: usize, rule: Rule) -> Result<Route, String> {
    let problem = |what: &str| lbx_guest::config_error(&format!("rules[{index}]"), what);
    let condition = match (rule.path_prefix, rule.header, rule.percent) {
        (Some(prefix), None, None) => Condition::PathPrefix(prefix),
        (None, Some(name), None) => Condition::Header {
            name: name.to_lowercase(),
            equals: rule.equals,
        },
        (None, None, Some(percent)) if (0.0..=100.0).contains(&percent) => {
            Condition::Sample((percent * 10_000.0).round() as u32)
        }
        (None, None, Some(percent)) => {
            return Err(problem(&format!("percent {percent} is not within 0..=100")));
        }
        _ => {
            return Err(problem(
                "needs exactly one of path_prefix, header (with optional equals) or percent",
            ));
        }
    };
    if rule.group.is_empty() {
        return Err(problem(
            "group is empty; name labels such as { pool = \"api\" }",
        ));
    }
    Ok(Route {
        condition,
        group: rule.group.into_iter().collect(),
    })
}

impl Router for HeaderRouter {
    fn init(config: &str) -> Result<Self, String> {
        let settings: Settings = lbx_guest::parse_config(config)?;
        let routes = settings
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, rule)| validate(i, rule))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            routes,
            default_group: settings.default.into_iter().collect(),
            table: BackendTable::default(),
            rng: FastRng::from_entropy(),
        })
    }

    fn backends_changed(&mut self, backends: &[BackendInfo]) {
        self.table.update(backends);
    }

    fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
        let candidates = Candidates::new(backends, retry);
        let matched = (0..self.routes.len()).find(|&i| self.matches(i, req));
        let chosen = matched
            .and_then(|i| self.least_loaded_in(&self.routes[i].group, backends, candidates))
            .or_else(|| self.least_loaded_in(&self.default_group, backends, candidates));
        chosen.map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
    }
}

lbx_guest::export_router!(HeaderRouter);

#[cfg(test)]
mod tests {
    use super::*;
    use lbx_guest::testkit::{FakeRequest, all_healthy, first_attempt, labeled, picked};

    const CONFIG: &str = r#"{
        "default": {"version": "stable"},
        "rules": [
            {"path_prefix": "/api", "group": {"pool": "api"}},
            {"header": "x-canary", "equals": "1", "group": {"version": "canary"}},
            {"percent": 5.0, "group": {"version": "canary"}}
        ]
    }"#;

    /// 0: web stable, 1: web canary, 2: api stable.
    fn router(seed: u64) -> HeaderRouter {
        let mut router = HeaderRouter::with_seed(CONFIG, seed).unwrap();
        router.backends_changed(&[
            labeled("web-1", &[("pool", "web"), ("version", "stable")]),
            labeled("web-canary", &[("pool", "web"), ("version", "canary")]),
            labeled("api-1", &[("pool", "api"), ("version", "stable")]),
        ]);
        router
    }

    fn route(router: &mut HeaderRouter, req: &FakeRequest, backends: &Backends) -> usize {
        picked(&router.choose(req, backends, &first_attempt())).unwrap()
    }

    #[test]
    fn path_and_header_rules_route_to_their_groups() {
        let mut router = router(1);
        let all = all_healthy(3);
        assert_eq!(route(&mut router, &FakeRequest::get("/api/users"), &all), 2);
        let canary = FakeRequest::get("/").header("X-Canary", "1");
        assert_eq!(route(&mut router, &canary, &all), 1);
        // The path rule comes first.
        let both = FakeRequest::get("/api").header("x-canary", "1");
        assert_eq!(route(&mut router, &both, &all), 2);
        // A header with another value does not match.
        let not_canary = FakeRequest::get("/").header("x-canary", "0");
        let stable = (0..100)
            .filter(|_| route(&mut router, &not_canary, &all) == 0)
            .count();
        assert!(stable > 80, "{stable}");
    }

    #[test]
    fn the_percentage_rule_takes_5_percent_within_2_points_over_10000_decisions() {
        let mut router = router(7);
        let all = all_healthy(3);
        let req = FakeRequest::get("/");
        let canary = (0..10_000)
            .filter(|_| route(&mut router, &req, &all) == 1)
            .count();
        let share = canary as f64 / 10_000.0;
        assert!((0.03..=0.07).contains(&share), "canary share {share}");
    }

    #[test]
    fn an_unavailable_group_falls_back_to_the_default_then_to_lbx() {
        let mut router = router(1);
        let mut api_down = all_healthy(3);
        api_down[2].healthy = false;
        assert_eq!(route(&mut router, &FakeRequest::get("/api"), &api_down), 0);
        let mut stable_down = all_healthy(3);
        stable_down[0].healthy = false;
        stable_down[2].healthy = false;
        let decision = router.choose(&FakeRequest::get("/api"), &stable_down, &first_attempt());
        assert_eq!(decision, lbx_guest::no_opinion());
    }

    #[test]
    fn bad_rules_are_refused_with_their_position() {
        let err = HeaderRouter::init(r#"{"rules":[{"group":{"a":"b"}}]}"#).unwrap_err();
        assert!(
            err.starts_with("plugin.config.rules[0]: needs exactly one of"),
            "{err}"
        );
        let err =
            HeaderRouter::init(r#"{"rules":[{"percent":150,"group":{"a":"b"}}]}"#).unwrap_err();
        assert!(err.contains("percent 150"), "{err}");
        let err = HeaderRouter::init(r#"{"rules":[{"path_prefix":"/","group":{}}]}"#).unwrap_err();
        assert!(err.contains("group is empty"), "{err}");
    }
}
