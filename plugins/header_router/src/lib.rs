//! Rule-based routing for lbx: by path prefix, header value, cookie value or percentage, to
//! groups of backends selected by labels. Canary releases and API/web splits without
//! recompiling lbx.
//!
//! ```toml
//! [plugin.config]
//! default = { version = "stable" }                  # group for requests no rule matches
//! rules = [
//!   { path_prefix = "/api", strip_prefix = true, group = { pool = "api" } },
//!   { header = "x-canary", equals = "1", group = { version = "canary" } },
//!   { cookie = "beta", equals = "yes", group = { version = "canary" } },
//!   { percent = 5.0, group = { version = "canary" } },
//! ]
//! ```
//!
//! Rules are tried in order; the first that matches picks the group. A rule matches on exactly
//! one of:
//!
//! - `path_prefix`: the path starts with it (compared character by character, so `/api` also
//!   matches `/apis`: end it with `/` to match whole segments only);
//! - `header`: the header is present, or equal to `equals` when given (the name is
//!   case-insensitive);
//! - `cookie`: the cookie is present, or its value equal to `equals` when given (the name is
//!   case-sensitive, as cookie names are);
//! - `percent`: that share of the requests reaching it, at random.
//!
//! With `strip_prefix = true` (path rules only) the backend sees the path without the prefix,
//! query kept: `/api/users?x=1` becomes `/users?x=1`, and `/api` becomes `/` (a remainder not
//! starting with `/` gets one). Within a group the healthy backend with the fewest requests in
//! flight wins. A group with no healthy backend falls back to the default group, and that to
//! lbx's built-in choice (`no-opinion`); a fallen-back request keeps its path unchanged.
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
    #[serde(default)]
    strip_prefix: bool,
    header: Option<String>,
    cookie: Option<String>,
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
    PathPrefix {
        prefix: String,
        /// Whether the backend sees the path without the prefix.
        strip: bool,
    },
    Header {
        /// Lowercase.
        name: String,
        equals: Option<String>,
    },
    Cookie {
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

    fn matches(&mut self, route_index: usize, req: &dyn Request) -> bool {
        match &self.routes[route_index].condition {
            Condition::PathPrefix { prefix, .. } => req.path().starts_with(prefix.as_str()),
            Condition::Header { name, equals } => present_or_equal(req.header(name), equals),
            Condition::Cookie { name, equals } => present_or_equal(req.cookie(name), equals),
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

/// Whether a header or cookie `value` satisfies a rule: present, and equal to `equals` if given.
fn present_or_equal(value: Option<String>, equals: &Option<String>) -> bool {
    match (value, equals) {
        (Some(value), Some(expected)) => value == *expected,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The origin-form target the backend sees once `prefix` is taken off `path`: never empty,
/// always starting with `/`, the query kept.
fn strip(path: &str, prefix: &str, query: Option<&str>) -> String {
    let rest = path.strip_prefix(prefix).unwrap_or(path);
    let mut target = String::with_capacity(rest.len() + 2 + query.map_or(0, str::len));
    if !rest.starts_with('/') {
        target.push('/');
    }
    target.push_str(rest);
    if let Some(query) = query {
        target.push('?');
        target.push_str(query);
    }
    target
}

fn validate(index: usize, rule: Rule) -> Result<Route, String> {
    let problem = |what: &str| lbx_guest::config_error(&format!("rules[{index}]"), what);
    let takes_equals = rule.header.is_some() || rule.cookie.is_some();
    if rule.equals.is_some() && !takes_equals {
        return Err(problem("equals goes with header or cookie"));
    }
    if rule.strip_prefix && rule.path_prefix.is_none() {
        return Err(problem("strip_prefix goes with path_prefix"));
    }
    let condition = match (rule.path_prefix, rule.header, rule.cookie, rule.percent) {
        (Some(prefix), None, None, None) => Condition::PathPrefix {
            prefix,
            strip: rule.strip_prefix,
        },
        (None, Some(name), None, None) => Condition::Header {
            name: name.to_lowercase(),
            equals: rule.equals,
        },
        (None, None, Some(name), None) => Condition::Cookie {
            name,
            equals: rule.equals,
        },
        (None, None, None, Some(percent)) if (0.0..=100.0).contains(&percent) => {
            Condition::Sample((percent * 10_000.0).round() as u32)
        }
        (None, None, None, Some(percent)) => {
            return Err(problem(&format!("percent {percent} is not within 0..=100")));
        }
        _ => {
            return Err(problem(
                "needs exactly one of path_prefix, header, cookie (those two with an optional \
                 equals) or percent",
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
        if let Some(route) = matched.map(|i| &self.routes[i])
            && let Some(chosen) = self.least_loaded_in(&route.group, backends, candidates)
        {
            return match &route.condition {
                Condition::PathPrefix {
                    prefix,
                    strip: true,
                } => lbx_guest::pick(chosen).rewrite(strip(
                    &req.path(),
                    prefix,
                    req.query().as_deref(),
                )),
                _ => lbx_guest::pick(chosen),
            };
        }
        self.least_loaded_in(&self.default_group, backends, candidates)
            .map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
    }
}

lbx_guest::export_router!(HeaderRouter);

#[cfg(test)]
mod tests;
