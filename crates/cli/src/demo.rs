//! The bundled demo data (`serve --demo`): two councils' DNS traffic, the
//! alerts Parapet's own detector raises from it, Mail Check results made
//! by the Mail Check parsers, DMARC reports, and the Northshire fixture
//! estate with its dates moved up to the load time. Everything lies in one
//! quarter, the one the demo is loaded in, so a demo report for it fills
//! every section (the estate's earlier scan lands in the quarter before,
//! for the trend).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parapet_assurance::model::AssetImport;
use parapet_assurance::quarter::{Quarter, QuarterStyle};
use parapet_core::alert::AlertStatus;
use parapet_core::event::{EventAction, PrivateEvent};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_detect::rules::{DetectConfig, Detector, Observed};
use parapet_mailcheck::{Finding, dmarc, spf};
use parapet_store::accounts::AuditEntry;
use parapet_store::{Db, DmarcRecordRow, DmarcReportRow, MailCheckRow, MailFinding};

/// The demo's councils, their mail domains.
pub const DEMO_TENANTS: [(&str, &str, &str); 2] = [
    ("north", "Northshire Council", "northshire.test"),
    ("south", "South Vale District Council", "southvale.test"),
];

/// The feed the demo's blocked names are on (the bundled example feed).
const DEMO_FEED: &str = "parapet-example";

/// Hours of DNS traffic the demo holds.
const TRAFFIC_HOURS: i64 = 48;

/// Names the demo's councils resolve normally.
const OK_NAMES: [&str; 4] = [
    "www.gov.uk",
    "login.microsoftonline.com",
    "outlook.office365.com",
    "www.bbc.co.uk",
];

/// Blocked names: (tenant, name), every third hour.
const BLOCKED: [(&str, &str); 3] = [
    ("north", "malware.testing.google.test"),
    ("north", "phish.example-login.test"),
    ("south", "c2.badness.test"),
];

/// What the demo wrote, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoLoaded {
    pub quarter: Quarter,
    /// False when the store held the demo already.
    pub new: bool,
    pub queries: u64,
    pub alerts: u64,
    pub mail_checks: u64,
    pub dmarc_reports: u64,
    pub asset_imports: u64,
}

/// Times of the demo: `ago` seconds before the load, but never before the
/// start of the load's quarter (a demo loaded in a quarter's first days has
/// its traffic squeezed into them rather than spread into the last one).
#[derive(Debug, Clone, Copy)]
struct Clock {
    now: i64,
    start: i64,
}

impl Clock {
    fn ago(&self, seconds: i64) -> i64 {
        (self.now - seconds).max(self.start).min(self.now)
    }
}

/// Unix seconds as a time (the epoch for anything before it).
fn at(s: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)
}

/// Loads the demo once, at `now` (unix seconds): a store that has the
/// demo's alerts already is left alone, and its quarter is the one its
/// data was loaded in.
pub fn load(db: &mut dyn Db, now: i64, style: QuarterStyle) -> anyhow::Result<DemoLoaded> {
    let existing = db.list_alerts(&parapet_store::AlertFilter {
        tenant: Some("north".into()),
        limit: Some(1),
        ..Default::default()
    })?;
    if let Some(a) = existing.first() {
        return Ok(DemoLoaded {
            quarter: Quarter::containing(a.last_seen / 1000, style),
            new: false,
            queries: 0,
            alerts: 0,
            mail_checks: 0,
            dmarc_reports: 0,
            asset_imports: 0,
        });
    }
    let quarter = Quarter::containing(now, style);
    let clock = Clock {
        now,
        start: quarter.start(),
    };
    let (queries, alerts) = traffic_and_alerts(db, clock)?;
    let (mail_checks, dmarc_reports) = mail(db, clock)?;
    let asset_imports = estate(db, clock)?;
    let loaded = DemoLoaded {
        quarter,
        new: true,
        queries,
        alerts,
        mail_checks,
        dmarc_reports,
        asset_imports,
    };
    db.audit(&AuditEntry {
        time: now,
        actor: "parapet".into(),
        action: "demo.loaded".into(),
        tenant: None,
        detail: loaded.summary(),
        client: None,
    })?;
    Ok(loaded)
}

impl DemoLoaded {
    /// One line for the log and the audit trail.
    pub fn summary(&self) -> String {
        let tenants: Vec<&str> = DEMO_TENANTS.iter().map(|t| t.0).collect();
        if !self.new {
            return format!(
                "demo data already in the store: tenants {}, quarter {}",
                tenants.join(", "),
                self.quarter
            );
        }
        format!(
            "demo data loaded: tenants {}, quarter {} ({}); {} queries, {} alerts, {} Mail Checks, {} DMARC reports, {} asset imports",
            tenants.join(", "),
            self.quarter,
            self.quarter.months(),
            self.queries,
            self.alerts,
            self.mail_checks,
            self.dmarc_reports,
            self.asset_imports
        )
    }
}

