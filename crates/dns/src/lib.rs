//! Parapet's DNS hot path: listeners, tenant attribution, the policy
//! snapshot, the answer cache and upstream forwarding.
//!
//! Architecture invariant: this crate depends on `parapet-core` and the
//! network runtime only — never on storage, the web dashboard or reports.
//! It hands query events to whoever listens on a bounded channel and never
//! waits for them.

pub mod access;
pub mod cache;
pub mod conns;
pub mod dot;
mod dot_client;
pub mod metrics;
#[cfg(target_os = "linux")]
mod mmsg;
pub mod notify;
pub mod resolver;
pub mod respip;
pub mod rrl;
pub mod server;
pub mod tls;
pub mod upstream;
pub mod wire;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parapet_core::policy::{FeedId, PolicySet};
use parapet_core::tenant::{TenantId, TenantMap};

pub use access::Access;
pub use cache::CacheConfig;
pub use metrics::{FeedStatus, Metrics, TenantCounters, Transport};
pub use notify::{NotifyHook, NotifyZone};
pub use resolver::Resolver;
pub use rrl::RateLimit;
pub use upstream::UpstreamAddr;

/// Resolver settings fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Addresses to answer on, UDP and TCP on each.
    pub listen: Vec<SocketAddr>,
    /// Upstream resolvers, tried in order.
    pub upstreams: Vec<UpstreamAddr>,
    /// Verifies `tls://` upstreams; `None`: the webpki roots.
    pub upstream_tls: Option<Arc<rustls::ClientConfig>>,
    /// After this long without an upstream answer the client gets SERVFAIL.
    pub upstream_timeout: Duration,
    /// How long one upstream gets before the next is tried.
    pub attempt_timeout: Duration,
    pub cache: CacheConfig,
    /// Largest UDP payload advertised and sent.
    pub udp_payload: u16,
    pub tcp_idle_timeout: Duration,
    pub tcp_max_connections: usize,
    /// UDP sockets (SO_REUSEPORT) per listen address; usually the number of
    /// worker threads.
    pub udp_sockets_per_listener: usize,
    /// Response rate limiting of UDP answers per client prefix.
    pub rate_limit: RateLimit,
    /// Serve-stale (RFC 8767); how long expired answers are kept is
    /// [`CacheConfig::max_stale`].
    pub stale: StaleSettings,
}

/// When and how expired answers are served (RFC 8767).
#[derive(Debug, Clone, Copy)]
pub struct StaleSettings {
    pub enabled: bool,
    /// TTL of the records of a stale answer.
    pub answer_ttl: u32,
    /// How long a query for an expired answer waits for its refresh before
    /// it gets the stale answer.
    pub client_timeout: Duration,
}

impl Settings {
    /// Defaults with the given listen addresses and upstreams.
    pub fn new(listen: Vec<SocketAddr>, upstreams: Vec<SocketAddr>) -> Self {
        Self {
            listen,
            upstreams: upstreams.into_iter().map(UpstreamAddr::plain).collect(),
            upstream_tls: None,
            upstream_timeout: Duration::from_millis(2000),
            attempt_timeout: Duration::from_millis(800),
            cache: CacheConfig {
                capacity: 100_000,
                max_ttl: 86_400,
                max_negative_ttl: 3_600,
                max_stale: 86_400,
            },
            udp_payload: wire::DEFAULT_UDP_PAYLOAD,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_connections: 1024,
            udp_sockets_per_listener: 1,
            rate_limit: RateLimit::OFF,
            stale: StaleSettings {
                enabled: true,
                answer_ttl: 30,
                client_timeout: Duration::from_millis(1800),
            },
        }
    }
}

