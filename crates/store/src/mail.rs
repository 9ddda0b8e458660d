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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSummary {
    pub source_ip: String,
    pub messages: u64,
    pub dmarc_pass: u64,
    pub dkim_aligned: u64,
    pub spf_aligned: u64,
    pub quarantined: u64,
    pub rejected: u64,
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
