//! Counters the resolver keeps, rendered in the Prometheus text format.
//!
//! Plain atomics: a query costs a couple of relaxed increments. Per-tenant
//! counters are kept by tenant name across reloads, so a reload does not
//! reset them.
//!
//! The resolver and the upstreams count through these types; this module
//! uses nothing of theirs (an upstream is rendered from its address and
//! counters), so the arrow between them points one way.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parapet_core::event::EventAction;

/// Response codes counted individually; larger ones go to the last slot.
const RCODES: usize = 17;
/// Slot for "no response sent".
const NO_RESPONSE: usize = 16;

/// How a query reached Parapet: the `transport` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858).
    Dot,
    /// DNS over HTTPS (RFC 8484).
    Doh,
}

impl Transport {
    pub const ALL: [Transport; 4] = [Self::Udp, Self::Tcp, Self::Dot, Self::Doh];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Dot => "dot",
            Self::Doh => "doh",
        }
    }
}

/// Query types counted by name; every other type is `other`, so the
/// `qtype` label has a fixed, small set of values whatever clients send.
const QTYPES: [(u16, &str); 14] = [
    (1, "A"),
    (28, "AAAA"),
    (5, "CNAME"),
    (15, "MX"),
    (16, "TXT"),
    (2, "NS"),
    (6, "SOA"),
    (12, "PTR"),
    (33, "SRV"),
    (65, "HTTPS"),
    (64, "SVCB"),
    (43, "DS"),
    (48, "DNSKEY"),
    (255, "ANY"),
];
const QTYPE_OTHER: usize = QTYPES.len();

/// The counter slot of a query type: a match the compiler turns into a
/// jump table, no lookup.
#[inline]
fn qtype_slot(qtype: u16) -> usize {
    match qtype {
        1 => 0,
        28 => 1,
        5 => 2,
        15 => 3,
        16 => 4,
        2 => 5,
        6 => 6,
        12 => 7,
        33 => 8,
        65 => 9,
        64 => 10,
        43 => 11,
        48 => 12,
        255 => 13,
        _ => QTYPE_OTHER,
    }
}

/// Queries of one tenant by action and response code, and by transport
/// and query type.
#[derive(Debug)]
pub struct TenantCounters {
    by_action_rcode: [[AtomicU64; RCODES]; EventAction::ALL.len()],
    /// UDP answers response rate limiting dropped.
    pub rrl_dropped: AtomicU64,
    /// UDP answers response rate limiting sent truncated instead.
    pub rrl_slipped: AtomicU64,
    /// Answers served stale (RFC 8767) because no upstream answered.
    stale: AtomicU64,
    by_transport_qtype: [[AtomicU64; QTYPES.len() + 1]; Transport::ALL.len()],
}

impl Default for TenantCounters {
    fn default() -> Self {
        Self {
            by_action_rcode: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            rrl_dropped: AtomicU64::new(0),
            rrl_slipped: AtomicU64::new(0),
            stale: AtomicU64::new(0),
            by_transport_qtype: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
        }
    }
}

