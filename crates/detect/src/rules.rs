//! Detection rules: from pseudonymised query events to [`Signal`]s.
//!
//! Each rule has a stable code, a severity and a plain-English reason with
//! the figures that made it fire:
//!
//! | code | fires when |
//! | --- | --- |
//! | `feed.block` | a query matched a blocking feed (blocked, NODATA, dropped, local data) |
//! | `feed.monitor` | a query matched a monitor-only feed |
//! | `dga` | the registrable domain's label looks machine-generated ([`crate::dga`]) |
//! | `tunnel` | a label is long and high-entropy, or one domain gets many distinct names, or many TXT/NULL queries, in a window |
//! | `beacon` | one client asks for one name at a regular interval |
//! | `new_domain` | a tenant asks for a registrable domain for the first time after its learning period |
//!
//! The detector keeps bounded state in memory (windows, recent timestamps);
//! what must survive a restart (the domains each tenant has seen, and since
//! when it has been learning) is handed back to the caller to store.

use std::collections::VecDeque;

use hashbrown::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parapet_core::alert::{Folded, Severity, Signal};
use parapet_core::event::{EventAction, EventRun, PrivateEvent};
use parapet_core::name::write_key_as_text;
use parapet_core::pseudonym::ClientPseudonym;

/// Thresholds of the rules.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// A label at least this long is tunnel-like when its entropy is high.
    pub tunnel_label_len: usize,
    /// Bits per character above which a long label looks like encoded data.
    pub tunnel_entropy: f64,
    /// Distinct names under one registrable domain per window.
    pub tunnel_unique_names: usize,
    /// TXT and NULL queries for one registrable domain per window.
    pub tunnel_txt_queries: u32,
    /// The window of the volume rules.
    pub window: Duration,
    /// Queries at a regular interval before a beacon is reported.
    pub beacon_queries: usize,
    /// Shortest interval considered (faster repeats are retries or bursts).
    pub beacon_min_interval: Duration,
    /// Largest standard deviation of the intervals, as a fraction of their mean.
    pub beacon_jitter: f64,
    /// How long a tenant's traffic is learnt before `new_domain` fires.
    pub learning_period: Duration,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            tunnel_label_len: 40,
            tunnel_entropy: 3.8,
            tunnel_unique_names: 200,
            tunnel_txt_queries: 100,
            window: Duration::from_secs(600),
            beacon_queries: 8,
            beacon_min_interval: Duration::from_secs(10),
            beacon_jitter: 0.1,
            learning_period: Duration::from_secs(7 * 86_400),
        }
    }
}

/// Upper bound of the entries each in-memory table keeps.
const MAX_ENTRIES: usize = 200_000;

/// What one batch of events produced.
#[derive(Debug, Default)]
pub struct Observed {
    pub signals: Vec<Signal>,
    /// Registrable domains seen for the first time by a tenant: store them.
    pub new_domains: Vec<(Arc<str>, String, SystemTime)>,
    /// Tenants whose learning period started with this batch: store it.
    pub learning_started: Vec<(Arc<str>, SystemTime)>,
    /// Signals of the per-query rules (feeds, DGA) by the hash of their
    /// query, client and rule: a repeat in another run of the batch (another
    /// answer or hour) is folded into the first ([`Signal::fold_run`])
    /// instead of becoming one more signal.
    folds: HashMap<u64, usize>,
}

#[derive(Debug)]
struct Window {
    start: SystemTime,
    names: HashSet<u64>,
    txt: u32,
    fired_names: bool,
    fired_txt: bool,
}

impl Window {
    fn starting(start: SystemTime) -> Self {
        Self {
            start,
            names: HashSet::new(),
            txt: 0,
            fired_names: false,
            fired_txt: false,
        }
    }
}

#[derive(Debug, Default)]
struct Beacon {
    times: VecDeque<SystemTime>,
    fired: Option<SystemTime>,
}

impl Beacon {
    /// Takes one query at `t`. Returns the intervals' mean and standard
    /// deviation (seconds) when it completes a regular series: the last
    /// `beacon_queries` queries at least `beacon_min_interval` apart, not
    /// reported in the past hour.
    fn arrive(&mut self, t: SystemTime, cfg: &DetectConfig) -> Option<(f64, f64)> {
        let keep = cfg.beacon_queries;
        if self
            .times
            .back()
            .is_some_and(|&last| since(t, last) < cfg.beacon_min_interval)
        {
            return None;
        }
        self.times.push_back(t);
        if self.times.len() > keep {
            self.times.pop_front();
        }
        if self.times.len() < keep
            || self
                .fired
                .is_some_and(|f| since(t, f) < Duration::from_secs(3600))
        {
            return None;
        }
        let iv: Vec<f64> = self
            .times
            .iter()
            .zip(self.times.iter().skip(1))
            .map(|(a, c)| since(*c, *a).as_secs_f64())
            .collect();
        let mean = iv.iter().sum::<f64>() / iv.len() as f64;
        let sd = (iv.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / iv.len() as f64).sqrt();
        if mean >= cfg.beacon_min_interval.as_secs_f64() && sd <= cfg.beacon_jitter * mean {
            self.fired = Some(t);
            Some((mean, sd))
        } else {
            None
        }
    }
}

