//! The five committee KPIs and the Cyber Essentials checks, computed from
//! the register as it stood at a quarter's end (the snapshot date T).
//! Definitions: docs/assurance.md (from ../shared/assurance-kpis.md, with
//! the changes listed there).

use std::collections::BTreeMap;

use crate::model::{AssetException, AssetImport, ImportMeta, Incident, VulnDef};
use serde::{Deserialize, Serialize};

use crate::parse::Source;
use crate::quarter::Quarter;
use crate::register::{Class, Device, file_name, normalise_host, reconcile, retired};
use parapet_core::calendar::{format_date, format_datetime};

const DAY: i64 = 86_400;

/// Tunable parts of the definitions (`[assurance]` in the config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// A device seen by any source within this many days of T is active.
    pub active_days: i64,
    /// Signatures older than this at T fail (MP-3).
    pub signature_days: i64,
    /// AV telemetry older than this while the device is otherwise seen fails (MP-4).
    pub av_telemetry_days: i64,
    /// High/critical fixes must be applied within this many days of release (CE: 14).
    pub patch_days: i64,
    /// A finding must have been seen by an assessment within this many days of T.
    pub assessed_days: i64,
    /// Inputs taken more than this many days before T are flagged as stale evidence.
    pub evidence_days: i64,
    /// RAG thresholds.
    pub servers_av_amber_count: u64,
    pub servers_av_amber_percent: f64,
    pub workstations_av_green_percent: f64,
    pub workstations_av_amber_percent: f64,
    pub servers_patch_amber_percent: f64,
    /// Amber for KPI 4 also requires no finding more than this many days past fix release.
    pub servers_patch_amber_max_days: i64,
    pub workstations_patch_green_percent: f64,
    pub workstations_patch_amber_percent: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            active_days: 30,
            signature_days: 7,
            av_telemetry_days: 7,
            patch_days: 14,
            assessed_days: 30,
            evidence_days: 7,
            servers_av_amber_count: 2,
            servers_av_amber_percent: 1.0,
            workstations_av_green_percent: 1.0,
            workstations_av_amber_percent: 3.0,
            servers_patch_amber_percent: 2.0,
            servers_patch_amber_max_days: 30,
            workstations_patch_green_percent: 2.0,
            workstations_patch_amber_percent: 5.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rag {
    Green,
    Amber,
    Red,
    /// Nothing to measure (no devices of the class) or no source covered
    /// the quarter: shown grey and worded "no data", never as green.
    #[serde(rename = "no_data")]
    NoData,
}

impl Rag {
    pub fn as_str(self) -> &'static str {
        match self {
            Rag::Green => "green",
            Rag::Amber => "amber",
            Rag::Red => "red",
            Rag::NoData => "no_data",
        }
    }

    /// The status in words, for people (never colour alone).
    pub fn words(self) -> &'static str {
        match self {
            Rag::NoData => "no data",
            r => r.as_str(),
        }
    }
}

