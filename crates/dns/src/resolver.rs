//! Deciding and answering one query: tenant attribution, access lists,
//! rate limiting, policy, cache, upstream, and the query event. Transport-independent: the listeners in
//! [`crate::server`] call [`Resolver::handle`] with a packet and get either a
//! finished answer in their buffer (each naming its [`Transport`]), nothing (drop), or a [`Pending`] query
//! to complete upstream off the receive loop.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use crossbeam_channel::{Sender, TrySendError};
use hashbrown::HashMap;
use parapet_core::event::{EventAction, QueryEvent};
use parapet_core::ippolicy::with_client_ip;
use parapet_core::name::{EventName, InlineName};
use parapet_core::policy::{Action, Decision, FeedId, LocalRecord, Rule, rtype};
use parapet_core::tenant::{DEFAULT_TENANT, TenantId, TenantMap};
use tokio::sync::watch;

use crate::cache::{Cache, Key, Stale, Stored};
use crate::metrics::{Metrics, TenantCounters, Transport};
use crate::notify::NotifyZone;
use crate::respip;
use crate::rrl::{RateLimiter, Verdict};
use crate::upstream::{UpstreamError, Upstreams};
use crate::wire::{self, OwnedQuery, Query, Reject, ede, flag, rcode};
use crate::{BlockMode, Settings, Snapshot};

/// How long after a failed refresh an expired answer is served at once,
/// without asking upstream. Unbound's serve-expired "norec" time; RFC 8767
/// suggests a failure recheck timer of up to 30 s.
const STALE_RECHECK_SECS: u32 = 5;

/// The Extended DNS Error text of a stale answer.
const STALE_TEXT: &str = "no upstream answered in time; stale answer";

/// What the refresh of an expired answer gave, as the queries waiting on it
/// see it: `None` while it runs; then the upstream's answer, or `None`
/// inside when no upstream gave a usable one.
type Refresh = Option<Option<Arc<[u8]>>>;

/// Refreshes in flight, by cache key: one per name, however many queries
/// wait on it.
type Refreshing = Arc<Mutex<HashMap<Box<[u8]>, watch::Receiver<Refresh>>>>;

/// A refresh's place in [`Refreshing`], given up when dropped.
struct Listed {
    refreshing: Refreshing,
    key: Key,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.refreshing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(self.key.as_bytes());
    }
}

/// How a query was answered upstream-side: the rcode, and whether the
/// answer was served stale.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    rc: u8,
    stale: bool,
}

impl Resolved {
    fn of(out: &[u8], stale: bool) -> Self {
        Self {
            rc: out[3] & 0xf,
            stale,
        }
    }
}

/// What to do after [`Resolver::handle`].
pub enum Outcome {
    /// The answer is in the buffer.
    Reply,
    /// Send nothing.
    Drop,
    /// Needs upstream: complete with [`Resolver::complete`].
    Forward(Box<Pending>),
}

/// A query waiting for upstream. Keeps the query as [`Resolver::handle`]
/// parsed it (the packet's buffer goes back to the listener), so that
/// [`Resolver::complete`] does not parse it again.
pub struct Pending {
    query: OwnedQuery,
    client: IpAddr,
    tenant: Arc<str>,
    counters: Arc<TenantCounters>,
    action: EventAction,
    feed: Option<Arc<str>>,
    /// RPZ local data rewrote the name to this CNAME target (uncompressed
    /// wire name) with this TTL: resolve the target and answer with both.
    cname: Option<(Vec<u8>, u32)>,
    /// Response-IP triggers apply to the answer: the policy that decided
    /// the query, and the tenant.
    respip: Option<(Arc<Snapshot>, TenantId)>,
}

/// What the queries of one receive share: the policy and tenants in force
/// and the time they arrived. The UDP listener takes one per batch of
/// datagrams ([`Resolver::arrival`]), so neither the snapshot's reference
/// count nor the clock is touched per query; a batch is answered within
/// microseconds of its receive, well inside the millisecond an event's time
/// is stored to. An event's time is thus its query's arrival when it is
/// answered at once (policy, cache, errors), and the answer's time when it
/// went upstream ([`Resolver::complete`]).
pub struct Arrival {
    snap: Arc<Snapshot>,
    time: SystemTime,
    /// `time` in Unix seconds, the clock of rate limiting.
    secs: u64,
}

/// At most one log line per this many seconds about refused clients.
const REFUSED_LOG_EVERY: u64 = 60;

