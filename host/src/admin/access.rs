//! Who may call the admin API: the `Host` (and `Origin`, when a browser sends one) must name a
//! loopback address or one of `[admin] allowed_hosts`, and with `[admin] token_file` every
//! request must carry `Authorization: Bearer <token>` — except the dashboard's static files,
//! which hold no data (the API calls the page makes carry the token).

use std::net::IpAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;

use super::text_response;

/// Who may use the admin API.
#[derive(Clone, Default)]
pub struct Access {
    /// The bearer token every request must carry, if one is configured.
    pub token: Option<String>,
    /// Host names accepted besides loopback ones.
    pub allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

impl Access {
    /// The response to send when the request may not use the admin API.
    pub(super) fn refusal<B>(&self, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
        self.host_refusal(request)
            .or_else(|| self.token_refusal(request))
    }

    /// The response to send when the request's `Host` or `Origin` is not one the admin API
    /// answers; the token is not looked at (for what needs none: the probes and the
    /// dashboard's files, which hold no data).
    pub(super) fn host_refusal<B>(&self, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        let Some(host) = host else {
            return Some(text_response(
                StatusCode::BAD_REQUEST,
                "a Host header is required\n",
            ));
        };
        if !self.host_allowed(host) {
            return Some(text_response(
                StatusCode::FORBIDDEN,
                "this Host is not allowed; see [admin] allowed_hosts\n",
            ));
        }
        // A browser names the page that sent a request; only the admin API's own origins may.
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let origin_host = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, rest)| rest);
            if !origin_host.is_some_and(|h| self.host_allowed(h)) {
                return Some(text_response(
                    StatusCode::FORBIDDEN,
                    "cross-origin requests are refused\n",
                ));
            }
        }
        None
    }

    /// The response to send when a token is configured and the request does not carry it.
    fn token_refusal<B>(&self, request: &Request<B>) -> Option<Response<Full<Bytes>>> {
        if let Some(token) = &self.token {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !constant_time_eq(presented.trim().as_bytes(), token.as_bytes()) {
                let mut response = text_response(
                    StatusCode::UNAUTHORIZED,
                    "a valid bearer token is required\n",
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
                return Some(response);
            }
        }
        None
    }

    /// Whether `authority` (`host[:port]`) is a loopback name or an allowed host.
    fn host_allowed(&self, authority: &str) -> bool {
        let host = host_part(authority);
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback
            || self.allowed_hosts.iter().any(|allowed| {
                allowed.eq_ignore_ascii_case(authority) || allowed.eq_ignore_ascii_case(host)
            })
    }
}

/// The host of `host[:port]` (IPv6 literals keep their brackets).
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.split_inclusive(']').next().unwrap_or(authority);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// Compare without an early exit, so the time taken says nothing about where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, origin: Option<&str>, auth: Option<&str>) -> Request<()> {
        let mut builder = Request::get("/admin/plugin").header(header::HOST, host);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        builder.body(()).unwrap()
    }

    fn status(access: &Access, request: &Request<()>) -> u16 {
        access.refusal(request).map_or(200, |r| r.status().as_u16())
    }

    #[test]
    fn only_loopback_or_allowed_hosts_are_answered() {
        let access = Access {
            allowed_hosts: vec!["lbx-admin.internal".into()],
            ..Access::default()
        };
        for host in [
            "127.0.0.1:9901",
            "localhost:9901",
            "[::1]:9901",
            "127.0.0.2",
            "lbx-admin.internal:9901",
        ] {
            assert_eq!(status(&access, &request(host, None, None)), 200, "{host}");
        }
        for host in [
            "attacker.example:9901",
            "10.0.0.1:9901",
            "127.0.0.1.attacker.example",
        ] {
            assert_eq!(status(&access, &request(host, None, None)), 403, "{host}");
        }
    }

    #[test]
    fn cross_origin_browser_requests_are_refused() {
        let access = Access::default();
        let evil = request("127.0.0.1:9901", Some("https://attacker.example"), None);
        assert_eq!(status(&access, &evil), 403);
        let own = request("127.0.0.1:9901", Some("http://127.0.0.1:9901"), None);
        assert_eq!(status(&access, &own), 200);
    }

    #[test]
    fn the_host_rules_alone_ignore_the_token_but_not_the_host() {
        let access = Access {
            token: Some("0123456789abcdef".into()),
            ..Access::default()
        };
        let status = |request: &Request<()>| {
            access
                .host_refusal(request)
                .map_or(200, |r| r.status().as_u16())
        };
        assert_eq!(status(&request("127.0.0.1:9901", None, None)), 200);
        assert_eq!(status(&request("attacker.example", None, None)), 403);
        let cross_site = request("127.0.0.1", Some("https://attacker.example"), None);
        assert_eq!(status(&cross_site), 403);
    }

    #[test]
    fn with_a_token_every_request_needs_it() {
        let access = Access {
            token: Some("0123456789abcdef".into()),
            ..Access::default()
        };
        assert_eq!(status(&access, &request("127.0.0.1", None, None)), 401);
        assert_eq!(
            status(&access, &request("127.0.0.1", None, Some("Bearer wrong"))),
            401
        );
        assert_eq!(
            status(
                &access,
                &request("127.0.0.1", None, Some("Bearer 0123456789abcdef"))
            ),
            200
        );
    }
}