impl TenantCounters {
    #[inline]
    pub fn count(&self, action: EventAction, rcode: Option<u8>) {
        let rc = rcode.map_or(NO_RESPONSE, |r| (r as usize).min(NO_RESPONSE - 1));
        self.by_action_rcode[action.index()][rc].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stale(&self) -> u64 {
        self.stale.load(Ordering::Relaxed)
    }

    /// Counts a query received on `transport` for `qtype`.
    #[inline]
    pub fn received(&self, transport: Transport, qtype: u16) {
        self.by_transport_qtype[transport as usize][qtype_slot(qtype)]
            .fetch_add(1, Ordering::Relaxed);
    }

    pub fn received_count(&self, transport: Transport, qtype: u16) -> u64 {
        self.by_transport_qtype[transport as usize][qtype_slot(qtype)].load(Ordering::Relaxed)
    }

    pub fn get(&self, action: EventAction, rcode: Option<u8>) -> u64 {
        let rc = rcode.map_or(NO_RESPONSE, |r| (r as usize).min(NO_RESPONSE - 1));
        self.by_action_rcode[action.index()][rc].load(Ordering::Relaxed)
    }
}

/// Latency buckets for upstream exchanges, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Exchanges with one upstream: latency and failures. Kept here with the
/// other counters, and held by the upstream it counts.
#[derive(Debug, Default)]
pub struct UpstreamMetrics {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    pub failures: AtomicU64,
}

impl UpstreamMetrics {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

/// Load state of one feed, set by whoever loads feeds.
#[derive(Debug, Clone, Default)]
pub struct FeedStatus {
    pub name: String,
    pub category: String,
    pub format: String,
    pub entries: u64,
    /// Unix seconds of the last successful load.
    pub last_load: u64,
    pub load_failures: u64,
    pub last_error: Option<String>,
    /// Zone-transfer feeds: the SOA serial in force.
    pub serial: Option<u32>,
    /// Zone-transfer feeds: Unix seconds of the last transfer that changed
    /// the feed (0: none since start).
    pub last_transfer: u64,
}

/// Every counter of a running resolver.
#[derive(Debug, Default)]
pub struct Metrics {
    tenants: Mutex<Vec<(Arc<str>, Arc<TenantCounters>)>>,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_evictions: AtomicU64,
    pub truncated: AtomicU64,
    pub malformed: AtomicU64,
    pub events_dropped: AtomicU64,
    pub upstream_servfail: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Queries refused because the client is outside `[dns] allow` and
    /// every tenant's networks, or inside `[dns] deny`.
    pub refused_acl: AtomicU64,
    /// Idle TCP connections closed to admit a new one.
    pub tcp_evicted: AtomicU64,
    feeds: Mutex<Vec<FeedStatus>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    /// The counters of a tenant, created on first use and kept by name.
    pub fn tenant(&self, name: &str) -> (Arc<str>, Arc<TenantCounters>) {
        let mut t = lock(&self.tenants);
        if let Some((n, c)) = t.iter().find(|(n, _)| &**n == name) {
            return (n.clone(), c.clone());
        }
        let entry: (Arc<str>, Arc<TenantCounters>) = (name.into(), Default::default());
        t.push(entry.clone());
        entry
    }

    /// Replaces the feed status table.
    pub fn set_feeds(&self, feeds: Vec<FeedStatus>) {
        *lock(&self.feeds) = feeds;
    }

    pub fn feeds(&self) -> Vec<FeedStatus> {
        lock(&self.feeds).clone()
    }

    /// Prometheus text exposition of everything, upstreams included (each
    /// by its address and counters, so that this module knows nothing of
    /// how upstreams are tried).
    pub fn render(
        &self,
        upstreams: &[(SocketAddr, &UpstreamMetrics)],
        cache_entries: usize,
    ) -> String {
        let mut o = String::with_capacity(8192);
        let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);

