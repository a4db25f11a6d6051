//! Fetching a plugin module too large to keep in the store from the URL the operator
//! published with it (`http://` or `https://`, system roots). The bytes are only kept once
//! they hash to the published sha256 (`modules`), so a URL that serves something else is a
//! refusal naming both digests, never a different plugin.

use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::config::BackendScheme;
use crate::upstream::Transport;
use crate::upstream::probe::{self, ProbeRequest};

/// Largest module lbx fetches (a component is a few MiB; an interpreter's can be 20 MiB).
pub const MAX_MODULE_BYTES: usize = 256 * 1024 * 1024;

/// The body at `url`, or why there is none; the whole exchange bounded by `timeout`.
pub async fn fetch(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL ({e})"))?;
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("http") => BackendScheme::Http,
        Some("https") => BackendScheme::Https,
        _ => {
            return Err(format!(
                "{url:?}: only http:// and https:// URLs are fetched"
            ));
        }
    };
    let Some(authority) = uri.authority().cloned() else {
        return Err(format!("{url:?} has no host"));
    };
    let authority = if authority.port_u16().is_some() {
        authority
    } else {
        let port = if scheme == BackendScheme::Https {
            443
        } else {
            80
        };
        format!("{}:{port}", authority.host())
            .parse()
            .map_err(|e| format!("{url:?}: {e}"))?
    };
    let tls = if scheme == BackendScheme::Https {
        Some((crate::tls::client::client_config(None, false)?, None))
    } else {
        None
    };
    let transport = Transport::new(authority.clone(), scheme, tls, timeout)?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let exchange = async {
        let request = ProbeRequest {
            path: &path,
            user_agent: "lbx-fleet",
            accept: None,
        };
        let mut probed = probe::get(&transport, &authority, request).await?;
        let status = probed.response.status();
        if !status.is_success() {
            return Err(format!("GET {url} answered {status}"));
        }
        let body = Limited::new(probed.response.body_mut(), MAX_MODULE_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    format!("{url}: the module is larger than {MAX_MODULE_BYTES} bytes")
                } else {
                    format!("{url}: the body broke off: {e}")
                }
            })?;
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("GET {url}: no complete answer within {timeout:?}")))
}
