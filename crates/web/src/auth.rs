//! Accounts: argon2id password hashes, random 256-bit session and API
//! tokens stored as SHA-256 digests, the per-session CSRF token, login
//! rate limiting, and the [`Viewer`] extractor that every tenant scope is
//! derived from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use ipnet::IpNet;
use parapet_store::accounts::{Role, TOKEN_USE_GRANULARITY, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::app::{AppError, with_db};
use crate::{AppState, Dashboard};

pub const SESSION_COOKIE: &str = "parapet_session";
pub const LOGIN_CSRF_COOKIE: &str = "parapet_login_csrf";
/// How long a session lives.
pub const SESSION_SECONDS: i64 = 12 * 3600;

/// Failed logins allowed per user name, and per client address, in [`LIMIT_WINDOW`].
pub const MAX_FAILURES_PER_USER: u32 = 5;
pub const MAX_FAILURES_PER_CLIENT: u32 = 20;
pub const LIMIT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failure counters kept at most: each holds a key of at most
/// [`MAX_USER_NAME`] bytes and a prefix, so the table stays under ~2 MB
/// whatever an unauthenticated client sends.
pub const MAX_TRACKED: usize = 10_000;
/// The longest user name accepted anywhere (login form, `users add`).
pub const MAX_USER_NAME: usize = 64;

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters")
        .to_string()
}

/// A hash no password matches, checked when the user name is unknown.
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password(&new_token()))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A random 256-bit token, hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// What the store keeps of a token.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// How long the code step of a two-factor login may follow its password.
pub const PENDING_LOGIN_SECONDS: i64 = 300;

/// The key that signs an account's pending logins: derived from its
/// password hash (salted, server-side, the same on every node sharing the
/// store) and TOTP secret, so a new password or a new enrolment voids
/// every pending login at once, and no key needs sharing between nodes.
fn pending_key(user: &User) -> ring::hmac::Key {
    let mut h = Sha256::new();
    h.update(b"parapet pending login\0");
    h.update(user.password_hash.as_bytes());
    h.update(b"\0");
    h.update(user.totp_secret.as_deref().unwrap_or("").as_bytes());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &h.finalize())
}

fn pending_message(name_hex: &str, expires: i64, login_csrf: &str) -> String {
    format!("{name_hex}.{expires}.{login_csrf}")
}

/// A signed token saying that `user` gave the right password at `now`:
/// the login form's code step carries it instead of asking for the
/// password again. It names the account, expires after
/// [`PENDING_LOGIN_SECONDS`] and is bound to the browser's login CSRF
/// cookie. Form: `hex(name).expires.hex(hmac)`.
pub fn pending_login_token(user: &User, login_csrf: &str, now: i64) -> String {
    let name_hex = hex::encode(&user.name);
    let expires = now + PENDING_LOGIN_SECONDS;
    let tag = ring::hmac::sign(
        &pending_key(user),
        pending_message(&name_hex, expires, login_csrf).as_bytes(),
    );
    format!("{name_hex}.{expires}.{}", hex::encode(tag.as_ref()))
}

/// The account a pending-login token names, unchecked (the name is read
/// to look the account up; [`pending_login_valid`] then checks it).
pub fn pending_login_name(token: &str) -> Option<String> {
    let name_hex = token.split('.').next()?;
    if name_hex.len() > 2 * MAX_USER_NAME {
        return None;
    }
    String::from_utf8(hex::decode(name_hex).ok()?).ok()
}

/// Whether `token` was made by [`pending_login_token`] for `user` with
/// this login CSRF cookie, and has not expired at `now`.
pub fn pending_login_valid(token: &str, user: &User, login_csrf: &str, now: i64) -> bool {
    let mut parts = token.split('.');
    let (Some(name_hex), Some(expires), Some(tag), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(expires), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
        return false;
    };
    name_hex == hex::encode(&user.name)
        && now <= expires
        && ring::hmac::verify(
            &pending_key(user),
            pending_message(name_hex, expires, login_csrf).as_bytes(),
            &tag,
        )
        .is_ok()
}

