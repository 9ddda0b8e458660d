//! The HTTP side of `parapet serve`: the dashboard (server-rendered HTML,
//! no JavaScript build step), its JSON API under `/api/v1/`, local
//! accounts with sessions and API tokens, `/metrics` and `/healthz`.
//!
//! Architecture invariant: the router is built by [`router`] from plain
//! values and closures, so it can be tested without a socket, and this
//! crate never reaches into the DNS hot path's internals.
//!
//! Architecture invariant: every route is declared once in [`ROUTES`]; the
//! router is generated from that table and so are the OpenAPI document and
//! the tenant-isolation tests, so a route cannot skip either.
//!
//! Architecture invariant: handlers reach data only through the store
//! traits (`Db`), never a concrete backend, and the tenant a request may
//! see comes from the signed-in user ([`auth::Viewer`]), never from the
//! request alone.

mod accounts;
mod app;
pub mod auth;
mod commentary;
mod freeze;
mod handlers;
mod memo;
mod openapi;
pub mod totp;
mod views;
mod workbench;

pub use app::MAX_FILTER;
pub use views::MAX_NOTE;
// the query search's parameters, shared with `parapet queries search`
pub use views::{QUERIES_PAGE, QueriesQuery, event_json, event_query};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use parapet_assurance::quarter::QuarterStyle;
use parapet_report::Council;
use parapet_store::Db;
use parapet_store::accounts::Role;

pub use app::AppError;

/// Unix seconds now: the system clock, or a test's clock.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Produces the Prometheus text exposition on demand.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// Opens one more connection to the dashboard's store.
pub type OpenDb = Box<dyn Fn() -> Result<Box<dyn Db>, parapet_store::StoreError> + Send + Sync>;

/// How long a request waits for a free store connection before it is
/// answered 503: long enough for a slow KPI page to finish, short enough
/// that a stuck store does not pile up requests for ever.
pub const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The store connections the handlers share, taken from `spawn_blocking`
/// (never on an async worker: the store's clients are synchronous). At
/// most `size` exist; one is opened when a request finds none idle and
/// the pool is below its size, so a store that was down when the node
/// started is reached once it is up (a PostgreSQL connection the server
/// closed reconnects itself on its next call). A request that finds all
/// `size` busy waits up to its `wait`, then gets
/// [`PoolError::Busy`] (503) rather than queueing for ever.
pub struct DbPool {
    state: Mutex<PoolState>,
    freed: std::sync::Condvar,
    open: Option<OpenDb>,
    size: usize,
    wait: std::time::Duration,
}

struct PoolState {
    idle: Vec<Box<dyn Db>>,
    /// Connections in existence (idle, lent, or being opened).
    made: usize,
}

/// Why no connection was handed out.
#[derive(Debug)]
pub enum PoolError {
    Busy { size: usize, waited_ms: u128 },
    Open(parapet_store::StoreError),
}

impl std::fmt::Display for PoolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PoolError::Busy { size, waited_ms } => write!(
                f,
                "every store connection ({size}, [store] pool_size) stayed busy for {waited_ms} ms"
            ),
            PoolError::Open(e) => write!(f, "cannot connect to the store: {e}"),
        }
    }
}

impl std::error::Error for PoolError {}

impl DbPool {
    /// A pool of exactly these connections, never more.
    ///
    /// # Panics
    /// With no connection.
    pub fn new(conns: Vec<Box<dyn Db>>) -> Self {
        assert!(!conns.is_empty(), "a pool needs a connection");
        let size = conns.len();
        Self {
            state: Mutex::new(PoolState {
                made: size,
                idle: conns,
            }),
            freed: std::sync::Condvar::new(),
            open: None,
            size,
            wait: POOL_WAIT,
        }
    }

    /// A pool of up to `size` connections: `first` (the one `serve` opened
    /// at start), then more from `open` as requests need them.
    pub fn growing(first: Box<dyn Db>, size: usize, open: OpenDb) -> Self {
        let mut pool = Self::new(vec![first]);
        pool.size = size.max(1);
        pool.open = Some(open);
        pool
    }

