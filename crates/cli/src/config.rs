//! The one TOML configuration file: typed, every key with a default, unknown
//! keys refused with their line. Relative paths resolve against the
//! config file's folder. Secrets may come from the environment.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use parapet_pipeline::notify::NotifyConfig;

pub mod mailbox;

pub const DEFAULT_DNS_LISTEN: &str = "127.0.0.1:5353";
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_STORE_PATH: &str = "parapet-data";
pub const DEFAULT_SINKHOLE_TTL: u32 = 60;
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_ATTEMPT_TIMEOUT_MS: u64 = 800;
pub const DEFAULT_CACHE_SIZE: usize = 100_000;
pub const DEFAULT_MAX_TTL: u32 = 86_400;
pub const DEFAULT_MAX_NEGATIVE_TTL: u32 = 3_600;
pub const DEFAULT_EVENT_QUEUE: usize = 16_384;
pub const DEFAULT_WATCH_INTERVAL_MS: u64 = 1000;
pub const DEFAULT_TCP_IDLE_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 1024;
/// `[dns.rate_limit]`: UDP answers per second per client prefix.
pub const DEFAULT_RRL_RESPONSES_PER_SECOND: u32 = 200;
pub const DEFAULT_RRL_SLIP: u8 = 2;
pub const DEFAULT_RRL_IPV4_PREFIX: u8 = 24;
pub const DEFAULT_RRL_IPV6_PREFIX: u8 = 56;
/// Largest `responses_per_second` accepted.
pub const MAX_RRL_RESPONSES_PER_SECOND: u32 = 1_000_000;
/// Largest `slip` accepted (BIND's limit too).
pub const MAX_RRL_SLIP: u8 = 10;
/// RFC 8767's recommended stale-answer TTL, stale window (1 day) and client
/// response timer (1.8 s).
pub const DEFAULT_STALE_ANSWER_TTL: u32 = 30;
pub const DEFAULT_MAX_STALE_SECONDS: u32 = 86_400;
pub const DEFAULT_STALE_CLIENT_TIMEOUT_MS: u64 = 1800;
/// Environment variable that overrides `[store] url` (it may hold a password).
pub const ENV_DATABASE_URL: &str = "PARAPET_DATABASE_URL";
/// Environment variable that overrides `[privacy] pseudonym_key`.
pub const ENV_PSEUDONYM_KEY: &str = "PARAPET_PSEUDONYM_KEY";
/// The example feed compiled into the binary, used when no config is given.
pub const EMBEDDED_FEED: &[u8] = include_bytes!("../../../etc/feeds/example.rpz");
pub const EMBEDDED_FEED_NAME: &str = "parapet-example";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub feeds: Vec<FeedConfig>,
    /// TSIG keys for feeds taken by zone transfer.
    #[serde(default)]
    pub tsig: Vec<TsigConfig>,
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub node: NodeConfig,
    #[serde(default)]
    pub detect: DetectSection,
    #[serde(default)]
    pub notify: NotifyConfig,
    #[serde(default)]
    pub mailcheck: MailcheckSection,
    #[serde(default)]
    pub dmarc: DmarcSection,
    #[serde(default)]
    pub web: WebConfig,
    #[serde(default)]
    pub privacy: PrivacyConfig,
    #[serde(default)]
    pub assurance: AssuranceSection,
    /// `[[exports]]`: alerts and query events to a SIEM.
    #[serde(default)]
    pub exports: Vec<toml::Spanned<parapet_pipeline::export::ExportConfig>>,
    /// Checked with the rest (unknown keys, bad values), but taken into
    /// effect by `logging::init`, which reads it before anything logs.
    #[serde(default)]
    #[allow(dead_code)]
    pub log: LogConfig,
    /// Folder relative paths resolve against; not a key.
    #[serde(skip)]
    pub base: PathBuf,
    /// The file this came from; `None` for the embedded defaults.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    pub listen: Vec<SocketAddr>,
    /// Empty: the nameservers of /etc/resolv.conf. `IP:PORT`, or
    /// `tls://IP:PORT#name` for DNS over TLS.
    #[serde(deserialize_with = "upstream_list")]
    pub upstreams: Vec<parapet_dns::UpstreamAddr>,
    /// Extra CA certificates (PEM) trusted for `tls://` upstreams, beside
    /// the webpki roots.
    pub upstream_ca_file: Option<PathBuf>,
    /// `[dns.tls]`: DNS over TLS.
    pub tls: Option<EncryptedListen>,
    /// `[dns.https]`: DNS over HTTPS.
    pub https: Option<EncryptedListen>,
    pub allowlist: Vec<Spanned<String>>,
    pub block_response: BlockResponseKind,
    pub sinkhole_ipv4: Option<Ipv4Addr>,
    pub sinkhole_ipv6: Option<Ipv6Addr>,
    pub sinkhole_ttl: u32,
    pub upstream_timeout_ms: u64,
    pub attempt_timeout_ms: u64,
    pub cache_size: usize,
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
    pub udp_payload: u16,
    /// Worker threads; 0 means one per CPU.
    pub threads: usize,
    pub tcp_idle_timeout_ms: u64,
    pub tcp_max_connections: usize,
    pub event_queue: usize,
    /// How often feed files and the config file are checked for changes; 0 disables.
    pub watch_interval_ms: u64,
    /// Serve expired answers when upstreams fail (RFC 8767).
    pub serve_stale: bool,
    /// TTL of the records of a stale answer.
    pub stale_answer_ttl: u32,
    /// How long past expiry an answer may still be served stale.
    pub max_stale_seconds: u32,
    /// How long a query for an expired answer waits for upstream before
    /// the stale answer is sent; 0 sends it at once.
    pub stale_answer_client_timeout_ms: u64,
    /// Networks answered besides the tenants' networks (default: loopback).
    #[serde(deserialize_with = "cidrs")]
    pub allow: Vec<IpNet>,
    /// Networks refused even when in `allow` or a tenant's networks.
    #[serde(deserialize_with = "cidrs")]
    pub deny: Vec<IpNet>,
    pub rate_limit: RateLimitConfig,
}