/// Compares secrets without an early exit.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Failed logins per user name and per client address, in memory, at most
/// [`MAX_TRACKED`] of them. Hand-written rather than an LRU crate: when the
/// table is full, expired counters go first, then the oldest, in one O(n)
/// pass that only a flood of distinct names or addresses reaches.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    fn count(&self, key: &str) -> u32 {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(_, since)| since.elapsed() < LIMIT_WINDOW)
            .map_or(0, |(n, _)| *n)
    }

    /// Whether another attempt is allowed now.
    pub fn allowed(&self, user: &str, client: &str) -> bool {
        self.count(&format!("user:{user}")) < MAX_FAILURES_PER_USER
            && self.count(&format!("client:{client}")) < MAX_FAILURES_PER_CLIENT
    }

    pub fn failed(&self, user: &str, client: &str) {
        self.bump([format!("user:{user}"), format!("client:{client}")]);
    }

    /// A failure that names no user worth counting (a name too long to
    /// exist): only the client's counter grows.
    pub fn failed_client(&self, client: &str) {
        self.bump([format!("client:{client}")]);
    }

    fn bump<const N: usize>(&self, keys: [String; N]) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if !map.contains_key(&key) && map.len() >= MAX_TRACKED {
                make_room(&mut map);
            }
            let e = map.entry(key).or_insert((0, Instant::now()));
            if e.1.elapsed() >= LIMIT_WINDOW {
                *e = (0, Instant::now());
            }
            e.0 += 1;
        }
    }

    pub fn succeeded(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("user:{user}"));
    }

    /// Counters held now.
    pub fn len(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees at least one slot: drops expired counters, or else the oldest.
fn make_room(map: &mut HashMap<String, (u32, Instant)>) {
    map.retain(|_, (_, since)| since.elapsed() < LIMIT_WINDOW);
    if map.len() >= MAX_TRACKED
        && let Some(oldest) = map
            .iter()
            .min_by_key(|(_, (_, since))| *since)
            .map(|(k, _)| k.clone())
    {
        map.remove(&oldest);
    }
}

/// A cookie's value from the request headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the dashboard's attributes.
pub fn set_cookie(d: &Dashboard, name: &str, value: &str, max_age: i64) -> String {
    format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{}",
        if d.secure_cookies { "; Secure" } else { "" }
    )
}

/// The client address of a request: the TCP peer, or, when the peer is a
/// trusted proxy, the nearest address in `X-Forwarded-For` that is not one
/// of them (read right to left, as each proxy appends the address it saw).
/// A header from an untrusted peer is ignored, so it cannot be forged.
pub fn client_addr(parts: &Parts, trusted: &[IpNet]) -> String {
    let Some(peer) = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
    else {
        return "unknown".to_string();
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer.to_string();
    }
    let hops: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        // a hop that is not an address ends the chain we can vouch for
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        nearest = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    nearest.to_string()
}

/// How the request authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A browser session, with its CSRF token and the cookie's token digest.
    Session { csrf: String, digest: String },
    /// `Authorization: Bearer` (scripts: no cookie, so no CSRF).
    Token,
}

/// The signed-in user of a request. Every tenant scope comes from here.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    pub via: Via,
}

impl Viewer {
    pub fn is_supplier(&self) -> bool {
        self.user.role.is_supplier()
    }

    /// The tenant a list may show: a council user's own (naming another is
    /// 403); a supplier's choice, or every tenant.
    pub fn scope(&self, requested: Option<&str>) -> Result<Option<String>, AppError> {
        crate::app::check_filter("tenant", requested)?;
        let requested = requested.filter(|t| !t.is_empty());
        match (self.user.role.is_council(), &self.user.tenant) {
            (true, Some(own)) => match requested {
                Some(t) if t != own => Err(AppError::Forbidden),
                _ => Ok(Some(own.clone())),
            },
            // a council account without a tenant sees nothing
            (true, None) => Err(AppError::Forbidden),
            _ => Ok(requested.map(str::to_string)),
        }
    }

    /// Whether this user may read `tenant`'s exempt appendix and edit its
    /// report commentary: a supplier-admin, or that council's own officer
    /// (the appendix is exempt from the public, not from the council).
    /// Analysts read the appendix ([`Viewer::may_see_exempt`]) but do not
    /// write a council's words.
    pub fn may_edit_commentary(&self, tenant: &str) -> bool {
        match self.user.role {
            Role::SupplierAdmin => true,
            Role::CouncilOfficer => self.user.tenant.as_deref() == Some(tenant),
            _ => false,
        }
    }