    /// How long [`DbPool::get`] waits for a busy pool (default [`POOL_WAIT`]).
    pub fn wait(mut self, wait: std::time::Duration) -> Self {
        self.wait = wait;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An idle connection, a new one while the pool is below its size, or
    /// the first one freed within the pool's wait. Blocks: call it from
    /// `spawn_blocking` or a thread of its own.
    pub fn get(&self) -> Result<PooledDb<'_>, PoolError> {
        let deadline = std::time::Instant::now() + self.wait;
        let mut st = self.state();
        loop {
            if let Some(db) = st.idle.pop() {
                return Ok(PooledDb {
                    pool: self,
                    db: Some(db),
                });
            }
            if let Some(open) = self.open.as_ref().filter(|_| st.made < self.size) {
                st.made += 1;
                drop(st);
                // connecting takes up to the store's connect timeout: not
                // under the lock, so other requests can take freed ones
                return match open() {
                    Ok(db) => Ok(PooledDb {
                        pool: self,
                        db: Some(db),
                    }),
                    Err(e) => {
                        self.state().made -= 1;
                        self.freed.notify_one();
                        Err(PoolError::Open(e))
                    }
                };
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(PoolError::Busy {
                    size: self.size,
                    waited_ms: self.wait.as_millis(),
                });
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A connection lent by a [`DbPool`], given back when dropped.
pub struct PooledDb<'a> {
    pool: &'a DbPool,
    db: Option<Box<dyn Db>>,
}

impl std::ops::Deref for PooledDb<'_> {
    type Target = Box<dyn Db>;
    fn deref(&self) -> &Box<dyn Db> {
        self.db.as_ref().expect("lent until dropped")
    }
}

impl std::ops::DerefMut for PooledDb<'_> {
    fn deref_mut(&mut self) -> &mut Box<dyn Db> {
        self.db.as_mut().expect("lent until dropped")
    }
}

impl Drop for PooledDb<'_> {
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            self.pool.state().idle.push(db);
            self.pool.freed.notify_one();
        }
    }
}

/// How the assurance pages count quarters and compute the KPIs and the
/// committee report: the installation's `[assurance]` configuration, and
/// each council as its reports name it.
#[derive(Debug, Clone, Default)]
pub struct AssuranceSettings {
    pub quarters: QuarterStyle,
    pub kpi: parapet_assurance::kpi::Settings,
    /// The quarter shown when a request names none; the current one when
    /// `None`.
    pub default_quarter: Option<String>,
    /// Tenant → council, for the reports.
    pub councils: Vec<(String, Council)>,
    /// The council of a tenant not in `councils`.
    pub other_council: Council,
    /// The committee the dashboard's reports are addressed to.
    pub committee: String,
}

impl AssuranceSettings {
    /// The council of `tenant`'s reports.
    pub fn council(&self, tenant: &str) -> &Council {
        self.councils
            .iter()
            .find(|(t, _)| t == tenant)
            .map_or(&self.other_council, |(_, c)| c)
    }
}

/// A council as the dashboard knows it.
#[derive(Debug, Clone, Default)]
pub struct TenantInfo {
    pub name: String,
    pub display_name: Option<String>,
    pub mail_domains: Vec<String>,
    /// Client networks (CIDR) attributed to the tenant.
    pub networks: Vec<String>,
}

/// A threat feed as configured.
#[derive(Debug, Clone, Default)]
pub struct FeedInfo {
    pub name: String,
    pub category: String,
    /// `block` or `monitor`.
    pub mode: String,
    /// `None`: shared by every tenant.
    pub tenants: Option<Vec<String>>,
    /// Where it comes from, as every viewer may read it: a file's name
    /// (not its path), a URL without its query, a zone and its primary.
    pub source: String,
}

