//! The assurance model: asset and vulnerability observations as each
//! source file reported them, and the incident and exception registers.
//!
//! Observations are kept as imported, one row per asset per file, and never
//! merged in the database: the register (which observations are one device)
//! is recomputed from them, so a reconciliation rule can be improved without
//! losing evidence, and every figure can name the file and line behind it.
//! Times here are unix **seconds** (dates from exports rarely carry more).

/// One asset as one source file saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetObs {
    /// Where in the file: `line 12`, `ReportHost 3`, `result 7`.
    pub locator: String,
    pub hostname: Option<String>,
    pub fqdn: Option<String>,
    pub ips: Vec<String>,
    pub macs: Vec<String>,
    pub serial: Option<String>,
    /// A directory / MDM device id (Entra ID device id, Intune device id).
    pub device_id: Option<String>,
    pub os: Option<String>,
    /// The source's own device type (laptop, server, tablet...).
    pub device_type: Option<String>,
    pub owner: Option<String>,
    pub location: Option<String>,
    /// Lifecycle status from an inventory (active, disposed, in stock...).
    pub lifecycle: Option<String>,
    /// When the source last saw the device.
    pub last_seen: Option<i64>,
    /// Anti-virus / EDR state, from sources that report it.
    pub av: Option<AvObs>,
    /// A vulnerability assessment of this host, from scanners and agents.
    pub scan: Option<ScanObs>,
}

/// Anti-virus state as one source reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AvObs {
    pub product: Option<String>,
    /// A product is installed (onboarded, registered with Security Center).
    pub installed: bool,
    /// Real-time protection on and the product in active mode. `None` when
    /// the source does not say.
    pub active: Option<bool>,
    /// The source's own words for the mode/state (e.g. `Passive`, `Off`).
    pub mode: Option<String>,
    /// When signatures were last updated.
    pub signatures_at: Option<i64>,
    /// The source's verdict on signature currency, when it gives one.
    pub signatures_current: Option<bool>,
    /// When this AV telemetry was produced.
    pub reported_at: Option<i64>,
}

/// A vulnerability assessment of one host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanObs {
    pub at: i64,
    /// Authenticated scan or agent: absence of a finding means fixed.
    pub credentialed: bool,
}

/// A vulnerability (plugin, NVT, CVE) as defined in one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VulnDef {
    /// Stable identity within the source: `nessus:19506`, `openvas:1.3.6...`.
    pub key: String,
    pub title: String,
    /// CVSS v3 base score, when given.
    pub score: Option<f32>,
    /// The vendor's severity label (`Critical`, `High`, `Medium`...).
    pub label: Option<String>,
    pub cves: Vec<String>,
    /// A fix (patch, update, configuration change) exists.
    pub fix_available: bool,
    /// When the fix was released (Nessus `patch_publication_date`).
    pub fix_released: Option<i64>,
    /// When the vulnerability was published (CVE / advisory date).
    pub vuln_published: Option<i64>,
    /// The finding is unsupported (end-of-life) software.
    pub unsupported: bool,
    pub solution: Option<String>,
}

/// One finding: vulnerability `vuln` seen on asset `asset` (indices into
/// the import's lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingObs {
    pub asset: u32,
    pub vuln: u32,
    pub port: String,
}

/// One imported file, whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AssetImport {
    pub tenant: String,
    /// The source kind (`nessus`, `defender-csv`...).
    pub source: String,
    pub path: String,
    /// SHA-256 of the file's bytes, hex: the evidence chain.
    pub sha256: String,
    /// When the extract was taken (unix seconds).
    pub as_of: i64,
    pub assets: Vec<AssetObs>,
    pub vulns: Vec<VulnDef>,
    pub findings: Vec<FindingObs>,
}

/// A stored import, without its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportMeta {
    pub id: i64,
    pub tenant: String,
    pub source: String,
    pub path: String,
    pub sha256: String,
    pub as_of: i64,
    pub imported_at: i64,
    pub assets: u64,
    pub findings: u64,
}

/// Whether an import was stored or the same file was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetImported {
    New(i64),
    /// The same bytes were imported before for this tenant, as import `id`.
    Duplicate(i64),
}

/// An entry in the incident register.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub tenant: String,
    /// The council's own reference (e.g. `INC-2021-014`).
    pub reference: String,
    pub detected_at: i64,
    /// phishing, malware, ransomware, unauthorised-access, ddos, data-breach, other.
    pub category: String,
    pub impact: String,
    /// `successful` (a breach: counts in KPI 1) or `attempted`.
    pub outcome: String,
    /// `open`, `investigating` or `closed`.
    pub status: String,
    pub summary: String,
    pub ico_reference: Option<String>,
    /// The detection alert it was promoted from.
    pub alert_id: Option<i64>,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

impl Incident {
    /// An open incident promoted from a detection alert: its tenant, the
    /// reference `ALERT-{id}`, detected when the alert was first seen, the
    /// category `detection:{rule}` and a summary from its domain and
    /// reason. The command line and the alert page promote alike.
    pub fn from_alert(alert: &parapet_core::alert::Alert, outcome: &str) -> Self {
        Incident {
            tenant: alert.tenant.clone(),
            reference: format!("ALERT-{}", alert.id),
            detected_at: alert.first_seen.div_euclid(1000),
            category: format!("detection:{}", alert.rule),
            outcome: outcome.to_string(),
            status: "open".into(),
            summary: format!("{} — {} ({})", alert.domain, alert.reason, alert.rule),
            alert_id: Some(alert.id),
            ..Incident::default()
        }
    }
}

/// An entry in the exceptions register: risk accepted or a compensating
/// control, for one device or one finding on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetException {
    pub id: i64,
    pub tenant: String,
    /// The device, by host name (matched case-insensitively, domain stripped).
    pub asset: String,
    /// The vulnerability key (`nessus:19506`); `None` excepts the whole
    /// device within `scope`.
    pub finding: Option<String>,
    /// `av` (KPIs 2-3), `patching` (KPIs 4-5) or `all`.
    pub scope: String,
    /// `risk-accepted` or `compensating-control`.
    pub kind: String,
    pub reason: String,
    pub owner: String,
    pub approver: String,
    /// When it takes effect (`add_exception`'s `from`).
    pub created_at: i64,
    pub expires_at: i64,
}