    /// Whether this user may download `tenant`'s exempt appendix: supplier
    /// roles, and that council's own officer.
    pub fn may_see_exempt(&self, tenant: &str) -> bool {
        self.is_supplier()
            || (self.user.role == Role::CouncilOfficer
                && self.user.tenant.as_deref() == Some(tenant))
    }

    /// Whether this user may see `tenant`'s objects.
    pub fn may_see(&self, tenant: &str) -> bool {
        self.is_supplier() || self.user.tenant.as_deref() == Some(tenant)
    }

    /// The CSRF check of a state-changing request made with a cookie.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), AppError> {
        match &self.via {
            Via::Token => Ok(()),
            Via::Session { csrf, .. } => match given {
                Some(g) if same_secret(g, csrf) => Ok(()),
                _ => Err(AppError::Csrf),
            },
        }
    }

    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf, .. } => csrf,
            Via::Token => "",
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let api = parts.uri.path().starts_with("/api/");
        let unauth = || {
            if api {
                AppError::Unauthorized
            } else {
                AppError::Login
            }
        };
        let bearer = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| token_digest(t.trim()));
        let session = cookie(&parts.headers, SESSION_COOKIE).map(token_digest);
        let now = crate::app::dashboard(state)?.now();
        // every request looks its token or session up in the store (no
        // cache), so a removal or revocation refuses the very next request,
        // on every node sharing the store
        if let Some(digest) = bearer {
            let found = with_db(state, move |db| {
                let found = db.api_token_user(&digest)?;
                if let Some((_, t)) = &found
                    && t.last_used_at
                        .is_none_or(|at| now - at >= TOKEN_USE_GRANULARITY)
                {
                    db.touch_api_token(t.id, now)?;
                }
                Ok(found)
            })
            .await?;
            return found
                .map(|(user, _)| Viewer {
                    user,
                    via: Via::Token,
                })
                .ok_or(AppError::Unauthorized);
        }
        let Some(digest) = session else {
            return Err(unauth());
        };
        let d2 = digest.clone();
        let s = with_db(state, move |db| Ok(db.session(&d2, now)?)).await?;
        s.map(|s| Viewer {
            user: s.user,
            via: Via::Session {
                csrf: s.csrf,
                digest,
            },
        })
        .ok_or_else(unauth)
    }
}

/// A signed-in `supplier-admin`: the extractor of account management
/// routes ([`crate::Access::Admin`]). Anyone else signed in gets 403.
#[derive(Debug, Clone)]
pub struct AdminViewer(pub Viewer);