/// One query event of the demo.
fn event(
    time: i64,
    tenant: &str,
    name: &str,
    qtype: u16,
    blocked: bool,
    client: u8,
) -> PrivateEvent {
    PrivateEvent {
        time: at(time),
        tenant: Arc::from(tenant),
        client: ClientPseudonym([client; 8]),
        qname: EventName::new(&text_to_key(name).unwrap_or_default()),
        qtype,
        rcode: if blocked { 3 } else { 0 },
        action: if blocked {
            EventAction::Blocked
        } else {
            EventAction::Resolved
        },
        feed: blocked.then(|| Arc::from(DEMO_FEED)),
    }
}

/// One hour of both councils' queries: busier in office hours, the
/// blocked names every third hour, and the patterns the detector's other
/// rules look for (a machine-generated name, a DNS tunnel's long labels, a
/// client asking one name every five minutes).
fn hour_of_traffic(clock: Clock, h: i64) -> Vec<PrivateEvent> {
    let hour = clock.ago((TRAFFIC_HOURS - h) * 3600);
    let mut events = Vec::new();
    let busy = if (8..18).contains(&((hour / 3600) % 24)) {
        12
    } else {
        3
    };
    for (ti, (tenant, _, _)) in DEMO_TENANTS.iter().enumerate() {
        for i in 0..busy * (ti as i64 + 1) {
            let name = OK_NAMES[(i as usize) % OK_NAMES.len()];
            events.push(event(hour + i * 60, tenant, name, 1, false, i as u8));
        }
        if h % 3 == 0 {
            for (t, name) in BLOCKED.iter().filter(|b| b.0 == *tenant) {
                events.push(event(hour + 120, t, name, 1, true, 9));
            }
        }
    }
    if h == TRAFFIC_HOURS - 2 {
        // a machine-generated name (DGA), twice
        for k in 0..2 {
            events.push(event(
                hour + 300 + k,
                "north",
                "xkqjzvbrtwplmq.com",
                1,
                false,
                21,
            ));
        }
        // a tunnel: long, high-entropy labels under one domain
        for k in 0..3 {
            let label = format!("a9f3k2m8q7z1x4c6v0b5n{k}h2j7l9p3r8t6w1y4u0e5s8d2g7");
            let name = format!("{label}.exfil-demo.net");
            events.push(event(hour + 600 + k, "south", &name, 16, false, 33));
        }
    }
    if h >= TRAFFIC_HOURS - 2 {
        // a beacon: one client, one name, every five minutes
        for k in 0..12 {
            events.push(event(
                hour + k * 300,
                "south",
                "update.beacon-demo.net",
                1,
                false,
                44,
            ));
        }
    }
    events.retain(|e| e.time <= at(clock.now));
    events.sort_by_key(|e| e.time);
    events
}

/// The traffic, one batch per hour as the writer stores it, and the alerts
/// Parapet's detector (default thresholds) raises from each batch, stored
/// as `serve` stores them: so every blocked query counts in a `feed.block`
/// alert. Returns (queries, alerts).
fn traffic_and_alerts(db: &mut dyn Db, clock: Clock) -> anyhow::Result<(u64, u64)> {
    let mut detector = Detector::new(DetectConfig::default());
    let mut queries = 0u64;
    let mut alerts = std::collections::BTreeSet::new();
    for h in 0..TRAFFIC_HOURS {
        let events = hour_of_traffic(clock, h);
        let mut seen = Observed::default();
        for e in &events {
            detector.observe(e, &mut seen);
        }
        queries += db.insert_events(&events)? as u64;
        for (id, _) in db.record_signals(&seen.signals)? {
            alerts.insert(id);
        }
        db.save_seen(&seen.learning_started, &seen.new_domains)?;
    }
    // one alert already being worked on, as a live system would have
    if let Some(&first) = alerts.iter().next() {
        db.set_alert_status(
            first,
            AlertStatus::Investigating,
            "demo",
            "checking the client's browser history",
            at(clock.now),
        )?;
    }
    Ok((queries, alerts.len() as u64))
}

/// Findings as the store keeps them.
fn stored(findings: Vec<Finding>) -> Vec<MailFinding> {
    findings
        .into_iter()
        .map(|f| MailFinding {
            severity: f.severity.as_str().into(),
            code: f.code.into(),
            message: f.message,
        })
        .collect()
}