/// A device counted (or excepted) in a KPI, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvidence {
    pub device: String,
    pub class: String,
    /// Reason codes (N/D/S/R for AV; `finding`/`unsupported-os` for patching).
    pub reasons: Vec<String>,
    /// Plain words, with the source and time of the evidence.
    pub details: Vec<String>,
    pub findings: Vec<FindingEvidence>,
    /// Other names and addresses (exempt appendix only).
    pub identifiers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingEvidence {
    pub key: String,
    pub title: String,
    pub cves: Vec<String>,
    pub severity: String,
    pub first_detected: String,
    /// The date the 14 days run from, and what it is.
    pub fix_released: String,
    pub fix_basis: String,
    pub days_past_fix: i64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kpi {
    pub id: u8,
    pub name: String,
    pub definition: String,
    pub count: u64,
    pub denominator: u64,
    pub percent: f64,
    /// Devices that would count but are excepted in the register.
    pub excepted: u64,
    pub rag: Rag,
    /// With `rag` `no_data`: what data is missing, in plain words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
    pub threshold: String,
    /// The strict Cyber Essentials figure (exceptions do not count as compliant).
    pub ce_figure: u64,
    pub ce_compliant: bool,
    pub previous: Option<u64>,
    pub change: Option<i64>,
    /// `improving`, `worse`, `unchanged`, `first quarter` or `no data`.
    pub direction: String,
    pub breakdown: BTreeMap<String, u64>,
    pub evidence: Vec<DeviceEvidence>,
    pub excepted_evidence: Vec<DeviceEvidence>,
    /// In-scope devices the figure cannot vouch for (no recent assessment).
    pub not_assessed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CeRule {
    pub id: String,
    pub rule: String,
    /// `auto-fail`, `fail` or `warning` when not met.
    pub level: String,
    /// Met. False also when the check cannot be decided (see `decided`).
    pub pass: bool,
    /// False when the data cannot decide the check (no devices, or no
    /// source of the kind it needs): "cannot be decided", never a pass.
    pub decided: bool,
    pub devices: Vec<String>,
    pub detail: String,
}

impl CeRule {
    /// The result in words.
    pub fn result(&self) -> &'static str {
        if !self.decided {
            "cannot be decided"
        } else if self.pass {
            "pass"
        } else {
            "fail"
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceFile {
    pub file: String,
    pub source: String,
    pub sha256: String,
    pub as_of: String,
    pub assets: u64,
    pub findings: u64,
    /// Taken more than `evidence_days` before T.
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterEntry {
    pub device: String,
    pub class: String,
    pub class_rule: String,
    pub os: Option<String>,
    pub last_seen: String,
    pub in_scope: bool,
    pub managed: bool,
    pub sources: Vec<String>,
    pub merged_by: Vec<String>,
    pub conflicts: Vec<String>,
    pub identifiers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentEntry {
    pub reference: String,
    pub detected: String,
    pub category: String,
    pub impact: String,
    pub outcome: String,
    pub status_at_t: String,
    pub ico_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionEntry {
    pub device: String,
    pub finding: Option<String>,
    pub scope: String,
    pub kind: String,
    pub reason: String,
    pub owner: String,
    pub approver: String,
    pub expires: String,
    pub in_force: bool,
}

/// Everything `parapet kpi` reports for one tenant and quarter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiReport {
    pub tenant: String,
    pub quarter: String,
    pub period: String,
    pub snapshot_date: String,
    pub computed_at: String,
    /// Set when the figures were read from a frozen snapshot.
    pub frozen: bool,
    /// Which frozen version, when and by whom (set with `frozen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<FreezeInfo>,
    pub settings: Settings,
    pub kpis: Vec<Kpi>,
    pub cyber_essentials: Vec<CeRule>,
    pub evidence_files: Vec<EvidenceFile>,
    pub register: Vec<RegisterEntry>,
    pub incidents: Vec<IncidentEntry>,
    pub exceptions: Vec<ExceptionEntry>,
}

/// A frozen version of a quarter: its number (1 for the first freeze, one
/// more after each reopen), when and by whom it was frozen, and whether it
/// was reopened since (then a later version, or live figures, replace it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreezeInfo {
    pub version: u32,
    /// RFC 3339, UTC.
    pub frozen_at: String,
    pub frozen_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopened_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopened_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopen_reason: Option<String>,
}

/// What the KPIs are computed from.
pub struct Inputs<'a> {
    pub tenant: &'a str,
    pub quarter: Quarter,
    pub imports: &'a [(ImportMeta, AssetImport)],
    pub incidents: &'a [Incident],
    pub exceptions: &'a [AssetException],
    pub settings: &'a Settings,
    /// Counts of the previous quarter's KPIs 1–5, when known.
    pub previous: Option<[u64; 5]>,
    /// Protective DNS or detection data covers some of the quarter (KPI 1
    /// is `no_data` without it when the incident register was never used).
    pub detection_covered: bool,
    pub now: i64,
}

impl Inputs<'_> {
    /// The snapshot time T: the quarter's end, or now while it runs (a
    /// current quarter's figures are as they stand, never dated ahead).
    pub fn t(&self) -> i64 {
        self.quarter.end().min(self.now.max(self.quarter.start()))
    }
}

fn pct(n: u64, d: u64) -> f64 {
    if d == 0 {
        0.0
    } else {
        (n as f64 * 10_000.0 / d as f64).round() / 100.0
    }
}

fn high(v: &VulnDef) -> bool {
    let label_high = v.label.as_deref().is_some_and(|l| {
        let l = l.to_ascii_lowercase();
        l == "high" || l == "critical" || l == "important" || l == "urgent"
    });
    // CE: either measure (take the higher); no severity at all counts as high
    v.score.is_some_and(|s| s >= 7.0) || label_high || (v.score.is_none() && v.label.is_none())
}

fn severity_text(v: &VulnDef) -> String {
    match (v.score, v.label.as_deref()) {
        (Some(s), Some(l)) => format!("{l} (CVSS v3 {s:.1})"),
        (Some(s), None) => format!("CVSS v3 {s:.1}"),
        (None, Some(l)) => l.to_string(),
        (None, None) => "none given (treated as high)".into(),
    }
}

/// Each import's findings, by the asset they are on.
struct FindingIndex(std::collections::HashMap<i64, Vec<Vec<u32>>>);

impl FindingIndex {
    fn new(imports: &[(ImportMeta, AssetImport)]) -> Self {
        let mut m = std::collections::HashMap::new();
        for (meta, imp) in imports {
            let mut per: Vec<Vec<u32>> = vec![Vec::new(); imp.assets.len()];
            for (i, f) in imp.findings.iter().enumerate() {
                if let Some(v) = per.get_mut(f.asset as usize) {
                    v.push(i as u32);
                }
            }
            m.insert(meta.id, per);
        }
        Self(m)
    }

    fn of(&self, import: i64, asset: u32) -> &[u32] {
        self.0
            .get(&import)
            .and_then(|p| p.get(asset as usize))
            .map_or(&[], Vec::as_slice)
    }
}

struct OpenFinding<'a> {
    def: &'a VulnDef,
    source: Source,
    first: i64,
    last: i64,
    file: String,
}

/// Findings open on a device at T: seen by some assessment, and not
/// omitted by a later credentialed assessment from the same source kind.
fn open_findings<'a>(d: &Device<'a>, t: i64, index: &FindingIndex) -> Vec<OpenFinding<'a>> {
    // (source, key) -> (def of the latest sighting, first, last, file)
    let mut seen: BTreeMap<(Source, &str), OpenFinding<'a>> = BTreeMap::new();
    let mut last_cred: BTreeMap<Source, i64> = BTreeMap::new();
    for s in &d.sightings {
        if let Some(scan) = s.obs.scan
            && scan.credentialed
            && s.at <= t
        {
            let e = last_cred.entry(s.source).or_insert(i64::MIN);
            *e = (*e).max(s.at);
        }
    }
    for s in &d.sightings {
        let imp = s.data;
        for f in index
            .of(s.import.id, s.seq)
            .iter()
            .map(|&i| &imp.findings[i as usize])
        {
            let Some(def) = imp.vulns.get(f.vuln as usize) else {
                continue;
            };
            let e = seen
                .entry((s.source, def.key.as_str()))
                .or_insert(OpenFinding {
                    def,
                    source: s.source,
                    first: s.at,
                    last: s.at,
                    file: file_name(&s.import.path).to_string(),
                });
            e.first = e.first.min(s.at);
            if s.at >= e.last {
                e.last = s.at;
                e.def = def;
                e.file = file_name(&s.import.path).to_string();
            }
        }
    }
    seen.into_values()
        .filter(|f| last_cred.get(&f.source).is_none_or(|&c| c <= f.last))
        .collect()
}