impl FromRequestParts<AppState> for AdminViewer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let v = Viewer::from_request_parts(parts, state).await?;
        if crate::Access::Admin.allows(v.user.role) {
            Ok(AdminViewer(v))
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// A signed-in supplier (admin or analyst), the only roles allowed the
/// alert workbench's actions ([`crate::Access::Supplier`]). Anyone else
/// signed in gets 403.
pub struct SupplierViewer(pub Viewer);

impl FromRequestParts<AppState> for SupplierViewer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let v = Viewer::from_request_parts(parts, state).await?;
        if crate::Access::Supplier.allows(v.user.role) {
            Ok(SupplierViewer(v))
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// A signed-in `council-officer` or `supplier-admin`: the extractor of
/// the report-commentary routes ([`crate::Access::Officer`]). Anyone else
/// signed in gets 403; which tenant an officer may edit is the handler's
/// check ([`Viewer::may_edit_commentary`]).
#[derive(Debug, Clone)]
pub struct OfficerViewer(pub Viewer);

impl FromRequestParts<AppState> for OfficerViewer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let v = Viewer::from_request_parts(parts, state).await?;
        if crate::Access::Officer.allows(v.user.role) {
            Ok(OfficerViewer(v))
        } else {
            Err(AppError::Forbidden)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let h = hash_password("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse"), "salted");
    }

    #[test]
    fn pending_login_tokens_bind_account_cookie_and_time() {
        let user = User {
            id: 7,
            name: "ann.o".into(),
            role: Role::SupplierAdmin,
            tenant: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_at: 0,
            totp_secret: Some("3132".into()),
        };
        let t = pending_login_token(&user, "csrf-1", 1_000);
        assert_eq!(pending_login_name(&t).as_deref(), Some("ann.o"));
        assert!(pending_login_valid(&t, &user, "csrf-1", 1_000));
        assert!(pending_login_valid(
            &t,
            &user,
            "csrf-1",
            1_000 + PENDING_LOGIN_SECONDS
        ));
        assert!(!pending_login_valid(
            &t,
            &user,
            "csrf-1",
            1_001 + PENDING_LOGIN_SECONDS
        ));
        assert!(
            !pending_login_valid(&t, &user, "csrf-2", 1_000),
            "another browser"
        );
        let other = User {
            name: "bob".into(),
            ..user.clone()
        };
        assert!(!pending_login_valid(&t, &other, "csrf-1", 1_000));
        let new_password = User {
            password_hash: "$argon2id$other".into(),
            ..user.clone()
        };
        assert!(!pending_login_valid(&t, &new_password, "csrf-1", 1_000));
        // a later expiry, or a flipped tag, does not verify
        let parts: Vec<&str> = t.split('.').collect();
        let later = format!("{}.{}.{}", parts[0], 9_999_999, parts[2]);
        assert!(!pending_login_valid(&later, &user, "csrf-1", 1_000));
        let mut flipped = t.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert!(!pending_login_valid(&flipped, &user, "csrf-1", 1_000));
        for junk in ["", "zz", "61.1", "61.x.00", "61.1.00.00"] {
            assert!(!pending_login_valid(junk, &user, "csrf-1", 0), "{junk}");
        }
    }

    #[test]
    fn limiter_blocks_a_user_after_repeated_failures() {
        let l = LoginLimiter::default();
        for _ in 0..MAX_FAILURES_PER_USER {
            assert!(l.allowed("ann", "10.0.0.1"));
            l.failed("ann", "10.0.0.1");
        }
        assert!(!l.allowed("ann", "10.0.0.2"), "per user name");
        assert!(l.allowed("bob", "10.0.0.2"));
        for i in 0..MAX_FAILURES_PER_CLIENT {
            l.failed(&format!("u{i}"), "10.0.0.3");
        }
        assert!(!l.allowed("carol", "10.0.0.3"), "per client address");
    }

    #[test]
    fn limiter_table_stays_bounded_under_a_flood_of_names() {
        let l = LoginLimiter::default();
        for i in 0..MAX_TRACKED + 500 {
            l.failed(
                &format!("name{i}"),
                &format!("10.{}.{}.1", i / 256 % 256, i % 256),
            );
        }
        assert!(l.len() <= MAX_TRACKED, "{} counters", l.len());
        // the newest failures are still counted
        let last = MAX_TRACKED + 499;
        assert!(l.count(&format!("user:name{last}")) == 1);
    }

    fn parts(peer: &str, xff: &[&str]) -> Parts {
        let mut b = axum::http::Request::builder().uri("/login");
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        let (mut parts, ()) = b.body(()).unwrap().into_parts();
        parts.extensions.insert(axum::extract::ConnectInfo(
            peer.parse::<std::net::SocketAddr>().unwrap(),
        ));
        parts
    }

    #[test]
    fn forwarded_for_is_read_only_from_trusted_proxies() {
        let proxies: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        // an untrusted peer cannot choose its address
        let p = parts("192.0.2.7:5000", &["203.0.113.9"]);
        assert_eq!(client_addr(&p, &proxies), "192.0.2.7");
        // behind the proxy: the address the proxy saw
        let p = parts("10.0.0.5:5000", &["203.0.113.9"]);
        assert_eq!(client_addr(&p, &proxies), "203.0.113.9");
        // a forged first hop is skipped: the nearest untrusted one counts
        let p = parts("10.0.0.5:5000", &["1.1.1.1, 203.0.113.9", "10.0.0.6"]);
        assert_eq!(client_addr(&p, &proxies), "203.0.113.9");
        // no proxies configured: the header means nothing
        let p = parts("10.0.0.5:5000", &["203.0.113.9"]);
        assert_eq!(client_addr(&p, &[]), "10.0.0.5");
        // garbage in the header: the proxy's own address
        let p = parts("10.0.0.5:5000", &["not-an-address"]);
        assert_eq!(client_addr(&p, &proxies), "10.0.0.5");
    }
}