/// A feed's load state as the loader last published it: what the
/// tenants page shows beside the configured feed.
#[derive(Debug, Clone, Default)]
pub struct FeedLoad {
    pub name: String,
    pub entries: u64,
    /// Feeds by zone transfer: the SOA serial in force.
    pub serial: Option<u32>,
    /// Unix seconds of the last transfer that changed the feed (0: none).
    pub last_transfer: u64,
    /// Unix seconds of the last successful load (0: none).
    pub last_load: u64,
    pub last_error: Option<String>,
}

/// Reads the feeds' load state (set once the resolver runs).
pub type FeedLoadFn = Arc<dyn Fn() -> Vec<FeedLoad> + Send + Sync>;

/// The facts `parapet privacy` prints, for the privacy page.
#[derive(Debug, Clone, Default)]
pub struct PrivacyFacts {
    pub events_days: u32,
    pub aggregates_days: u32,
    pub key_source: String,
    pub store: String,
    pub flush_interval_ms: u64,
    /// The investigation public key's fingerprint when client addresses
    /// are sealed (`[privacy] investigation_public_key`).
    pub sealed: Option<String>,
}

/// What the dashboard needs besides the metrics.
pub struct Dashboard {
    pub db: DbPool,
    pub tenants: Vec<TenantInfo>,
    pub feeds: Vec<FeedInfo>,
    /// The feeds' load state, once the resolver runs.
    pub feed_load: std::sync::OnceLock<FeedLoadFn>,
    pub assurance: AssuranceSettings,
    pub privacy: PrivacyFacts,
    /// Mark cookies `Secure` (the dashboard is behind TLS).
    pub secure_cookies: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for login
    /// throttling and the audit log); empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[dmarc] unknown_sender_threshold`: messages failing DMARC from an
    /// unidentified source before the mail page flags it.
    pub unknown_sender_threshold: u64,
    /// Roles that must sign in with a TOTP code (`[web] require_totp`).
    pub require_totp: Vec<Role>,
    /// The pseudonyms of `[[tenants]] forwarders`, by tenant: alerts label
    /// those clients as forwarders.
    pub forwarders: std::collections::HashSet<(String, parapet_core::pseudonym::ClientPseudonym)>,
    /// The time logins, sessions and TOTP codes are checked against.
    pub clock: Clock,
    pub(crate) limiter: auth::LoginLimiter,
    /// The overview's slow summaries, kept a while (memo.rs).
    pub(crate) memo: Arc<memo::Memo>,
}

impl Dashboard {
    /// `db`: one or more connections to the same store.
    pub fn new(
        db: Vec<Box<dyn Db>>,
        tenants: Vec<TenantInfo>,
        assurance: AssuranceSettings,
        privacy: PrivacyFacts,
    ) -> Self {
        Self::with_pool(DbPool::new(db), tenants, assurance, privacy)
    }

    /// [`Dashboard::new`] on a pool made beforehand.
    pub fn with_pool(
        db: DbPool,
        tenants: Vec<TenantInfo>,
        assurance: AssuranceSettings,
        privacy: PrivacyFacts,
    ) -> Self {
        Self {
            db,
            tenants,
            feeds: Vec::new(),
            feed_load: std::sync::OnceLock::new(),
            assurance,
            privacy,
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            unknown_sender_threshold: 50,
            require_totp: Vec::new(),
            forwarders: Default::default(),
            clock: Arc::new(app::now),
            limiter: auth::LoginLimiter::default(),
            memo: Arc::default(),
        }
    }