/// What Mail Check's record parsers say about an SPF and a DMARC record
/// (`None`: no DMARC record, which Mail Check reports as `dmarc.missing`).
fn record_findings(domain: &str, spf_txt: &str, dmarc_txt: Option<&str>) -> Vec<Finding> {
    let (rec, mut f) = spf::parse(spf_txt);
    if let Some(rec) = rec {
        f.extend(spf::check_record(&rec));
    }
    match dmarc_txt {
        Some(txt) => {
            let (rec, more) = dmarc::parse(txt);
            f.extend(more);
            if let Some(rec) = rec {
                f.extend(dmarc::check(&rec));
            }
        }
        None => f.push(Finding::error(
            "dmarc.missing",
            format!("no DMARC record at _dmarc.{domain}: receivers get no policy for mail that fails SPF and DKIM, and you get no reports"),
        )),
    }
    f
}

/// Mail Check results (Northshire's improving between two checks) and a
/// DMARC report per sending source. Returns (checks, reports).
fn mail(db: &mut dyn Db, clock: Clock) -> anyhow::Result<(u64, u64)> {
    // the second check after the first even when both are squeezed into
    // a quarter's first hour
    let first = clock.ago(7 * 86_400);
    let second = clock.ago(3600).max(first + 60).min(clock.now);
    let checks = [
        (
            "northshire.test",
            first,
            record_findings("northshire.test", "v=spf1 ip4:192.0.2.10 ~all", None),
        ),
        (
            "northshire.test",
            second,
            record_findings(
                "northshire.test",
                "v=spf1 ip4:192.0.2.10 ~all",
                Some("v=DMARC1; p=none; rua=mailto:dmarc@northshire.test"),
            ),
        ),
        ("southvale.test", second, {
            let mut f = record_findings(
                "southvale.test",
                "v=spf1 ip4:192.0.2.20 -all",
                Some("v=DMARC1; p=reject; rua=mailto:dmarc@southvale.test"),
            );
            f.push(Finding::error(
                "tls.cert_expired",
                "mx1.southvale.test:25: the certificate expired: renew it",
            ));
            f
        }),
    ];
    let n_checks = checks.len() as u64;
    for (domain, t, findings) in checks {
        let findings = stored(findings);
        let worst = ["error", "warning", "info"]
            .into_iter()
            .find(|s| findings.iter().any(|x| x.severity == *s))
            .map(str::to_string);
        db.save_mailcheck(&MailCheckRow {
            domain: domain.into(),
            checked_at: t * 1000,
            worst,
            findings,
            report: "{\"demo\": true}".into(),
        })?;
    }
    let sources = [
        ("northshire.test", "192.0.2.10", true),
        ("northshire.test", "198.51.100.7", false),
        ("southvale.test", "192.0.2.20", true),
    ];
    for (domain, ip, pass) in sources {
        db.import_dmarc(
            &DmarcReportRow {
                org_name: "demo-receiver.test".into(),
                report_id: format!("demo-{domain}-{ip}"),
                domain: domain.into(),
                begin: clock.ago(2 * 86_400),
                end: clock.ago(86_400),
                policy: "none".into(),
                source: "demo".into(),
                records: vec![DmarcRecordRow {
                    source_ip: ip.into(),
                    count: if pass { 120 } else { 7 },
                    disposition: "none".into(),
                    dkim_aligned: pass,
                    spf_aligned: pass,
                    header_from: domain.into(),
                    envelope_from: Some(domain.into()),
                    dkim: format!("{domain}/s1={}", if pass { "pass" } else { "fail" }),
                    spf: format!("{domain}/mfrom={}", if pass { "pass" } else { "fail" }),
                }],
            },
            at(clock.now),
        )?;
    }
    Ok((n_checks, sources.len() as u64))
}

/// The newest time in the fixture estate (Defender's last device update,
/// 2021-09-30T06:00Z): the estate's dates move so that it lands a day
/// before the load.
const ESTATE_NEWEST: i64 = 1_632_981_600;

/// Every date of an import moved by `by` seconds.
fn shift(imp: &mut AssetImport, by: i64) {
    let mv = |t: &mut Option<i64>| {
        if let Some(t) = t {
            *t += by;
        }
    };
    imp.as_of += by;
    for a in &mut imp.assets {
        mv(&mut a.last_seen);
        if let Some(av) = &mut a.av {
            mv(&mut av.signatures_at);
            mv(&mut av.reported_at);
        }
        if let Some(s) = &mut a.scan {
            s.at += by;
        }
    }
    for v in &mut imp.vulns {
        mv(&mut v.fix_released);
        mv(&mut v.vuln_published);
    }
}