#[derive(Debug)]
struct TenantSeen {
    since: SystemTime,
    domains: HashSet<String>,
}

/// The stateful detector; feed it every event in time order.
#[derive(Debug)]
pub struct Detector {
    cfg: DetectConfig,
    hasher: hashbrown::DefaultHashBuilder,
    dga: HashMap<String, Option<f64>>,
    /// Keyed by the hash of (tenant, registrable domain).
    windows: HashMap<u64, Window>,
    beacons: HashMap<(Arc<str>, ClientPseudonym, u64), Beacon>,
    seen: HashMap<Arc<str>, TenantSeen>,
    qname: String,
}

impl Detector {
    pub fn new(cfg: DetectConfig) -> Self {
        Self {
            cfg,
            hasher: hashbrown::DefaultHashBuilder::default(),
            dga: HashMap::new(),
            windows: HashMap::new(),
            beacons: HashMap::new(),
            seen: HashMap::new(),
            qname: String::with_capacity(256),
        }
    }

    /// Restores what a tenant had seen before a restart.
    pub fn load_seen(
        &mut self,
        tenant: Arc<str>,
        since: SystemTime,
        domains: impl IntoIterator<Item = String>,
    ) {
        let entry = self.seen.entry(tenant).or_insert_with(|| TenantSeen {
            since,
            domains: HashSet::new(),
        });
        entry.since = entry.since.min(since);
        entry.domains.extend(domains);
    }

    /// Runs every rule on one event.
    pub fn observe(&mut self, ev: &PrivateEvent, out: &mut Observed) {
        self.observe_run(
            &EventRun {
                event: ev,
                first: ev.time,
                last: ev.time,
                queries: 1,
            },
            out,
        );
    }

    /// Runs every rule on `run.queries` identical queries at once (a batch
    /// folded by [`parapet_core::event::RunFolder`]). The per-query rules
    /// (feeds, DGA, a tunnel-like label) count every query of the run into
    /// their signal, with its first and last time, as observing each query
    /// in turn does; the TXT/NULL volume rule counts every query; the
    /// distinct-names and new-domain rules need only one. The threshold
    /// rules see the run at its first time, and the beacon rule sees its
    /// first and last time: a threshold signal's time, and a time the
    /// beacon rule keeps, can differ from what observing each query gives
    /// by less than the run's span (under `flush_interval_ms`, at most 5 s,
    /// against the beacon rule's 10 s shortest interval). The runs of a
    /// batch come in the order their first query arrived.
    pub fn observe_run(&mut self, run: &EventRun<'_>, out: &mut Observed) {
        let ev = run.event;
        if ev.action == EventAction::Rejected || ev.qname.as_key().is_empty() {
            return;
        }
        self.qname.clear();
        let _ = write_key_as_text(ev.qname.as_key(), &mut self.qname);
        // taken out while the rules borrow it beside `self`, and put back
        // so that the next run writes into the same buffer
        let qname = std::mem::take(&mut self.qname);
        let mut q = Query::new(run, &qname, self.hasher);
        Self::feed_rule(&mut q, out);
        self.dga_rule(&mut q, out);
        self.tunnel_label_rule(&mut q, out);
        self.tunnel_volume_rule(&mut q, out);
        self.beacon_rule(&mut q, out);
        self.new_domain_rule(&mut q, out);
        self.qname = qname;
    }

    /// `feed.block` / `feed.monitor`: the query matched a feed. Needs no
    /// state of its own: the resolver's policy decided.
    fn feed_rule(q: &mut Query<'_>, out: &mut Observed) {
        let (ev, qname) = (q.ev, q.qname);
        match ev.action {
            EventAction::Blocked
            | EventAction::Nodata
            | EventAction::Dropped
            | EventAction::LocalData
                if !q.fold(out, "feed.block") =>
            {
                let feed = ev.feed.as_deref().unwrap_or("?");
                out.signals.push(q.signal(
                    "feed.block",
                    Severity::High,
                    format!(
                        "{qname} is on the blocking feed `{feed}`; the query was {}",
                        ev.action.as_str()
                    ),
                    true,
                ));
            }
            EventAction::Monitored if !q.fold(out, "feed.monitor") => {
                let feed = ev.feed.as_deref().unwrap_or("?");
                out.signals.push(q.signal(
                    "feed.monitor",
                    Severity::Medium,
                    format!("{qname} is on the monitor-only feed `{feed}` (resolved, not blocked)"),
                    true,
                ));
            }
            _ => {}
        }
    }

    /// `dga`: the registrable domain's label looks machine-generated.
    fn dga_rule(&mut self, q: &mut Query<'_>, out: &mut Observed) {
        let domain = q.domain;
        if let Some(score) = self.dga_verdict(domain)
            && !q.fold(out, "dga")
        {
            out.signals.push(q.signal(
                "dga",
                Severity::Medium,
                format!(
                    "`{domain}` looks machine-generated (character model score {score:.2}, below the threshold for real names): malware uses such names to find its controllers"
                ),
                true,
            ));
        }
    }

