//! Sticky sessions by cookie for lbx.
//!
//! A request carrying the sticky cookie that names a healthy backend goes to that backend.
//! Otherwise the plugin picks the healthy backend with the fewest requests in flight and sets
//! the cookie on the response, so the client's next requests follow. When the client's backend
//! goes down (or fails this request) the client moves to a healthy one and gets a new cookie.
//!
//! The cookie value names the backend **opaquely**: 16 hex digits of a keyed hash of the
//! backend's id, never its address. A value that matches no backend (tampered, stale, or from
//! another deployment) is ignored, never trusted. The key is `secret` from the config or, if
//! none is given, one generated once and kept in lbx's key-value store, shared by every
//! instance and kept across hot swaps (cookies stay valid after a plugin upgrade).
//!
//! ```toml
//! [plugin.config]
//! cookie = "lbx_sticky"     # name (default)
//! path = "/"                # Path (default "/")
//! max_age = 3600            # Max-Age in seconds; omit for a session cookie
//! http_only = true          # HttpOnly (default true)
//! secure = false            # Secure (default false; set it behind TLS)
//! same_site = "Lax"         # Strict, Lax (default) or None
//! secret = "change-me"      # optional: fixed key (the same on every lbx replica)
//! ```
//!
//! Build: `bash plugins/build.sh`. Test: `cargo test -p sticky_cookie`.

use lbx_guest::{
    BackendInfo, BackendStats, Backends, Candidates, Decision, FastRng, Request, RetryContext,
    Router, kv,
};
use serde::Deserialize;

/// Where a generated secret is kept in the host key-value store.
const SECRET_KEY: &str = "sticky_cookie/secret";

/// `[plugin.config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_cookie")]
    cookie: String,
    #[serde(default = "default_path")]
    path: String,
    max_age: Option<u64>,
    #[serde(default = "yes")]
    http_only: bool,
    #[serde(default)]
    secure: bool,
    #[serde(default = "default_same_site")]
    same_site: String,
    secret: Option<String>,
}

fn default_cookie() -> String {
    "lbx_sticky".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_same_site() -> String {
    "Lax".into()
}
fn yes() -> bool {
    true
}

/// The plugin's state.
#[derive(Debug)]
pub struct StickyCookie {
    settings: Settings,
    /// The attributes after `name=value`, built once.
    attributes: String,
    secret: Vec<u8>,
    /// Cookie value of each backend, by index (from the last `backends-changed`).
    tokens: Vec<String>,
}

impl StickyCookie {
    fn token(&self, id: &str) -> String {
        let keyed = lbx_guest::fnv1a_64_extend(lbx_guest::fnv1a_64(&self.secret), b"\0");
        let hash = lbx_guest::mix64(lbx_guest::fnv1a_64_extend(keyed, id.as_bytes()));
        format!("{hash:016x}")
    }

    fn least_loaded(backends: &[BackendStats], candidates: Candidates<'_>) -> Option<usize> {
        candidates.iter().min_by_key(|&i| backends[i].in_flight)
    }
}

impl Router for StickyCookie {
    fn init(config: &str) -> Result<Self, String> {
        let settings: Settings = lbx_guest::parse_config(config)?;
        if !matches!(settings.same_site.as_str(), "Strict" | "Lax" | "None") {
            return Err(lbx_guest::config_error(
                "same_site",
                &format!("{:?}; use Strict, Lax or None", settings.same_site),
            ));
        }
        if settings.cookie.is_empty()
            || !settings
                .cookie
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return Err(lbx_guest::config_error(
                "cookie",
                &format!(
                    "{:?} is not a cookie name (letters, digits, _ - .)",
                    settings.cookie
                ),
            ));
        }
        let secret = match &settings.secret {
            Some(secret) => secret.clone().into_bytes(),
            None => shared_generated_secret()?,
        };
        let mut attributes = format!("; Path={}", settings.path);
        if let Some(max_age) = settings.max_age {
            attributes.push_str(&format!("; Max-Age={max_age}"));
        }
        if settings.http_only {
            attributes.push_str("; HttpOnly");
        }
        if settings.secure || settings.same_site == "None" {
            attributes.push_str("; Secure"); // browsers drop SameSite=None without Secure
        }
        attributes.push_str(&format!("; SameSite={}", settings.same_site));
        Ok(Self {
            settings,
            attributes,
            secret,
            tokens: Vec::new(),
        })
    }

    fn backends_changed(&mut self, backends: &[BackendInfo]) {
        self.tokens = backends.iter().map(|b| self.token(&b.id)).collect();
    }

    fn choose(&mut self, req: &dyn Request, backends: &Backends, retry: &RetryContext) -> Decision {
        let candidates = Candidates::new(backends, retry);
        let sticky = req
            .cookie(&self.settings.cookie)
            .and_then(|value| self.tokens.iter().position(|t| *t == value));
        if let Some(index) = sticky.filter(|&i| candidates.contains(i)) {
            return lbx_guest::pick(index);
        }
        let Some(index) = Self::least_loaded(backends, candidates) else {
            return lbx_guest::no_opinion();
        };
        let Some(token) = self.tokens.get(index) else {
            return lbx_guest::pick(index); // ids not known yet: route without a cookie
        };
        let cookie = format!("{}={token}{}", self.settings.cookie, self.attributes);
        lbx_guest::pick_with_headers(
            index,
            Vec::new(),
            vec![lbx_guest::header("set-cookie", cookie)],
        )
    }
}

