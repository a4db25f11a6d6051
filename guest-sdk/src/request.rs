//! The [`Request`] trait: what a plugin may ask about the incoming request.

use crate::bindings::lbx::router::types::Request as HostRequest;

/// Read access to the incoming request.
///
/// In a Wasm plugin this is the host's `request` resource, and every call copies one value out
/// of the host, so ask only for what the decision needs. In native tests it is a
/// [`FakeRequest`](crate::testkit::FakeRequest).
///
/// # Example
///
/// ```
/// use lbx_guest::Request;
///
/// /// Routes API traffic by tenant header, everything else by path.
/// fn route_key(req: &dyn Request) -> String {
///     req.header("x-tenant").unwrap_or_else(|| req.path())
/// }
///
/// let req = lbx_guest::testkit::FakeRequest::get("/home").header("X-Tenant", "acme");
/// assert_eq!(route_key(&req), "acme");
/// ```
pub trait Request {
    /// The HTTP method, e.g. `GET`.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// assert_eq!(FakeRequest::post("/").method(), "POST");
    /// ```
    fn method(&self) -> String;

    /// The path without the query string, e.g. `/api/users`.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// assert_eq!(FakeRequest::get("/api/users?page=2").path(), "/api/users");
    /// ```
    fn path(&self) -> String;

    /// The query string without the leading `?`, if any.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// assert_eq!(FakeRequest::get("/a?page=2").query().as_deref(), Some("page=2"));
    /// assert_eq!(FakeRequest::get("/a").query(), None);
    /// ```
    fn query(&self) -> Option<String>;

    /// The authority (`Host` header, or `:authority` for HTTP/2), if any.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req: &dyn Request = &FakeRequest::get("/").header("host", "example.com");
    /// assert_eq!(req.authority().as_deref(), Some("example.com"));
    /// ```
    fn authority(&self) -> Option<String>;

    /// The value of the first header with this name (case-insensitive), if present and valid
    /// text.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req: &dyn Request = &FakeRequest::get("/").header("X-Canary", "1");
    /// assert_eq!(req.header("x-canary").as_deref(), Some("1"));
    /// ```
    fn header(&self, name: &str) -> Option<String>;

    /// The value of the cookie with this name from the `Cookie` header(s), if present.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req: &dyn Request = &FakeRequest::get("/").cookie("session", "abc");
    /// assert_eq!(req.cookie("session").as_deref(), Some("abc"));
    /// ```
    fn cookie(&self, name: &str) -> Option<String>;

    /// The client's IP address as text, e.g. `127.0.0.1` or `::1`.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::get("/").client("[::1]:4000");
    /// assert_eq!(req.client_ip(), "::1");
    /// ```
    fn client_ip(&self) -> String;

    /// The client's TCP port.
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::get("/").client("10.0.0.1:1234");
    /// assert_eq!(req.client_port(), 1234);
    /// ```
    fn client_port(&self) -> u16;

    /// The first bytes of the request body, up to the plugin's `body_prefix` limit in lbx's
    /// configuration (the whole body when it is shorter). `None` when the limit is 0, the
    /// default: lbx did not read ahead. An empty vector for a request without a body.
    ///
    /// Reading ahead holds the request until those bytes arrive, and each call copies them:
    /// ask only when the decision depends on the body (e.g. a JSON `model` field, see
    /// [`json_string_field`](crate::json_string_field)).
    ///
    /// ```
    /// # use lbx_guest::{Request, testkit::FakeRequest};
    /// let req = FakeRequest::post("/v1/chat/completions").body(r#"{"model":"llama-3"}"#);
    /// assert_eq!(req.body_prefix().as_deref(), Some(&br#"{"model":"llama-3"}"#[..]));
    /// assert_eq!(FakeRequest::get("/").body_prefix(), None);
    /// ```
    fn body_prefix(&self) -> Option<Vec<u8>>;
}

/// The host's resource: each method is one call into lbx.
impl Request for HostRequest {
    fn method(&self) -> String {
        HostRequest::method(self)
    }

    fn path(&self) -> String {
        HostRequest::path(self)
    }

    fn query(&self) -> Option<String> {
        HostRequest::query(self)
    }

    fn authority(&self) -> Option<String> {
        HostRequest::authority(self)
    }

    fn header(&self, name: &str) -> Option<String> {
        HostRequest::header(self, name)
    }

    fn cookie(&self, name: &str) -> Option<String> {
        HostRequest::cookie(self, name)
    }

    fn client_ip(&self) -> String {
        HostRequest::client_ip(self)
    }

    fn client_port(&self) -> u16 {
        HostRequest::client_port(self)
    }

    fn body_prefix(&self) -> Option<Vec<u8>> {
        HostRequest::body_prefix(self)
    }
}
