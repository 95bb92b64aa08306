//! Who is calling: a logged-in user (with their session's CSRF token), an API token, or
//! nobody; what each may see (scope); and the one-second cache of live sessions.
//!
//! Data and pure functions over request headers only: this module never answers a request,
//! never writes to the database and never renders HTML (`guard.rs` identifies callers with it,
//! `login.rs` starts and ends sessions).

use crate::config::{IpNet, ReviewerScope};
use crate::store::audit::Event;
use crate::store::search::Scope;
use crate::store::users::{self, ApiToken, Role, User};
use axum::http::{header, HeaderMap};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "callrec_session";

#[derive(Debug, Clone)]
pub enum Caller {
    Anonymous,
    User {
        user: User,
        session_sha256: String,
        csrf: String,
    },
    Token(ApiToken),
}

/// The caller of one request, as handlers see it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Name written to the audit log: the user name, or `token:<name>`.
    pub actor: String,
    pub ip: String,
    pub caller: Caller,
}

impl Identity {
    pub fn role(&self) -> Option<Role> {
        match &self.caller {
            Caller::User { user, .. } => Some(user.role),
            _ => None,
        }
    }
    pub fn user(&self) -> Option<&User> {
        match &self.caller {
            Caller::User { user, .. } => Some(user),
            _ => None,
        }
    }
    pub fn csrf(&self) -> Option<&str> {
        match &self.caller {
            Caller::User { csrf, .. } => Some(csrf),
            _ => None,
        }
    }
    pub fn session_sha256(&self) -> Option<&str> {
        match &self.caller {
            Caller::User { session_sha256, .. } => Some(session_sha256),
            _ => None,
        }
    }

    /// Which calls this caller may see. API tokens drive seats but read no calls.
    pub fn scope(&self, reviewer: ReviewerScope) -> Option<Scope> {
        self.user().map(|u| Scope::of(u, reviewer))
    }

    /// This identity as the author of a change the store audits.
    pub fn who(&self) -> crate::store::audit::Actor<'_> {
        crate::store::audit::Actor {
            name: &self.actor,
            ip: Some(&self.ip),
        }
    }

    pub fn event<'a>(
        &'a self,
        action: &'a str,
        call_id: Option<i64>,
        detail: serde_json::Value,
    ) -> Event<'a> {
        Event {
            actor: &self.actor,
            action,
            call_id,
            detail,
            ip: Some(&self.ip),
        }
    }
}

/// Live sessions looked up within the last second, by token hash: a player fetching byte ranges
/// asks with the same cookie many times a second, and the database lookup was a tenth of the
/// streaming CPU (benches/RESULTS.md). Logout, login and password or account changes made in
/// this process take effect at once ([`SessionCache::forget`], [`SessionCache::clear`]); changes
/// made by another process (`callrec users disable`) within [`SESSION_CACHE_TTL`].
#[derive(Default)]
pub struct SessionCache {
    live: std::sync::Mutex<HashMap<String, (Instant, users::Session)>>,
}

pub const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
/// Beyond this many entries stale ones are swept on insert, so memory stays bounded.
const SESSION_CACHE_SWEEP_AT: usize = 4096;

impl SessionCache {
    pub(super) fn get(&self, token_sha256: &str) -> Option<users::Session> {
        let live = self.live.lock().ok()?;
        live.get(token_sha256)
            .filter(|(at, _)| at.elapsed() < SESSION_CACHE_TTL)
            .map(|(_, s)| s.clone())
    }

    pub(super) fn put(&self, session: users::Session) {
        if let Ok(mut live) = self.live.lock() {
            if live.len() >= SESSION_CACHE_SWEEP_AT {
                live.retain(|_, (at, _)| at.elapsed() < SESSION_CACHE_TTL);
            }
            live.insert(session.token_sha256.clone(), (Instant::now(), session));
        }
    }

    pub fn forget(&self, token_sha256: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(token_sha256);
        }
    }

    /// After any change to accounts or sessions: every next request asks the database.
    pub fn clear(&self) {
        if let Ok(mut live) = self.live.lock() {
            live.clear();
        }
    }
}

pub(super) fn session_identity(s: users::Session, ip: String) -> Identity {
    Identity {
        actor: s.user.username.clone(),
        ip,
        caller: Caller::User {
            user: s.user,
            session_sha256: s.token_sha256,
            csrf: s.csrf,
        },
    }
}

/// The client of a request: `(address, loopback)`. From a peer in `trusted` (`[server]
/// trusted_proxies`) the client is the rightmost `X-Forwarded-For` hop that is not itself a
/// trusted proxy (hops left of it were written by the client and prove nothing); from any other
/// peer the header is ignored. A request relayed by a proxy is never loopback, even when the
/// proxy runs on this machine, so `/metrics` does not become public behind it.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> (IpAddr, bool) {
    if !trusted.iter().any(|n| n.contains(peer)) {
        return (peer, peer.is_loopback());
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // `1.2.3.4`, `1.2.3.4:5678`, `[::1]:80` or `::1`.
        let Some(ip) = hop
            .parse::<IpAddr>()
            .ok()
            .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        else {
            // Garbage from the client's side: nothing left of it can be trusted; the last
            // trusted hop stands for the client.
            break;
        };
        client = ip;
        if !trusted.iter().any(|n| n.contains(ip)) {
            break;
        }
    }
    (client, false)
}

/// Paths answered with JSON errors rather than pages.
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics" || path == "/healthz"
}

pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares two secrets in time that depends only on their length.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::client_of;
    use crate::config::IpNet;
    use axum::http::HeaderMap;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = ["10.0.0.5", "10.1.0.0/16"]
            .iter()
            .filter_map(|s| IpNet::parse(s))
            .collect();
        let xff = |v: &str| {
            let mut h = HeaderMap::new();
            if let Ok(v) = v.parse() {
                h.insert("x-forwarded-for", v);
            }
            h
        };
        // An untrusted peer: the header is a spoof.
        assert_eq!(
            client_of(ip("192.0.2.9"), &xff("203.0.113.1"), &trusted),
            (ip("192.0.2.9"), false)
        );
        assert_eq!(
            client_of(ip("127.0.0.1"), &xff("203.0.113.1"), &trusted),
            (ip("127.0.0.1"), true)
        );
        // Through the proxy: the rightmost hop not itself a proxy; the client's own claims to
        // its left do not count.
        assert_eq!(
            client_of(
                ip("10.0.0.5"),
                &xff("198.51.100.7, 203.0.113.1, 10.1.4.4"),
                &trusted
            ),
            (ip("203.0.113.1"), false)
        );
        assert_eq!(
            client_of(ip("10.0.0.5"), &xff("[2001:db8::1]:443"), &trusted),
            (ip("2001:db8::1"), false)
        );
        // No header, or garbage: the proxy stands for the client; never loopback.
        assert_eq!(
            client_of(ip("10.0.0.5"), &HeaderMap::new(), &trusted),
            (ip("10.0.0.5"), false)
        );
        assert_eq!(
            client_of(ip("10.0.0.5"), &xff("evil, 10.1.0.9"), &trusted),
            (ip("10.1.0.9"), false)
        );
        let local: Vec<IpNet> = IpNet::parse("127.0.0.1").into_iter().collect();
        assert_eq!(
            client_of(ip("127.0.0.1"), &HeaderMap::new(), &local),
            (ip("127.0.0.1"), false),
            "a local proxy's requests are not loopback"
        );
    }
}