/// A random key agreed by every instance through the key-value store: each offers one, the
/// first stored wins, all read the winner back.
fn shared_generated_secret() -> Result<Vec<u8>, String> {
    let mut rng = FastRng::from_entropy();
    let candidate: Vec<u8> = (0..4).flat_map(|_| rng.next_u64().to_le_bytes()).collect();
    kv::insert(SECRET_KEY, &candidate).map_err(|e| format!("cannot store the secret: {e:?}"))?;
    kv::get(SECRET_KEY).ok_or_else(|| "the generated secret vanished from the store".into())
}

lbx_guest::export_router!(StickyCookie);

#[cfg(test)]
mod tests {
    use super::*;
    use lbx_guest::testkit::{FakeRequest, all_healthy, backend_info, first_attempt, loads};

    fn router(config: &str) -> StickyCookie {
        let mut router = StickyCookie::init(config).unwrap();
        router.backends_changed(&[
            backend_info("a", "10.0.0.1:80"),
            backend_info("b", "10.0.0.2:80"),
            backend_info("c", "10.0.0.3:80"),
        ]);
        router
    }

    /// (backend, Set-Cookie if any).
    fn answer(decision: Decision) -> (usize, Option<String>) {
        let Decision::Pick(pick) = decision else {
            panic!("no pick: {decision:?}")
        };
        let cookie = pick
            .downstream_headers
            .iter()
            .find(|h| h.name == "set-cookie")
            .map(|h| h.value.clone());
        (pick.backend as usize, cookie)
    }

    fn cookie_value(set_cookie: &str) -> &str {
        set_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
    }

    #[test]
    fn a_client_keeps_its_backend_over_100_requests_and_moves_when_it_goes_down() {
        let mut router = router(r#"{"secret":"s3cret","max_age":600,"secure":true}"#);
        let (first, set_cookie) =
            answer(router.choose(&FakeRequest::get("/"), &loads(&[3, 0, 5]), &first_attempt()));
        assert_eq!(first, 1, "least loaded");
        let set_cookie = set_cookie.expect("a new client gets the cookie");
        assert_eq!(
            set_cookie,
            format!(
                "lbx_sticky={}; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax",
                cookie_value(&set_cookie)
            )
        );
        let token = cookie_value(&set_cookie).to_string();
        assert!(!token.contains("10.0.0"), "opaque: {token}");

        let returning = FakeRequest::get("/cart").cookie("lbx_sticky", &token);
        for _ in 0..100 {
            // Even while its backend is the busiest, the client stays.
            let decision = router.choose(&returning, &loads(&[0, 9, 0]), &first_attempt());
            assert_eq!(answer(decision), (1, None));
        }

        let mut b_down = all_healthy(3);
        b_down[1].healthy = false;
        let (moved, new_cookie) = answer(router.choose(&returning, &b_down, &first_attempt()));
        assert_ne!(moved, 1);
        let new_cookie = new_cookie.expect("a moved client gets a new cookie");
        assert_ne!(cookie_value(&new_cookie), token);
    }

    #[test]
    fn a_forged_cookie_is_ignored() {
        let mut router = router(r#"{"secret":"s3cret"}"#);
        for forged in ["0000000000000000", "10.0.0.2:80", "b", "'; DROP TABLE"] {
            let req = FakeRequest::get("/").cookie("lbx_sticky", forged);
            let (index, cookie) = answer(router.choose(&req, &loads(&[0, 4, 4]), &first_attempt()));
            assert_eq!(index, 0, "forged {forged:?} is not trusted");
            assert!(cookie.is_some(), "the client gets a real cookie instead");
        }
    }

    #[test]
    fn instances_without_a_configured_secret_agree_through_the_kv_store() {
        lbx_guest::kv::clear();
        let mut one = router("{}");
        let mut two = router("{}");
        let (index, cookie) =
            answer(one.choose(&FakeRequest::get("/"), &all_healthy(3), &first_attempt()));
        let token = cookie_value(&cookie.unwrap()).to_string();
        let req = FakeRequest::get("/").cookie("lbx_sticky", &token);
        assert_eq!(
            answer(two.choose(&req, &loads(&[5, 5, 5]), &first_attempt())),
            (index, None)
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(StickyCookie::init(r#"{"same_site":"Sometimes"}"#).is_err());
        assert!(StickyCookie::init(r#"{"cookie":"a b"}"#).is_err());
        assert!(StickyCookie::init(r#"{"cokie":"x"}"#).is_err());
    }
}