        o.push_str(
            "# HELP parapet_dns_queries_total DNS queries by tenant, action and response code.\n",
        );
        o.push_str("# TYPE parapet_dns_queries_total counter\n");
        for (name, c) in lock(&self.tenants).iter() {
            for action in EventAction::ALL {
                for rc in 0..RCODES {
                    let v = ld(&c.by_action_rcode[action.index()][rc]);
                    if v == 0 {
                        continue;
                    }
                    let rcode = if rc == NO_RESPONSE {
                        "none".to_string()
                    } else {
                        rcode_name(rc as u8).to_string()
                    };
                    let _ = writeln!(
                        o,
                        "parapet_dns_queries_total{{tenant=\"{}\",action=\"{}\",rcode=\"{}\"}} {v}",
                        escape(name),
                        action.as_str(),
                        rcode
                    );
                }
            }
        }
        o.push_str("# HELP parapet_dns_stale_answers_total Expired answers served because no upstream answered in time (RFC 8767), by tenant.\n");
        o.push_str("# TYPE parapet_dns_stale_answers_total counter\n");
        for (name, c) in lock(&self.tenants).iter() {
            let _ = writeln!(
                o,
                "parapet_dns_stale_answers_total{{tenant=\"{}\"}} {}",
                escape(name),
                c.stale()
            );
        }
        o.push_str("# HELP parapet_rrl_responses_total UDP answers limited by [dns.rate_limit], by tenant and action (dropped, or slipped: sent truncated).\n");
        o.push_str("# TYPE parapet_rrl_responses_total counter\n");
        for (name, c) in lock(&self.tenants).iter() {
            for (action, v) in [("dropped", &c.rrl_dropped), ("slipped", &c.rrl_slipped)] {
                let v = ld(v);
                if v > 0 {
                    let _ = writeln!(
                        o,
                        "parapet_rrl_responses_total{{tenant=\"{}\",action=\"{action}\"}} {v}",
                        escape(name)
                    );
                }
            }
        }
        o.push_str(
            "# HELP parapet_dns_queries_received_total DNS queries by tenant, transport and query type.\n",
        );
        o.push_str("# TYPE parapet_dns_queries_received_total counter\n");
        for (name, c) in lock(&self.tenants).iter() {
            for t in Transport::ALL {
                for (slot, counter) in c.by_transport_qtype[t as usize].iter().enumerate() {
                    let v = ld(counter);
                    if v == 0 {
                        continue;
                    }
                    let qtype = QTYPES.get(slot).map_or("other", |q| q.1);
                    let _ = writeln!(
                        o,
                        "parapet_dns_queries_received_total{{tenant=\"{}\",transport=\"{}\",qtype=\"{qtype}\"}} {v}",
                        escape(name),
                        t.as_str(),
                    );
                }
            }
        }
        let _ = writeln!(
            o,
            "# HELP parapet_dns_refused_total Queries answered REFUSED, by reason (acl: the client is outside [dns] allow and every tenant's networks, or in [dns] deny).\n\
             # TYPE parapet_dns_refused_total counter\n\
             parapet_dns_refused_total{{reason=\"acl\"}} {}",
            ld(&self.refused_acl)
        );
        let simple: [(&str, &str, &str, u64); 10] = [
            (
                "parapet_dns_cache_hits_total",
                "counter",
                "Answers served from the cache.",
                ld(&self.cache_hits),
            ),
            (
                "parapet_dns_cache_misses_total",
                "counter",
                "Queries forwarded upstream after a cache miss.",
                ld(&self.cache_misses),
            ),
            (
                "parapet_dns_cache_evictions_total",
                "counter",
                "Cache entries evicted to make room.",
                ld(&self.cache_evictions),
            ),
            (
                "parapet_dns_cache_entries",
                "gauge",
                "Entries in the answer cache.",
                cache_entries as u64,
            ),
            (
                "parapet_dns_truncated_total",
                "counter",
                "UDP answers sent truncated (TC=1).",
                ld(&self.truncated),
            ),
            (
                "parapet_dns_malformed_total",
                "counter",
                "Packets that were not valid queries.",
                ld(&self.malformed),
            ),
            (
                "parapet_dns_servfail_upstream_total",
                "counter",
                "Queries answered SERVFAIL because no upstream answered in time.",
                ld(&self.upstream_servfail),
            ),
            (
                "parapet_dns_tcp_evicted_total",
                "counter",
                "Idle TCP connections closed to admit a new one at tcp_max_connections.",
                ld(&self.tcp_evicted),
            ),
            (
                "parapet_events_dropped_total",
                "counter",
                "Query events dropped because the event queue was full.",
                ld(&self.events_dropped),
            ),
            (
                "parapet_policy_reloads_total",
                "counter",
                "Policy reloads that produced a new policy.",
                ld(&self.reloads),
            ),
        ];
        for (name, kind, help, v) in simple {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }

        o.push_str("# HELP parapet_dns_upstream_duration_seconds Upstream exchange latency.\n");
        o.push_str("# TYPE parapet_dns_upstream_duration_seconds histogram\n");
        for &(addr, m) in upstreams {
            let mut cum = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cum += ld(&m.buckets[i]);
                let _ = writeln!(
                    o,
                    "parapet_dns_upstream_duration_seconds_bucket{{upstream=\"{addr}\",le=\"{b}\"}} {cum}"
                );
            }
            let count = ld(&m.count);
            let _ = writeln!(
                o,
                "parapet_dns_upstream_duration_seconds_bucket{{upstream=\"{0}\",le=\"+Inf\"}} {count}\n\
                 parapet_dns_upstream_duration_seconds_sum{{upstream=\"{0}\"}} {1}\n\
                 parapet_dns_upstream_duration_seconds_count{{upstream=\"{0}\"}} {count}",
                addr,
                ld(&m.sum_micros) as f64 / 1e6
            );
        }
        o.push_str("# HELP parapet_dns_upstream_failures_total Upstream exchanges that failed (timeout, refused, bad answer).\n");
        o.push_str("# TYPE parapet_dns_upstream_failures_total counter\n");
        for &(addr, m) in upstreams {
            let _ = writeln!(
                o,
                "parapet_dns_upstream_failures_total{{upstream=\"{addr}\"}} {}",
                ld(&m.failures)
            );
        }