/// `[dns.rate_limit]`: response rate limiting of UDP answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Per client prefix; 0 disables.
    pub responses_per_second: u32,
    /// Every `slip`-th limited answer is sent truncated, the rest dropped.
    pub slip: u8,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            responses_per_second: DEFAULT_RRL_RESPONSES_PER_SECOND,
            slip: DEFAULT_RRL_SLIP,
            ipv4_prefix: DEFAULT_RRL_IPV4_PREFIX,
            ipv6_prefix: DEFAULT_RRL_IPV6_PREFIX,
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: vec![DEFAULT_DNS_LISTEN.parse().expect("valid default")],
            upstreams: Vec::new(),
            upstream_ca_file: None,
            tls: None,
            https: None,
            allowlist: Vec::new(),
            block_response: BlockResponseKind::Nxdomain,
            sinkhole_ipv4: None,
            sinkhole_ipv6: None,
            sinkhole_ttl: DEFAULT_SINKHOLE_TTL,
            upstream_timeout_ms: DEFAULT_UPSTREAM_TIMEOUT_MS,
            attempt_timeout_ms: DEFAULT_ATTEMPT_TIMEOUT_MS,
            cache_size: DEFAULT_CACHE_SIZE,
            max_ttl: DEFAULT_MAX_TTL,
            max_negative_ttl: DEFAULT_MAX_NEGATIVE_TTL,
            udp_payload: parapet_dns::wire::DEFAULT_UDP_PAYLOAD,
            threads: 0,
            tcp_idle_timeout_ms: DEFAULT_TCP_IDLE_TIMEOUT_MS,
            tcp_max_connections: DEFAULT_TCP_MAX_CONNECTIONS,
            event_queue: DEFAULT_EVENT_QUEUE,
            watch_interval_ms: DEFAULT_WATCH_INTERVAL_MS,
            allow: parapet_dns::access::LOOPBACK
                .iter()
                .map(|n| n.parse().expect("valid default"))
                .collect(),
            deny: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            serve_stale: true,
            stale_answer_ttl: DEFAULT_STALE_ANSWER_TTL,
            max_stale_seconds: DEFAULT_MAX_STALE_SECONDS,
            stale_answer_client_timeout_ms: DEFAULT_STALE_CLIENT_TIMEOUT_MS,
        }
    }
}

/// `[dns.tls]` or `[dns.https]`: an encrypted DNS listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedListen {
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// DoH only: the path queries are taken on.
    #[serde(default = "default_doh_path")]
    pub path: String,
    #[serde(default = "default_encrypted_max_connections")]
    pub max_connections: usize,
    #[serde(default = "default_encrypted_idle_ms")]
    pub idle_timeout_ms: u64,
}

fn default_doh_path() -> String {
    "/dns-query".into()
}

fn default_encrypted_max_connections() -> usize {
    DEFAULT_TCP_MAX_CONNECTIONS
}

fn default_encrypted_idle_ms() -> u64 {
    DEFAULT_TCP_IDLE_TIMEOUT_MS
}

/// `[dns] upstreams`: each `IP:PORT` or `tls://IP:PORT#name`.
fn upstream_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<parapet_dns::UpstreamAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockResponseKind {
    Nxdomain,
    Sinkhole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FeedModeConfig {
    #[default]
    Block,
    Monitor,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub name: Spanned<String>,
    /// The feed file; not used with `source = "database"`.
    #[serde(default)]
    pub path: PathBuf,
    /// `"file"` (default) or `"database"`: the version published with
    /// `parapet feeds publish NAME FILE`, polled for updates.
    #[serde(default)]
    pub source: FeedSourceConfig,
    pub format: FormatConfig,
    #[serde(default = "default_category")]
    pub category: String,
    /// "block" (default) or "monitor" (report matches, do not block).
    #[serde(default)]
    pub mode: FeedModeConfig,
    /// Only these tenants get this feed (in addition to the shared feeds).
    /// Absent: the feed is shared by every tenant.
    pub tenants: Option<Vec<Spanned<String>>>,
    /// `http://` or `https://`: the feed is fetched from here every
    /// `refresh_seconds` and its last good copy kept under `[store] path`
    /// (`crate::url_feeds`). Not with `path` or `source`.
    pub url: Option<Spanned<String>>,
    /// Seconds between fetches of `url` (default 3600); for a feed by
    /// zone transfer, between checks of the primary instead of the zone's
    /// SOA refresh.
    pub refresh_seconds: Option<u64>,
    /// PEM certificates trusted for `url` besides the usual roots.
    pub ca_file: Option<PathBuf>,
    /// Largest body fetched from `url`, compressed or not (default 200 MB).
    pub max_bytes: Option<u64>,
    pub connect_timeout_seconds: Option<u64>,
    /// The longest wait for any one read from `url`.
    pub read_timeout_seconds: Option<u64>,
    /// RPZ by zone transfer: the primary (`"192.0.2.1:53"`); a feed with a
    /// primary takes its zone by AXFR/IXFR instead of reading a file.
    pub primary: Option<SocketAddr>,
    /// RPZ by zone transfer: several primaries, tried in order.
    #[serde(default)]
    pub primaries: Vec<SocketAddr>,
    /// RPZ by zone transfer: the policy zone's name.
    pub zone: Option<String>,
    /// RPZ by zone transfer: the `[[tsig]]` key signing the transfers.
    pub tsig_key: Option<Spanned<String>>,
}

impl FeedConfig {
    /// The primaries of a feed taken by zone transfer (empty otherwise).
    pub fn xfr_primaries(&self) -> Vec<SocketAddr> {
        self.primary
            .iter()
            .chain(&self.primaries)
            .copied()
            .collect()
    }
}

/// A TSIG key (RFC 8945) shared with a zone-transfer primary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigConfig {
    pub name: Spanned<String>,
    /// `hmac-sha256` or `hmac-sha512`.
    pub algorithm: Spanned<String>,
    /// The secret, base64.
    pub secret: Option<String>,
    /// The environment variable holding the secret, base64 (kept out of
    /// the config file).
    pub secret_env: Option<String>,
}

impl TsigConfig {
    /// The key's secret, from the config or the environment.
    pub fn secret_bytes(&self) -> anyhow::Result<Vec<u8>> {
        use base64::Engine as _;
        let name = self.name.get_ref();
        let text = match (&self.secret, &self.secret_env) {
            (Some(s), None) => s.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                anyhow::anyhow!("[[tsig]] `{name}`: environment variable {var} is not set")
            })?,
            _ => bail!("[[tsig]] `{name}`: give exactly one of secret and secret_env"),
        };
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| anyhow::anyhow!("[[tsig]] `{name}`: the secret is not base64: {e}"))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedSourceConfig {
    #[default]
    File,
    Database,
}

