//! The live dashboard: one static page (`GET /`) with its script (`/dashboard.js`) and style
//! sheet (`/dashboard.css`), compiled into the binary so it works offline, with no CDN and no
//! build step.
//!
//! The files hold no data: the script polls `/admin/backends`, `/admin/plugin` and
//! `/admin/reloads` every second and computes rates from the differences. So the files are
//! served without the bearer token (the API calls the script makes carry it; the script asks
//! for it on the first `401`), but under the same Host/Origin rules as the API.
//!
//! The page is locked down with headers, not trust: a Content-Security-Policy allowing only
//! this origin's script, style and `fetch` (no inline script, no framing, no form posts
//! elsewhere), `nosniff` so the script is only ever run as a script, and `no-cache` so an
//! upgraded lbx serves its own page, not a stale one.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

const PAGE: &str = include_str!("dashboard.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

/// Paths of the dashboard's files: served without the admin token.
const PATHS: [&str; 3] = ["/", "/dashboard.js", "/dashboard.css"];

/// Everything the page may load or call: its own origin, nothing inline, nothing framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether `path` is one of the dashboard's files.
pub(super) fn is_dashboard(path: &str) -> bool {
    PATHS.contains(&path)
}

/// The file at `path` (one of [`PATHS`]), with the headers that lock it down.
pub(super) fn file(path: &str) -> Response<Full<Bytes>> {
    let (content_type, body) = match path {
        "/dashboard.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/dashboard.css" => ("text/css; charset=utf-8", STYLE),
        _ => ("text/html; charset=utf-8", PAGE),
    };
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_script_and_style() {
        assert!(PAGE.contains(r#"<script src="/dashboard.js" defer></script>"#));
        assert!(PAGE.contains(r#"<link rel="stylesheet" href="/dashboard.css">"#));
        // The policy forbids inline script and style: the page must not depend on any.
        assert!(
            !PAGE.contains("<script>"),
            "inline script in dashboard.html"
        );
        assert!(!PAGE.contains("<style"), "inline style in dashboard.html");
        assert!(
            !PAGE.contains(" style="),
            "style attribute in dashboard.html"
        );
        assert!(
            !has_event_handler_attribute(PAGE),
            "inline event handler in dashboard.html"
        );
    }

    /// Whether `html` has an attribute such as ` onclick=`.
    fn has_event_handler_attribute(html: &str) -> bool {
        html.match_indices(" on").any(|(at, _)| {
            let name: String = html[at + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            !name.is_empty() && html[at + 3 + name.len()..].starts_with('=')
        })
    }

    #[test]
    fn event_handler_attributes_are_recognised() {
        assert!(has_event_handler_attribute(r#"<button onclick="x()">"#));
        assert!(!has_event_handler_attribute("<p>only one</p>"));
    }

    #[test]
    fn every_file_carries_the_security_headers() {
        for path in PATHS {
            let response = file(path);
            let headers = response.headers();
            assert_eq!(
                headers[header::CONTENT_SECURITY_POLICY],
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        }
        assert!(
            file("/dashboard.js").headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
    }
}