        let feeds = lock(&self.feeds);
        o.push_str(
            "# HELP parapet_feed_entries Rules loaded from each feed (last good version).\n",
        );
        o.push_str("# TYPE parapet_feed_entries gauge\n");
        for f in feeds.iter() {
            let _ = writeln!(
                o,
                "parapet_feed_entries{{feed=\"{}\",category=\"{}\",format=\"{}\"}} {}",
                escape(&f.name),
                escape(&f.category),
                f.format,
                f.entries
            );
        }
        o.push_str("# HELP parapet_feed_last_load_timestamp_seconds When each feed last loaded successfully.\n");
        o.push_str("# TYPE parapet_feed_last_load_timestamp_seconds gauge\n");
        for f in feeds.iter() {
            let _ = writeln!(
                o,
                "parapet_feed_last_load_timestamp_seconds{{feed=\"{}\"}} {}",
                escape(&f.name),
                f.last_load
            );
        }
        o.push_str("# HELP parapet_feed_reload_failures_total Loads of each feed that failed (the last good version stays in force).\n");
        o.push_str("# TYPE parapet_feed_reload_failures_total counter\n");
        for f in feeds.iter() {
            let _ = writeln!(
                o,
                "parapet_feed_reload_failures_total{{feed=\"{}\"}} {}",
                escape(&f.name),
                f.load_failures
            );
        }
        if feeds.iter().any(|f| f.serial.is_some()) {
            o.push_str("# HELP parapet_feed_serial SOA serial in force of each feed taken by zone transfer.\n");
            o.push_str("# TYPE parapet_feed_serial gauge\n");
            for f in feeds.iter() {
                if let Some(s) = f.serial {
                    let _ = writeln!(o, "parapet_feed_serial{{feed=\"{}\"}} {s}", escape(&f.name));
                }
            }
            o.push_str("# HELP parapet_feed_last_transfer_timestamp_seconds When each zone-transfer feed last changed by AXFR or IXFR.\n");
            o.push_str("# TYPE parapet_feed_last_transfer_timestamp_seconds gauge\n");
            for f in feeds.iter().filter(|f| f.serial.is_some()) {
                let _ = writeln!(
                    o,
                    "parapet_feed_last_transfer_timestamp_seconds{{feed=\"{}\"}} {}",
                    escape(&f.name),
                    f.last_transfer
                );
            }
        }
        o.push_str("# HELP parapet_feed_healthy 1 when the feed's last load succeeded, 0 when it is serving an older version or nothing.\n");
        o.push_str("# TYPE parapet_feed_healthy gauge\n");
        for f in feeds.iter() {
            let _ = writeln!(
                o,
                "parapet_feed_healthy{{feed=\"{}\"}} {}",
                escape(&f.name),
                f.last_error.is_none() as u8
            );
        }
        let _ = writeln!(
            o,
            "# HELP parapet_config_reload_failures_total Configuration reloads that failed (the running configuration stays).\n\
             # TYPE parapet_config_reload_failures_total counter\n\
             parapet_config_reload_failures_total {}",
            ld(&self.reload_failures)
        );
        o
    }
}

pub fn rcode_name(rc: u8) -> &'static str {
    match rc {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => "OTHER",
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_qtype_has_its_own_slot() {
        for (i, (code, _)) in QTYPES.iter().enumerate() {
            assert_eq!(qtype_slot(*code), i, "qtype {code}");
        }
        assert_eq!(qtype_slot(99), QTYPE_OTHER);
        assert_eq!(qtype_slot(0), QTYPE_OTHER);
    }

    #[test]
    fn received_queries_render_by_transport_and_qtype() {
        let m = Metrics::default();
        let (_, c) = m.tenant("council-a");
        c.received(Transport::Dot, 1);
        c.received(Transport::Dot, 1);
        c.received(Transport::Doh, 4242);
        let text = m.render(&[], 0);
        assert!(text.contains(
            "parapet_dns_queries_received_total{tenant=\"council-a\",transport=\"dot\",qtype=\"A\"} 2"
        ));
        assert!(text.contains(
            "parapet_dns_queries_received_total{tenant=\"council-a\",transport=\"doh\",qtype=\"other\"} 1"
        ));
        assert!(!text.contains("transport=\"udp\""));
    }
}