fn excepted(
    exceptions: &[AssetException],
    t: i64,
    device: &Device<'_>,
    scope: &str,
    finding: Option<&str>,
) -> Option<String> {
    let names = device.hostnames();
    exceptions
        .iter()
        .filter(|e| e.created_at <= t && e.expires_at >= t)
        .filter(|e| normalise_host(&e.asset).is_some_and(|a| names.contains(&a)))
        .find(|e| match (&e.finding, finding) {
            (Some(k), Some(f)) => k == f,
            (None, _) => e.scope == scope || e.scope == "all",
            (Some(_), None) => false,
        })
        .map(|e| {
            format!(
                "{} ({}; owner {}, approved by {}, expires {})",
                e.kind,
                e.reason,
                e.owner,
                e.approver,
                format_date(e.expires_at)
            )
        })
}

struct AvVerdict {
    reasons: Vec<String>,
    details: Vec<String>,
}

fn av_check(d: &Device<'_>, t: i64, s: &Settings) -> AvVerdict {
    let avs = d.av();
    let mut v = AvVerdict {
        reasons: Vec::new(),
        details: Vec::new(),
    };
    if avs.is_empty() {
        v.reasons.push("N".into());
        v.details.push(
            "no anti-virus/EDR telemetry from any source: unknown counts as unprotected".into(),
        );
        return v;
    }
    let seen_elsewhere = d
        .sightings
        .iter()
        .filter(|x| x.obs.av.is_none())
        .map(|x| x.at)
        .max()
        .unwrap_or(i64::MIN);
    let mut best: Option<AvVerdict> = None;
    for (sight, av) in avs {
        let mut r = AvVerdict {
            reasons: Vec::new(),
            details: Vec::new(),
        };
        let cite = sight.cite();
        let product = av.product.clone().unwrap_or_else(|| "anti-virus".into());
        let reported = av.reported_at.unwrap_or(sight.at);
        if !av.installed {
            r.reasons.push("N".into());
            r.details
                .push(format!("{product} not installed/onboarded ({cite})"));
        } else {
            if av.active == Some(false) {
                r.reasons.push("D".into());
                r.details.push(format!(
                    "{product} real-time protection off or {} ({cite})",
                    av.mode.as_deref().unwrap_or("not active")
                ));
            }
            match (av.signatures_at, av.signatures_current) {
                (Some(at), _) if t - at > s.signature_days * DAY => {
                    r.reasons.push("S".into());
                    r.details.push(format!(
                        "signatures last updated {} — {} days before the snapshot date ({cite})",
                        format_date(at),
                        (t - at) / DAY
                    ));
                }
                (None, Some(false)) => {
                    r.reasons.push("S".into());
                    r.details
                        .push(format!("{product} reports signatures out of date ({cite})"));
                }
                _ => {}
            }
            if t - reported > s.av_telemetry_days * DAY
                && t - seen_elsewhere <= s.av_telemetry_days * DAY
            {
                r.reasons.push("R".into());
                r.details.push(format!(
                    "anti-virus last reported {} while the device was seen on {} ({cite})",
                    format_date(reported),
                    format_date(seen_elsewhere)
                ));
            }
        }
        if r.reasons.is_empty() {
            return r; // one healthy product protects the device
        }
        if best
            .as_ref()
            .is_none_or(|b| r.reasons.len() < b.reasons.len())
        {
            best = Some(r);
        }
    }
    let b = best.expect("at least one");
    v.reasons = b.reasons;
    v.details = b.details;
    v
}

struct PatchVerdict {
    findings: Vec<FindingEvidence>,
    excepted_findings: Vec<(FindingEvidence, String)>,
    unsupported_os: Option<String>,
    max_days_past: i64,
}