    /// Unix seconds by [`Dashboard::clock`].
    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

impl Dashboard {
    /// Whether `tenant` is one the installation serves: a configured
    /// tenant, or `default` when none is configured.
    pub fn knows_tenant(&self, tenant: &str) -> bool {
        if self.tenants.is_empty() {
            tenant == "default"
        } else {
            self.tenants.iter().any(|t| t.name == tenant)
        }
    }
}

/// Everything the handlers need.
#[derive(Clone)]
pub struct AppState {
    pub metrics: MetricsFn,
    /// `None`: only `/metrics` and `/healthz` answer (no store).
    pub dashboard: Option<Arc<Dashboard>>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (login, health, metrics, the OpenAPI document).
    Public,
    /// A signed-in user (session cookie) or an API token.
    User,
    /// A signed-in `supplier-admin` only: account management.
    Admin,
    /// A signed-in `supplier-admin` or `supplier-analyst`: the alert
    /// workbench's actions (promote, allow).
    Supplier,
    /// A signed-in `council-officer` (its own tenant, checked by the
    /// handler) or `supplier-admin`: a council's report commentary.
    Officer,
}

impl Access {
    /// Whether a signed-in user of `role` may call a route of this access
    /// (the role matrix in the README; tested over [`ROUTES`]).
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public | Access::User => true,
            Access::Admin => role == Role::SupplierAdmin,
            Access::Supplier => matches!(role, Role::SupplierAdmin | Role::SupplierAnalyst),
            Access::Officer => matches!(role, Role::SupplierAdmin | Role::CouncilOfficer),
        }
    }
}

/// What tenant's data a route shows: how the isolation test aims at
/// another tenant's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// No tenant data.
    None,
    /// A list scoped by `?tenant=` (a council user may only name its own).
    List,
    /// `{id}` is an alert.
    Alert,
    /// `{id}` is an incident.
    Incident,
    /// `{domain}` is a mail domain.
    Domain,
    /// `{tenant}` is in the path.
    Tenant,
    /// `{name}` is an account, `{id}` an API token (supplier-admin only).
    Account,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One route of the dashboard or the API.
pub struct RouteSpec {
    pub method: Method,
    /// axum path syntax, which is also OpenAPI's (`/alerts/{id}`).
    pub path: &'static str,
    pub access: Access,
    pub target: Target,
    pub summary: &'static str,
    /// Query parameters it understands.
    pub query: &'static [&'static str],
    handler: fn() -> MethodRouter<AppState>,
}

impl RouteSpec {
    pub fn is_api(&self) -> bool {
        self.path.starts_with("/api/")
    }
}

const ALERT_Q: &[&str] = &[
    "tenant", "status", "rule", "severity", "since", "limit", "page",
];
const TENANT_Q: &[&str] = &["tenant"];
const MAIL_Q: &[&str] = &["tenant", "show"];
const KPI_Q: &[&str] = &["tenant", "quarter"];
const ASSET_Q: &[&str] = &["tenant", "quarter", "q", "class", "source", "status"];
const QUERIES_Q: &[&str] = &[
    "tenant",
    "pseudonym",
    "name",
    "match",
    "domain",
    "action",
    "rule",
    "since",
    "until",
    "page",
];

use Access::{Admin, Officer, Public, Supplier, User};
use Method::{Get, Post};

