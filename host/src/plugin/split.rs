//! A traffic split between the plugin in force and a candidate version (a canary): each request
//! goes to one of them by a stable hash of a key (the client's IP, a header or a cookie), so a
//! user stays on one version while the candidate's share grows step by step — a request whose
//! key hashes below the share at one step is still below it at the next.
//!
//! This module only splits; the `canary` module decides the share, watches each side's
//! outcomes and ends the split.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::host_api::RequestMeta;
use super::loaded::LoadedPlugin;

/// Shares are in basis points: 10 000 is every request.
pub const ALL: u32 = 10_000;

/// Which version decided a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arm {
    /// The plugin in force.
    #[default]
    Live,
    /// The candidate of a traffic split.
    Candidate,
}

/// What a request is assigned by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitKey {
    /// The client's IP address.
    ClientIp,
    /// The first field of this name (lowercase); a request without it is keyed by client IP.
    Header(String),
    /// The cookie of this name; a request without it is keyed by client IP.
    Cookie(String),
}

impl SplitKey {
    /// `client-ip`, `header:NAME` or `cookie:NAME`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{text:?} is not a key: expected \"client-ip\", \"header:NAME\" or \"cookie:NAME\""
            )
        };
        match text.split_once(':') {
            None if text == "client-ip" => Ok(Self::ClientIp),
            Some(("header", name)) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                Ok(Self::Header(name.to_ascii_lowercase()))
            }
            Some(("cookie", name)) if !name.is_empty() && !name.contains([';', '=', ' ']) => {
                Ok(Self::Cookie(name.to_string()))
            }
            _ => Err(bad()),
        }
    }

    /// How it is written in config and the admin API.
    pub fn describe(&self) -> String {
        match self {
            Self::ClientIp => "client-ip".into(),
            Self::Header(name) => format!("header:{name}"),
            Self::Cookie(name) => format!("cookie:{name}"),
        }
    }

    /// The request's bucket, 0 to [`ALL`] − 1: the same for the same key, every time.
    pub fn bucket(&self, meta: &RequestMeta) -> u32 {
        // SipHash with fixed keys: stable across requests, nodes and restarts.
        let mut hasher = std::hash::DefaultHasher::new();
        let keyed = match self {
            Self::ClientIp => None,
            Self::Header(name) => meta.head.headers.get(name).map(|v| &v[..]),
            Self::Cookie(name) => meta.cookie(name).map(str::as_bytes),
        };
        match keyed {
            Some(value) => value.hash(&mut hasher),
            None => meta.client.ip().hash(&mut hasher),
        }
        (hasher.finish() % u64::from(ALL)) as u32
    }
}

/// A candidate version and the share of requests it takes.
#[derive(Debug)]
pub struct Split {
    /// The candidate.
    pub plugin: Arc<LoadedPlugin>,
    /// What assigns a request to a side.
    pub key: SplitKey,
    /// The candidate's share, in basis points.
    share: AtomicU32,
}

impl Split {
    /// `plugin` taking `share` basis points of the requests, keyed by `key`.
    pub fn new(plugin: Arc<LoadedPlugin>, key: SplitKey, share: u32) -> Self {
        Self {
            plugin,
            key,
            share: AtomicU32::new(share.min(ALL)),
        }
    }

    /// The candidate's share now, in basis points.
    pub fn share(&self) -> u32 {
        self.share.load(Ordering::Relaxed)
    }

    /// Change the candidate's share (the next step).
    pub fn set_share(&self, share: u32) {
        self.share.store(share.min(ALL), Ordering::Relaxed);
    }

    /// Which side decides this request.
    pub fn arm(&self, meta: &RequestMeta) -> Arm {
        if self.key.bucket(meta) < self.share() {
            Arm::Candidate
        } else {
            Arm::Live
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn request(client: &str, header: Option<&str>) -> RequestMeta {
        let mut builder = http::Request::get("/");
        if let Some(value) = header {
            builder = builder
                .header("x-user", value)
                .header("cookie", format!("u={value}"));
        }
        RequestMeta::from_http(
            &builder.body(()).unwrap(),
            client.parse::<SocketAddr>().unwrap(),
        )
    }

    #[test]
    fn keys_parse_and_name_their_problem() {
        assert_eq!(SplitKey::parse("client-ip"), Ok(SplitKey::ClientIp));
        assert_eq!(
            SplitKey::parse("header:X-User"),
            Ok(SplitKey::Header("x-user".into()))
        );
        assert_eq!(
            SplitKey::parse("cookie:u"),
            Ok(SplitKey::Cookie("u".into()))
        );
        for bad in [
            "ip",
            "header:",
            "header:a b",
            "cookie:",
            "cookie:a;b",
            "query:x",
        ] {
            assert!(
                SplitKey::parse(bad).unwrap_err().contains("is not a key"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_key_keeps_its_side_as_the_share_grows_and_shares_are_kept() {
        let key = SplitKey::Header("x-user".into());
        let users: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
        let mut taken_before = 0;
        for share in [100, 1000, 5000, ALL] {
            let taken: Vec<bool> = users
                .iter()
                .map(|u| key.bucket(&request("10.0.0.1:1", Some(u))) < share)
                .collect();
            let count = taken.iter().filter(|t| **t).count();
            let expected = users.len() * share as usize / ALL as usize;
            assert!(
                count.abs_diff(expected) <= expected / 5 + 10,
                "{count} vs {expected}"
            );
            assert!(count >= taken_before);
            taken_before = count;
        }
        // The same user from another address: the same side. No header: by client IP.
        let cookie = SplitKey::Cookie("u".into());
        assert_eq!(
            cookie.bucket(&request("10.0.0.1:1", Some("ann"))),
            cookie.bucket(&request("10.9.9.9:2", Some("ann")))
        );
        assert_eq!(
            key.bucket(&request("10.0.0.7:1", None)),
            SplitKey::ClientIp.bucket(&request("10.0.0.7:9", None))
        );
    }
}