    /// `tunnel`: one long, random-looking label.
    fn tunnel_label_rule(&self, q: &mut Query<'_>, out: &mut Observed) {
        let domain = q.domain;
        if let Some(label) = q
            .sub
            .split('.')
            .find(|l| l.len() >= self.cfg.tunnel_label_len)
        {
            let e = entropy(label);
            if e >= self.cfg.tunnel_entropy {
                out.signals.push(q.signal(
                    "tunnel",
                    Severity::High,
                    format!(
                        "a {}-character label with {e:.1} bits of entropy per character under `{domain}`: typical of data encoded into DNS names",
                        label.len()
                    ),
                    true,
                ));
            }
        }
    }

    /// `tunnel`: volume per registrable domain and window (distinct names,
    /// TXT/NULL queries), each fired at most once a window.
    fn tunnel_volume_rule(&mut self, q: &mut Query<'_>, out: &mut Observed) {
        let (ev, at, domain, sub) = (q.ev, q.at, q.domain, q.sub);
        if self.windows.len() >= MAX_ENTRIES {
            let (now, window) = (at, self.cfg.window);
            self.windows.retain(|_, w| since(now, w.start) < window);
        }
        let w = self
            .windows
            .entry(self.hasher.hash_one((&*ev.tenant, domain)))
            .or_insert_with(|| Window::starting(at));
        if since(at, w.start) >= self.cfg.window {
            *w = Window::starting(at);
        }
        if !sub.is_empty() && !w.fired_names {
            w.names.insert(self.hasher.hash_one(sub));
            if w.names.len() >= self.cfg.tunnel_unique_names {
                w.fired_names = true;
                w.names = HashSet::new();
                let n = self.cfg.tunnel_unique_names;
                let mins = self.cfg.window.as_secs() / 60;
                out.signals.push(q.signal(
                    "tunnel",
                    Severity::High,
                    format!("{n} distinct names under `{domain}` within {mins} minutes: a tunnel or exfiltration sends data as ever-new names"),
                    false,
                ));
            }
        }
        if matches!(ev.qtype, 10 | 16) && !w.fired_txt {
            w.txt = w.txt.saturating_add(q.run.queries);
            if w.txt >= self.cfg.tunnel_txt_queries {
                w.fired_txt = true;
                let n = self.cfg.tunnel_txt_queries;
                let mins = self.cfg.window.as_secs() / 60;
                out.signals.push(q.signal(
                    "tunnel",
                    Severity::High,
                    format!("{n} TXT/NULL queries for `{domain}` within {mins} minutes: tunnels carry data in these record types"),
                    false,
                ));
            }
        }
    }

    /// `beacon`: the run's first query, and its last when that came at
    /// least the shortest interval after the last time kept (observing
    /// each query would keep the first such query of the run, at most
    /// the run's span earlier: under `flush_interval_ms`, against 10 s).
    fn beacon_rule(&mut self, q: &mut Query<'_>, out: &mut Observed) {
        let (ev, run, at, qname) = (q.ev, q.run, q.at, q.qname);
        if self.beacons.len() >= MAX_ENTRIES {
            self.beacons.retain(|_, b| {
                b.times
                    .back()
                    .is_some_and(|&t| since(at, t) < Duration::from_secs(3600))
            });
        }
        let key = (ev.tenant.clone(), ev.client, self.hasher.hash_one(qname));
        let b = self.beacons.entry(key).or_default();
        let times = if run.last > run.first {
            &[run.first, run.last][..]
        } else {
            &[run.first][..]
        };
        for &t in times {
            if let Some((mean, sd)) = b.arrive(t, &self.cfg) {
                let keep = self.cfg.beacon_queries;
                let mut sig = q.signal(
                    "beacon",
                    Severity::Medium,
                    format!(
                        "one client asked for {qname} {keep} times at a regular interval of {mean:.0} s (± {sd:.1} s): malware calling home on a timer looks like this"
                    ),
                    false,
                );
                sig.time = t;
                out.signals.push(sig);
            }
        }
    }

    /// `new_domain`: the tenant's first query for a registrable domain
    /// after its learning period. Every first sighting is handed back to be
    /// stored, during the learning period too.
    fn new_domain_rule(&mut self, q: &mut Query<'_>, out: &mut Observed) {
        let (ev, at, domain) = (q.ev, q.at, q.domain);
        let tenant_seen = match self.seen.get_mut(&ev.tenant) {
            Some(t) => t,
            None => {
                out.learning_started.push((ev.tenant.clone(), at));
                self.seen.entry(ev.tenant.clone()).or_insert(TenantSeen {
                    since: at,
                    domains: HashSet::new(),
                })
            }
        };
        if !tenant_seen.domains.contains(domain) {
            tenant_seen.domains.insert(domain.to_string());
            out.new_domains
                .push((ev.tenant.clone(), domain.to_string(), at));
            let learnt = since(at, tenant_seen.since);
            if learnt >= self.cfg.learning_period {
                out.signals.push(q.signal(
                    "new_domain",
                    Severity::Low,
                    format!(
                        "first query from this council for `{domain}` in {} days of traffic",
                        learnt.as_secs() / 86_400
                    ),
                    false,
                ));
            }
        }
    }