/// Every route. The router, the OpenAPI document and the isolation tests
/// are generated from this table.
pub const ROUTES: &[RouteSpec] = &[
    RouteSpec {
        method: Get,
        path: "/healthz",
        access: Public,
        target: Target::None,
        summary: "liveness",
        query: &[],
        handler: || get(|| async { "ok\n" }),
    },
    RouteSpec {
        method: Get,
        path: "/metrics",
        access: Public,
        target: Target::None,
        summary: "Prometheus metrics",
        query: &[],
        handler: || get(metrics),
    },
    RouteSpec {
        method: Get,
        path: "/static/style.css",
        access: Public,
        target: Target::None,
        summary: "stylesheet",
        query: &[],
        handler: || get(handlers::style),
    },
    RouteSpec {
        method: Get,
        path: handlers::GOVUK_CSS,
        access: Public,
        target: Target::None,
        summary: "GOV.UK Frontend stylesheet",
        query: &[],
        handler: || get(handlers::govuk_css),
    },
    RouteSpec {
        method: Get,
        path: "/login",
        access: Public,
        target: Target::None,
        summary: "login form",
        query: &[],
        handler: || get(handlers::login_form),
    },
    RouteSpec {
        method: Post,
        path: "/login",
        access: Public,
        target: Target::None,
        summary: "log in",
        query: &[],
        handler: || post(handlers::login),
    },
    RouteSpec {
        method: Post,
        path: "/logout",
        access: User,
        target: Target::None,
        summary: "log out",
        query: &[],
        handler: || post(handlers::logout),
    },
    RouteSpec {
        method: Get,
        path: "/",
        access: User,
        target: Target::List,
        summary: "overview",
        query: TENANT_Q,
        handler: || get(handlers::overview_page),
    },
    RouteSpec {
        method: Get,
        path: "/alerts",
        access: User,
        target: Target::List,
        summary: "alerts",
        query: ALERT_Q,
        handler: || get(handlers::alerts_page),
    },
    RouteSpec {
        method: Post,
        path: "/alerts/status",
        access: User,
        target: Target::None,
        summary: "move the selected alerts through the workflow at once",
        query: &[],
        handler: || post(handlers::alerts_bulk_status),
    },
    RouteSpec {
        method: Get,
        path: "/alerts/{id}",
        access: User,
        target: Target::Alert,
        summary: "one alert with evidence and history",
        query: &[],
        handler: || get(handlers::alert_page),
    },
    RouteSpec {
        method: Post,
        path: "/alerts/{id}/status",
        access: User,
        target: Target::Alert,
        summary: "move an alert through the workflow",
        query: &[],
        handler: || post(handlers::alert_status_form),
    },
    RouteSpec {
        method: Post,
        path: "/alerts/{id}/incident",
        access: Supplier,
        target: Target::Alert,
        summary: "promote an alert to an incident",
        query: &[],
        handler: || post(workbench::alert_promote_form),
    },
    RouteSpec {
        method: Post,
        path: "/alerts/{id}/allow",
        access: Supplier,
        target: Target::Alert,
        summary: "false positive: allow the alert's name until an expiry",
        query: &[],
        handler: || post(workbench::alert_allow_form),
    },
    RouteSpec {
        method: Get,
        path: "/queries",
        access: User,
        target: Target::List,
        summary: "query search: stored query events, newest first",
        query: QUERIES_Q,
        handler: || get(handlers::queries_page),
    },
    RouteSpec {
        method: Get,
        path: "/mail",
        access: User,
        target: Target::List,
        summary: "mail domains' posture",
        query: MAIL_Q,
        handler: || get(handlers::mail_page),
    },
    RouteSpec {
        method: Get,
        path: "/mail/{domain}",
        access: User,
        target: Target::Domain,
        summary: "one mail domain",
        query: &[],
        handler: || get(handlers::mail_domain_page),
    },
    RouteSpec {
        method: Get,
        path: "/assurance",
        access: User,
        target: Target::List,
        summary: "KPIs, asset register, incidents, exceptions",
        query: ASSET_Q,
        handler: || get(handlers::assurance_page),
    },
    RouteSpec {
        method: Get,
        path: "/reports/{tenant}/{quarter}/{file}",
        access: User,
        target: Target::Tenant,
        summary: "a committee report file",
        query: &[],
        handler: || get(handlers::report_file),
    },
    RouteSpec {
        method: Post,
        path: "/reports/{tenant}/{quarter}/freeze",
        access: Admin,
        target: Target::Tenant,
        summary: "freeze an ended quarter's figures as a new version",
        query: &[],
        handler: || post(freeze::freeze),
    },
    RouteSpec {
        method: Post,
        path: "/reports/{tenant}/{quarter}/reopen",
        access: Admin,
        target: Target::Tenant,
        summary: "reopen a frozen quarter, keeping its version (with a reason)",
        query: &[],
        handler: || post(freeze::reopen),
    },
    RouteSpec {
        method: Post,
        path: "/assurance/{tenant}/{quarter}/commentary",
        access: Officer,
        target: Target::Tenant,
        summary: "save the officer commentary of a council's quarterly report",
        query: &[],
        handler: || post(commentary::save),
    },
    RouteSpec {
        method: Get,
        path: "/tenants",
        access: User,
        target: Target::List,
        summary: "tenants, their networks and feeds",
        query: TENANT_Q,
        handler: || get(handlers::tenants_page),
    },
    RouteSpec {
        method: Get,
        path: "/privacy",
        access: User,
        target: Target::None,
        summary: "what is stored",
        query: &[],
        handler: || get(handlers::privacy_page),
    },
    RouteSpec {
        method: Get,
        path: "/audit",
        access: User,
        target: Target::List,
        summary: "audit log",
        query: TENANT_Q,
        handler: || get(handlers::audit_page),
    },
    RouteSpec {
        method: Get,
        path: "/accounts",
        access: Admin,
        target: Target::None,
        summary: "accounts: users, roles, second factor, API tokens",
        query: &[],
        handler: || get(accounts::page),
    },
    RouteSpec {
        method: Post,
        path: "/accounts",
        access: Admin,
        target: Target::None,
        summary: "create an account",
        query: &[],
        handler: || post(accounts::create),
    },
    RouteSpec {
        method: Post,
        path: "/accounts/{name}/remove",
        access: Admin,
        target: Target::Account,
        summary: "remove an account, ending its sessions and tokens",
        query: &[],
        handler: || post(accounts::remove),
    },
    RouteSpec {
        method: Post,
        path: "/accounts/{name}/password",
        access: Admin,
        target: Target::Account,
        summary: "reset an account's password, ending its sessions",
        query: &[],
        handler: || post(accounts::reset_password),
    },
    RouteSpec {
        method: Post,
        path: "/accounts/tokens/{id}/revoke",
        access: Admin,
        target: Target::Account,
        summary: "revoke an API token",
        query: &[],
        handler: || post(accounts::revoke_token),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/openapi.json",
        access: Public,
        target: Target::None,
        summary: "this API's OpenAPI document",
        query: &[],
        handler: || get(openapi::document),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/overview",
        access: User,
        target: Target::List,
        summary: "queries, blocked, alerts by status, top blocked, hourly traffic",
        query: TENANT_Q,
        handler: || get(handlers::overview_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/alerts",
        access: User,
        target: Target::List,
        summary: "alerts",
        query: ALERT_Q,
        handler: || get(handlers::alerts_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/alerts/{id}",
        access: User,
        target: Target::Alert,
        summary: "one alert",
        query: &[],
        handler: || get(handlers::alert_api),
    },
    RouteSpec {
        method: Post,
        path: "/api/v1/alerts/{id}/status",
        access: User,
        target: Target::Alert,
        summary: "change an alert's status",
        query: &[],
        handler: || post(handlers::alert_status_api),
    },
    RouteSpec {
        method: Post,
        path: "/api/v1/alerts/{id}/incident",
        access: Supplier,
        target: Target::Alert,
        summary: "promote an alert to an incident",
        query: &[],
        handler: || post(workbench::alert_promote_api),
    },
    RouteSpec {
        method: Post,
        path: "/api/v1/alerts/{id}/allow",
        access: Supplier,
        target: Target::Alert,
        summary: "false positive: allow the alert's name until an expiry",
        query: &[],
        handler: || post(workbench::alert_allow_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/queries",
        access: User,
        target: Target::List,
        summary: "query search: stored query events, newest first, 50 a page",
        query: QUERIES_Q,
        handler: || get(handlers::queries_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/mail",
        access: User,
        target: Target::List,
        summary: "mail domains' posture",
        query: TENANT_Q,
        handler: || get(handlers::mail_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/mail/{domain}",
        access: User,
        target: Target::Domain,
        summary: "one mail domain: findings, history, DMARC summary",
        query: &[],
        handler: || get(handlers::mail_domain_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/kpis",
        access: User,
        target: Target::List,
        summary: "the five KPIs and Cyber Essentials checks",
        query: KPI_Q,
        handler: || get(handlers::kpis_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/assets",
        access: User,
        target: Target::List,
        summary: "the asset register",
        query: ASSET_Q,
        handler: || get(handlers::assets_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/incidents",
        access: User,
        target: Target::List,
        summary: "the incident register",
        query: TENANT_Q,
        handler: || get(handlers::incidents_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/incidents/{id}",
        access: User,
        target: Target::Incident,
        summary: "one incident",
        query: &[],
        handler: || get(handlers::incident_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/exceptions",
        access: User,
        target: Target::List,
        summary: "the exceptions register",
        query: TENANT_Q,
        handler: || get(handlers::exceptions_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/reports/{tenant}/{quarter}/{file}",
        access: User,
        target: Target::Tenant,
        summary: "a committee report file",
        query: &[],
        handler: || get(handlers::report_file),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/tenants",
        access: User,
        target: Target::List,
        summary: "tenants, their networks and feeds",
        query: TENANT_Q,
        handler: || get(handlers::tenants_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/privacy",
        access: User,
        target: Target::None,
        summary: "what is stored",
        query: &[],
        handler: || get(handlers::privacy_api),
    },
    RouteSpec {
        method: Get,
        path: "/api/v1/audit",
        access: User,
        target: Target::List,
        summary: "audit log",
        query: TENANT_Q,
        handler: || get(handlers::audit_api),
    },
];

pub fn router(state: AppState) -> Router {
    let mut by_path: HashMap<&str, MethodRouter<AppState>> = HashMap::new();
    let mut order = Vec::new();
    for r in ROUTES {
        match by_path.remove(r.path) {
            Some(m) => {
                by_path.insert(r.path, m.merge((r.handler)()));
            }
            None => {
                order.push(r.path);
                by_path.insert(r.path, (r.handler)());
            }
        }
    }
    let mut router = Router::new();
    for p in order {
        if let Some(m) = by_path.remove(p) {
            router = router.route(p, m);
        }
    }
    router
        .fallback(|| async { AppError::NotFound })
        // forms and JSON bodies are small; the longest field kept is a 4 KB note
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_request(limit_uri))
        .layer(axum::middleware::from_fn(html_errors))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
/// The longest request target (path and query) accepted.
pub const MAX_URI: usize = 4096;

/// Refuses a request target longer than [`MAX_URI`] (414) before any
/// handler parses it.
async fn limit_uri(
    r: axum::extract::Request,
) -> Result<axum::extract::Request, axum::response::Response> {
    if r.uri().path_and_query().map_or(0, |p| p.as_str().len()) > MAX_URI {
        return Err((
            axum::http::StatusCode::URI_TOO_LONG,
            format!("request target longer than {MAX_URI} bytes"),
        )
            .into_response());
    }
    Ok(r)
}

/// A page's error (404, 403, 500...) as a page in the dashboard's design;
/// the API (`/api/`) and non-HTML answers keep their JSON or text.
async fn html_errors(
    r: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let page = !r.uri().path().starts_with("/api/");
    let resp = next.run(r).await;
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !page || !json || resp.status().as_u16() < 400 {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // an error body is one short JSON object
    let message = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => serde_json::from_slice::<serde_json::Value>(&b)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    let html = handlers::error_page(parts.status, &message);
    let mut out = html.into_response();
    *out.status_mut() = parts.status;
    for (k, v) in &parts.headers {
        out.headers_mut().insert(k.clone(), v.clone());
    }
    out
}

/// Headers on every answer: no framing, no sniffing, no scripts, nothing
/// cached (pages carry tenant data).
async fn security_headers(mut r: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

async fn metrics(axum::extract::State(s): axum::extract::State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (s.metrics)(),
    )
}

/// Serves the router on a bound listener until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    handlers::warm_summaries(&state);
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await
}
