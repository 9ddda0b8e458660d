//! Mail data: DMARC aggregate and TLS-RPT reports as imported, the
//! summaries and DKIM selectors read from them, and each domain's Mail Check
//! results with what changed between checks. Mail Check itself
//! (parapet-mailcheck) only parses and probes; what it finds is kept here.

use std::time::SystemTime;

use crate::StoreError;

/// A DMARC aggregate report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcReportRow {
    pub org_name: String,
    pub report_id: String,
    /// The domain of `policy_published`.
    pub domain: String,
    /// Unix seconds.
    pub begin: i64,
    pub end: i64,
    pub policy: String,
    /// The file it came from.
    pub source: String,
    pub records: Vec<DmarcRecordRow>,
}

/// One row of an aggregate report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcRecordRow {
    pub source_ip: String,
    pub count: u64,
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    pub header_from: String,
    pub envelope_from: Option<String>,
    /// `domain/selector=result ...`
    pub dkim: String,
    /// `domain/scope=result ...`
    pub spf: String,
}

/// A TLS-RPT report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReportRow {
    pub org_name: String,
    pub report_id: String,
    pub begin: i64,
    pub end: i64,
    pub source: String,
    pub results: Vec<TlsResultRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsResultRow {
    pub policy_type: String,
    pub policy_domain: String,
    pub successful: u64,
    pub failed: u64,
    /// `result-type sending-ip receiving-mx count`, one per line.
    pub failures: String,
}

/// One Mail Check of one domain, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailCheckRow {
    pub domain: String,
    /// Unix milliseconds.
    pub checked_at: i64,
    pub worst: Option<String>,
    pub findings: Vec<MailFinding>,
    /// The JSON report, raw records included.
    pub report: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFinding {
    pub severity: String,
    pub code: String,
    pub message: String,
}

/// What changed since the previous check of the same domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailCheckDiff {
    /// When the previous check ran (unix milliseconds); `None` for the first.
    pub previous_at: Option<i64>,
    pub new: Vec<MailFinding>,
    pub fixed: Vec<MailFinding>,
}

/// Whether an import added a report or found it already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    New,
    Duplicate,
}

/// What a domain's DMARC reports say, per sending source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmarcSummary {
    pub domain: String,
    pub reports: u64,
    pub messages: u64,
    /// Messages that passed DMARC (DKIM or SPF aligned).
    pub dmarc_pass: u64,
    pub dkim_aligned: u64,
    pub spf_aligned: u64,
    /// Unix seconds: the span the reports cover.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Busiest first.
    pub sources: Vec<SourceSummary>,
}

/// One day of a domain's DMARC reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DmarcDay {
    /// Unix seconds of the UTC midnight starting the day.
    pub day: i64,
    pub messages: u64,
    pub dmarc_pass: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSummary {
    pub source_ip: String,
    pub messages: u64,
    pub dmarc_pass: u64,
    pub dkim_aligned: u64,
    pub spf_aligned: u64,
    pub quarantined: u64,
    pub rejected: u64,
    /// Who the IP is, once identified (`None`: not looked up yet).
    pub sender: Option<DmarcSenderRow>,
}

impl SourceSummary {
    /// Messages from this source that failed DMARC.
    pub fn failed(&self) -> u64 {
        self.messages.saturating_sub(self.dmarc_pass)
    }

    /// The service named from a forward-confirmed PTR, if any.
    pub fn service(&self) -> Option<&str> {
        self.sender.as_ref()?.service.as_deref()
    }

    /// An "unknown sender": no service named, and at least `threshold`
    /// messages (at least one) failing DMARC: spoofing, or a supplier
    /// nobody has set up.
    pub fn unknown_sender(&self, threshold: u64) -> bool {
        self.service().is_none() && self.failed() >= threshold.max(1)
    }
}

