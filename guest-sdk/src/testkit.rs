//! Native test kit: a fake request and builders for backend lists, so a plugin's logic is
//! unit-tested with plain `cargo test`, no Wasm and no host.
//!
//! ```
//! use lbx_guest::Router;
//! use lbx_guest::testkit::{FakeRequest, backend, picked, retry};
//! # #[derive(Default)] struct MyRouter;
//! # impl Router for MyRouter {
//! #     fn init(c: &str) -> Result<Self, String> { lbx_guest::init_default(c) }
//! #     fn choose(&mut self, _: &dyn lbx_guest::Request, b: &[lbx_guest::BackendStats],
//! #               r: &lbx_guest::RetryContext) -> lbx_guest::Decision {
//! #         lbx_guest::Candidates::new(b, r).nth(0).map_or_else(lbx_guest::no_opinion, lbx_guest::pick)
//! #     }
//! # }
//!
//! let mut router = MyRouter::init("{}").unwrap();
//! let req = FakeRequest::get("/cart").cookie("session", "abc").client("10.0.0.1:1234");
//! // Backend 1 is down; backend 0 already failed this request.
//! let backends = [backend(true, 0), backend(false, 0), backend(true, 7)];
//! assert_eq!(picked(&router.choose(&req, &backends, &retry(&[0]))), Some(2));
//! ```

use std::net::SocketAddr;

use crate::{BackendInfo, BackendStats, Decision, Request, RetryContext, cookie_value};

/// An in-memory [`Request`] built in a test.
///
/// Build it with the chained methods below, pass `&fake` where a `&dyn Request` is expected.
/// The builder methods [`header`](FakeRequest::header), [`cookie`](FakeRequest::cookie) and
/// [`authority`](FakeRequest::authority) shadow the [`Request`] methods of the same name;
/// to read those directly write `Request::header(&fake, "x")` or go through `&dyn Request`.
///
/// Defaults: method `GET`, client `127.0.0.1:50000`, no headers. Header lookup is
/// case-insensitive like the host's; [`authority`](Request::authority) is the explicit
/// authority if set, else the `host` header; [`cookie`](Request::cookie) searches every
/// `cookie` header with [`cookie_value`].
///
/// ```
/// use lbx_guest::{Request, testkit::FakeRequest};
///
/// let req = FakeRequest::get("/search?q=rust")
///     .header("accept", "text/html")
///     .cookie("a", "1")
///     .cookie("b", "2")
///     .client("10.0.0.1:1234");
/// assert_eq!(req.path(), "/search");
/// // The builder methods `header`, `cookie` and `authority` shadow the `Request` methods of
/// // the same name: read through `&dyn Request`, as a router does.
/// let req: &dyn Request = &req;
/// assert_eq!(req.header("cookie").as_deref(), Some("a=1; b=2"));
/// assert_eq!(req.cookie("b").as_deref(), Some("2"));
/// assert_eq!((req.client_ip(), req.client_port()), ("10.0.0.1".to_string(), 1234));
/// ```
#[derive(Clone, Debug)]
pub struct FakeRequest {
    method: String,
    path: String,
    query: Option<String>,
    authority: Option<String>,
    headers: Vec<(String, String)>,
    client: SocketAddr,
}