fn default_category() -> String {
    "malware".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatConfig {
    Rpz,
    Hosts,
    Domains,
}

impl From<FormatConfig> for parapet_detect::feed::FeedFormat {
    fn from(f: FormatConfig) -> Self {
        match f {
            FormatConfig::Rpz => Self::Rpz,
            FormatConfig::Hosts => Self::Hosts,
            FormatConfig::Domains => Self::Domains,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    pub name: Spanned<String>,
    #[serde(default, deserialize_with = "cidrs")]
    pub networks: Vec<IpNet>,
    /// The council's name as printed on its reports (the tenant's `name` is
    /// internal and never printed in a public report).
    #[serde(default)]
    pub display_name: Option<String>,
    /// The council's mail domains, summarised in its committee report.
    #[serde(default)]
    pub mail_domains: Vec<String>,
    /// Whether `[dns.rate_limit]` applies to its clients.
    #[serde(default = "yes")]
    pub rate_limit: bool,
    /// The council's report profile (`report = { author = "…", … }`):
    /// author, contact, agenda item, recommendation, PSN, exemption.
    #[serde(default)]
    pub report: Option<parapet_report::ReportProfile>,
    /// The council's own DNS servers that forward to Parapet (e.g. Windows
    /// DNS on domain controllers): their queries' client is the forwarder,
    /// labelled so in alerts. At most [`MAX_FORWARDER_ADDRESSES`] addresses
    /// each.
    #[serde(default, deserialize_with = "cidrs")]
    pub forwarders: Vec<IpNet>,
    /// Sources whose EDNS Client Subnet option is believed: a query from
    /// one that carries ECS has the ECS address as its client (pseudonym,
    /// sealed address, tenant).
    #[serde(default, deserialize_with = "cidrs")]
    pub trusted_ecs: Vec<IpNet>,
}

/// Most addresses one `[[tenants]] forwarders` network may hold: the
/// dashboard computes each one's pseudonym to label forwarders, and a
/// forwarder is a server, not a network.
pub const MAX_FORWARDER_ADDRESSES: u32 = 4096;

fn yes() -> bool {
    true
}

/// Longest `[store] flush_interval_ms`: detection observes each batch's
/// repeats of a query as one run ([`parapet_detect::rules::Detector::observe_run`]),
/// which the beacon rule reads right only while a run spans less than its
/// shortest interval (10 s).
pub const MAX_FLUSH_INTERVAL_MS: u64 = 5_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub path: PathBuf,
    /// `postgres://user:password@host:port/db`: a PostgreSQL database shared
    /// by several nodes instead of the SQLite file under `path`.
    pub url: Option<String>,
    /// Days raw query events are kept.
    pub events_retention_days: u32,
    /// Days hourly aggregates are kept.
    pub aggregates_retention_days: u32,
    /// Longest time an event waits in memory before it is written.
    pub flush_interval_ms: u64,
    /// Nice value (0-19) of the threads that store events: 0 shares the CPU
    /// fairly with answering (storage keeps up at saturation); higher puts
    /// answers first when both need the same core (lower tail latency, and
    /// at saturation the event queue drops and counts). Measured in bench/.
    pub writer_nice: i32,
    /// Most megabytes of query events kept in `path/spool` while the store
    /// cannot take them; past it they are dropped and counted.
    pub spool_max_mb: u64,
    /// How long connecting to PostgreSQL may take before the call fails
    /// (unless the URL sets `connect_timeout`).
    pub connect_timeout_ms: u64,
    /// Most store connections the dashboard opens.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let r = parapet_store::Retention::default();
        Self {
            path: DEFAULT_STORE_PATH.into(),
            url: None,
            events_retention_days: r.events_days,
            aggregates_retention_days: r.aggregates_days,
            flush_interval_ms: 1000,
            writer_nice: 0,
            spool_max_mb: 1024,
            connect_timeout_ms: parapet_store::CONNECT_TIMEOUT.as_millis() as u64,
            pool_size: 4,
        }
    }
}

/// `[node]`: this process among several sharing one database.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Written with events and alerts, in metrics and in lease records;
    /// unique per node. Default: the host name.
    pub name: Option<String>,
}

impl NodeConfig {
    /// The configured name, or the host name.
    pub fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .or_else(|_| std::fs::read_to_string("/etc/hostname"))
                .map(|h| h.trim().to_string())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "parapet".to_string())
        })
    }
}

impl StoreConfig {
    /// The PostgreSQL URL in force: `PARAPET_DATABASE_URL`, else `[store] url`.
    pub fn database_url(&self) -> Option<String> {
        std::env::var(ENV_DATABASE_URL)
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| self.url.clone())
    }

    pub fn retention(&self) -> parapet_store::Retention {
        parapet_store::Retention {
            events_days: self.events_retention_days,
            aggregates_days: self.aggregates_retention_days,
        }
    }
}

/// `[assurance]`: how quarters are counted and the KPI definitions' tunable
/// parts (`[assurance.kpi]`, see docs/assurance.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssuranceSection {
    /// `financial` (April–March, `2021-22-Q2`) or `calendar` (`2021-Q3`).
    pub quarters: parapet_assurance::quarter::QuarterStyle,
    /// The council name printed on reports.
    pub council: Option<String>,
    pub kpi: parapet_assurance::kpi::Settings,
    /// The report profile of every council (`[assurance.report]`); a
    /// tenant's own `report` overrides it field by field.
    pub report: parapet_report::ReportProfile,
}

/// `[mailcheck]`: domains `parapet serve` re-checks on a schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailcheckSection {
    pub domains: Vec<String>,
    /// Hours between checks of every domain.
    pub interval_hours: u32,
    /// `IP` or `IP:PORT` to ask; default: the first of `[dns] upstreams`.
    pub nameserver: Option<String>,
    pub dkim_selectors: Vec<String>,
    pub smtp_port: u16,
    pub https_port: u16,
}

impl Default for MailcheckSection {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            interval_hours: 24,
            nameserver: None,
            dkim_selectors: Vec::new(),
            smtp_port: 25,
            https_port: 443,
        }
    }
}

/// `[dmarc]`: who sends the mail DMARC reports count
/// (crates/cli/src/dmarc_senders.rs), and the IMAP mailboxes reports
/// arrive in (crates/cli/src/mailbox.rs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DmarcSection {
    /// Look up each new source IP's reverse DNS at import.
    pub identify_senders: bool,
    /// Most source IPs looked up per import; the rest wait for the next.
    pub lookups_per_run: usize,
    /// Seconds allowed for one IP's PTR and forward lookups.
    pub lookup_timeout_secs: u64,
    /// Days before an IP no service was named for is looked up again.
    pub recheck_days: u32,
    /// Messages failing DMARC from one unidentified source before it is
    /// an "unknown sender" and raises `dmarc.unknown_sender`.
    pub unknown_sender_threshold: u64,
    /// Services added to (or overriding) the bundled map.
    pub senders: Vec<SenderConfig>,
    /// `[[dmarc.mailboxes]]`: IMAP mailboxes that receive reports.
    pub mailboxes: Vec<mailbox::MailboxConfig>,
}

impl Default for DmarcSection {
    fn default() -> Self {
        Self {
            identify_senders: true,
            lookups_per_run: 500,
            lookup_timeout_secs: 5,
            recheck_days: 7,
            unknown_sender_threshold: 50,
            senders: Vec::new(),
            mailboxes: Vec::new(),
        }
    }
}

/// `[[dmarc.senders]]`: a PTR domain and the service it belongs to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderConfig {
    pub domain: String,
    pub name: String,
    #[serde(rename = "type", default = "default_sender_type")]
    pub kind: String,
}

fn default_sender_type() -> String {
    "other".into()
}

