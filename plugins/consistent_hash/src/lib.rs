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
//! Build: `bash plugins/build.sh`. Test: `cargo test -p consistent_hash`.

use lbx_guest::{BackendInfo, Backends, Candidates, Decision, Request, RetryContext, Router};
use serde::Deserialize;

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
}

fn default_key() -> String {
    "client_ip".into()
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
    ring: Ring,
}

impl Router for ConsistentHash {
    fn init(config: &str) -> Result<Self, String> {
        let settings: Settings = lbx_guest::parse_config(config)?;
        Ok(Self {
            key: Key::parse(&settings.key)?,
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
        let candidates = Candidates::new(backends, retry);
        self.ring
            .lookup(lbx_guest::stable_hash(key.as_bytes()), |i| {
                candidates.contains(i)
            })
            .map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
    }
}

lbx_guest::export_router!(ConsistentHash);

#[cfg(test)]
mod tests {
    use super::*;
    use lbx_guest::testkit::{FakeRequest, all_healthy, backend_info, first_attempt, picked};

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("backend-{i}")).collect()
    }

    fn owners(ring: &Ring, keys: &[String]) -> Vec<usize> {
        keys.iter()
            .map(|k| {
                ring.lookup(lbx_guest::stable_hash(k.as_bytes()), |_| true)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn adding_a_sixth_backend_moves_at_most_a_sixth_of_10000_keys_plus_5_percent() {
        let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
        let five = ids(5);
        let six = ids(6);
        let before = owners(&Ring::new(five.iter().map(String::as_str)), &keys);
        let after = owners(&Ring::new(six.iter().map(String::as_str)), &keys);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        let share = moved as f64 / keys.len() as f64;
        assert!(share <= 1.0 / 6.0 + 0.05, "moved {share}");
        // Every key that moved went to the new backend.
        assert!(before.iter().zip(&after).all(|(a, b)| a == b || *b == 5));
        // And the five shares stay reasonably even.
        for backend in 0..5 {
            let count = before.iter().filter(|&&o| o == backend).count();
            assert!(
                (1_500..2_500).contains(&count),
                "backend {backend}: {count}"
            );
        }
    }

    #[test]
    fn the_same_key_sticks_and_a_down_backend_moves_only_its_own_keys() {
        let mut router = ConsistentHash::init(r#"{"key":"header:X-User"}"#).unwrap();
        router.backends_changed(&[
            backend_info("a", "a:80"),
            backend_info("b", "b:80"),
            backend_info("c", "c:80"),
        ]);
        let all = all_healthy(3);
        let req = |user: &str| FakeRequest::get("/").header("x-user", user);
        let choose = |router: &mut ConsistentHash, user: &str, backends: &Backends| {
            picked(&router.choose(&req(user), backends, &first_attempt())).unwrap()
        };
        let users: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
        let home: Vec<usize> = users.iter().map(|u| choose(&mut router, u, &all)).collect();
        assert_eq!(
            home,
            users
                .iter()
                .map(|u| choose(&mut router, u, &all))
                .collect::<Vec<_>>()
        );

        let mut b_down = all.clone();
        b_down[1].healthy = false;
        for (user, &was) in users.iter().zip(&home) {
            let now = choose(&mut router, user, &b_down);
            if was != 1 {
                assert_eq!(now, was, "only keys of the down backend move");
            } else {
                assert_ne!(now, 1);
            }
        }
        // No key: the host decides.
        let anonymous = FakeRequest::get("/");
        assert_eq!(
            router.choose(&anonymous, &all, &first_attempt()),
            lbx_guest::no_opinion()
        );
    }

    #[test]
    fn keys_are_validated() {
        assert!(ConsistentHash::init(r#"{"key":"path"}"#).is_ok());
        assert!(ConsistentHash::init(r#"{"key":"cookie:session"}"#).is_ok());
        let err = ConsistentHash::init(r#"{"key":"body"}"#).unwrap_err();
        assert!(
            err.starts_with("plugin.config.key: \"body\" is not a key"),
            "{err}"
        );
    }
}