/// What reverse DNS said about a DMARC source IP, kept so each IP is looked
/// up once (`parapet_mailcheck::senders`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmarcSenderRow {
    pub source_ip: String,
    /// The PTR name (the forward-confirmed one if any is).
    pub ptr: Option<String>,
    /// The PTR name's A/AAAA records hold the IP.
    pub confirmed: bool,
    /// The registrable domain of `ptr`.
    pub base_domain: Option<String>,
    /// Named only from a confirmed PTR.
    pub service: Option<String>,
    pub service_type: Option<String>,
    /// Unix milliseconds.
    pub checked_at: i64,
}

/// A domain's DMARC sources grouped by who sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceGroup {
    /// The service name; for a confirmed PTR with no service, its base
    /// domain; else `Unidentified`.
    pub name: String,
    pub service_type: Option<String>,
    /// Named from the service map.
    pub identified: bool,
    pub messages: u64,
    pub dmarc_pass: u64,
    /// Busiest first.
    pub sources: Vec<SourceSummary>,
}

/// The group of sources that reverse DNS does not vouch for.
pub const UNIDENTIFIED: &str = "Unidentified";

impl DmarcSummary {
    /// The sources grouped by service, busiest group first, the
    /// unidentified last.
    pub fn by_service(&self) -> Vec<ServiceGroup> {
        let mut groups: Vec<ServiceGroup> = Vec::new();
        for s in &self.sources {
            let (name, kind, identified) = match &s.sender {
                Some(d) if d.service.is_some() => (
                    d.service.clone().unwrap_or_default(),
                    d.service_type.clone(),
                    true,
                ),
                Some(d) if d.confirmed && d.base_domain.is_some() => {
                    (d.base_domain.clone().unwrap_or_default(), None, false)
                }
                _ => (UNIDENTIFIED.to_string(), None, false),
            };
            let at = match groups.iter().position(|g| g.name == name) {
                Some(i) => i,
                None => {
                    groups.push(ServiceGroup {
                        name,
                        service_type: kind,
                        identified,
                        ..ServiceGroup::default()
                    });
                    groups.len() - 1
                }
            };
            let g = &mut groups[at];
            g.messages += s.messages;
            g.dmarc_pass += s.dmarc_pass;
            g.sources.push(s.clone());
        }
        groups.sort_by_key(|g| (g.name == UNIDENTIFIED, std::cmp::Reverse(g.messages)));
        groups
    }
}

/// Mail reports and Mail Check results. Each call is one transaction.
pub trait MailStore: Send {
    /// Stores a DMARC aggregate report and its rows in one transaction,
    /// unless a report with the same organisation and id is already stored.
    fn import_dmarc(
        &mut self,
        report: &DmarcReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError>;

    /// Stores a TLS-RPT report, de-duplicated by organisation and id.
    fn import_tlsrpt(
        &mut self,
        report: &TlsReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError>;

    /// Sources, volumes and alignment from a domain's stored reports.
    fn dmarc_summary(&mut self, domain: &str) -> Result<DmarcSummary, StoreError>;

    /// A domain's DMARC results per UTC day of the reports' start, oldest
    /// first: the mail page's pass-rate chart.
    fn dmarc_daily(&mut self, domain: &str) -> Result<Vec<DmarcDay>, StoreError>;

    /// The stored identities of those of `ips` that have one.
    fn dmarc_senders(&mut self, ips: &[String]) -> Result<Vec<DmarcSenderRow>, StoreError>;

    /// Stores (or replaces) sender identities, one transaction.
    fn save_dmarc_senders(&mut self, rows: &[DmarcSenderRow]) -> Result<(), StoreError>;

    /// DKIM selectors seen signing mail for `domain` in stored DMARC reports.
    fn dkim_selectors(&mut self, domain: &str) -> Result<Vec<String>, StoreError>;

    /// Stores a Mail Check result and says what changed since the last
    /// check of the same domain.
    fn save_mailcheck(&mut self, check: &MailCheckRow) -> Result<MailCheckDiff, StoreError>;

    /// A domain's stored Mail Checks, newest first.
    fn mailcheck_history(
        &mut self,
        domain: &str,
        limit: usize,
    ) -> Result<Vec<MailCheckRow>, StoreError>;
}