fn patch_check(d: &Device<'_>, inp: &Inputs<'_>, t: i64, index: &FindingIndex) -> PatchVerdict {
    let s = inp.settings;
    let mut v = PatchVerdict {
        findings: Vec::new(),
        excepted_findings: Vec::new(),
        unsupported_os: None,
        max_days_past: 0,
    };
    if let Some(eol) = d.os_end_of_life().filter(|e| *e < t) {
        v.unsupported_os = Some(format!(
            "{} — vendor support ended {} ({})",
            d.os.as_deref().unwrap_or("?"),
            format_date(eol),
            d.os_source.as_deref().unwrap_or("?")
        ));
        v.max_days_past = v.max_days_past.max((t - eol) / DAY);
    }
    for f in open_findings(d, t, index) {
        let def = f.def;
        if f.last < t - s.assessed_days * DAY {
            continue; // not seen by an assessment recently: listed as not assessed
        }
        if !(def.unsupported || high(def) && def.fix_available) {
            continue;
        }
        let (basis, what) = match (def.fix_released, def.vuln_published) {
            (Some(r), _) => (r, "fix release date (scanner patch publication date)"),
            (None, Some(p)) => (p, "vulnerability publication date (no fix date given)"),
            (None, None) => (f.first, "first detected (no fix or publication date given)"),
        };
        let days = (t - basis) / DAY;
        if t - basis <= s.patch_days * DAY {
            continue;
        }
        let ev = FindingEvidence {
            key: def.key.clone(),
            title: def.title.clone(),
            cves: def.cves.clone(),
            severity: if def.unsupported {
                "unsupported software".into()
            } else {
                severity_text(def)
            },
            first_detected: format_date(f.first),
            fix_released: format_date(basis),
            fix_basis: what.into(),
            days_past_fix: days,
            source: format!("{} ({})", f.file, f.source),
        };
        if let Some(why) = excepted(inp.exceptions, t, d, "patching", Some(&def.key)) {
            v.excepted_findings.push((ev, why));
        } else {
            v.max_days_past = v.max_days_past.max(days);
            v.findings.push(ev);
        }
    }
    v.findings.sort_by(|a, b| {
        b.days_past_fix
            .cmp(&a.days_past_fix)
            .then(a.key.cmp(&b.key))
    });
    v
}

fn ident(d: &Device<'_>) -> Vec<String> {
    d.identifiers()
        .into_iter()
        .filter(|i| i != &d.name)
        .collect()
}

fn direction(now: u64, prev: Option<u64>) -> (Option<i64>, String) {
    match prev {
        None => (None, "first quarter".into()),
        Some(p) => {
            let c = now as i64 - p as i64;
            (
                Some(c),
                match c.cmp(&0) {
                    std::cmp::Ordering::Less => "improving",
                    std::cmp::Ordering::Equal => "unchanged",
                    std::cmp::Ordering::Greater => "worse",
                }
                .into(),
            )
        }
    }
}

pub const DEFINITIONS: [(&str, &str); 5] = [
    (
        "Successful cyber-attacks / breaches",
        "Incidents in the incident register detected in the quarter whose outcome is successful: confirmed unauthorised access, malware or ransomware executed and not contained automatically, a personal-data breach caused by an attack, or service disruption from an attack. Blocked attempts, failed log-ons, scans and spam are not counted.",
    ),
    (
        "Servers without anti-virus",
        "In-scope active servers (seen by any source in the 30 days to the snapshot date, not disposed or in stock) where no approved anti-virus/EDR is installed (N), real-time protection is off or the product is passive/disabled with no other active product (D), signatures are more than 7 days old at the snapshot date (S), or anti-virus telemetry is more than 7 days old while other sources still see the server (R). A device with no anti-virus telemetry at all counts (unknown is not protected).",
    ),
    (
        "Workstations without anti-virus",
        "The same tests as KPI 2 on in-scope active workstations (desktops, laptops, tablets, thin clients).",
    ),
    (
        "Servers with unpatched vulnerabilities",
        "In-scope active servers with at least one open finding that is high or critical (CVSS v3 >= 7.0, or vendor High/Critical, or no severity given), has a vendor fix, and whose fix was released more than 14 days before the snapshot date, seen by an assessment in the 30 days to the snapshot date and not excepted; or that run an operating system or software past vendor support. A finding is open until a later credentialed scan by the same tool no longer reports it.",
    ),
    (
        "Workstations with unpatched vulnerabilities",
        "The same tests as KPI 4 on in-scope active workstations.",
    ),
];

/// Marks a KPI as having no data: grey, worded "no data", and not a
/// Cyber Essentials pass, with what is missing in plain words.
fn no_data(k: &mut Kpi, missing: String) {
    k.rag = Rag::NoData;
    k.ce_compliant = false;
    // no trend from a figure that measured nothing
    k.change = None;
    k.direction = "no data".into();
    k.missing = Some(missing);
}

fn rag_percent(p: f64, green: f64, amber: f64) -> Rag {
    if p <= green {
        Rag::Green
    } else if p <= amber {
        Rag::Amber
    } else {
        Rag::Red
    }
}

#[allow(clippy::too_many_arguments)]
fn kpi(
    id: u8,
    count: u64,
    denominator: u64,
    excepted: u64,
    rag: Rag,
    threshold: String,
    previous: Option<[u64; 5]>,
    breakdown: BTreeMap<String, u64>,
    evidence: Vec<DeviceEvidence>,
    excepted_evidence: Vec<DeviceEvidence>,
    not_assessed: Vec<String>,
) -> Kpi {
    let prev = previous.map(|p| p[id as usize - 1]);
    let (change, direction) = direction(count, prev);
    Kpi {
        id,
        name: DEFINITIONS[id as usize - 1].0.into(),
        definition: DEFINITIONS[id as usize - 1].1.into(),
        count,
        denominator,
        percent: pct(count, denominator),
        excepted,
        rag,
        missing: None,
        threshold,
        ce_figure: count + excepted,
        ce_compliant: count + excepted == 0,
        previous: prev,
        change,
        direction,
        breakdown,
        evidence,
        excepted_evidence,
        not_assessed,
    }
}