    fn dga_verdict(&mut self, domain: &str) -> Option<f64> {
        if let Some(v) = self.dga.get(domain) {
            return *v;
        }
        if self.dga.len() >= MAX_ENTRIES {
            self.dga.clear();
        }
        let v = dga_label(domain).and_then(|label| crate::dga::DgaModel::embedded().is_dga(label));
        self.dga.insert(domain.to_string(), v);
        v
    }
}

/// One run as every rule sees it, set up once per run without allocating:
/// the name in presentation form (borrowed from the detector's buffer), its
/// registrable domain and the labels under it, and the evidence text,
/// built only when a rule fires (most runs fire none) and then shared by
/// the run's signals.
struct Query<'a> {
    run: &'a EventRun<'a>,
    ev: &'a PrivateEvent,
    /// The run's first time: the time of its signals.
    at: SystemTime,
    qname: &'a str,
    domain: &'a str,
    /// The labels under `domain`, without the dot that joins them to it.
    sub: &'a str,
    hasher: hashbrown::DefaultHashBuilder,
    evidence: Option<String>,
}

impl<'a> Query<'a> {
    fn new(run: &'a EventRun<'a>, qname: &'a str, hasher: hashbrown::DefaultHashBuilder) -> Self {
        let domain = registrable(qname);
        let sub = qname
            .strip_suffix(domain)
            .unwrap_or("")
            .trim_end_matches('.');
        Self {
            run,
            ev: run.event,
            at: run.first,
            qname,
            domain,
            sub,
            hasher,
            evidence: None,
        }
    }

    /// A signal of `rule` about this run. `per_query`: the signal stands
    /// for every query of the run (a per-query rule), else for the one that
    /// crossed a threshold.
    fn signal(
        &mut self,
        rule: &'static str,
        severity: Severity,
        reason: String,
        per_query: bool,
    ) -> Signal {
        let (ev, run, qname) = (self.ev, self.run, self.qname);
        let evidence = self
            .evidence
            .get_or_insert_with(|| {
                let mut e = format!("{qname} {} {}", qtype_name(ev.qtype), ev.action.as_str());
                if let Some(f) = ev.feed.as_deref() {
                    e.push_str(" feed=");
                    e.push_str(f);
                }
                e
            })
            .clone();
        Signal {
            time: self.at,
            tenant: ev.tenant.clone(),
            rule,
            severity,
            domain: self.domain.to_string(),
            client: ev.client,
            feed: ev.feed.clone(),
            reason,
            evidence,
            folded: (per_query && run.queries > 1).then_some(Folded {
                count: run.queries,
                last: run.last,
            }),
        }
    }

    /// True when this query already fired `rule` in this batch (from the
    /// same client, feed and tenant): the run is counted into that signal.
    /// Else the signal the caller pushes next is the one later repeats fold
    /// into.
    fn fold(&self, out: &mut Observed, rule: &'static str) -> bool {
        let (ev, run, domain) = (self.ev, self.run, self.domain);
        let key = self.hasher.hash_one((
            rule,
            &*ev.tenant,
            self.qname,
            ev.qtype,
            ev.action.as_str(),
            ev.feed.as_deref(),
            ev.client.0,
        ));
        match out.folds.get(&key) {
            Some(&i)
                if out.signals.get(i).is_some_and(|s| {
                    s.rule == rule
                        && s.client == ev.client
                        && s.tenant == ev.tenant
                        && s.feed == ev.feed
                        && s.domain == domain
                }) =>
            {
                out.signals[i].fold_run(run.first, run.last, run.queries);
                true
            }
            _ => {
                out.folds.insert(key, out.signals.len());
                false
            }
        }
    }
}

/// The registrable domain of a presentation-form name (`www.bbc.co.uk` →
/// `bbc.co.uk`), from the public suffix list; the name itself when it is
/// a public suffix or has one label.
pub fn registrable(name: &str) -> &str {
    psl::domain_str(name).unwrap_or(name)
}

/// Suffixes under which only public bodies can register: never scored as
/// DGA (Welsh council names would otherwise look random to the model).
const PUBLIC_SECTOR: &[&str] = &[
    ".gov.uk",
    ".gov.wales",
    ".llyw.cymru",
    ".gov.scot",
    ".nhs.uk",
    ".nhs.wales",
    ".police.uk",
    ".mod.uk",
    ".parliament.uk",
    ".ac.uk",
    ".sch.uk",
];

/// The label the DGA model scores: the registrable domain's first label,
/// when the domain is under an ICANN suffix and not a public-sector one.
/// Private suffixes (cloudfront.net, github.io, azurewebsites.net...) hand
/// out machine-made names by design and are not scored.
fn dga_label(domain: &str) -> Option<&str> {
    let d = psl::domain(domain.as_bytes())?;
    if d.suffix().typ() == Some(psl::Type::Private) {
        return None;
    }
    if PUBLIC_SECTOR.iter().any(|s| domain.ends_with(s)) {
        return None;
    }
    domain.split('.').next()
}