impl FakeRequest {
    /// A request with this method and target (`/path` or `/path?query`).
    ///
    /// ```
    /// use lbx_guest::{Request, testkit::FakeRequest};
    ///
    /// let req = FakeRequest::new("DELETE", "/items/7?force=1");
    /// assert_eq!(req.method(), "DELETE");
    /// assert_eq!(req.query().as_deref(), Some("force=1"));
    /// ```
    pub fn new(method: &str, target: &str) -> Self {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (target, None),
        };
        FakeRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query,
            authority: None,
            headers: Vec::new(),
            client: SocketAddr::from(([127, 0, 0, 1], 50000)),
        }
    }

    /// A `GET` request for `target`.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// assert_eq!(FakeRequest::get("/").method(), "GET");
    /// ```
    pub fn get(target: &str) -> Self {
        FakeRequest::new("GET", target)
    }

    /// A `POST` request for `target`.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// assert_eq!(FakeRequest::post("/upload").path(), "/upload");
    /// ```
    pub fn post(target: &str) -> Self {
        FakeRequest::new("POST", target)
    }

    /// Adds a header (kept in order; repeated names allowed).
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::get("/").header("x-a", "1").header("X-A", "2");
    /// assert_eq!(Request::header(&req, "x-a").as_deref(), Some("1"));
    /// ```
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a cookie, appended to the last `cookie` header (`a=1; b=2`) or to a new one.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::get("/").cookie("session", "abc");
    /// assert_eq!(Request::header(&req, "Cookie").as_deref(), Some("session=abc"));
    /// ```
    pub fn cookie(mut self, name: &str, value: &str) -> Self {
        let pair = format!("{name}={value}");
        match self
            .headers
            .iter_mut()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        {
            Some((_, existing)) => {
                existing.push_str("; ");
                existing.push_str(&pair);
            }
            None => self.headers.push(("cookie".to_owned(), pair)),
        }
        self
    }

    /// Sets the authority explicitly (as HTTP/2's `:authority` would).
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::get("/").authority("api.example.com");
    /// assert_eq!(Request::authority(&req).as_deref(), Some("api.example.com"));
    /// ```
    pub fn authority(mut self, authority: &str) -> Self {
        self.authority = Some(authority.to_owned());
        self
    }

    /// Sets the client address, e.g. `10.0.0.1:1234` or `[::1]:1234`.
    ///
    /// # Panics
    ///
    /// If `addr` is not a socket address: this is a test helper, and a typo should fail the
    /// test loudly.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::get("/").client("192.0.2.7:443");
    /// assert_eq!(req.client_ip(), "192.0.2.7");
    /// ```
    pub fn client(mut self, addr: &str) -> Self {
        self.client = addr
            .parse()
            .unwrap_or_else(|e| panic!("FakeRequest::client({addr:?}): {e}"));
        self
    }

    fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Request for FakeRequest {
    fn method(&self) -> String {
        self.method.clone()
    }

    fn path(&self) -> String {
        self.path.clone()
    }

    fn query(&self) -> Option<String> {
        self.query.clone()
    }

    fn authority(&self) -> Option<String> {
        self.authority.clone().or_else(|| self.header("host"))
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers_named(name).next().map(str::to_owned)
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.headers_named("cookie")
            .find_map(|raw| cookie_value(raw, name))
            .map(str::to_owned)
    }

    fn client_ip(&self) -> String {
        self.client.ip().to_string()
    }

    fn client_port(&self) -> u16 {
        self.client.port()
    }
}

/// One backend's stats: `healthy`, `in_flight` requests, weight 1, no latency or failures yet.
/// Change other fields with struct update syntax.
///
/// ```
/// use lbx_guest::{BackendStats, testkit::backend};
///
/// let busy = backend(true, 12);
/// let heavy = BackendStats { weight: 3, ..backend(true, 0) };
/// assert_eq!((busy.in_flight, heavy.weight), (12, 3));
/// ```
pub fn backend(healthy: bool, in_flight: u32) -> BackendStats {
    BackendStats {
        healthy,
        weight: 1,
        in_flight,
        ewma_latency_us: 0,
        recent_failures: 0,
    }
}

/// `n` healthy, idle backends.
///
/// ```
/// let backends = lbx_guest::testkit::all_healthy(3);
/// assert!(backends.iter().all(|b| b.healthy && b.in_flight == 0));
/// ```
pub fn all_healthy(n: usize) -> Vec<BackendStats> {
    vec![backend(true, 0); n]
}

/// Healthy backends with these in-flight counts, one per entry.
///
/// ```
/// let backends = lbx_guest::testkit::loads(&[4, 0, 2]);
/// assert_eq!(backends[2].in_flight, 2);
/// ```
pub fn loads(in_flight: &[u32]) -> Vec<BackendStats> {
    in_flight.iter().map(|&n| backend(true, n)).collect()
}

/// Healthy, idle backends with these weights, one per entry.
///
/// ```
/// let backends = lbx_guest::testkit::weights(&[5, 1, 1]);
/// assert_eq!(backends[0].weight, 5);
/// ```
pub fn weights(weights: &[u32]) -> Vec<BackendStats> {
    weights
        .iter()
        .map(|&weight| BackendStats {
            weight,
            ..backend(true, 0)
        })
        .collect()
}