/// Computes the report. `imports` are the tenant's imports taken at or
/// before the quarter's end, oldest first.
pub fn compute(inp: &Inputs<'_>) -> KpiReport {
    let s = inp.settings;
    let q = inp.quarter;
    let t = inp.t();
    let reg = reconcile(inp.imports, t);
    let index = FindingIndex::new(inp.imports);
    let mut ce = CeFailures::default();
    let mut kpis = vec![breaches_kpi(inp, q.start(), t)];
    for (class, av_id, patch_id) in [(Class::Server, 2u8, 4u8), (Class::Workstation, 3, 5)] {
        kpis.extend(class_kpis(
            inp, &reg, &index, class, av_id, patch_id, &mut ce,
        ));
    }
    kpis.sort_by_key(|k| k.id);
    let cyber_essentials = ce_rules(&reg, t, s, ce, &kpis);
    KpiReport {
        tenant: inp.tenant.to_string(),
        quarter: q.to_string(),
        period: q.months(),
        snapshot_date: format_date(t),
        computed_at: format_datetime(inp.now),
        frozen: false,
        freeze: None,
        settings: s.clone(),
        kpis,
        cyber_essentials,
        evidence_files: evidence_files(inp.imports, t, s),
        register: register_entries(&reg, t, s),
        incidents: incident_entries(inp.incidents, t),
        exceptions: exception_entries(inp.exceptions, t),
    }
}

/// In scope at T: not retired, and seen by some source within `active_days`.
fn in_scope(d: &Device<'_>, t: i64, s: &Settings) -> bool {
    !d.lifecycle.as_deref().is_some_and(retired) && t - d.last_seen <= s.active_days * DAY
}

/// KPI 1: successful attacks detected in the quarter, amber while an
/// unsuccessful one is still under investigation at T.
fn breaches_kpi(inp: &Inputs<'_>, start: i64, t: i64) -> Kpi {
    let in_quarter: Vec<&Incident> = inp
        .incidents
        .iter()
        .filter(|i| i.detected_at >= start && i.detected_at <= t)
        .collect();
    let breaches: Vec<&&Incident> = in_quarter
        .iter()
        .filter(|i| i.outcome == "successful")
        .collect();
    let investigating = inp
        .incidents
        .iter()
        .filter(|i| {
            i.detected_at <= t
                && i.outcome != "successful"
                && (i.status != "closed" || i.closed_at.is_some_and(|c| c > t))
        })
        .count() as u64;
    let rag1 = if !breaches.is_empty() {
        Rag::Red
    } else if investigating > 0 {
        Rag::Amber
    } else {
        Rag::Green
    };
    let mut b1 = BTreeMap::new();
    for i in &breaches {
        *b1.entry(i.category.clone()).or_insert(0) += 1;
    }
    b1.insert("under investigation at T".into(), investigating);
    let ev1 = breaches
        .iter()
        .map(|i| DeviceEvidence {
            device: i.reference.clone(),
            class: "incident".into(),
            reasons: vec![i.category.clone()],
            details: vec![format!(
                "detected {}; impact: {}; status: {}{}",
                format_date(i.detected_at),
                i.impact,
                i.status,
                i.ico_reference
                    .as_ref()
                    .map(|r| format!("; ICO ref {r}"))
                    .unwrap_or_default()
            )],
            findings: Vec::new(),
            identifiers: Vec::new(),
        })
        .collect();
    let mut k = kpi(
        1,
        breaches.len() as u64,
        in_quarter.len() as u64,
        0,
        rag1,
        "green 0; amber: none successful but one or more under investigation; red 1 or more".into(),
        inp.previous,
        b1,
        ev1,
        Vec::new(),
        Vec::new(),
    );
    // an empty register only says "no breaches" when something was
    // watching: a register in use, or detection covering the quarter
    if inp.incidents.is_empty() && !inp.detection_covered {
        no_data(
            &mut k,
            "the incident register has never been used and no protective DNS or detection data covers the quarter".into(),
        );
    }
    k
}

/// The devices failing each Cyber Essentials check, gathered while KPIs
/// 2–5 walk the estate, for [`ce_rules`] to list once both classes are done.
#[derive(Default)]
struct CeFailures {
    av: Vec<String>,
    patch: Vec<String>,
    os: Vec<String>,
    software: Vec<String>,
    not_assessed: Vec<String>,
}

/// One KPI's devices as the walk over its class finds them.
#[derive(Default)]
struct Tally {
    evidence: Vec<DeviceEvidence>,
    excepted: Vec<DeviceEvidence>,
    breakdown: BTreeMap<String, u64>,
    /// The most days past a fix among the counted devices (KPIs 4–5 amber).
    worst_days: i64,
}