fn since(now: SystemTime, then: SystemTime) -> Duration {
    now.duration_since(then).unwrap_or_default()
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for &b in s.as_bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

fn qtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        10 => "NULL".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        t => format!("TYPE{t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::name::{EventName, text_to_key};
    use std::time::UNIX_EPOCH;

    fn ev(
        secs: u64,
        tenant: &str,
        client: u8,
        name: &str,
        qtype: u16,
        action: EventAction,
    ) -> PrivateEvent {
        PrivateEvent {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
            tenant: Arc::from(tenant),
            client: ClientPseudonym([client; 8]),
            qname: EventName::new(&text_to_key(name).unwrap()),
            qtype,
            rcode: 0,
            action,
            feed: matches!(action, EventAction::Blocked | EventAction::Monitored)
                .then(|| Arc::from("malware")),
        }
    }

    fn run(d: &mut Detector, events: &[PrivateEvent]) -> Vec<Signal> {
        let mut out = Observed::default();
        for e in events {
            d.observe(e, &mut out);
        }
        out.signals
    }

    fn rules(signals: &[Signal]) -> Vec<(&'static str, String)> {
        let mut v: Vec<_> = signals.iter().map(|s| (s.rule, s.domain.clone())).collect();
        v.dedup();
        v
    }

    /// A day of ordinary council traffic: many clients, well-known names,
    /// repeated at irregular times.
    fn benign() -> Vec<PrivateEvent> {
        let names = [
            "www.gov.uk",
            "login.microsoftonline.com",
            "outlook.office365.com",
            "www.bbc.co.uk",
            "teams.microsoft.com",
            "www.google.com",
            "fonts.googleapis.com",
            "update.microsoft.com",
            "www.lancashire.gov.uk",
            "cdn.jsdelivr.net",
            "nhs.uk",
            "www.amazon.co.uk",
        ];
        let mut v = Vec::new();
        let mut t = 0u64;
        let mut x = 7u64;
        for i in 0..3000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            t += 1 + (x >> 33) % 40;
            let name = names[(x >> 20) as usize % names.len()];
            let qtype = if i % 3 == 0 { 28 } else { 1 };
            v.push(ev(
                t,
                "council-a",
                (x >> 40) as u8 % 50,
                name,
                qtype,
                EventAction::Resolved,
            ));
        }
        v
    }

    #[test]
    fn quiet_on_a_benign_mix() {
        let mut d = Detector::new(DetectConfig {
            learning_period: Duration::ZERO,
            ..DetectConfig::default()
        });
        let s = run(&mut d, &benign());
        let noisy: Vec<_> = s.iter().filter(|s| s.rule != "new_domain").collect();
        assert!(noisy.is_empty(), "{noisy:#?}");
        // with no learning period each domain is new exactly once
        assert_eq!(s.iter().filter(|s| s.rule == "new_domain").count(), 11);
    }

    #[test]
    fn feed_hits() {
        let mut d = Detector::new(DetectConfig::default());
        let s = run(
            &mut d,
            &[
                ev(0, "a", 1, "malware.evil.test", 1, EventAction::Blocked),
                ev(1, "a", 1, "watch.example.org", 1, EventAction::Monitored),
            ],
        );
        assert_eq!(
            rules(&s),
            [
                ("feed.block", "evil.test".to_string()),
                ("feed.monitor", "example.org".to_string())
            ]
        );
        assert_eq!(s[0].severity, Severity::High);
        assert!(s[0].reason.contains("`malware`"), "{}", s[0].reason);
    }

    /// A client retrying a blocked name is one signal per batch that counts
    /// every query; another client, name or type is a signal of its own.
    #[test]
    fn repeats_of_a_query_fold_into_one_signal() {
        let mut d = Detector::new(DetectConfig::default());
        let mut events: Vec<PrivateEvent> = (0..50)
            .map(|i| ev(i, "a", 1, "c2.evil.test", 1, EventAction::Blocked))
            .collect();
        events.push(ev(7, "a", 2, "c2.evil.test", 1, EventAction::Blocked));
        events.push(ev(8, "a", 1, "c3.evil.test", 1, EventAction::Blocked));
        events.push(ev(9, "a", 1, "c2.evil.test", 28, EventAction::Blocked));
        events.push(ev(10, "b", 1, "c2.evil.test", 1, EventAction::Blocked));
        let s = run(&mut d, &events);
        let feed: Vec<&Signal> = s.iter().filter(|s| s.rule == "feed.block").collect();
        assert_eq!(feed.len(), 5, "{feed:#?}");
        let first = feed[0];
        assert_eq!(first.count(), 50);
        assert_eq!(first.time, events[0].time);
        assert_eq!(first.last_time(), events[49].time);
        assert!(
            feed[1..]
                .iter()
                .all(|s| s.count() == 1 && s.folded.is_none())
        );
        // every query is counted once across the signals
        let total: u32 = feed.iter().map(|s| s.count()).sum();
        assert_eq!(total as usize, events.len());
        // a new batch starts a new signal
        let again = run(&mut d, &events[..1]);
        assert_eq!(again.iter().filter(|s| s.rule == "feed.block").count(), 1);
    }

    /// The traffic of `runs_give_what_queries_one_by_one_give`: the benign
    /// mix with every rule's traffic over it, repeats included, in 1 s
    /// batches that are not in time order.
    fn mixed_batches() -> Vec<Vec<PrivateEvent>> {
        let at = |ms: u64, client: u8, name: &str, qtype: u16, action: EventAction| {
            let mut e = ev(0, "council-a", client, name, qtype, action);
            e.time += Duration::from_millis(ms);
            e
        };
        let mut events = benign();
        for e in &mut events {
            e.time += Duration::from_millis(250);
        }
        for i in 0..12u64 {
            let t = i * 60_000 + (i % 3) * 400;
            for k in 0..3 {
                // a beacon whose every call is an A and an AAAA query, twice
                for qtype in [1, 28] {
                    events.push(at(
                        t + k * 90,
                        7,
                        "c2.example-beacon.net",
                        qtype,
                        EventAction::Resolved,
                    ));
                }
                events.push(at(t + k * 50, 8, "c2.evil.test", 1, EventAction::Blocked));
                events.push(at(
                    t + 20 + k,
                    8,
                    "www.xjkqwhzvbtplmdrc.com",
                    1,
                    EventAction::Resolved,
                ));
                // a long random label, monitored, repeated
                events.push(at(
                    t + 500 + k * 7,
                    9,
                    &format!("q{i}n3xk2v9z7w1m4p8r6t5y0u2e4c6b8d0f1h3j5l7.t1.tunnel-example.com"),
                    1,
                    EventAction::Monitored,
                ));
            }
            let mut txt = at(
                t + 300,
                9,
                "data.t1.tunnel-example.com",
                16,
                EventAction::Resolved,
            );
            for _ in 0..15 {
                events.push(txt.clone());
                txt.time += Duration::from_millis(3);
            }
            // distinct names under one domain, some asked twice
            for n in 0..25u64 {
                let name = format!("n{}.many-names.example", i * 25 + n);
                events.push(at(t + 600 + n, 10, &name, 1, EventAction::Resolved));
                if n % 5 == 0 {
                    events.push(at(t + 610 + n, 10, &name, 1, EventAction::Resolved));
                }
            }
        }
        events.sort_by_key(|e| e.time);
        let mut batches: Vec<Vec<PrivateEvent>> = events
            .chunk_by(|a, b| {
                since(a.time, UNIX_EPOCH).as_secs() == since(b.time, UNIX_EPOCH).as_secs()
            })
            .map(<[PrivateEvent]>::to_vec)
            .collect();
        for b in &mut batches {
            // the resolver's threads stamp events independently: a batch is
            // not in time order
            b.reverse();
            let half = b.len() / 2;
            b.rotate_left(half);
        }
        batches
    }

    fn second(t: SystemTime) -> u64 {
        since(t, UNIX_EPOCH).as_secs()
    }

    type Key = (&'static str, String, u8, String);
    type Summary = Vec<(Key, (u64, u64, u32))>;
    /// Tenant, registrable domain and second of a first sighting.
    type SeenAt = Vec<(Arc<str>, String, u64)>;

    /// Per rule, domain, client and reason: the first and last time (to
    /// the millisecond for the per-query rules, else to the batch) and the
    /// queries counted.
    fn summarise(signals: Vec<Signal>) -> Summary {
        let mut by: HashMap<Key, (u64, u64, u32)> = HashMap::new();
        for s in signals {
            let exact = matches!(s.rule, "feed.block" | "feed.monitor" | "dga")
                || s.reason.contains("bits of entropy");
            let t = |t: SystemTime| {
                if exact {
                    since(t, UNIX_EPOCH).as_millis() as u64
                } else {
                    second(t)
                }
            };
            // the beacon rule keeps a call's first query in batch order
            // one way and the run's earliest the other: its spread (±)
            // may differ by a few hundred milliseconds
            let reason = match s.reason.split_once(" (±") {
                Some((head, _)) if s.rule == "beacon" => head.to_string(),
                _ => s.reason.clone(),
            };
            let e = by
                .entry((s.rule, s.domain.clone(), s.client.0[0], reason))
                .or_insert((u64::MAX, 0, 0));
            e.0 = e.0.min(t(s.time));
            e.1 = e.1.max(t(s.last_time()));
            e.2 += s.count();
        }
        let mut v: Summary = by.into_iter().collect();
        v.sort();
        v
    }

    /// One batch through a detector, query by query or run by run: its
    /// signals, the domains it saw (to the second) and the steps taken.
    fn observe_batch(
        d: &mut Detector,
        batch: &[PrivateEvent],
        by_run: bool,
    ) -> (Vec<Signal>, SeenAt, usize) {
        let mut out = Observed::default();
        let steps = if by_run {
            let runs = parapet_core::event::fold_events(batch);
            for r in &runs {
                d.observe_run(&r.as_run(), &mut out);
            }
            runs.len()
        } else {
            for e in batch {
                d.observe(e, &mut out);
            }
            batch.len()
        };
        let seen: Vec<_> = out
            .new_domains
            .into_iter()
            .map(|(t, d, at)| (t, d, second(at)))
            .collect();
        (out.signals, seen, steps)
    }

    /// Observing a batch's runs gives what observing its queries one by one
    /// gives, for every rule, with repeats inside each 1 s batch in no
    /// particular order: the per-query rules exactly, the threshold rules
    /// to the batch (their signal's time is the run's).
    #[test]
    fn runs_give_what_queries_one_by_one_give() {
        let cfg = DetectConfig {
            learning_period: Duration::ZERO,
            ..DetectConfig::default()
        };
        let batches = mixed_batches();
        let (mut one, mut folded) = (Detector::new(cfg.clone()), Detector::new(cfg));
        let (mut by_query, mut by_run) = (Vec::new(), Vec::new());
        let (mut seen_query, mut seen_run) = (Vec::new(), Vec::new());
        let mut repeats = 0;
        for batch in &batches {
            let (signals, seen, _) = observe_batch(&mut one, batch, false);
            by_query.extend(signals);
            seen_query.extend(seen);
            let (signals, seen, runs) = observe_batch(&mut folded, batch, true);
            by_run.extend(signals);
            seen_run.extend(seen);
            repeats += batch.len() - runs;
        }
        assert!(repeats >= 300, "the batches hold repeats ({repeats})");
        let expected = summarise(by_query);
        for (rule, reason) in [
            ("feed.block", ""),
            ("feed.monitor", ""),
            ("dga", ""),
            ("tunnel", "bits of entropy"),
            ("tunnel", "distinct names"),
            ("tunnel", "TXT/NULL"),
            ("beacon", ""),
            ("new_domain", ""),
        ] {
            assert!(
                expected
                    .iter()
                    .any(|(k, _)| k.0 == rule && k.3.contains(reason)),
                "{rule} {reason} fires: {expected:#?}"
            );
        }
        // every per-query rule's signal counted repeats
        for rule in ["feed.block", "feed.monitor", "dga", "tunnel"] {
            assert!(
                expected.iter().any(|(k, v)| k.0 == rule && v.2 >= 3),
                "{rule}: {expected:#?}"
            );
        }
        assert_eq!(summarise(by_run), expected);
        seen_query.sort();
        seen_run.sort();
        assert_eq!(seen_run, seen_query);
    }

    /// An iodine-style tunnel: NULL queries with long base32 labels, every
    /// name new, under one domain.
    #[test]
    fn tunnel() {
        let mut d = Detector::new(DetectConfig::default());
        let alphabet = b"abcdefghijklmnopqrstuvwxyz234567";
        let mut x = 1u64;
        let events: Vec<_> = (0..300u64)
            .map(|i| {
                let label: String = (0..60)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        alphabet[(x >> 59) as usize] as char
                    })
                    .collect();
                ev(
                    i,
                    "a",
                    3,
                    &format!("0{label}.t1.tunnel-example.com"),
                    10,
                    EventAction::Resolved,
                )
            })
            .collect();
        let s = run(&mut d, &events);
        let tunnel: Vec<_> = s.iter().filter(|s| s.rule == "tunnel").collect();
        assert!(tunnel.iter().all(|s| s.domain == "tunnel-example.com"));
        assert!(
            tunnel.iter().any(|s| s.reason.contains("bits of entropy")),
            "{tunnel:#?}"
        );
        assert!(
            tunnel.iter().any(|s| s.reason.contains("distinct names")),
            "{tunnel:#?}"
        );
        assert!(
            tunnel.iter().any(|s| s.reason.contains("TXT/NULL")),
            "{tunnel:#?}"
        );
        // the volume rules fire once per window, not per query
        assert!(
            tunnel
                .iter()
                .filter(|s| !s.reason.contains("entropy"))
                .count()
                == 2
        );
    }

    #[test]
    fn beacon_every_60_seconds() {
        let mut d = Detector::new(DetectConfig::default());
        let mut events = benign();
        for i in 0..12u64 {
            // ±1 s of jitter
            events.push(ev(
                i * 60 + (i % 3),
                "council-a",
                200,
                "c2.example-beacon.net",
                1,
                EventAction::Resolved,
            ));
        }
        events.sort_by_key(|e| e.time);
        let s = run(&mut d, &events);
        let b: Vec<_> = s.iter().filter(|s| s.rule == "beacon").collect();
        assert_eq!(b.len(), 1, "{b:#?}");
        assert_eq!(b[0].domain, "example-beacon.net");
        assert!(b[0].reason.contains("interval of 60 s"), "{}", b[0].reason);
    }

    #[test]
    fn a_beacon_keeps_a_runs_last_time_when_its_first_is_too_soon() {
        // a client asks twice, 3 s apart, every 8 s: in one run of three
        // the first query comes less than 10 s after the last time kept
        // and the last one 11 s after (one keeps its first, one nothing);
        // one query at a time keeps the same times (0, 11, 24, 35, ...),
        // intervals 11 and 13 s in turn
        let name = "c2.example-beacon.net";
        let (mut by_query, mut by_run) = (
            Detector::new(DetectConfig::default()),
            Detector::new(DetectConfig::default()),
        );
        let (mut q_out, mut r_out) = (Observed::default(), Observed::default());
        for k in 0..30u64 {
            let first = ev(8 * k, "council-a", 7, name, 1, EventAction::Resolved);
            let last = ev(8 * k + 3, "council-a", 7, name, 1, EventAction::Resolved);
            by_query.observe(&first, &mut q_out);
            by_query.observe(&last, &mut q_out);
            by_run.observe_run(
                &EventRun {
                    event: &first,
                    first: first.time,
                    last: last.time,
                    queries: 2,
                },
                &mut r_out,
            );
        }
        let beacons = |o: &Observed| -> Vec<(SystemTime, String)> {
            o.signals
                .iter()
                .filter(|s| s.rule == "beacon")
                .map(|s| (s.time, s.reason.clone()))
                .collect()
        };
        let (q, r) = (beacons(&q_out), beacons(&r_out));
        assert_eq!(q.len(), 1, "{q:#?}");
        assert!(q[0].1.contains("interval of 12 s"), "{}", q[0].1);
        // fired by a run's last query, at that query's time
        assert_eq!(r, q);
        let secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs() - 1_700_000_000;
        assert_eq!(secs(r[0].0) % 8, 3, "{}", secs(r[0].0));
    }

    #[test]
    fn irregular_repeats_are_not_beacons() {
        let mut d = Detector::new(DetectConfig::default());
        let times = [0u64, 15, 95, 110, 300, 320, 600, 611, 900, 1300];
        let events: Vec<_> = times
            .iter()
            .map(|&t| ev(t, "a", 9, "www.example.org", 1, EventAction::Resolved))
            .collect();
        assert!(run(&mut d, &events).iter().all(|s| s.rule != "beacon"));
    }

    #[test]
    fn new_domain_after_learning() {
        let mut d = Detector::new(DetectConfig::default());
        let day = 86_400;
        let mut out = Observed::default();
        d.observe(
            &ev(0, "a", 1, "www.example.org", 1, EventAction::Resolved),
            &mut out,
        );
        d.observe(
            &ev(day, "a", 1, "www.learnt.org", 1, EventAction::Resolved),
            &mut out,
        );
        d.observe(
            &ev(8 * day, "a", 1, "mail.learnt.org", 1, EventAction::Resolved),
            &mut out,
        );
        d.observe(
            &ev(
                8 * day,
                "a",
                1,
                "fresh.example.net",
                1,
                EventAction::Resolved,
            ),
            &mut out,
        );
        // another tenant learns on its own clock
        d.observe(
            &ev(
                8 * day,
                "b",
                1,
                "fresh.example.net",
                1,
                EventAction::Resolved,
            ),
            &mut out,
        );
        assert_eq!(
            rules(&out.signals),
            [("new_domain", "example.net".to_string())]
        );
        assert_eq!(out.new_domains.len(), 4);
        assert_eq!(out.learning_started.len(), 2);
        // after a restart the stored state is restored
        let mut d2 = Detector::new(DetectConfig::default());
        d2.load_seen(
            Arc::from("a"),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ["example.org".to_string()],
        );
        let mut out2 = Observed::default();
        d2.observe(
            &ev(9 * day, "a", 1, "www.example.org", 1, EventAction::Resolved),
            &mut out2,
        );
        assert!(out2.signals.is_empty(), "{:?}", out2.signals);
    }

    #[test]
    fn dga_names_fire_and_cdn_and_council_names_do_not() {
        let mut d = Detector::new(DetectConfig::default());
        let s = run(
            &mut d,
            &[
                ev(
                    0,
                    "a",
                    1,
                    "www.xjkqwhzvbtplmdrc.com",
                    1,
                    EventAction::Resolved,
                ),
                ev(
                    1,
                    "a",
                    1,
                    "d1iwhdc6scsqsn.cloudfront.net",
                    1,
                    EventAction::Resolved,
                ),
                ev(2, "a", 1, "www.sirfynwy.gov.uk", 1, EventAction::Resolved),
                ev(
                    3,
                    "a",
                    1,
                    "www.monmouthshire.gov.uk",
                    1,
                    EventAction::Resolved,
                ),
            ],
        );
        let dga: Vec<_> = s
            .iter()
            .filter(|s| s.rule == "dga")
            .map(|s| s.domain.as_str())
            .collect();
        assert_eq!(dga, ["xjkqwhzvbtplmdrc.com"]);
    }

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("www.bbc.co.uk"), "bbc.co.uk");
        assert_eq!(registrable("a.b.lancashire.gov.uk"), "lancashire.gov.uk");
        assert_eq!(registrable("x.y.example.com"), "example.com");
        assert_eq!(registrable("co.uk"), "co.uk");
        assert_eq!(registrable("localhost"), "localhost");
    }
}