/// `[detect]`: thresholds of the detection rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectSection {
    /// Days a tenant's traffic is learnt before `new_domain` fires.
    pub learning_days: u32,
    /// Distinct names under one domain in the window that make a `tunnel`.
    pub tunnel_unique_names: usize,
    /// TXT/NULL queries for one domain in the window that make a `tunnel`.
    pub tunnel_txt_queries: u32,
    /// The window of the volume rules, in seconds.
    pub window_secs: u64,
    /// Regular queries before a `beacon` is reported.
    pub beacon_queries: usize,
}

impl Default for DetectSection {
    fn default() -> Self {
        let d = parapet_detect::rules::DetectConfig::default();
        Self {
            learning_days: (d.learning_period.as_secs() / 86_400) as u32,
            tunnel_unique_names: d.tunnel_unique_names,
            tunnel_txt_queries: d.tunnel_txt_queries,
            window_secs: d.window.as_secs(),
            beacon_queries: d.beacon_queries,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// Mark session cookies `Secure`: set it when the dashboard is reached
    /// over HTTPS (through a TLS-terminating proxy).
    pub secure_cookies: bool,
    /// Reverse proxies (CIDR) whose `X-Forwarded-For` names the client;
    /// from any other peer the header is ignored.
    #[serde(deserialize_with = "cidrs")]
    pub trusted_proxies: Vec<IpNet>,
    /// Roles that must sign in to the dashboard with a TOTP code.
    #[serde(deserialize_with = "roles")]
    pub require_totp: Vec<parapet_store::accounts::Role>,
}

/// A list of dashboard roles, each error naming the bad value and the roles.
fn roles<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<parapet_store::accounts::Role>, D::Error> {
    use serde::de::Error;
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|r| r.parse().map_err(D::Error::custom))
        .collect()
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_WEB_LISTEN.parse().expect("valid default"),
            secure_cookies: false,
            trusted_proxies: Vec::new(),
            require_totp: Vec::new(),
        }
    }
}

/// A list of networks whose error names the bad value: serde's own says
/// only "invalid IP address syntax".
fn cidrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    use serde::de::Error;
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|t| {
            t.parse::<IpNet>().map_err(|_| {
                D::Error::custom(format!(
                    "`{t}` is not a network in CIDR form (e.g. 10.0.0.0/8 or 2001:db8::/32)"
                ))
            })
        })
        .collect()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Key for client pseudonyms (at least 16 bytes). Prefer the
    /// PARAPET_PSEUDONYM_KEY environment variable.
    pub pseudonym_key: Option<String>,
    /// The investigation public key (a path to `investigation.pub`, or its
    /// text): with it, client addresses are also kept sealed to it.
    pub investigation_public_key: Option<String>,
}

/// `[log]`: how `serve` writes its log lines to stderr (the filter is
/// `PARAPET_LOG`). `PARAPET_LOG_FORMAT` overrides `format`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, message, fields.
    Json,
}

/// A configuration error with its place.
fn at(
    text: &str,
    file: &Path,
    span: std::ops::Range<usize>,
    key: &str,
    msg: &str,
) -> anyhow::Error {
    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
    anyhow::anyhow!("{}:{line}: {key}: {msg}", file.display())
}

// `--config` as most commands take it (`#[command(flatten)]`), with no help
// text of its own; a command whose help says more about its config file
// declares the flag itself. A comment, not a doc comment: clap would make a
// doc comment here the about text of every command that flattens this.
#[derive(clap::Args)]
pub struct ConfigArg {
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
}

impl ConfigArg {
    /// The file named, or the embedded defaults without one.
    pub fn load(&self) -> anyhow::Result<Config> {
        Config::load_or_embedded(self.config.as_deref())
    }

    /// The store the configuration names, which must exist already.
    pub fn open_existing_store(&self) -> anyhow::Result<Box<dyn parapet_store::Db>> {
        self.load()?.open_existing_store()
    }
}

impl Config {
    /// The configuration at `path`, or the embedded defaults without one;
    /// a file that does not load is bad input (exit 2).
    pub fn load_or_embedded(path: Option<&Path>) -> anyhow::Result<Config> {
        match path {
            Some(p) => Ok(Config::load(p).map_err(|e| crate::BadInput(format!("{e:#}")))?),
            None => Ok(Config::embedded()),
        }
    }

    /// Opens the store this configuration names.
    /// PostgreSQL when `PARAPET_DATABASE_URL` or `[store] url` is set, the
    /// SQLite file under `[store] path` otherwise.
    pub fn open_store(&self) -> anyhow::Result<Box<dyn parapet_store::Db>> {
        Ok(self.connect_store()?)
    }

    /// [`Config::open_store`] with the store's own error (the dashboard's
    /// pool opens connections with it).
    pub fn connect_store(&self) -> Result<Box<dyn parapet_store::Db>, parapet_store::StoreError> {
        let mut store: Box<dyn parapet_store::Db> = match self.store.database_url() {
            Some(url) => Box::new(parapet_store::PgStore::open_with_timeout(
                &url,
                std::time::Duration::from_millis(self.store.connect_timeout_ms.max(1)),
            )?),
            None => Box::new(parapet_store::SqliteStore::open(
                &self.resolve(&self.store.path),
            )?),
        };
        store.set_node(&self.node.name());
        Ok(store)
    }

    /// Opens the store this configuration names when it exists: commands
    /// that act on what is stored (accounts, alerts) must not leave an
    /// empty store behind when run from the wrong folder or without the
    /// configuration. Only `serve`, `users add` and imports create one.
    pub fn open_existing_store(&self) -> anyhow::Result<Box<dyn parapet_store::Db>> {
        self.check_store_exists()?;
        self.open_store()
    }

    /// Opens the store an import writes to: created when a configuration
    /// file names it (the operator chose where), but never the default
    /// `./parapet-data` of a command run without one, which would hide
    /// the imported data from `parapet serve` in another folder.
    pub fn open_store_for_import(&self) -> anyhow::Result<Box<dyn parapet_store::Db>> {
        if self.source.is_none() {
            self.check_store_exists()?;
        }
        self.open_store()
    }