/// Northshire's fixture estate (testdata/assets/estate), every date moved
/// by whole days so that its newest lands a day before the load: its
/// September 2021 exports fall in the demo's quarter (the June scan, in
/// the quarter before), and one incident. Returns the imports stored.
fn estate(db: &mut dyn Db, clock: Clock) -> anyhow::Result<u64> {
    use parapet_assurance::parse::{Source, build_import};
    let estate: [(&str, Source, &[u8]); 6] = [
        (
            "inventory.csv",
            Source::InventoryCsv,
            include_bytes!("../../../testdata/assets/estate/inventory.csv"),
        ),
        (
            "defender.csv",
            Source::DefenderCsv,
            include_bytes!("../../../testdata/assets/estate/defender.csv"),
        ),
        (
            "osquery.json",
            Source::Osquery,
            include_bytes!("../../../testdata/assets/estate/osquery.json"),
        ),
        (
            "scan-2021-06.nessus",
            Source::Nessus,
            include_bytes!("../../../testdata/assets/estate/scan-2021-06.nessus"),
        ),
        (
            "scan-2021-09.nessus",
            Source::Nessus,
            include_bytes!("../../../testdata/assets/estate/scan-2021-09.nessus"),
        ),
        (
            "openvas-2021-09.xml",
            Source::Openvas,
            include_bytes!("../../../testdata/assets/estate/openvas-2021-09.xml"),
        ),
    ];
    let days = (clock.now - 86_400 - ESTATE_NEWEST).div_euclid(86_400);
    let by = days * 86_400;
    for (name, source, bytes) in estate {
        let mut imp = build_import(
            "north",
            source,
            &format!("demo/{name} (dates moved {days} days)"),
            bytes,
            None,
        )
        .map_err(|e| anyhow::anyhow!("demo estate {name}: {e}"))?;
        shift(&mut imp, by);
        db.import_assets(&imp, clock.now)?;
    }
    db.add_incident(
        &parapet_assurance::model::Incident {
            tenant: "north".into(),
            reference: "INC-DEMO-014".into(),
            detected_at: clock.ago(20 * 86_400),
            category: "phishing".into(),
            impact: "one mailbox".into(),
            outcome: "attempted".into(),
            status: "closed".into(),
            summary: "credential phishing e-mail reported by staff; no credentials entered".into(),
            ..Default::default()
        },
        clock.now,
    )?;
    Ok(estate.len() as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use parapet_assurance::kpi::Settings;
    use parapet_assurance::store::AssuranceStore;
    use parapet_report::{Council, ReportText, report_input};
    use parapet_store::{AlertFilter, AlertStore, EventStore, MailStore, SqliteStore};

    use super::*;

    /// Every finding code the Mail Check checkers can produce: the quoted
    /// `area.name` strings of their sources (outside unit tests), as the
    /// end-to-end Mail Check test reads them.
    fn known_codes() -> BTreeSet<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../mailcheck/src");
        let prefixes = [
            "spf.", "dmarc.", "dkim.", "tls.", "mta_sts.", "tlsrpt.", "mx.", "domain.", "parked.",
        ];
        let mut codes = BTreeSet::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            let src = src.split("#[cfg(test)]").next().unwrap();
            for quoted in src.split('"').skip(1).step_by(2) {
                if prefixes.iter().any(|p| quoted.starts_with(p))
                    && quoted
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
                {
                    codes.insert(quoted.to_string());
                }
            }
        }
        codes
    }

    /// Loads the demo at `now` into a new store and checks that it is one
    /// consistent quarter: current Mail Check codes, blocked queries and
    /// `feed.block` alerts that agree, every time within the quarter, and
    /// a report for Northshire with every section filled.
    /// `spread`: the load is two days or more into its quarter, so the
    /// traffic keeps its timing and the beacon rule can fire.
    fn check_demo_at(now: i64, spread: bool) {
        let dir = tempfile::tempdir().unwrap();
        let mut db = SqliteStore::open(dir.path()).unwrap();
        let loaded = load(&mut db, now, QuarterStyle::Financial).unwrap();
        let q = loaded.quarter;
        assert!(loaded.new);
        assert_eq!(q, Quarter::containing(now, QuarterStyle::Financial));
        assert!(q.start() <= now && now <= q.end());
        let within = |t: i64, what: &str| {
            assert!(
                q.start() <= t && t <= q.end().min(now),
                "{what} at {t}, outside {q} up to {now}"
            );
        };

        // Mail Check: current codes only; a check of the same records
        // again finds nothing new and nothing fixed
        let known = known_codes();
        assert!(known.contains("dmarc.policy_none") && known.contains("tls.cert_expired"));
        for (_, _, domain) in DEMO_TENANTS {
            let history = db.mailcheck_history(domain, 10).unwrap();
            assert!(!history.is_empty(), "{domain}");
            for c in &history {
                within(c.checked_at / 1000, "a Mail Check");
                for f in &c.findings {
                    assert!(known.contains(&f.code), "{domain}: unknown code {}", f.code);
                }
            }
            let mut again = history[0].clone();
            again.checked_at += 1000;
            let diff = db.save_mailcheck(&again).unwrap();
            assert!(diff.new.is_empty() && diff.fixed.is_empty(), "{diff:?}");
            let dmarc = db.dmarc_summary(domain).unwrap();
            assert!(dmarc.reports > 0, "{domain}");
            within(dmarc.first.unwrap(), "a DMARC report");
            within(dmarc.last.unwrap(), "a DMARC report");
        }

        // alerts: within the quarter, each of the detector's rules, and
        // the blocked queries counted in `feed.block` alerts, name by name
        let alerts = db.list_alerts(&AlertFilter::default()).unwrap();
        let rules: BTreeSet<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
        let expected: &[&str] = if spread {
            &["feed.block", "dga", "tunnel", "beacon"]
        } else {
            &["feed.block", "dga", "tunnel"]
        };
        for rule in expected {
            assert!(rules.contains(rule), "no {rule} alert: {rules:?}");
        }
        for a in &alerts {
            within(a.first_seen / 1000, "an alert");
            within(a.last_seen / 1000, "an alert");
        }
        for (tenant, _, _) in DEMO_TENANTS {
            let traffic = db.traffic_totals(Some(tenant), 0).unwrap();
            let blocked_names = db.top_blocked(Some(tenant), 0, 100).unwrap();
            let mut by_domain: BTreeMap<String, u64> = BTreeMap::new();
            for (_, name, n) in &blocked_names {
                *by_domain
                    .entry(parapet_detect::rules::registrable(name).to_string())
                    .or_default() += n;
            }
            let feed_alerts: BTreeMap<String, u64> = alerts
                .iter()
                .filter(|a| a.tenant == tenant && a.rule == "feed.block")
                .map(|a| (a.domain.clone(), a.count))
                .collect();
            assert_eq!(by_domain, feed_alerts, "{tenant}");
            assert_eq!(
                traffic[0].blocked,
                feed_alerts.values().sum::<u64>(),
                "{tenant}"
            );
        }
        let hourly = db.hourly_traffic(None, 0).unwrap();
        assert!(!hourly.is_empty());
        for h in &hourly {
            within(h.hour, "traffic");
        }

        // the report of the demo quarter has every section
        let r = report_input(
            &mut db,
            "north",
            q,
            &Settings::default(),
            &Council {
                name: "Northshire Council".into(),
                mail_domains: vec!["northshire.test".into()],
                profile: Default::default(),
            },
            ReportText {
                committee: "Audit Committee".into(),
                exemption: None,
            },
            now,
        )
        .unwrap();
        assert!(!r.kpi.register.is_empty(), "KPIs with no estate");
        assert!(r.kpi.kpis.iter().any(|k| k.denominator > 0));
        assert!(!r.kpi.incidents.is_empty(), "no incident");
        assert!(
            r.pdns
                .as_ref()
                .is_some_and(|p| p.queries > 0 && p.blocked > 0)
        );
        assert!(r.mail.is_some(), "no Mail Check");
        assert!(!r.alerts.is_empty(), "no alerts");
        for i in db.incidents(Some("north")).unwrap() {
            within(i.detected_at, "the incident");
        }

        // loaded once: a second start finds it and names the same quarter
        let again = load(&mut db, now + 60, QuarterStyle::Financial).unwrap();
        assert!(!again.new);
        assert_eq!(again.quarter, q);
        assert!(again.summary().contains(&q.to_string()));
        assert_eq!(
            db.list_alerts(&AlertFilter::default()).unwrap().len(),
            alerts.len()
        );
    }

    #[test]
    fn the_demo_is_one_consistent_quarter() {
        let now = parapet_store::unix_millis(SystemTime::now()) / 1000;
        let q = Quarter::containing(now, QuarterStyle::Financial);
        check_demo_at(now, now - q.start() >= 2 * 86_400);
    }

    #[test]
    fn a_demo_loaded_in_a_quarters_first_hour_stays_in_it() {
        // 2026-10-01T01:00Z, an hour into 2026-27-Q3
        check_demo_at(1_790_816_400, false);
    }
}