/// Healthy, idle backends with these latency averages (µs), one per entry.
///
/// ```
/// let backends = lbx_guest::testkit::latencies(&[1_000, 50_000]);
/// assert_eq!(backends[1].ewma_latency_us, 50_000);
/// ```
pub fn latencies(latencies_us: &[u32]) -> Vec<BackendStats> {
    latencies_us
        .iter()
        .map(|&ewma_latency_us| BackendStats {
            ewma_latency_us,
            ..backend(true, 0)
        })
        .collect()
}

/// A backend's identity for [`Router::backends_changed`](crate::Router::backends_changed):
/// weight 1, no labels.
///
/// ```
/// let info = lbx_guest::testkit::backend_info("api-1", "10.0.0.5:8080");
/// assert_eq!(info.address, "10.0.0.5:8080");
/// ```
pub fn backend_info(id: &str, address: &str) -> BackendInfo {
    BackendInfo {
        id: id.to_owned(),
        address: address.to_owned(),
        weight: 1,
        labels: Vec::new(),
    }
}

/// A backend's identity with labels (weight 1, address `<id>:80`).
///
/// ```
/// let info = lbx_guest::testkit::labeled("api-1", &[("pool", "api")]);
/// assert_eq!(info.labels, [("pool".to_string(), "api".to_string())]);
/// ```
pub fn labeled(id: &str, labels: &[(&str, &str)]) -> BackendInfo {
    BackendInfo {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..backend_info(id, &format!("{id}:80"))
    }
}

/// The retry context of a first attempt: attempt 0, nothing tried.
///
/// ```
/// assert_eq!(lbx_guest::testkit::first_attempt().attempt, 0);
/// ```
pub fn first_attempt() -> RetryContext {
    RetryContext {
        attempt: 0,
        tried: Vec::new(),
    }
}

/// The retry context after the backends at `tried` failed this request, one attempt each.
///
/// ```
/// let ctx = lbx_guest::testkit::retry(&[2, 0]);
/// assert_eq!((ctx.attempt, ctx.tried), (2, vec![2, 0]));
/// ```
pub fn retry(tried: &[u32]) -> RetryContext {
    RetryContext {
        attempt: u32::try_from(tried.len()).unwrap_or(u32::MAX),
        tried: tried.to_vec(),
    }
}

/// The backend index a decision picks, or `None` for `reject` and `no-opinion`.
///
/// ```
/// use lbx_guest::testkit::picked;
///
/// assert_eq!(picked(&lbx_guest::pick(3)), Some(3));
/// assert_eq!(picked(&lbx_guest::no_opinion()), None);
/// ```
pub fn picked(decision: &Decision) -> Option<usize> {
    match decision {
        Decision::Pick(p) => usize::try_from(p.backend).ok(),
        Decision::Reject(_) | Decision::NoOpinion => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_across_several_cookie_headers() {
        let fake = FakeRequest::get("/")
            .header("Cookie", "a=1")
            .header("x", "y")
            .header("cookie", "b=2");
        let req: &dyn Request = &fake;
        assert_eq!(req.cookie("b").as_deref(), Some("2"));
        assert_eq!(req.cookie("a").as_deref(), Some("1"));
        assert_eq!(req.cookie("c"), None);
    }

    #[test]
    fn cookie_builder_extends_the_last_cookie_header() {
        let req = FakeRequest::get("/")
            .header("Cookie", "a=1")
            .cookie("b", "2");
        assert_eq!(Request::header(&req, "cookie").as_deref(), Some("a=1; b=2"));
    }

    #[test]
    fn explicit_authority_wins_over_host_header() {
        let req = FakeRequest::get("/").header("host", "h").authority("a");
        assert_eq!(Request::authority(&req).as_deref(), Some("a"));
        let req = FakeRequest::get("/").header("host", "h");
        assert_eq!(Request::authority(&req).as_deref(), Some("h"));
        assert_eq!(Request::authority(&FakeRequest::get("/")), None);
    }

    #[test]
    fn empty_query_is_present_but_empty() {
        assert_eq!(FakeRequest::get("/a?").query().as_deref(), Some(""));
    }

    #[test]
    #[should_panic(expected = "FakeRequest::client")]
    fn bad_client_address_fails_the_test() {
        let _ = FakeRequest::get("/").client("not an address");
    }
}
