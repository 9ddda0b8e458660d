//! Accounts: argon2id password hashes, random 256-bit session and API
//! tokens stored as SHA-256 digests, the per-session CSRF token, login
//! rate limiting, and the [`Viewer`] extractor that every tenant scope is
//! derived from.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use parapet_store::accounts::{Role, User};
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

/// Compares secrets without an early exit.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Failed logins per user name and per client address, in memory.
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
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for key in [format!("user:{user}"), format!("client:{client}")] {
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

/// The client address of a request, when the server recorded it.
pub fn client_addr(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
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
        let requested = requested.filter(|t| !t.is_empty());
        match (self.user.role, &self.user.tenant) {
            (Role::Council, Some(own)) => match requested {
                Some(t) if t != own => Err(AppError::Forbidden),
                _ => Ok(Some(own.clone())),
            },
            // a council account without a tenant sees nothing
            (Role::Council, None) => Err(AppError::Forbidden),
            _ => Ok(requested.map(str::to_string)),
        }
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
        let now = crate::app::now();
        if let Some(digest) = bearer {
            let user = with_db(state, move |db| Ok(db.api_token_user(&digest)?)).await?;
            return user
                .map(|user| Viewer {
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
}