    /// An error saying where the store was looked for, when the SQLite
    /// store this configuration names does not exist (PostgreSQL: the
    /// server answers for itself).
    fn check_store_exists(&self) -> anyhow::Result<()> {
        if self.store.database_url().is_none() {
            let dir = self.resolve(&self.store.path);
            if !dir.join(parapet_store::DB_FILE).is_file() {
                let how = match &self.source {
                    Some(file) => format!("the store that {} names", file.display()),
                    None => {
                        "no configuration given (--config or PARAPET_CONFIG), so the default store"
                            .into()
                    }
                };
                anyhow::bail!(
                    "no store at {}: {how} does not exist. Point PARAPET_CONFIG or --config at \
                     the configuration `parapet serve` uses; `parapet serve`, `parapet users add` \
                     or an import given a configuration creates a new store",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// The embedded defaults: DNS on 127.0.0.1:5353, web on 127.0.0.1:8080,
    /// data under ./parapet-data, the bundled example feed.
    pub fn embedded() -> Self {
        Self {
            dns: DnsConfig::default(),
            feeds: Vec::new(),
            tsig: Vec::new(),
            tenants: Vec::new(),
            store: StoreConfig::default(),
            node: NodeConfig::default(),
            detect: DetectSection::default(),
            notify: NotifyConfig::default(),
            mailcheck: MailcheckSection::default(),
            dmarc: DmarcSection::default(),
            web: WebConfig::default(),
            privacy: PrivacyConfig::default(),
            assurance: AssuranceSection::default(),
            exports: Vec::new(),
            log: LogConfig::default(),
            base: PathBuf::from("."),
            source: None,
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            match line {
                Some(l) => anyhow::anyhow!("{}:{l}: {}", path.display(), e.message()),
                None => anyhow::anyhow!("{}: {}", path.display(), e.message()),
            }
        })?;
        cfg.base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.source = Some(path.to_path_buf());
        cfg.validate(text, path)?;
        Ok(cfg)
    }

    /// Checks a feed's zone-transfer keys and the `[[tsig]]` key it names.
    fn validate_xfr(&self, f: &FeedConfig, text: &str, file: &Path) -> anyhow::Result<()> {
        let name = f.name.get_ref();
        let err = |key: &str, msg: String| at(text, file, f.name.span(), key, &msg);
        if f.xfr_primaries().is_empty() {
            if f.zone.is_some() || f.tsig_key.is_some() {
                return Err(err(
                    "[[feeds]] primary",
                    format!("feed `{name}` names a zone or TSIG key but no primary"),
                ));
            }
            return Ok(());
        }
        if f.format != FormatConfig::Rpz {
            return Err(err(
                "[[feeds]] format",
                format!("feed `{name}` is taken by zone transfer: its format must be \"rpz\""),
            ));
        }
        if !f.path.as_os_str().is_empty() || f.source != FeedSourceConfig::File {
            return Err(err(
                "[[feeds]] primary",
                format!("feed `{name}` has a primary: give no path or source"),
            ));
        }
        match &f.zone {
            None => {
                return Err(err(
                    "[[feeds]] zone",
                    format!("feed `{name}` needs the policy zone's name (zone = ...)"),
                ));
            }
            Some(z) => {
                if let Err(e) = parapet_core::name::text_to_key(z) {
                    return Err(err("[[feeds]] zone", e.to_string()));
                }
            }
        }
        if f.refresh_seconds == Some(0) {
            return Err(err(
                "[[feeds]] refresh_seconds",
                "must be at least 1".into(),
            ));
        }
        if let Some(k) = &f.tsig_key {
            let Some(t) = self.tsig.iter().find(|t| t.name.get_ref() == k.get_ref()) else {
                return Err(at(
                    text,
                    file,
                    k.span(),
                    "[[feeds]] tsig_key",
                    &format!("no [[tsig]] key is named `{}`", k.get_ref()),
                ));
            };
            if let Err(e) = t
                .algorithm
                .get_ref()
                .parse::<parapet_feeds::xfr::Algorithm>()
            {
                return Err(at(text, file, t.algorithm.span(), "[[tsig]] algorithm", &e));
            }
            if t.secret.is_some() == t.secret_env.is_some() {
                return Err(at(
                    text,
                    file,
                    t.name.span(),
                    "[[tsig]] secret",
                    "give exactly one of secret and secret_env",
                ));
            }
            if t.secret.is_some()
                && let Err(e) = t.secret_bytes()
            {
                return Err(at(
                    text,
                    file,
                    t.name.span(),
                    "[[tsig]] secret",
                    &e.to_string(),
                ));
            }
        }
        Ok(())
    }

    fn validate(&self, text: &str, file: &Path) -> anyhow::Result<()> {
        if self.dns.listen.is_empty() {
            bail!(
                "{}: [dns] listen: at least one address is needed",
                file.display()
            );
        }
        if let Some(h) = &self.dns.https
            && !h.path.starts_with('/')
        {
            bail!(
                "{}: [dns.https] path: must start with /, not {:?}",
                file.display(),
                h.path
            );
        }
        if self.dns.block_response == BlockResponseKind::Sinkhole
            && self.dns.sinkhole_ipv4.is_none()
            && self.dns.sinkhole_ipv6.is_none()
        {
            bail!(
                "{}: [dns] sinkhole_ipv4: block_response = \"sinkhole\" needs sinkhole_ipv4 and/or sinkhole_ipv6",
                file.display()
            );
        }
        if self.store.flush_interval_ms > MAX_FLUSH_INTERVAL_MS {
            bail!(
                "{}: [store] flush_interval_ms: must be at most {MAX_FLUSH_INTERVAL_MS} (a storage \
                 batch must span less than the beacon rule's shortest interval, 10 s), not {}",
                file.display(),
                self.store.flush_interval_ms
            );
        }
        if !(0..=19).contains(&self.store.writer_nice) {
            bail!(
                "{}: [store] writer_nice: must be 0 to 19, not {}",
                file.display(),
                self.store.writer_nice
            );
        }
        if !(1..=256).contains(&self.store.pool_size) {
            bail!(
                "{}: [store] pool_size: must be 1 to 256, not {}",
                file.display(),
                self.store.pool_size
            );
        }
        if !(1..=600_000).contains(&self.store.connect_timeout_ms) {
            bail!(
                "{}: [store] connect_timeout_ms: must be 1 to 600000, not {}",
                file.display(),
                self.store.connect_timeout_ms
            );
        }
        let rl = &self.dns.rate_limit;
        let rl_bad = if rl.responses_per_second > MAX_RRL_RESPONSES_PER_SECOND {
            Some(format!(
                "responses_per_second: at most {MAX_RRL_RESPONSES_PER_SECOND} (0 disables), not {}",
                rl.responses_per_second
            ))
        } else if rl.slip > MAX_RRL_SLIP {
            Some(format!("slip: 0 to {MAX_RRL_SLIP}, not {}", rl.slip))
        } else if rl.ipv4_prefix > 32 {
            Some(format!("ipv4_prefix: 0 to 32, not {}", rl.ipv4_prefix))
        } else if rl.ipv6_prefix > 128 {
            Some(format!("ipv6_prefix: 0 to 128, not {}", rl.ipv6_prefix))
        } else {
            None
        };
        if let Some(msg) = rl_bad {
            bail!("{}: [dns.rate_limit] {msg}", file.display());
        }
        if self.dns.udp_payload < 512 {
            bail!(
                "{}: [dns] udp_payload: must be at least 512",
                file.display()
            );
        }
        for a in &self.dns.allowlist {
            if let Err(e) = parapet_core::name::text_to_key(a.get_ref()) {
                return Err(at(text, file, a.span(), "[dns] allowlist", &e.to_string()));
            }
        }
        let mut names = vec![parapet_core::tenant::DEFAULT_TENANT_NAME.to_string()];
        for t in &self.tenants {
            if names.iter().any(|n| n == t.name.get_ref()) {
                return Err(at(
                    text,
                    file,
                    t.name.span(),
                    "[[tenants]] name",
                    &format!("`{}` is used twice (or is reserved)", t.name.get_ref()),
                ));
            }
            names.push(t.name.get_ref().clone());
        }
        let mut feed_names: Vec<&str> = Vec::new();
        for f in &self.feeds {
            if feed_names.contains(&f.name.get_ref().as_str()) {
                return Err(at(
                    text,
                    file,
                    f.name.span(),
                    "[[feeds]] name",
                    &format!("`{}` is used twice", f.name.get_ref()),
                ));
            }
            feed_names.push(f.name.get_ref());
            self.validate_xfr(f, text, file)?;
            if let Some(url) = &f.url {
                if !f.xfr_primaries().is_empty() {
                    return Err(at(
                        text,
                        file,
                        url.span(),
                        "[[feeds]] url",
                        "a feed comes from a url or by zone transfer (primary), not both",
                    ));
                }
                validate_url_feed(f, url)
                    .map_err(|msg| at(text, file, url.span(), "[[feeds]] url", &msg))?;
            } else if f.source == FeedSourceConfig::File
                && f.path.as_os_str().is_empty()
                && f.xfr_primaries().is_empty()
            {
                return Err(at(
                    text,
                    file,
                    f.name.span(),
                    "[[feeds]] path",
                    &format!(
                        "feed `{}` needs a path (or source = \"database\", or a url)",
                        f.name.get_ref()
                    ),
                ));
            }
            for t in f.tenants.iter().flatten() {
                if !names.iter().any(|n| n == t.get_ref()) {
                    return Err(at(
                        text,
                        file,
                        t.span(),
                        "[[feeds]] tenants",
                        &format!("no tenant is named `{}`", t.get_ref()),
                    ));
                }
            }
        }
        let mut mailboxes: Vec<&str> = Vec::new();
        for m in &self.dmarc.mailboxes {
            mailbox::validate(m, &mailboxes, &names).map_err(|(span, key, msg)| {
                at(
                    text,
                    file,
                    span,
                    &format!("[[dmarc.mailboxes]] {key}"),
                    &msg,
                )
            })?;
            mailboxes.push(m.name());
        }
        if self.feeds.len() >= u16::MAX as usize || self.tenants.len() >= u16::MAX as usize {
            bail!("{}: too many feeds or tenants", file.display());
        }
        let mut export_names: Vec<String> = Vec::new();
        for e in &self.exports {
            let msg = e.get_ref().validate().err().or_else(|| {
                let name = e.get_ref().name();
                let twice = export_names.contains(&name);
                export_names.push(name.clone());
                twice.then(|| {
                    format!("name: `{name}` is used twice (set `name` to tell them apart)")
                })
            });
            if let Some(msg) = msg {
                return Err(at(text, file, e.span(), "[[exports]]", &msg));
            }
        }
        // overlapping networks are caught here rather than at reload time
        self.tenant_map()
            .map_err(|e| anyhow::anyhow!("{}: [[tenants]] networks: {e}", file.display()))?;
        self.validate_forwarders(text, file)?;
        Ok(())
    }

    /// `[[tenants]] forwarders` small enough to enumerate, `trusted_ecs`
    /// claimed by one tenant each.
    fn validate_forwarders(&self, text: &str, file: &Path) -> anyhow::Result<()> {
        for t in &self.tenants {
            for n in &t.forwarders {
                let host_bits = u32::from(n.max_prefix_len() - n.prefix_len());
                if host_bits > MAX_FORWARDER_ADDRESSES.ilog2() {
                    return Err(at(
                        text,
                        file,
                        t.name.span(),
                        "[[tenants]] forwarders",
                        &format!(
                            "{n} holds more than {MAX_FORWARDER_ADDRESSES} addresses: list the forwarding DNS servers themselves"
                        ),
                    ));
                }
            }
        }
        self.trusted_ecs_map()
            .map_err(|e| anyhow::anyhow!("{}: [[tenants]] trusted_ecs: {e}", file.display()))?;
        Ok(())
    }

    /// `[[tenants]] trusted_ecs` by tenant, as the resolver looks them up.
    pub fn trusted_ecs_map(
        &self,
    ) -> Result<parapet_core::tenant::TenantMap, parapet_core::tenant::TenantMapError> {
        let nets: Vec<_> = (self.tenants.iter().enumerate())
            .flat_map(|(i, t)| t.trusted_ecs.iter().map(move |n| (*n, (i + 1) as u16)))
            .collect();
        parapet_core::tenant::TenantMap::new(&nets)
    }

    /// The investigation public key `[privacy] investigation_public_key`
    /// names (a path relative to the config's folder, or the key's text).
    pub fn seal_key(&self) -> anyhow::Result<Option<parapet_pipeline::seal::SealKey>> {
        let Some(v) = &self.privacy.investigation_public_key else {
            return Ok(None);
        };
        parapet_pipeline::seal::SealKey::load(v, &self.base)
            .map(Some)
            .map_err(|e| crate::BadInput(format!("[privacy] investigation_public_key: {e}")).into())
    }

    /// Resolves a path from the config against the config's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// Tenant names by [`parapet_core::tenant::TenantId`] (default first).
    /// The council `tenant`'s reports are for: the name given (`parapet
    /// report --council`), else the tenant's `display_name`, else
    /// `[assurance] council`; the tenant's mail domains, else `[mailcheck]
    /// domains`.
    pub fn council(&self, tenant: &str, name: Option<String>) -> parapet_report::Council {
        let t = self.tenants.iter().find(|t| *t.name.get_ref() == tenant);
        let own = t.and_then(|t| t.report.clone()).unwrap_or_default();
        let shared = &self.assurance.report;
        parapet_report::Council {
            // the tenant's own names before the installation's
            name: name
                .or_else(|| own.council.clone())
                .or_else(|| t.and_then(|t| t.display_name.clone()))
                .or_else(|| shared.council.clone())
                .or_else(|| self.assurance.council.clone())
                .unwrap_or_else(|| "The Council".into()),
            profile: own.or(shared),
            mail_domains: match t {
                Some(t) => t.mail_domains.clone(),
                None => self.mailcheck.domains.clone(),
            },
        }
    }

    pub fn tenant_names(&self) -> Vec<String> {
        std::iter::once(parapet_core::tenant::DEFAULT_TENANT_NAME.to_string())
            .chain(self.tenants.iter().map(|t| t.name.get_ref().clone()))
            .collect()
    }

    pub fn tenant_map(
        &self,
    ) -> Result<parapet_core::tenant::TenantMap, parapet_core::tenant::TenantMapError> {
        let nets: Vec<_> = self
            .tenants
            .iter()
            .enumerate()
            .flat_map(|(i, t)| t.networks.iter().map(move |n| (*n, (i + 1) as u16)))
            .collect();
        parapet_core::tenant::TenantMap::new(&nets)
    }

    /// Upstreams: configured, else /etc/resolv.conf's nameservers.
    pub fn upstreams(&self) -> Vec<parapet_dns::UpstreamAddr> {
        if !self.dns.upstreams.is_empty() {
            return self.dns.upstreams.clone();
        }
        let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        resolv_conf_nameservers(&text)
            .into_iter()
            .map(parapet_dns::UpstreamAddr::plain)
            .collect()
    }

    /// The detection rules' thresholds.
    pub fn detect_config(&self) -> parapet_detect::rules::DetectConfig {
        let d = &self.detect;
        parapet_detect::rules::DetectConfig {
            learning_period: std::time::Duration::from_secs(u64::from(d.learning_days) * 86_400),
            tunnel_unique_names: d.tunnel_unique_names.max(2),
            tunnel_txt_queries: d.tunnel_txt_queries.max(1),
            window: std::time::Duration::from_secs(d.window_secs.max(1)),
            beacon_queries: d.beacon_queries.max(3),
            ..parapet_detect::rules::DetectConfig::default()
        }
    }

    /// Where the pseudonymisation key comes from, without reading or
    /// creating it (for `parapet privacy`).
    pub fn pseudonym_key_source(&self) -> String {
        if std::env::var(ENV_PSEUDONYM_KEY).is_ok_and(|k| !k.is_empty()) {
            return format!("environment variable {ENV_PSEUDONYM_KEY}");
        }
        if self.privacy.pseudonym_key.is_some() {
            return "config [privacy] pseudonym_key".into();
        }
        let path = self.resolve(&self.store.path).join("pseudonym.key");
        if path.exists() {
            format!("key file {}", path.display())
        } else {
            format!(
                "key file {} (generated at the first `parapet serve`)",
                path.display()
            )
        }
    }

    /// The pseudonymisation key and where it came from: the environment,
    /// then the config, else a random key generated once and kept in the
    /// store folder (`pseudonym.key`, mode 0600) so that pseudonyms stay
    /// stable across restarts.
    pub fn pseudonym_key(&self) -> anyhow::Result<(Vec<u8>, String)> {
        if let Ok(k) = std::env::var(ENV_PSEUDONYM_KEY)
            && !k.is_empty()
        {
            return Ok((
                k.into_bytes(),
                format!("environment variable {ENV_PSEUDONYM_KEY}"),
            ));
        }
        if let Some(k) = &self.privacy.pseudonym_key {
            return Ok((
                k.clone().into_bytes(),
                "config [privacy] pseudonym_key".into(),
            ));
        }
        let dir = self.resolve(&self.store.path);
        let path = dir.join("pseudonym.key");
        match std::fs::read_to_string(&path) {
            Ok(k) if !k.trim().is_empty() => {
                return Ok((
                    k.trim().as_bytes().to_vec(),
                    format!("key file {}", path.display()),
                ));
            }
            Ok(_) => anyhow::bail!(
                "{} is empty: delete it or set {ENV_PSEUDONYM_KEY}",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        }
        std::fs::create_dir_all(&dir)?;
        let k: [u8; 32] = rand::random();
        let key = hex::encode(k);
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
            writeln!(f, "{key}")?;
            f.sync_all()?;
        }
        Ok((
            key.into_bytes(),
            format!("key file {} (generated)", path.display()),
        ))
    }
}

fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Checks a URL feed's entry; the message says what to change.
fn validate_url_feed(f: &FeedConfig, url: &Spanned<String>) -> Result<(), String> {
    let name = f.name.get_ref();
    let u = url.get_ref();
    let lower = u.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) || u.len() < 10 {
        return Err(format!(
            "feed `{name}`: `{u}` is not an http:// or https:// URL"
        ));
    }
    if !f.path.as_os_str().is_empty() || f.source != FeedSourceConfig::File {
        return Err(format!(
            "feed `{name}`: a url feed has no path or source (its copy is kept under [store] path)"
        ));
    }
    if !parapet_feeds::http::copy::valid_name(name) {
        return Err(format!(
            "feed `{name}`: the name of a url feed names its copy on disk: use letters, digits, `-`, `_` and `.`"
        ));
    }
    if f.ca_file.is_some() && !lower.starts_with("https://") {
        return Err(format!("feed `{name}`: ca_file needs an https:// URL"));
    }
    let positive = [
        ("refresh_seconds", f.refresh_seconds),
        ("max_bytes", f.max_bytes),
        ("connect_timeout_seconds", f.connect_timeout_seconds),
        ("read_timeout_seconds", f.read_timeout_seconds),
    ];
    for (key, v) in positive {
        if v == Some(0) {
            return Err(format!("feed `{name}`: {key} must be at least 1"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[dns]\nlisten = [\"127.0.0.1:5353\"]\nlistne = 1\n";
        let err = Config::parse(text, Path::new("/etc/p.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/p.toml:3"), "{err}");
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn report_profiles_fall_back_to_the_installations_and_name_bad_lines() {
        let text = "[assurance]\ncouncil = \"Shared\"\n[assurance.report]\nauthor = \"Head of ICT\"\ncommittee = \"Audit\"\n\
                    [[tenants]]\nname = \"a\"\ndisplay_name = \"A Council\"\n\
                    report = { committee = \"Finance\", agenda_item = \"Item 7\", psn = \"not applicable\" }\n\
                    [[tenants]]\nname = \"b\"\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        let a = c.council("a", None);
        assert_eq!(a.name, "A Council");
        assert_eq!(a.committee("x"), "Finance");
        assert_eq!(a.profile.author.as_deref(), Some("Head of ICT"));
        assert_eq!(a.profile.agenda_item.as_deref(), Some("Item 7"));
        assert_eq!(a.profile.psn, Some(parapet_report::Psn::NotApplicable));
        let b = c.council("b", None);
        assert_eq!(
            (b.name.as_str(), b.committee("x").as_str()),
            ("Shared", "Audit")
        );
        for (bad, says) in [
            ("psn = \"maybe\"", "`maybe`"),
            (
                "psn = { certified = \"2026-13-01\", expires = \"2027-01-01\" }",
                "not a date",
            ),
            ("auther = \"x\"", "auther"),
        ] {
            let text = format!("[[tenants]]\nname = \"a\"\nreport = {{ {bad} }}\n");
            let err = Config::parse(&text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("c.toml:3") && err.contains(says), "{err}");
        }
    }

    #[test]
    fn store_pool_size_and_connect_timeout_default_and_name_a_bad_value() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.store.pool_size, 4);
        assert_eq!(c.store.connect_timeout_ms, 5_000);
        let c = Config::parse(
            "[store]\npool_size = 8\nconnect_timeout_ms = 1500\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!((c.store.pool_size, c.store.connect_timeout_ms), (8, 1500));
        for (text, field) in [
            ("[store]\npool_size = 0\n", "[store] pool_size"),
            (
                "[store]\nconnect_timeout_ms = 0\n",
                "[store] connect_timeout_ms",
            ),
        ] {
            let err = Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(field) && err.contains("not 0"), "{err}");
        }
    }

    #[test]
    fn access_lists_and_rate_limits() {
        let c = Config::parse("", Path::new("c.toml")).unwrap();
        assert_eq!(c.dns.allow.len(), 2, "loopback by default");
        assert!(c.dns.deny.is_empty());
        assert_eq!(c.dns.rate_limit, RateLimitConfig::default());
        let text = "[dns]\nallow = [\"10.0.0.0/8\"]\ndeny = [\"10.9.0.0/16\"]\n\
                    [dns.rate_limit]\nresponses_per_second = 0\n\
                    [[tenants]]\nname = \"a\"\nrate_limit = false\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(c.dns.allow, ["10.0.0.0/8".parse::<IpNet>().unwrap()]);
        assert_eq!(c.dns.rate_limit.responses_per_second, 0);
        assert_eq!(c.dns.rate_limit.slip, DEFAULT_RRL_SLIP);
        assert!(!c.tenants[0].rate_limit);
        let err = Config::parse("[dns]\ndeny = [\"10.0.0.1/40\"]\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("c.toml:2") && err.contains("`10.0.0.1/40`"),
            "{err}"
        );
        for (bad, says) in [
            ("slip = 11", "slip: 0 to 10"),
            (
                "responses_per_second = 2000000",
                "responses_per_second: at most",
            ),
            ("ipv4_prefix = 33", "ipv4_prefix"),
            ("ipv6_prefix = 129", "ipv6_prefix"),
        ] {
            let text = format!("[dns.rate_limit]\n{bad}\n");
            let err = Config::parse(&text, Path::new("c.toml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("[dns.rate_limit]") && err.contains(says),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_cidr_names_the_value_and_line() {
        let text = "[[tenants]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\", \"10.1.0.0/33\"]\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:3"), "{err}");
        assert!(err.contains("`10.1.0.0/33`"), "{err}");
        let text = "[web]\ntrusted_proxies = [\"proxy.example\"]\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2"), "{err}");
        assert!(err.contains("`proxy.example`"), "{err}");
        let text = "[web]\ntrusted_proxies = [\"10.0.0.0/24\"]\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(
            c.web.trusted_proxies,
            vec!["10.0.0.0/24".parse::<IpNet>().unwrap()]
        );
    }

    #[test]
    fn require_totp_names_roles() {
        use parapet_store::accounts::Role;
        let text = "[web]\nrequire_totp = [\"supplier-admin\", \"council\"]\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert_eq!(c.web.require_totp, [Role::SupplierAdmin, Role::Council]);
        let text = "[web]\nrequire_totp = [\"admin\"]\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2"), "{err}");
        assert!(err.contains("`admin` is not a role"), "{err}");
    }

    #[test]
    fn bad_values_name_line() {
        let text = "[dns]\nupstreams = [\"not-an-address\"]\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2"), "{err}");
        let text = "[dns]\nallowlist = [\"ok.test\", \"bad..test\"]\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:2: [dns] allowlist"), "{err}");
        let text = "[dns]\nblock_response = \"sinkhole\"\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sinkhole_ipv4"), "{err}");
        let text = "[[tenants]]\nname = \"a\"\nnetworks = [\"10.0.0.0/8\"]\n[[tenants]]\nname = \"b\"\nnetworks = [\"10.0.0.0/8\"]\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("10.0.0.0/8"), "{err}");
        let text = "[[feeds]]\nname = \"f\"\npath = \"f.txt\"\nformat = \"domains\"\ntenants = [\"nobody\"]\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("c.toml:5: [[feeds]] tenants"), "{err}");
        let text = "[store]\nflush_interval_ms = 60000\n";
        let err = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[store] flush_interval_ms: must be at most 5000"),
            "{err}"
        );
    }

    #[test]
    fn zone_transfer_feeds_are_checked() {
        let feed = |extra: &str| {
            format!(
                "[[feeds]]\nname = \"v\"\nformat = \"rpz\"\nprimary = \"192.0.2.1:53\"\nzone = \"rpz.v.test\"\n{extra}"
            )
        };
        let key = "\n[[tsig]]\nname = \"k\"\nalgorithm = \"hmac-sha512\"\nsecret = \"c2VjcmV0\"\n";
        let cfg = Config::parse(
            &feed(&format!("tsig_key = \"k\"\n{key}")),
            Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(cfg.feeds[0].xfr_primaries().len(), 1);
        assert_eq!(cfg.tsig[0].secret_bytes().unwrap(), b"secret");
        let err = |text: &str| {
            Config::parse(text, Path::new("c.toml"))
                .unwrap_err()
                .to_string()
        };
        let e = err(&feed("tsig_key = \"nope\"\n"));
        assert!(e.starts_with("c.toml:6: [[feeds]] tsig_key"), "{e}");
        let e = err(&feed("").replace("\"rpz\"", "\"hosts\""));
        assert!(e.contains("[[feeds]] format"), "{e}");
        let e = err(&feed("").replace("zone = \"rpz.v.test\"\n", ""));
        assert!(e.contains("[[feeds]] zone"), "{e}");
        let e = err(&feed(&format!(
            "tsig_key = \"k\"\n{}",
            key.replace("c2VjcmV0", "!!")
        )));
        assert!(e.contains("[[tsig]] secret") && e.contains("base64"), "{e}");
        let e = err(&feed(&format!(
            "tsig_key = \"k\"\n{}",
            key.replace("hmac-sha512", "md5")
        )));
        assert!(e.contains("[[tsig]] algorithm"), "{e}");
    }

    #[test]
    fn encrypted_dns_settings_are_checked() {
        let text = "[dns]\nupstreams = [\"192.0.2.1:53\", \"tls://192.0.2.2:853#dns.example\"]\n\
                    [dns.https]\nlisten = [\"127.0.0.1:443\"]\ncert = \"s.pem\"\nkey = \"s.key\"\n";
        let c = Config::parse(text, Path::new("c.toml")).unwrap();
        assert!(c.dns.upstreams[1].tls_name.is_some());
        assert_eq!(c.dns.https.as_ref().unwrap().path, "/dns-query");
        let text = "[dns]\nupstreams = [\"tls://192.0.2.2:853\"]\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c.toml:2") && e.contains("#name"), "{e}");
        let text = "[dns.https]\nlisten = []\ncert = \"a\"\nkey = \"b\"\npath = \"dns\"\n";
        let e = Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[dns.https] path"), "{e}");
    }

    #[test]
    fn example_config_parses_and_paths_resolve() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../etc/parapet.example.toml");
        let cfg = Config::load(&path).unwrap();
        assert!(!cfg.feeds.is_empty());
        for f in &cfg.feeds {
            let p = cfg.resolve(&f.path);
            assert!(p.exists(), "{} missing", p.display());
        }
        assert_eq!(cfg.tenant_names()[0], "default");
    }

    #[test]
    fn resolv_conf() {
        let ns = resolv_conf_nameservers(
            "# x\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nsearch x\n",
        );
        assert_eq!(
            ns,
            vec![
                "10.0.0.2:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
