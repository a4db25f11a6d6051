//! [`FakeRequest`]: an in-memory [`Request`] built in a test.

use std::net::SocketAddr;

use crate::{Request, cookie_value};

/// An in-memory [`Request`] built in a test.
///
/// Build it with the chained methods below, pass `&fake` where a `&dyn Request` is expected.
/// The builder methods [`header`](FakeRequest::header), [`cookie`](FakeRequest::cookie) and
/// [`authority`](FakeRequest::authority) shadow the [`Request`] methods of the same name;
/// to read those directly write `Request::header(&fake, "x")` or go through `&dyn Request`.
///
/// Defaults: method `GET`, client `127.0.0.1:50000`, no headers, no body prefix (as when the
/// operator left `body_prefix` at 0). Header lookup is
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
    body_prefix: Option<Vec<u8>>,
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
            body_prefix: None,
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

    /// Sets the body prefix [`Request::body_prefix`] answers: the bytes the host would have
    /// read ahead (the whole body when shorter than the limit; cut wherever the limit falls
    /// otherwise). `body("")` is a request without a body, read ahead.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::post("/v1/completions").body(br#"{"model":"m","prompt":"Once up"#);
    /// assert_eq!(req.body_prefix().map(|b| b.len()), Some(30));
    /// assert_eq!(FakeRequest::get("/").body("").body_prefix(), Some(Vec::new()));
    /// ```
    pub fn body(mut self, prefix: impl AsRef<[u8]>) -> Self {
        self.body_prefix = Some(prefix.as_ref().to_vec());
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

    fn body_prefix(&self) -> Option<Vec<u8>> {
        self.body_prefix.clone()
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
