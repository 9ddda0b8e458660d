//! What the dashboard stores about people: local accounts, sessions, API
//! tokens and the audit log.
//!
//! Secrets never reach the store in clear: passwords arrive as argon2 PHC
//! strings, session and API tokens as SHA-256 hex digests of the random
//! token the browser or script holds.

use crate::StoreError;

/// Who may see what. A supplier role sees every tenant; a council user
/// sees its own tenant only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    SupplierAdmin,
    SupplierAnalyst,
    Council,
    /// A council's officer: a council account that may also download its
    /// own tenant's exempt appendix and edit its report commentary.
    CouncilOfficer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SupplierAdmin => "supplier-admin",
            Role::SupplierAnalyst => "supplier-analyst",
            Role::Council => "council",
            Role::CouncilOfficer => "council-officer",
        }
    }

    /// Supplier roles see every tenant and the exempt appendix.
    pub fn is_supplier(self) -> bool {
        !self.is_council()
    }

    /// Council roles see their own tenant only.
    pub fn is_council(self) -> bool {
        matches!(self, Role::Council | Role::CouncilOfficer)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "supplier-admin" => Ok(Role::SupplierAdmin),
            "supplier-analyst" => Ok(Role::SupplierAnalyst),
            "council" => Ok(Role::Council),
            "council-officer" => Ok(Role::CouncilOfficer),
            _ => Err(format!(
                "`{s}` is not a role (supplier-admin, supplier-analyst, council, council-officer)"
            )),
        }
    }
}

/// A local account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The council a `council` or `council-officer` user belongs to; `None`
    /// for supplier roles.
    pub tenant: Option<String>,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Unix seconds.
    pub created_at: i64,
    /// The TOTP (RFC 6238) secret, hex, when the account has a second factor.
    pub totp_secret: Option<String>,
}

/// An API token as listed: never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last recorded use, at most [`TOKEN_USE_GRANULARITY`] stale.
    pub last_used_at: Option<i64>,
}

/// A token's last use is written at most once this many seconds, so a
/// busy script does not turn every read into a write.
pub const TOKEN_USE_GRANULARITY: i64 = 60;

/// A logged-in browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    /// The per-session CSRF token every form must echo.
    pub csrf: String,
    pub expires_at: i64,
}

/// One line of the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds.
    pub time: i64,
    /// The account name given (also for failed logins).
    pub actor: String,
    /// `login.ok`, `login.failed`, `logout`, `alert.status`, `token.created`,
    /// `token.revoked`, `user.added`, `user.removed`, `user.password`, `user.totp`,
    /// `report.download`, `report.commentary`.
    pub action: String,
    /// The tenant the object belongs to, when there is one.
    pub tenant: Option<String>,
    /// What was acted on (`alert 12`) and how (`new → investigating: note`).
    pub detail: String,
    /// The client address of a web request (the operator's own staff, not DNS clients).
    pub client: Option<String>,
}

/// Accounts, sessions, tokens and the audit log. `tenant: None` in a read
/// means every tenant (supplier views); callers derive it from the
/// signed-in user, never from the request alone.
pub trait AccountStore: Send {
    /// Adds an account. Fails when the name is taken.
    fn add_user(
        &mut self,
        name: &str,
        role: Role,
        tenant: Option<&str>,
        password_hash: &str,
        now: i64,
    ) -> Result<i64, StoreError>;

    /// Replaces an account's password. Returns `false` when there is no such account.
    fn set_password(&mut self, name: &str, password_hash: &str) -> Result<bool, StoreError>;

    fn user(&mut self, name: &str) -> Result<Option<User>, StoreError>;

    fn users(&mut self) -> Result<Vec<User>, StoreError>;

    fn create_session(
        &mut self,
        token_sha256: &str,
        user_id: i64,
        csrf: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// The live session with this token digest (expired ones are ignored).
    fn session(&mut self, token_sha256: &str, now: i64) -> Result<Option<Session>, StoreError>;

    fn delete_session(&mut self, token_sha256: &str) -> Result<(), StoreError>;

    fn add_api_token(
        &mut self,
        user_id: i64,
        token_sha256: &str,
        now: i64,
    ) -> Result<(), StoreError>;

    /// The user an API token belongs to, and the token.
    fn api_token_user(
        &mut self,
        token_sha256: &str,
    ) -> Result<Option<(User, ApiToken)>, StoreError>;

    /// Records that token `id` was used at `now` (callers skip it while the
    /// last recorded use is younger than [`TOKEN_USE_GRANULARITY`]).
    fn touch_api_token(&mut self, id: i64, now: i64) -> Result<(), StoreError>;

    /// A user's API tokens, oldest first.
    fn api_tokens(&mut self, user_id: i64) -> Result<Vec<ApiToken>, StoreError>;

    /// Deletes API token `id`; the account it belonged to, `None` when
    /// there is no such token. The next request with it is refused: every
    /// request looks its token up here.
    fn revoke_api_token(&mut self, id: i64) -> Result<Option<User>, StoreError>;

    /// Removes an account with its sessions and API tokens; `false` when
    /// there is no such account.
    fn remove_user(&mut self, name: &str) -> Result<bool, StoreError>;

    /// Ends every session of a user (a password reset, a TOTP change).
    fn end_sessions(&mut self, user_id: i64) -> Result<(), StoreError>;

    /// Sets (`Some`, hex) or clears an account's TOTP secret; `false` when
    /// there is no such account. The replay guard starts afresh.
    fn set_totp(&mut self, name: &str, secret_hex: Option<&str>) -> Result<bool, StoreError>;

    /// Claims TOTP time step `step` for a user: `true` only when it is
    /// later than every step claimed before, so a code is accepted once
    /// (RFC 6238 §5.2), on every node sharing the store.
    fn claim_totp_step(&mut self, user_id: i64, step: i64) -> Result<bool, StoreError>;

    fn audit(&mut self, entry: &AuditEntry) -> Result<(), StoreError>;

    /// Newest first.
    fn audit_log(
        &mut self,
        tenant: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError>;
}