pub struct Resolver {
    snapshot: ArcSwap<Snapshot>,
    cache: Cache,
    upstreams: Arc<Upstreams>,
    refreshing: Refreshing,
    metrics: Arc<Metrics>,
    events: Option<Sender<QueryEvent>>,
    settings: Settings,
    /// Zones whose primaries may send NOTIFY; set once at start.
    notify: std::sync::OnceLock<Vec<NotifyZone>>,
    /// `None` when `[dns.rate_limit]` is off.
    rrl: Option<RateLimiter>,
    /// When refused clients were last logged (Unix seconds), and the
    /// refused count then.
    refused_logged: (AtomicU64, AtomicU64),
}

impl Resolver {
    pub fn new(
        settings: Settings,
        snapshot: Snapshot,
        metrics: Arc<Metrics>,
        events: Option<Sender<QueryEvent>>,
    ) -> Self {
        Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            cache: Cache::new(settings.cache),
            upstreams: Arc::new(Upstreams::new(
                &settings.upstreams,
                settings.upstream_tls.clone(),
                settings.upstream_timeout,
                settings.attempt_timeout,
            )),
            refreshing: Default::default(),
            metrics,
            events,
            rrl: RateLimiter::new(settings.rate_limit, crate::rrl::TABLE_SIZE),
            settings,
            notify: std::sync::OnceLock::new(),
            refused_logged: (AtomicU64::new(0), AtomicU64::new(0)),
        }
    }

    /// Accepts NOTIFY for these zones from their primaries (once, at
    /// start; later calls are ignored).
    pub fn set_notify(&self, zones: Vec<NotifyZone>) {
        let _ = self.notify.set(zones);
    }

    /// A packet whose opcode is not QUERY: NOTIFY for a feed's zone, or
    /// NOTIMP.
    #[cold]
    #[inline(never)]
    fn other_opcode(&self, packet: &[u8], client: IpAddr, out: &mut Vec<u8>) -> Option<Outcome> {
        let zones = self.notify.get().filter(|z| !z.is_empty())?;
        if crate::notify::opcode(packet) != crate::notify::OPCODE_NOTIFY {
            return None;
        }
        crate::notify::answer(zones, packet, client, out);
        Some(Outcome::Reply)
    }

    /// Swaps in a new policy and tenant set. Queries in flight finish with
    /// the snapshot they started with.
    pub fn swap(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
        self.metrics.reloads.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The snapshot in force and the time, for queries received now.
    pub fn arrival(&self) -> Arrival {
        let time = SystemTime::now();
        Arrival {
            snap: self.snapshot.load_full(),
            time,
            secs: time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Prometheus text for everything the resolver counts.
    pub fn render_metrics(&self) -> String {
        let upstreams: Vec<_> = self
            .upstreams
            .list()
            .iter()
            .map(|u| (u.addr, &u.metrics))
            .collect();
        self.metrics.render(&upstreams, self.cache.len())
    }

    /// Answers what can be answered at once: policy, cache, errors. A
    /// client the access lists refuse gets REFUSED, and a UDP client over
    /// its rate limit a truncated answer or none, before anything else.
    pub fn handle(
        &self,
        at: &Arrival,
        packet: &[u8],
        client: SocketAddr,
        udp: bool,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let snap = &*at.snap;
        let tenant = snap.tenants.lookup(client.ip());
        if !snap.access.allows(client.ip(), tenant) {
            return self.refuse(at, packet, client.ip(), udp, out);
        }
        // TCP proves the source address: only UDP answers are limited
        if udp
            && let Some(rrl) = &self.rrl
            && snap.rate_limited(tenant)
        {
            let v = rrl.check(client.ip(), at.secs);
            if v != Verdict::Pass {
                return self.limited(snap, tenant, packet, v, out);
            }
        }
        // a trusted forwarder's EDNS Client Subnet names the client; the
        // option is looked for only when the source is listed, so other
        // queries pay one empty-map test
        let (tenant, client_ip) = match &snap.trusted_ecs {
            Some(trusted) => ecs_client(snap, trusted, packet, client.ip(), tenant),
            None => (tenant, client.ip()),
        };
        let payload = self.settings.udp_payload;
        let q = match wire::parse_query(packet) {
            Ok(q) => q,
            Err(Reject::Drop) => {
                self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                return Outcome::Drop;
            }
            Err(Reject::Error {
                rcode,
                question_end,
                edns,
            }) => {
                if rcode == rcode::NOTIMP as u16
                    && let Some(o) = self.other_opcode(packet, client.ip(), out)
                {
                    return o;
                }
                self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                wire::error_response(out, packet, rcode, question_end, edns, payload, None);
                let rc = (rcode & 0xf) as u8;
                self.finish(
                    at,
                    tenant,
                    client_ip,
                    &InlineName::default(),
                    0,
                    Some(rc),
                    EventAction::Rejected,
                    None,
                );
                return Outcome::Reply;
            }
        };
        snap.tenant_counters(tenant).received(transport, q.qtype);
        if matches!(q.qtype, 251 | 252) {
            // IXFR/AXFR: a resolver does not proxy zone transfers
            wire::error_response(
                out,
                packet,
                rcode::REFUSED as u16,
                Some(wire::HEADER_LEN + q.question.len()),
                q.edns,
                payload,
                None,
            );
            self.finish(
                at,
                tenant,
                client_ip,
                &q.qname,
                q.qtype,
                Some(rcode::REFUSED),
                EventAction::Rejected,
                None,
            );
            return Outcome::Reply;
        }
        let policy = &snap.policy;
        let mut decision = policy.decide(tenant, q.qname.as_key());
        // one test of an empty list when no feed has client-IP triggers
        if !policy.ip().client.is_empty() {
            let by_client = policy.ip().client.decide(tenant, &[client_ip]);
            decision = with_client_ip(decision, by_client);
        }
        let (action, feed) = match decision {
            Decision::Resolve => (EventAction::Resolved, None),
            Decision::Allowlisted => (EventAction::Allowlisted, None),
            Decision::Passthru(f) => (EventAction::Passthru, Some(f)),
            Decision::Monitor(f) => (EventAction::Monitored, Some(f)),
            Decision::Enforce(rule) => {
                return self.enforce(at, tenant, client_ip, &q, rule, udp, out);
            }
        };
        // response-IP triggers see what resolves normally, as in Unbound:
        // a PASSTHRU or the allowlist skips them
        let respip = !policy.ip().response.is_empty()
            && matches!(q.qtype, rtype::A | rtype::AAAA)
            && matches!(action, EventAction::Resolved | EventAction::Monitored);
        let key = Key::of(&q);
        let hit = self.cache.get(&key, &q, out);
        if hit {
            self.metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        // a cached answer a response-IP trigger matches is rewritten in
        // `complete`, which finds it in the cache again
        if hit && !(respip && Self::answer_triggers(snap, tenant, out)) {
            if udp {
                self.fit_udp(out, &q);
            }
            let rc = out[3] & 0xf;
            self.finish(
                at,
                tenant,
                client_ip,
                &q.qname,
                q.qtype,
                Some(rc),
                action,
                feed,
            );
            return Outcome::Reply;
        }
        let respip = respip.then(|| (at.snap.clone(), tenant));
        Outcome::Forward(self.pending(snap, tenant, client_ip, &q, action, feed, None, respip))
    }

    /// A client the access lists refuse: REFUSED (within the rate limit),
    /// counted and logged at most once a minute. A NOTIFY from a feed's
    /// primary goes to the NOTIFY handler, which checks the sender itself:
    /// primaries need not be in `[dns] allow`.
    #[cold]
    #[inline(never)]
    fn refuse(
        &self,
        at: &Arrival,
        packet: &[u8],
        client: IpAddr,
        udp: bool,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let primary = || {
            self.notify
                .get()
                .is_some_and(|zs| zs.iter().any(|z| z.primaries.contains(&client)))
        };
        if crate::notify::opcode(packet) == crate::notify::OPCODE_NOTIFY
            && primary()
            && let Some(o) = self.other_opcode(packet, client, out)
        {
            return o;
        }
        // a response is never answered (no reflection loops)
        if packet.len() < wire::HEADER_LEN || packet[2] & 0x80 != 0 {
            self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
            return Outcome::Drop;
        }
        if udp
            && let Some(rrl) = &self.rrl
            && rrl.check(client, at.secs) != Verdict::Pass
        {
            let c = at.snap.tenant_counters(DEFAULT_TENANT);
            c.rrl_dropped.fetch_add(1, Ordering::Relaxed);
            return Outcome::Drop;
        }
        let refused = self.metrics.refused_acl.fetch_add(1, Ordering::Relaxed) + 1;
        let (last, logged) = &self.refused_logged;
        let then = last.load(Ordering::Relaxed);
        if at.secs >= then + REFUSED_LOG_EVERY
            && last
                .compare_exchange(then, at.secs, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let since = refused - logged.swap(refused, Ordering::Relaxed);
            tracing::warn!(
                refused = since,
                latest = %client,
                "refused queries from clients outside [dns] allow and every tenant's networks, or in [dns] deny (at most one such line per {REFUSED_LOG_EVERY} s)"
            );
        }
        let (question_end, edns) = match wire::parse_query(packet) {
            Ok(q) => (Some(wire::HEADER_LEN + q.question.len()), q.edns),
            Err(_) => (None, None),
        };
        let payload = self.settings.udp_payload;
        wire::error_response(
            out,
            packet,
            rcode::REFUSED as u16,
            question_end,
            edns,
            payload,
            None,
        );
        Outcome::Reply
    }

    /// A query over the rate limit: a truncated answer (TC=1, no records)
    /// when it slips, else nothing.
    #[inline(never)]
    fn limited(
        &self,
        snap: &Snapshot,
        tenant: TenantId,
        packet: &[u8],
        v: Verdict,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let c = snap.tenant_counters(tenant);
        if v == Verdict::Slip
            && let Ok(q) = wire::parse_query(packet)
        {
            wire::begin_response(out, &q, rcode::NOERROR, flag::TC);
            if q.edns.is_some() {
                wire::push_opt(out, self.settings.udp_payload, 0, None);
            }
            c.rrl_slipped.fetch_add(1, Ordering::Relaxed);
            return Outcome::Reply;
        }
        c.rrl_dropped.fetch_add(1, Ordering::Relaxed);
        Outcome::Drop
    }

    /// A UDP datagram longer than the receive buffer, of which `head` was
    /// kept: FORMERR (header only: the rest was cut) to a client that may
    /// be answered, nothing otherwise. No real query comes near the limit;
    /// the answer tells a broken client at once rather than after its
    /// timeout, and it is smaller than what was sent.
    #[cold]
    #[inline(never)]
    pub fn oversize(
        &self,
        at: &Arrival,
        head: &[u8],
        client: SocketAddr,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
        let snap = &*at.snap;
        let tenant = snap.tenants.lookup(client.ip());
        if head.len() < wire::HEADER_LEN
            || head[2] & 0x80 != 0
            || !snap.access.allows(client.ip(), tenant)
        {
            return Outcome::Drop;
        }
        if let Some(rrl) = &self.rrl
            && snap.rate_limited(tenant)
            && rrl.check(client.ip(), at.secs) != Verdict::Pass
        {
            let c = snap.tenant_counters(tenant);
            c.rrl_dropped.fetch_add(1, Ordering::Relaxed);
            return Outcome::Drop;
        }
        let payload = self.settings.udp_payload;
        wire::error_response(out, head, rcode::FORMERR as u16, None, None, payload, None);
        self.finish(
            at,
            tenant,
            client.ip(),
            &InlineName::default(),
            0,
            Some(rcode::FORMERR),
            EventAction::Rejected,
            None,
        );
        Outcome::Reply
    }

    /// Whether a response-IP trigger matches an address of `answer`.
    #[inline(never)]
    fn answer_triggers(snap: &Snapshot, tenant: TenantId, answer: &[u8]) -> bool {
        respip::answer_addrs(answer)
            .and_then(|a| snap.policy.ip().response.decide(tenant, &a.addrs))
            .is_some()
    }

    /// A query to complete upstream, boxed here rather than in the caller
    /// so that `handle` keeps no `Pending` (hundreds of bytes, the query
    /// inline) in its frame on the paths that answer at once.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn pending(
        &self,
        snap: &Snapshot,
        tenant: TenantId,
        client: IpAddr,
        q: &Query<'_>,
        action: EventAction,
        feed: Option<FeedId>,
        cname: Option<(Vec<u8>, u32)>,
        respip: Option<(Arc<Snapshot>, TenantId)>,
    ) -> Box<Pending> {
        Box::new(Pending {
            query: OwnedQuery::new(q),
            client,
            tenant: snap.tenant_name(tenant).clone(),
            counters: snap.tenant_counters(tenant).clone(),
            action,
            feed: feed.map(|f| snap.feed_name(f).clone()),
            cname,
            respip,
        })
    }

    /// Applies a blocking feed's rule.
    #[allow(clippy::too_many_arguments)]
    fn enforce(
        &self,
        at: &Arrival,
        tenant: TenantId,
        client: IpAddr,
        q: &Query<'_>,
        rule: Rule,
        udp: bool,
        out: &mut Vec<u8>,
    ) -> Outcome {
        let snap = &*at.snap;
        let payload = self.settings.udp_payload;
        let finish_opt = |out: &mut Vec<u8>, with_ede: bool| {
            if q.edns.is_some() {
                let ede = with_ede.then(|| (ede::BLOCKED, snap.block_text(rule.feed)));
                wire::push_opt(out, payload, 0, ede);
            }
        };
        let (event_action, rc) = match rule.action {
            Action::Drop => {
                self.finish(
                    at,
                    tenant,
                    client,
                    &q.qname,
                    q.qtype,
                    None,
                    EventAction::Dropped,
                    Some(rule.feed),
                );
                return Outcome::Drop;
            }
            Action::Block => match snap.block.mode {
                BlockMode::Nxdomain => {
                    wire::begin_response(out, q, rcode::NXDOMAIN, flag::AA);
                    finish_opt(out, true);
                    (EventAction::Blocked, rcode::NXDOMAIN)
                }
                BlockMode::Sinkhole { v4, v6 } => {
                    wire::begin_response(out, q, rcode::NOERROR, flag::AA);
                    match (q.qtype, v4, v6) {
                        (rtype::A, Some(a), _) => {
                            wire::push_answer(out, rtype::A, snap.block.ttl, &a.octets())
                        }
                        (rtype::AAAA, _, Some(a)) => {
                            wire::push_answer(out, rtype::AAAA, snap.block.ttl, &a.octets())
                        }
                        _ => {}
                    }
                    finish_opt(out, true);
                    (EventAction::Blocked, rcode::NOERROR)
                }
            },
            Action::Nodata => {
                wire::begin_response(out, q, rcode::NOERROR, flag::AA);
                finish_opt(out, true);
                (EventAction::Nodata, rcode::NOERROR)
            }
            Action::Passthru => unreachable!("PolicySet::decide never enforces a passthru"),
            Action::Local(i) => {
                let records = snap.policy.local_data(i);
                let cname = records.iter().find(|r| r.rtype == rtype::CNAME);
                wire::begin_response(out, q, rcode::NOERROR, flag::AA);
                match cname {
                    Some(c) if q.qtype != rtype::CNAME && q.qtype != rtype::ANY => {
                        // a rewrite: resolve the target, then answer CNAME + target's answer
                        return Outcome::Forward(self.pending(
                            snap,
                            tenant,
                            client,
                            q,
                            EventAction::LocalData,
                            Some(rule.feed),
                            Some((c.rdata.to_vec(), c.ttl)),
                            None,
                        ));
                    }
                    _ => {
                        for r in records {
                            if r.rtype == q.qtype || q.qtype == rtype::ANY {
                                wire::push_answer(out, r.rtype, r.ttl, &r.rdata);
                            }
                        }
                    }
                }
                finish_opt(out, false);
                (EventAction::LocalData, rcode::NOERROR)
            }
        };
        if udp {
            self.fit_udp(out, q);
        }
        self.finish(
            at,
            tenant,
            client,
            &q.qname,
            q.qtype,
            Some(rc),
            event_action,
            Some(rule.feed),
        );
        Outcome::Reply
    }

    /// Completes a forwarded query: its answer is in `out`. Returns false
    /// when nothing is to be sent (a response-IP trigger said DROP).
    pub async fn complete(&self, p: Box<Pending>, udp: bool, out: &mut Vec<u8>) -> bool {
        let q = p.query.as_query();
        let payload = self.settings.udp_payload;
        let (mut rc, stale) = match &p.cname {
            None => {
                let r = self.resolve_into(&q, out).await;
                (Some(r.rc), r.stale)
            }
            Some((target, ttl)) => {
                let mut target_answer = Vec::new();
                let r = self.resolve_target(&q, target, &mut target_answer).await;
                wire::begin_response(out, &q, r.rc, 0);
                wire::push_answer(out, rtype::CNAME, *ttl, target);
                if r.rc != rcode::SERVFAIL {
                    append_answers(out, &target_answer);
                }
                if q.edns.is_some() {
                    let ede = r.stale.then_some((ede::STALE_ANSWER, STALE_TEXT));
                    wire::push_opt(out, payload, 0, ede);
                }
                (Some(r.rc), r.stale)
            }
        };
        if stale {
            p.counters.count_stale();
        }
        let (mut action, mut feed) = (p.action, p.feed.clone());
        if let Some((snap, tenant)) = &p.respip
            && rc != Some(rcode::SERVFAIL)
            && let Some((a, f, new_rc)) = self.response_ip(snap, *tenant, &q, out).await
        {
            // a monitor match reports only what a QNAME one has not
            if a != EventAction::Monitored || action == EventAction::Resolved {
                (action, feed) = (a, Some(snap.feed_name(f).clone()));
            }
            rc = new_rc;
        }
        if udp && rc.is_some() {
            self.fit_udp(out, &q);
        }
        p.counters.count(action, rc);
        if self.events.is_some() {
            self.emit(QueryEvent::new(
                SystemTime::now(),
                p.tenant,
                p.client,
                EventName::from(&q.qname),
                q.qtype,
                rc,
                action,
                feed,
            ));
        }
        rc.is_some()
    }

    /// Resolves the CNAME `target` (uncompressed wire name) for the type and
    /// class of `q` into `answer`; returns the rcode.
    async fn resolve_target(&self, q: &Query<'_>, target: &[u8], answer: &mut Vec<u8>) -> Resolved {
        let mut tq_bytes = Vec::with_capacity(target.len() + 4);
        tq_bytes.extend_from_slice(target);
        tq_bytes.extend_from_slice(&q.qtype.to_be_bytes());
        tq_bytes.extend_from_slice(&q.qclass.to_be_bytes());
        let key_len = target.len().saturating_sub(1);
        let tq = Query {
            question: &tq_bytes,
            qname: InlineName::new(&target[..key_len].to_ascii_lowercase()),
            ..q.clone()
        };
        self.resolve_into(&tq, answer).await
    }

    /// Applies response-IP triggers to the answer in `out`, rewriting it.
    /// Returns what matched (`None`: nothing) and the new rcode (`None`:
    /// send nothing).
    async fn response_ip(
        &self,
        snap: &Snapshot,
        tenant: TenantId,
        q: &Query<'_>,
        out: &mut Vec<u8>,
    ) -> Option<(EventAction, FeedId, Option<u8>)> {
        let found = respip::answer_addrs(out)?;
        let m = snap.policy.ip().response.decide(tenant, &found.addrs)?;
        let rc = Some(out[3] & 0xf);
        let rule = match m.decision {
            Decision::Enforce(rule) => rule,
            Decision::Passthru(f) => return Some((EventAction::Passthru, f, rc)),
            Decision::Monitor(f) => return Some((EventAction::Monitored, f, rc)),
            Decision::Resolve | Decision::Allowlisted => return None,
        };
        let msg = std::mem::take(out);
        let (keep, owner) = (found.set_start[m.at], found.owner[m.at]);
        let payload = self.settings.udp_payload;
        let blocked = |out: &mut Vec<u8>| {
            if q.edns.is_some() {
                let ede = (ede::BLOCKED, snap.block_text(rule.feed));
                wire::push_opt(out, payload, 0, Some(ede));
            }
        };
        let (action, rc) = match rule.action {
            Action::Drop => return Some((EventAction::Dropped, rule.feed, None)),
            Action::Block => {
                let rc = match snap.block.mode {
                    BlockMode::Nxdomain => rcode::NXDOMAIN,
                    BlockMode::Sinkhole { .. } => rcode::NOERROR,
                };
                respip::begin_rewrite(out, &msg, q, keep, rc);
                if let BlockMode::Sinkhole { v4, v6 } = snap.block.mode {
                    let rdata: Option<Box<[u8]>> = match found.addrs[m.at] {
                        std::net::IpAddr::V4(_) => v4.map(|a| a.octets().into()),
                        std::net::IpAddr::V6(_) => v6.map(|a| a.octets().into()),
                    };
                    let record = rdata.map(|rdata| LocalRecord {
                        rtype: q.qtype,
                        ttl: snap.block.ttl,
                        rdata,
                    });
                    respip::push_local(out, &msg, owner, record.as_slice());
                }
                blocked(out);
                (EventAction::Blocked, rc)
            }
            Action::Nodata => {
                respip::begin_rewrite(out, &msg, q, keep, rcode::NOERROR);
                blocked(out);
                (EventAction::Nodata, rcode::NOERROR)
            }
            Action::Local(i) => {
                let records = snap.policy.local_data(i);
                let mut rc = rcode::NOERROR;
                respip::begin_rewrite(out, &msg, q, keep, rc);
                respip::push_local(out, &msg, owner, records);
                if let Some(c) = records.iter().find(|r| r.rtype == rtype::CNAME) {
                    // Unbound follows the CNAME, and strips the target's
                    // answer when a response-IP trigger matches it too
                    let mut target = Vec::new();
                    let trc = self.resolve_target(q, &c.rdata, &mut target).await.rc;
                    let touched = || Self::answer_triggers(snap, tenant, &target);
                    if matches!(trc, rcode::NOERROR | rcode::NXDOMAIN) && !touched() {
                        append_answers(out, &target);
                        rc = trc;
                        out[3] = (out[3] & 0xf0) | rc;
                    }
                }
                if q.edns.is_some() {
                    wire::push_opt(out, payload, 0, None);
                }
                (EventAction::LocalData, rc)
            }
            Action::Passthru => unreachable!("IpTriggers::decide never enforces a passthru"),
        };
        Some((action, rule.feed, Some(rc)))
    }

    /// Answers `q` from the cache or upstream into `out`; an expired answer
    /// when upstream fails and serve-stale allows; else SERVFAIL when no
    /// upstream answers in time.
    async fn resolve_into(&self, q: &Query<'_>, out: &mut Vec<u8>) -> Resolved {
        let key = Key::of(q);
        if self.cache.get(&key, q, out) {
            return Resolved::of(out, false);
        }
        if self.settings.stale.enabled {
            match self.cache.stale(&key) {
                Stale::None => {}
                Stale::Failing => {
                    if let Some(r) = self.serve_stale(&key, q, out) {
                        return r;
                    }
                }
                Stale::Refreshable => return self.refresh_or_stale(&key, q, out).await,
            }
        }
        let id: u16 = rand::random();
        let mut upq = Vec::with_capacity(q.question.len() + 32);
        wire::upstream_query(&mut upq, id, q, self.settings.udp_payload);
        match self
            .upstreams
            .resolve(&upq, id, q.qname.as_key(), q.qtype, q.qclass)
            .await
        {
            Ok(mut msg) => {
                store(&self.cache, &self.metrics, &key, &msg);
                wire::adapt_response(&mut msg, q, &[], 0);
                *out = msg;
                Resolved::of(out, false)
            }
            Err(e) => self.servfail(q, out, &e),
        }
    }

    /// An expired answer is cached for `q`: its refresh (one per name,
    /// started here if none runs) answers if it succeeds within the client
    /// timeout; otherwise the stale answer goes out and the refresh, if
    /// still running, carries on and stores what it gets. As RFC 8767 and
    /// Unbound's serve-expired-client-timeout have it, an upstream that
    /// answers in time is always preferred to the stale answer.
    #[inline(never)]
    async fn refresh_or_stale(&self, key: &Key, q: &Query<'_>, out: &mut Vec<u8>) -> Resolved {
        let mut rx = self.refresh(key, q);
        let waited = tokio::time::timeout(
            self.settings.stale.client_timeout,
            rx.wait_for(Option::is_some),
        )
        .await;
        let answer = match waited {
            Ok(Ok(r)) => r.clone().flatten(),
            _ => None,
        };
        if let Some(msg) = answer {
            out.clear();
            out.extend_from_slice(&msg);
            wire::adapt_response(out, q, &[], 0);
            return Resolved::of(out, false);
        }
        // failed or still running: a live answer another refresh stored,
        // else the stale one (gone only if evicted meanwhile)
        if self.cache.get(key, q, out) {
            return Resolved::of(out, false);
        }
        if let Some(r) = self.serve_stale(key, q, out) {
            return r;
        }
        self.servfail(
            q,
            out,
            &UpstreamError::Timeout(self.settings.stale.client_timeout),
        )
    }

    /// The refresh of the expired answer for `key`: the one in flight, or
    /// a new one spawned so that it outlives the query that started it.
    fn refresh(&self, key: &Key, q: &Query<'_>) -> watch::Receiver<Refresh> {
        let mut running = self.refreshing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = running.get(key.as_bytes()) {
            return rx.clone();
        }
        let (tx, rx) = watch::channel(None);
        running.insert(key.as_bytes().into(), rx.clone());
        drop(running);
        let id: u16 = rand::random();
        let mut upq = Vec::with_capacity(q.question.len() + 32);
        wire::upstream_query(&mut upq, id, q, self.settings.udp_payload);
        let name = q.qname.as_key().to_vec();
        let (qtype, qclass) = (q.qtype, q.qclass);
        let (cache, upstreams) = (self.cache.clone(), self.upstreams.clone());
        let (metrics, key) = (self.metrics.clone(), key.clone());
        // off the list however the task ends (or if it never runs), so
        // that a name is never left waiting on a refresh that will not come
        let listed = Listed {
            refreshing: self.refreshing.clone(),
            key: key.clone(),
        };
        tokio::spawn(async move {
            let _listed = listed;
            let answer = match upstreams.resolve(&upq, id, &name, qtype, qclass).await {
                Ok(msg) if !matches!(msg[3] & 0xf, rcode::SERVFAIL | rcode::REFUSED) => {
                    // an answer that may not be cached still answers, and
                    // the stale one must not outlive it
                    if !store(&cache, &metrics, &key, &msg) {
                        cache.remove(&key);
                    }
                    Some(Arc::from(msg))
                }
                other => {
                    if let Err(e) = other {
                        tracing::debug!(error = %e, "refresh of an expired answer failed");
                    }
                    cache.refresh_failed(&key, STALE_RECHECK_SECS);
                    None
                }
            };
            let _ = tx.send(Some(answer));
        });
        rx
    }

    /// The expired answer for `key` into `out`, marked stale: TTLs set to
    /// the stale-answer TTL and, for an EDNS client, EDE 3 (Stale Answer).
    fn serve_stale(&self, key: &Key, q: &Query<'_>, out: &mut Vec<u8>) -> Option<Resolved> {
        let ttl = self.settings.stale.answer_ttl;
        if !self.cache.get_stale(key, q, out, ttl) {
            return None;
        }
        if q.edns.is_some() {
            let payload = self.settings.udp_payload;
            wire::add_ede(out, payload, ede::STALE_ANSWER, STALE_TEXT);
        }
        Some(Resolved::of(out, true))
    }

    #[cold]
    fn servfail(&self, q: &Query<'_>, out: &mut Vec<u8>, e: &UpstreamError) -> Resolved {
        tracing::debug!(error = %e, "answering SERVFAIL");
        self.metrics
            .upstream_servfail
            .fetch_add(1, Ordering::Relaxed);
        wire::begin_response(out, q, rcode::SERVFAIL, 0);
        if q.edns.is_some() {
            wire::push_opt(
                out,
                self.settings.udp_payload,
                0,
                Some((ede::NO_REACHABLE_AUTHORITY, "no upstream resolver answered")),
            );
        }
        Resolved::of(out, false)
    }

    fn fit_udp(&self, out: &mut Vec<u8>, q: &Query<'_>) {
        if out.len() > q.udp_limit(self.settings.udp_payload) {
            self.metrics.truncated.fetch_add(1, Ordering::Relaxed);
            wire::truncate_response(out, q, self.settings.udp_payload);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn finish(
        &self,
        at: &Arrival,
        tenant: TenantId,
        client: IpAddr,
        qname: &InlineName,
        qtype: u16,
        rc: Option<u8>,
        action: EventAction,
        feed: Option<FeedId>,
    ) {
        let snap = &*at.snap;
        snap.tenant_counters(tenant).count(action, rc);
        // the names are looked up only for an event someone will read
        if self.events.is_some() {
            self.emit(QueryEvent::new(
                at.time,
                snap.tenant_name(tenant).clone(),
                client,
                EventName::from(qname),
                qtype,
                rc,
                action,
                feed.map(|f| snap.feed_name(f).clone()),
            ));
        }
    }

    /// Hands an event to the consumer without ever waiting: a full queue
    /// drops the event and counts it. Inlined so that an event built by
    /// [`QueryEvent::new`] goes into the queue without a call and a copy.
    #[inline]
    fn emit(&self, ev: QueryEvent) {
        if let Some(tx) = &self.events
            && let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(ev)
        {
            self.metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Caches an upstream answer if it may be; returns whether it was.
fn store(cache: &Cache, metrics: &Metrics, key: &Key, msg: &[u8]) -> bool {
    let Some(info) = wire::scan_response(msg) else {
        return false;
    };
    match cache.insert(key, msg, &info) {
        Stored::Yes { evicted } => {
            if evicted {
                metrics.cache_evictions.fetch_add(1, Ordering::Relaxed);
            }
            true
        }
        Stored::No => false,
    }
}

/// Appends the answer records of `answer` to the message in `out`.
fn append_answers(out: &mut Vec<u8>, answer: &[u8]) {
    if let Some(n) = wire::copy_answers(answer, out) {
        let an = wire::count(out, wire::AN) + n;
        wire::set_count(out, wire::AN, an);
    }
}

/// The tenant and client of a query from `source`: the EDNS Client Subnet
/// address when `source` is a trusted forwarder (`[[tenants]] trusted_ecs`)
/// and the query carries the option, else the source's own. The ECS
/// address takes the tenant whose networks hold it, or else the tenant
/// that trusts the forwarder.
#[inline]
fn ecs_client(
    snap: &Snapshot,
    trusted: &TenantMap,
    packet: &[u8],
    source: IpAddr,
    tenant: TenantId,
) -> (TenantId, IpAddr) {
    let listed = trusted.lookup(source);
    if listed == DEFAULT_TENANT {
        return (tenant, source);
    }
    match wire::ecs_address(packet) {
        Some(ip) => match snap.tenants.lookup(ip) {
            DEFAULT_TENANT => (listed, ip),
            t => (t, ip),
        },
        None => (tenant, source),
    }
}