/// How blocked names are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockMode {
    /// NXDOMAIN.
    Nxdomain,
    /// NOERROR with these addresses (A / AAAA); other types get NODATA.
    Sinkhole {
        v4: Option<Ipv4Addr>,
        v6: Option<Ipv6Addr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockResponse {
    pub mode: BlockMode,
    /// TTL of sinkhole records.
    pub ttl: u32,
}

/// Everything that can change on reload, swapped in as one.
pub struct Snapshot {
    pub policy: PolicySet,
    pub tenants: TenantMap,
    tenant_names: Vec<Arc<str>>,
    tenant_counters: Vec<Arc<TenantCounters>>,
    feed_names: Vec<Arc<str>>,
    /// The Extended DNS Error text of each feed's blocked answers, built
    /// once here rather than per answer.
    block_texts: Vec<Box<str>>,
    pub block: BlockResponse,
    /// Who may be answered at all.
    pub access: Access,
    /// By tenant: whether its UDP answers are rate limited.
    rate_limited: Vec<bool>,
    /// Forwarders whose EDNS Client Subnet names the client, by the tenant
    /// that trusts them (`None`: no tenant trusts any).
    pub trusted_ecs: Option<TenantMap>,
}

impl Snapshot {
    /// `tenant_names[0]` is the default tenant; `feed_names` is indexed by
    /// [`FeedId`].
    pub fn new(
        policy: PolicySet,
        tenants: TenantMap,
        tenant_names: &[String],
        feed_names: &[String],
        block: BlockResponse,
        metrics: &Metrics,
    ) -> Self {
        let (names, counters) = tenant_names.iter().map(|n| metrics.tenant(n)).unzip();
        Self {
            policy,
            tenants,
            tenant_names: names,
            tenant_counters: counters,
            feed_names: feed_names.iter().map(|n| Arc::from(n.as_str())).collect(),
            block_texts: feed_names.iter().map(|n| block_text(n)).collect(),
            block,
            access: Access::default(),
            rate_limited: Vec::new(),
            trusted_ecs: None,
        }
    }

    /// This snapshot with forwarders whose EDNS Client Subnet is believed
    /// (`[[tenants]] trusted_ecs`, each mapped to its tenant); `None` for
    /// none.
    pub fn with_trusted_ecs(mut self, trusted: Option<TenantMap>) -> Self {
        self.trusted_ecs = trusted;
        self
    }

    /// This snapshot with these allow and deny lists (loopback only
    /// without).
    pub fn with_access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    /// This snapshot with the tenants (by [`TenantId`]) whose answers are
    /// not rate limited.
    pub fn with_rate_limit_exempt(mut self, exempt: &[TenantId]) -> Self {
        self.rate_limited = vec![true; self.tenant_names.len()];
        for &t in exempt {
            if let Some(l) = self.rate_limited.get_mut(t as usize) {
                *l = false;
            }
        }
        self
    }

    /// Whether `[dns.rate_limit]` applies to tenant `t`'s clients.
    #[inline]
    pub fn rate_limited(&self, t: TenantId) -> bool {
        self.rate_limited.get(t as usize).copied().unwrap_or(true)
    }

    /// This snapshot with another policy: tenants, names, counters and block
    /// response as they are. What puts a feed's delta in force
    /// ([`PolicySet::apply_delta`]) without building the rest again.
    pub fn with_policy(&self, policy: PolicySet) -> Snapshot {
        Snapshot {
            policy,
            tenants: self.tenants.clone(),
            tenant_names: self.tenant_names.clone(),
            tenant_counters: self.tenant_counters.clone(),
            feed_names: self.feed_names.clone(),
            block_texts: self.block_texts.clone(),
            block: self.block,
            access: self.access.clone(),
            rate_limited: self.rate_limited.clone(),
            trusted_ecs: self.trusted_ecs.clone(),
        }
    }

    pub fn tenant_name(&self, t: TenantId) -> &Arc<str> {
        &self.tenant_names[(t as usize).min(self.tenant_names.len() - 1)]
    }

    pub fn tenant_counters(&self, t: TenantId) -> &Arc<TenantCounters> {
        &self.tenant_counters[(t as usize).min(self.tenant_counters.len() - 1)]
    }

    pub fn feed_name(&self, f: FeedId) -> &Arc<str> {
        static UNKNOWN: std::sync::OnceLock<Arc<str>> = std::sync::OnceLock::new();
        self.feed_names
            .get(f as usize)
            .unwrap_or_else(|| UNKNOWN.get_or_init(|| Arc::from("unknown")))
    }

    /// The Extended DNS Error text of answers blocked by feed `f`.
    pub fn block_text(&self, f: FeedId) -> &str {
        static UNKNOWN: std::sync::OnceLock<Box<str>> = std::sync::OnceLock::new();
        self.block_texts
            .get(f as usize)
            .unwrap_or_else(|| UNKNOWN.get_or_init(|| block_text("unknown")))
    }
}

fn block_text(feed: &str) -> Box<str> {
    format!("blocked by Parapet feed {feed}").into_boxed_str()
}