/// KPIs 2–5 for one class: its anti-virus KPI (`av_id`) and its patching
/// KPI (`patch_id`), over the class's in-scope devices.
fn class_kpis(
    inp: &Inputs<'_>,
    reg: &[Device<'_>],
    index: &FindingIndex,
    class: Class,
    av_id: u8,
    patch_id: u8,
    ce: &mut CeFailures,
) -> [Kpi; 2] {
    let s = inp.settings;
    let t = inp.t();
    let pop: Vec<&Device<'_>> = reg
        .iter()
        .filter(|d| d.class == class && in_scope(d, t, s))
        .collect();
    let n = pop.len() as u64;
    let mut av = Tally::default();
    let mut patch = Tally::default();
    let mut not_assessed = Vec::new();
    for d in &pop {
        count_av(inp, d, class, &mut av, ce);
        let pv = patch_check(d, inp, t, index);
        if let Some(line) = not_assessed_line(d, t, s) {
            not_assessed.push(line);
            ce.not_assessed.push(d.name.clone());
        }
        count_patching(inp, d, class, pv, &mut patch, ce);
    }
    let av_count = av.evidence.len() as u64;
    let (av_rag, av_thr) = av_rag(class, av_count, pct(av_count, n), s);
    let p_count = patch.evidence.len() as u64;
    let (p_rag, p_thr) = patch_rag(class, p_count, pct(p_count, n), patch.worst_days, s);
    let av_excepted = av.excepted.len() as u64;
    let p_excepted = patch.excepted.len() as u64;
    // a scanner saw some device of the class within the assessment window
    let scanned = pop.iter().any(|d| {
        d.sightings
            .iter()
            .any(|x| x.source.is_scanner() && x.at <= t && t - x.at <= s.assessed_days * DAY)
    });
    let mut out = [
        kpi(
            av_id,
            av_count,
            n,
            av_excepted,
            av_rag,
            av_thr,
            inp.previous,
            av.breakdown,
            av.evidence,
            av.excepted,
            Vec::new(),
        ),
        kpi(
            patch_id,
            p_count,
            n,
            p_excepted,
            p_rag,
            p_thr,
            inp.previous,
            patch.breakdown,
            patch.evidence,
            patch.excepted,
            not_assessed,
        ),
    ];
    let what = class.as_str();
    if n == 0 {
        for k in &mut out {
            no_data(
                k,
                format!("no in-scope {what}s were in the asset register at the snapshot date"),
            );
        }
    } else if p_count == 0 && !scanned {
        no_data(
            &mut out[1],
            format!(
                "no {what} had a vulnerability assessment in the {} days to the snapshot date",
                s.assessed_days
            ),
        );
    }
    out
}

/// KPIs 2–3 for one device: counted, excepted beside the figure, or healthy.
fn count_av(
    inp: &Inputs<'_>,
    d: &Device<'_>,
    class: Class,
    tally: &mut Tally,
    ce: &mut CeFailures,
) {
    let t = inp.t();
    let v = av_check(d, t, inp.settings);
    if v.reasons.is_empty() {
        return;
    }
    let e = DeviceEvidence {
        device: d.name.clone(),
        class: class.as_str().into(),
        reasons: v.reasons.clone(),
        details: v.details,
        findings: Vec::new(),
        identifiers: ident(d),
    };
    ce.av.push(d.name.clone());
    if let Some(why) = excepted(inp.exceptions, t, d, "av", None) {
        let mut e = e;
        e.details.push(format!("excepted: {why}"));
        tally.excepted.push(e);
    } else {
        for r in &v.reasons {
            *tally.breakdown.entry(r.clone()).or_insert(0u64) += 1;
        }
        tally.evidence.push(e);
    }
}

/// The not-assessed line for a device without a credentialed scan within
/// `assessed_days` of T (SU-7), saying whether an uncredentialed one saw it.
fn not_assessed_line(d: &Device<'_>, t: i64, s: &Settings) -> Option<String> {
    let assessed = d.sightings.iter().any(|x| {
        x.source.is_scanner()
            && x.obs.scan.is_some_and(|sc| sc.credentialed)
            && t - x.at <= s.assessed_days * DAY
    });
    if assessed {
        return None;
    }
    let unc = d
        .sightings
        .iter()
        .any(|x| x.source.is_scanner() && t - x.at <= s.assessed_days * DAY);
    Some(format!(
        "{}{}",
        d.name,
        if unc {
            " (uncredentialed scan only)"
        } else {
            " (no scan)"
        }
    ))
}

/// KPIs 4–5 for one device, from its patch verdict: counted, excepted
/// beside the figure (the whole device, or only some of its findings), or
/// clean. Also records the device against the Cyber Essentials checks it fails.
fn count_patching(
    inp: &Inputs<'_>,
    d: &Device<'_>,
    class: Class,
    pv: PatchVerdict,
    tally: &mut Tally,
    ce: &mut CeFailures,
) {
    let t = inp.t();
    if pv.unsupported_os.is_some() {
        ce.os.push(d.name.clone());
    }
    if pv
        .findings
        .iter()
        .any(|f| f.severity == "unsupported software")
    {
        ce.software.push(d.name.clone());
    }
    let failing = pv.unsupported_os.is_some() || !pv.findings.is_empty();
    if !failing && pv.excepted_findings.is_empty() {
        return;
    }
    let mut reasons = Vec::new();
    let mut details = Vec::new();
    if let Some(os) = &pv.unsupported_os {
        reasons.push("unsupported-os".to_string());
        details.push(format!("unsupported operating system: {os}"));
    }
    if !pv.findings.is_empty() {
        reasons.push("finding".into());
        details.push(format!(
            "{} qualifying finding(s), oldest {} days past the fix",
            pv.findings.len(),
            pv.findings.first().map_or(0, |f| f.days_past_fix)
        ));
    }
    let mut e = DeviceEvidence {
        device: d.name.clone(),
        class: class.as_str().into(),
        reasons,
        details,
        findings: pv.findings.clone(),
        identifiers: ident(d),
    };
    let device_exc = excepted(inp.exceptions, t, d, "patching", None);
    if failing || device_exc.is_some() {
        ce.patch.push(d.name.clone());
    }
    if let Some(why) = device_exc.filter(|_| failing) {
        e.details.push(format!("excepted: {why}"));
        tally.excepted.push(e);
    } else if failing {
        for r in &e.reasons {
            *tally.breakdown.entry(r.clone()).or_insert(0u64) += 1;
        }
        *tally.breakdown.entry("findings".into()).or_insert(0) += pv.findings.len() as u64;
        tally.worst_days = tally.worst_days.max(pv.max_days_past);
        tally.evidence.push(e);
    } else {
        // only excepted findings: listed beside the KPI
        let mut e = e;
        e.findings = pv
            .excepted_findings
            .iter()
            .map(|(f, _)| f.clone())
            .collect();
        e.details = pv
            .excepted_findings
            .iter()
            .map(|(f, why)| format!("{}: excepted: {why}", f.key))
            .collect();
        ce.patch.push(d.name.clone());
        tally.excepted.push(e);
    }
}

/// KPIs 2–3 RAG and the threshold in words: a count or share for servers,
/// a share for workstations.
fn av_rag(class: Class, count: u64, percent: f64, s: &Settings) -> (Rag, String) {
    if class == Class::Server {
        let amber = count <= s.servers_av_amber_count || percent <= s.servers_av_amber_percent;
        (
            if count == 0 {
                Rag::Green
            } else if amber {
                Rag::Amber
            } else {
                Rag::Red
            },
            format!(
                "green 0; amber up to {} servers or {}%; red otherwise",
                s.servers_av_amber_count, s.servers_av_amber_percent
            ),
        )
    } else {
        (
            rag_percent(
                percent,
                s.workstations_av_green_percent,
                s.workstations_av_amber_percent,
            ),
            format!(
                "green up to {}%; amber up to {}%; red above",
                s.workstations_av_green_percent, s.workstations_av_amber_percent
            ),
        )
    }
}

/// KPIs 4–5 RAG and the threshold in words: servers are amber only while
/// no counted device is more than `servers_patch_amber_max_days` past a fix.
fn patch_rag(
    class: Class,
    count: u64,
    percent: f64,
    worst_days: i64,
    s: &Settings,
) -> (Rag, String) {
    if class == Class::Server {
        (
            if count == 0 {
                Rag::Green
            } else if percent <= s.servers_patch_amber_percent
                && worst_days <= s.servers_patch_amber_max_days
            {
                Rag::Amber
            } else {
                Rag::Red
            },
            format!(
                "green 0 (Cyber Essentials compliant); amber up to {}% of servers with none more than {} days past the fix; red otherwise",
                s.servers_patch_amber_percent, s.servers_patch_amber_max_days
            ),
        )
    } else {
        (
            rag_percent(
                percent,
                s.workstations_patch_green_percent,
                s.workstations_patch_amber_percent,
            ),
            format!(
                "green up to {}%; amber up to {}%; red above",
                s.workstations_patch_green_percent, s.workstations_patch_amber_percent
            ),
        )
    }
}

/// One check. `decidable`: the data has what the check needs; a check
/// some device fails is decided either way.
fn ce_rule(
    (id, text, level): (&str, &str, &str),
    mut devices: Vec<String>,
    detail: String,
    decidable: bool,
) -> CeRule {
    devices.sort();
    devices.dedup();
    let decided = decidable || !devices.is_empty();
    CeRule {
        id: id.into(),
        rule: text.into(),
        level: level.into(),
        pass: decided && devices.is_empty(),
        decided,
        devices,
        detail,
    }
}

/// The Cyber Essentials rules the data decides: the failures KPIs 2–5
/// gathered, and the register's own data-quality checks.
fn ce_rules(reg: &[Device<'_>], t: i64, s: &Settings, ce: CeFailures, kpis: &[Kpi]) -> Vec<CeRule> {
    let in_scope_all: Vec<&Device<'_>> = reg.iter().filter(|d| in_scope(d, t, s)).collect();
    let unmanaged: Vec<String> = in_scope_all
        .iter()
        .filter(|d| !d.managed)
        .map(|d| d.name.clone())
        .collect();
    let stale: Vec<String> = reg
        .iter()
        .filter(|d| {
            d.managed
                && !d.lifecycle.as_deref().is_some_and(retired)
                && t - d.last_seen > s.active_days * DAY
        })
        .map(|d| format!("{} (last seen {})", d.name, format_date(d.last_seen)))
        .collect();
    let conflicts: Vec<String> = in_scope_all
        .iter()
        .filter(|d| !d.conflicts.is_empty())
        .map(|d| d.name.clone())
        .collect();
    let unclassified: Vec<String> = in_scope_all
        .iter()
        .filter(|d| d.class == Class::Unclassified)
        .map(|d| d.name.clone())
        .collect();
    // what each check needs: measured KPIs, or devices at all
    let measured = |ids: [u8; 2]| {
        kpis.iter()
            .any(|k| ids.contains(&k.id) && k.rag != Rag::NoData)
    };
    let devices = kpis
        .iter()
        .any(|k| (k.id == 2 || k.id == 3) && k.denominator > 0);
    vec![
        ce_rule(
            (
                "SU-3/SU-4",
                "High and critical updates applied within 14 days of release (servers and workstations)",
                "auto-fail",
            ),
            ce.patch,
            format!(
                "findings with a fix released more than {} days before {}",
                s.patch_days,
                format_date(t)
            ),
            measured([4, 5]),
        ),
        ce_rule(
            ("SU-1", "No operating system past vendor support", "fail"),
            ce.os,
            "built-in end-of-support table (docs/assurance.md)".into(),
            devices,
        ),
        ce_rule(
            ("SU-2", "No unsupported software installed", "fail"),
            ce.software,
            "scanner end-of-life findings and osquery software inventory".into(),
            measured([4, 5]),
        ),
        ce_rule(
            (
                "MP-1..4",
                "Malware protection installed, active, current and reporting on every server and workstation",
                "fail",
            ),
            ce.av,
            format!(
                "signatures at most {} days old; telemetry at most {} days old",
                s.signature_days, s.av_telemetry_days
            ),
            measured([2, 3]),
        ),
        ce_rule(
            (
                "AS-2",
                "Every device seen on the network is in the managed inventory",
                "fail",
            ),
            unmanaged,
            "devices seen only by vulnerability scanners".into(),
            !in_scope_all.is_empty(),
        ),
        ce_rule(
            (
                "AS-3",
                "No inventory device silent for more than 30 days",
                "warning",
            ),
            stale,
            "stale devices are left out of the KPIs and listed here".into(),
            !reg.is_empty(),
        ),
        ce_rule(
            (
                "AS-4",
                "Sources agree on each device's class and name",
                "warning",
            ),
            conflicts,
            "conflicts are listed in the register".into(),
            !in_scope_all.is_empty(),
        ),
        ce_rule(
            (
                "SU-7",
                "Every server and workstation had a credentialed vulnerability assessment in the last 30 days",
                "warning",
            ),
            ce.not_assessed,
            "evidence freshness".into(),
            devices,
        ),
        ce_rule(
            ("AS-1", "Every in-scope device has a class", "warning"),
            unclassified,
            "unclassified devices are a data-quality exception".into(),
            !in_scope_all.is_empty(),
        ),
    ]
}

/// The evidence chain: each input file, its hash, and whether it was
/// taken too long before T.
fn evidence_files(
    imports: &[(ImportMeta, AssetImport)],
    t: i64,
    s: &Settings,
) -> Vec<EvidenceFile> {
    imports
        .iter()
        .map(|(m, _)| EvidenceFile {
            file: file_name(&m.path).to_string(),
            source: m.source.clone(),
            sha256: m.sha256.clone(),
            as_of: format_date(m.as_of),
            assets: m.assets,
            findings: m.findings,
            stale: t - m.as_of > s.evidence_days * DAY,
        })
        .collect()
}

fn register_entries(reg: &[Device<'_>], t: i64, s: &Settings) -> Vec<RegisterEntry> {
    reg.iter()
        .map(|d| RegisterEntry {
            device: d.name.clone(),
            class: d.class.as_str().into(),
            class_rule: d.class_rule.clone(),
            os: d.os.clone(),
            last_seen: format_date(d.last_seen),
            in_scope: in_scope(d, t, s),
            managed: d.managed,
            sources: d.sightings.iter().map(|x| x.cite()).collect(),
            merged_by: d.merged_by.clone(),
            conflicts: d.conflicts.clone(),
            identifiers: ident(d),
        })
        .collect()
}

/// Incidents detected by T, with their status as it stood at T.
fn incident_entries(incidents: &[Incident], t: i64) -> Vec<IncidentEntry> {
    incidents
        .iter()
        .filter(|i| i.detected_at <= t)
        .map(|i| IncidentEntry {
            reference: i.reference.clone(),
            detected: format_date(i.detected_at),
            category: i.category.clone(),
            impact: i.impact.clone(),
            outcome: i.outcome.clone(),
            status_at_t: if i.closed_at.is_some_and(|c| c <= t) {
                "closed".into()
            } else if i.status == "closed" {
                "open".into()
            } else {
                i.status.clone()
            },
            ico_reference: i.ico_reference.clone(),
        })
        .collect()
}

fn exception_entries(exceptions: &[AssetException], t: i64) -> Vec<ExceptionEntry> {
    exceptions
        .iter()
        .map(|e| ExceptionEntry {
            device: e.asset.clone(),
            finding: e.finding.clone(),
            scope: e.scope.clone(),
            kind: e.kind.clone(),
            reason: e.reason.clone(),
            owner: e.owner.clone(),
            approver: e.approver.clone(),
            expires: format_date(e.expires_at),
            in_force: e.created_at <= t && e.expires_at >= t,
        })
        .collect()
}

impl KpiReport {
    /// The five counts, for the next quarter's comparison.
    pub fn counts(&self) -> [u64; 5] {
        let mut c = [0; 5];
        for k in &self.kpis {
            c[k.id as usize - 1] = k.count;
        }
        c
    }
}
