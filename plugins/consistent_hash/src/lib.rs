//! Consistent hashing for lbx: requests with the same key go to the same backend, and adding
//! or removing one of N backends moves only about 1/N of the keys.
//!
//! A hash ring: each backend owns 160 points, placed by hashing its **id** (so reordering the
//! backends in lbx.toml moves nothing). A key goes to the owner of the first point at or after
//! its hash; if that backend is down (or already failed this request) the walk continues to
//! the next point of another backend, so only the keys of an unavailable backend move.
//!
//! ```toml
//! [plugin.config]
//! key = "header:x-user-id"   # or "cookie:session", "client_ip" (default), "path"
//! ```
//!
//! A request without the key (header or cookie absent) gets `no-opinion`: lbx's
//! least-in-flight fallback places it.
//!
//! **Bounded loads** (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
//! Loads"; HAProxy's `hash-balance-factor`): with `balance_factor = 1.25` no backend takes more
//! than 1.25 times the average load, so a hot key cannot bury its backend.
//!
//! ```toml
//! [plugin.config]
//! key = "cookie:session"
//! balance_factor = 1.25      # ≥ 1; absent: no bound
//! ```
//!
//! The capacity of each backend is `⌈balance_factor × (in-flight of the candidates + 1) /
//! candidates⌉`: the average in-flight count counting this request. A key stays on its backend
//! while that backend, with this request, stays within the capacity; otherwise it goes to the
//! next backend clockwise on the ring that does, and returns home as soon as home has room.
//! When loads are even, every backend has room and no key moves. The closer the factor is to
//! 1, the more even the loads and the more keys move away from home under uneven load.
//!
//! Build: `bash plugins/build.sh`. Test: `cargo test -p consistent_hash`.

use lbx_guest::{BackendInfo, Backends, Candidates, Decision, Request, RetryContext, Router};
use serde::{Deserialize, Deserializer};

/// Points per backend: more points, more even shares (about ±8% at 160) and a bigger ring.
const POINTS_PER_BACKEND: u32 = 160;

/// What the routing key is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Header(String),
    Cookie(String),
    ClientIp,
    Path,
}

impl Key {
    fn parse(text: &str) -> Result<Self, String> {
        match text.split_once(':') {
            Some(("header", name)) if !name.is_empty() => Ok(Key::Header(name.to_lowercase())),
            Some(("cookie", name)) if !name.is_empty() => Ok(Key::Cookie(name.to_string())),
            None if text == "client_ip" => Ok(Key::ClientIp),
            None if text == "path" => Ok(Key::Path),
            _ => Err(lbx_guest::config_error(
                "key",
                &format!(
                    "{text:?} is not a key; use \"header:<name>\", \"cookie:<name>\", \
                     \"client_ip\" or \"path\""
                ),
            )),
        }
    }

    fn of(&self, req: &dyn Request) -> Option<String> {
        match self {
            Key::Header(name) => req.header(name),
            Key::Cookie(name) => req.cookie(name),
            Key::ClientIp => Some(req.client_ip()),
            Key::Path => Some(req.path()),
        }
    }
}

/// `[plugin.config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_key")]
    key: String,
    #[serde(default, deserialize_with = "number")]
    balance_factor: Option<f64>,
}

fn default_key() -> String {
    "client_ip".into()
}

/// A present `balance_factor` must be a number: lbx hands over TOML's `nan` as JSON `null`,
/// which must not pass for "no bound".
fn number<'de, D: Deserializer<'de>>(value: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(value)? {
        Some(factor) => Ok(Some(factor)),
        None => Err(serde::de::Error::custom(
            "not a number; give a factor of at least 1, e.g. 1.25",
        )),
    }
}

/// How much above the average load a backend may go, in millionths (1.25 is 1_250_000), so
/// that capacities are computed exactly: `1.1 × 10` must give 11, not 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BalanceFactor(u64);

impl BalanceFactor {
    fn parse(factor: f64) -> Result<Self, String> {
        if factor.is_finite() && factor >= 1.0 {
            Ok(Self((factor * 1e6).round() as u64))
        } else {
            Err(lbx_guest::config_error(
                "balance_factor",
                &format!("{factor} is not a factor of at least 1 (e.g. 1.25)"),
            ))
        }
    }

    /// The most requests a backend may have in flight, this request included, when the
    /// candidates have `total` in flight between `count` of them (`count` > 0).
    fn capacity(self, total: u64, count: u64) -> u64 {
        let scaled = u128::from(self.0) * u128::from(total + 1);
        let per_backend = u128::from(count) * 1_000_000;
        u64::try_from(scaled.div_ceil(per_backend)).unwrap_or(u64::MAX)
    }
}

/// The ring: points sorted by hash, each naming a backend index.
#[derive(Debug, Default, Clone)]
pub struct Ring {
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// A ring over backends with these ids (index = position).
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut points = Vec::new();
        for (index, id) in ids.into_iter().enumerate() {
            for point in 0..POINTS_PER_BACKEND {
                let hash = lbx_guest::stable_hash(format!("{id}#{point}").as_bytes());
                points.push((hash, index));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// The first backend at or after `hash` on the ring for which `usable` holds.
    pub fn lookup(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        let start = self.points.partition_point(|&(h, _)| h < hash);
        let (after, before) = self.points.split_at(start);
        before
            .iter()
            .chain(after)
            .map(|&(_, index)| index)
            .find(|&index| usable(index))
    }
}

/// The plugin's state.
#[derive(Debug)]
pub struct ConsistentHash {
    key: Key,
    balance: Option<BalanceFactor>,
    ring: Ring,
}

impl Router for ConsistentHash {
    fn init(config: &str) -> Result<Self, String> {
        let settings: Settings = lbx_guest::parse_config(config)?;
        Ok(Self {
            key: Key::parse(&settings.key)?,
            balance: settings
                .balance_factor
                .map(BalanceFactor::parse)
                .transpose()?,
            ring: Ring::default(),
        })
    }

    fn backends_changed(&mut self, backends: &[BackendInfo]) {
        self.ring = Ring::new(backends.iter().map(|b| b.id.as_str()));
    }

    fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
        let Some(key) = self.key.of(req) else {
            return lbx_guest::no_opinion();
        };
        let hash = lbx_guest::stable_hash(key.as_bytes());
        let candidates = Candidates::new(backends, retry);
        let bounded = self.balance.and_then(|factor| {
            let (count, total) = candidates.iter().fold((0, 0), |(count, total), i| {
                (count + 1, total + u64::from(backends[i].in_flight))
            });
            if count == 0 {
                return None;
            }
            let capacity = factor.capacity(total, count);
            self.ring.lookup(hash, |i| {
                candidates.contains(i) && u64::from(backends[i].in_flight) < capacity
            })
        });
        // Without a bound, or (never, the least loaded candidate always has room) when no
        // candidate has room: the first candidate clockwise.
        bounded
            .or_else(|| self.ring.lookup(hash, |i| candidates.contains(i)))
            .map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
    }
}

lbx_guest::export_router!(ConsistentHash);

#[cfg(test)]
mod tests;
