//! Version 1 of a frozen quarter: the keys `serde_json` gave the working
//! `KpiReport` when quarters were first frozen, plus `"version": 1`.
//!
//! Every field name here is a stored key: renaming one breaks the quarters
//! already frozen (the test reading testdata/assurance/ catches it). A
//! change of meaning or shape is a new version, not an edit here. The
//! conversions destructure the working types, so a field added to them
//! fails to compile here until someone decides whether it is stored.
//!
//! v1 keeps every key of the unversioned bodies, `frozen` included, and
//! adds only `version`. New quarters are frozen as [`super::v2`]; this
//! module only reads (a v1 quarter has no "no data" state: its figures
//! read back exactly as they were tabled).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kpi::{
    CeRule, DeviceEvidence, EvidenceFile, ExceptionEntry, FindingEvidence, IncidentEntry, Kpi,
    KpiReport, Rag, RegisterEntry, Settings,
};

/// One tenant's quarter as frozen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotV1 {
    pub tenant: String,
    pub quarter: String,
    pub period: String,
    pub snapshot_date: String,
    pub computed_at: String,
    /// False when written (the report was computed, not read); kept because
    /// builds from before versioning require the key.
    pub frozen: bool,
    pub settings: SettingsV1,
    pub kpis: Vec<KpiV1>,
    pub cyber_essentials: Vec<CeRuleV1>,
    pub evidence_files: Vec<EvidenceFileV1>,
    pub register: Vec<RegisterEntryV1>,
    pub incidents: Vec<IncidentEntryV1>,
    pub exceptions: Vec<ExceptionEntryV1>,
}

/// The settings the figures were computed with. Unlike the config's
/// `[assurance]` table, every key is required: a stored quarter records
/// the values it used, not whatever the defaults are when it is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsV1 {
    pub active_days: i64,
    pub signature_days: i64,
    pub av_telemetry_days: i64,
    pub patch_days: i64,
    pub assessed_days: i64,
    pub evidence_days: i64,
    pub servers_av_amber_count: u64,
    pub servers_av_amber_percent: f64,
    pub workstations_av_green_percent: f64,
    pub workstations_av_amber_percent: f64,
    pub servers_patch_amber_percent: f64,
    pub servers_patch_amber_max_days: i64,
    pub workstations_patch_green_percent: f64,
    pub workstations_patch_amber_percent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RagV1 {
    #[serde(rename = "green")]
    Green,
    #[serde(rename = "amber")]
    Amber,
    #[serde(rename = "red")]
    Red,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiV1 {
    pub id: u8,
    pub name: String,
    pub definition: String,
    pub count: u64,
    pub denominator: u64,
    pub percent: f64,
    pub excepted: u64,
    pub rag: RagV1,
    pub threshold: String,
    pub ce_figure: u64,
    pub ce_compliant: bool,
    pub previous: Option<u64>,
    pub change: Option<i64>,
    pub direction: String,
    pub breakdown: BTreeMap<String, u64>,
    pub evidence: Vec<DeviceEvidenceV1>,
    pub excepted_evidence: Vec<DeviceEvidenceV1>,
    pub not_assessed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEvidenceV1 {
    pub device: String,
    pub class: String,
    pub reasons: Vec<String>,
    pub details: Vec<String>,
    pub findings: Vec<FindingEvidenceV1>,
    pub identifiers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingEvidenceV1 {
    pub key: String,
    pub title: String,
    pub cves: Vec<String>,
    pub severity: String,
    pub first_detected: String,
    pub fix_released: String,
    pub fix_basis: String,
    pub days_past_fix: i64,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CeRuleV1 {
    pub id: String,
    pub rule: String,
    pub level: String,
    pub pass: bool,
    pub devices: Vec<String>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceFileV1 {
    pub file: String,
    pub source: String,
    pub sha256: String,
    pub as_of: String,
    pub assets: u64,
    pub findings: u64,
    pub stale: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterEntryV1 {
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
pub struct IncidentEntryV1 {
    pub reference: String,
    pub detected: String,
    pub category: String,
    pub impact: String,
    pub outcome: String,
    pub status_at_t: String,
    pub ico_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExceptionEntryV1 {
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

/// Converts every element of a list.
pub(super) fn all<'a, A: 'a, B: From<&'a A>>(v: &'a [A]) -> Vec<B> {
    v.iter().map(B::from).collect()
}

pub(super) fn into_all<A, B: From<A>>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(B::from).collect()
}

impl From<SnapshotV1> for KpiReport {
    fn from(s: SnapshotV1) -> Self {
        let SnapshotV1 {
            tenant,
            quarter,
            period,
            snapshot_date,
            computed_at,
            frozen,
            settings,
            kpis,
            cyber_essentials,
            evidence_files,
            register,
            incidents,
            exceptions,
        } = s;
        Self {
            tenant,
            quarter,
            period,
            snapshot_date,
            computed_at,
            frozen,
            freeze: None,
            settings: settings.into(),
            kpis: into_all(kpis),
            cyber_essentials: into_all(cyber_essentials),
            evidence_files: into_all(evidence_files),
            register: into_all(register),
            incidents: into_all(incidents),
            exceptions: into_all(exceptions),
        }
    }
}

impl From<&Settings> for SettingsV1 {
    fn from(s: &Settings) -> Self {
        let Settings {
            active_days,
            signature_days,
            av_telemetry_days,
            patch_days,
            assessed_days,
            evidence_days,
            servers_av_amber_count,
            servers_av_amber_percent,
            workstations_av_green_percent,
            workstations_av_amber_percent,
            servers_patch_amber_percent,
            servers_patch_amber_max_days,
            workstations_patch_green_percent,
            workstations_patch_amber_percent,
        } = *s;
        Self {
            active_days,
            signature_days,
            av_telemetry_days,
            patch_days,
            assessed_days,
            evidence_days,
            servers_av_amber_count,
            servers_av_amber_percent,
            workstations_av_green_percent,
            workstations_av_amber_percent,
            servers_patch_amber_percent,
            servers_patch_amber_max_days,
            workstations_patch_green_percent,
            workstations_patch_amber_percent,
        }
    }
}

impl From<SettingsV1> for Settings {
    fn from(s: SettingsV1) -> Self {
        let SettingsV1 {
            active_days,
            signature_days,
            av_telemetry_days,
            patch_days,
            assessed_days,
            evidence_days,
            servers_av_amber_count,
            servers_av_amber_percent,
            workstations_av_green_percent,
            workstations_av_amber_percent,
            servers_patch_amber_percent,
            servers_patch_amber_max_days,
            workstations_patch_green_percent,
            workstations_patch_amber_percent,
        } = s;
        Self {
            active_days,
            signature_days,
            av_telemetry_days,
            patch_days,
            assessed_days,
            evidence_days,
            servers_av_amber_count,
            servers_av_amber_percent,
            workstations_av_green_percent,
            workstations_av_amber_percent,
            servers_patch_amber_percent,
            servers_patch_amber_max_days,
            workstations_patch_green_percent,
            workstations_patch_amber_percent,
        }
    }
}

impl From<RagV1> for Rag {
    fn from(r: RagV1) -> Self {
        match r {
            RagV1::Green => Self::Green,
            RagV1::Amber => Self::Amber,
            RagV1::Red => Self::Red,
        }
    }
}

impl From<KpiV1> for Kpi {
    fn from(k: KpiV1) -> Self {
        let KpiV1 {
            id,
            name,
            definition,
            count,
            denominator,
            percent,
            excepted,
            rag,
            threshold,
            ce_figure,
            ce_compliant,
            previous,
            change,
            direction,
            breakdown,
            evidence,
            excepted_evidence,
            not_assessed,
        } = k;
        Self {
            id,
            name,
            definition,
            count,
            denominator,
            percent,
            excepted,
            rag: rag.into(),
            missing: None,
            threshold,
            ce_figure,
            ce_compliant,
            previous,
            change,
            direction,
            breakdown,
            evidence: into_all(evidence),
            excepted_evidence: into_all(excepted_evidence),
            not_assessed,
        }
    }
}

impl From<&DeviceEvidence> for DeviceEvidenceV1 {
    fn from(e: &DeviceEvidence) -> Self {
        let DeviceEvidence {
            device,
            class,
            reasons,
            details,
            findings,
            identifiers,
        } = e;
        Self {
            device: device.clone(),
            class: class.clone(),
            reasons: reasons.clone(),
            details: details.clone(),
            findings: all(findings),
            identifiers: identifiers.clone(),
        }
    }
}

impl From<DeviceEvidenceV1> for DeviceEvidence {
    fn from(e: DeviceEvidenceV1) -> Self {
        let DeviceEvidenceV1 {
            device,
            class,
            reasons,
            details,
            findings,
            identifiers,
        } = e;
        Self {
            device,
            class,
            reasons,
            details,
            findings: into_all(findings),
            identifiers,
        }
    }
}

impl From<&FindingEvidence> for FindingEvidenceV1 {
    fn from(f: &FindingEvidence) -> Self {
        let FindingEvidence {
            key,
            title,
            cves,
            severity,
            first_detected,
            fix_released,
            fix_basis,
            days_past_fix,
            source,
        } = f;
        Self {
            key: key.clone(),
            title: title.clone(),
            cves: cves.clone(),
            severity: severity.clone(),
            first_detected: first_detected.clone(),
            fix_released: fix_released.clone(),
            fix_basis: fix_basis.clone(),
            days_past_fix: *days_past_fix,
            source: source.clone(),
        }
    }
}

impl From<FindingEvidenceV1> for FindingEvidence {
    fn from(f: FindingEvidenceV1) -> Self {
        let FindingEvidenceV1 {
            key,
            title,
            cves,
            severity,
            first_detected,
            fix_released,
            fix_basis,
            days_past_fix,
            source,
        } = f;
        Self {
            key,
            title,
            cves,
            severity,
            first_detected,
            fix_released,
            fix_basis,
            days_past_fix,
            source,
        }
    }
}

impl From<CeRuleV1> for CeRule {
    fn from(c: CeRuleV1) -> Self {
        let CeRuleV1 {
            id,
            rule,
            level,
            pass,
            devices,
            detail,
        } = c;
        Self {
            id,
            rule,
            level,
            pass,
            decided: true,
            devices,
            detail,
        }
    }
}

impl From<&EvidenceFile> for EvidenceFileV1 {
    fn from(f: &EvidenceFile) -> Self {
        let EvidenceFile {
            file,
            source,
            sha256,
            as_of,
            assets,
            findings,
            stale,
        } = f;
        Self {
            file: file.clone(),
            source: source.clone(),
            sha256: sha256.clone(),
            as_of: as_of.clone(),
            assets: *assets,
            findings: *findings,
            stale: *stale,
        }
    }
}

impl From<EvidenceFileV1> for EvidenceFile {
    fn from(f: EvidenceFileV1) -> Self {
        let EvidenceFileV1 {
            file,
            source,
            sha256,
            as_of,
            assets,
            findings,
            stale,
        } = f;
        Self {
            file,
            source,
            sha256,
            as_of,
            assets,
            findings,
            stale,
        }
    }
}

impl From<&RegisterEntry> for RegisterEntryV1 {
    fn from(d: &RegisterEntry) -> Self {
        let RegisterEntry {
            device,
            class,
            class_rule,
            os,
            last_seen,
            in_scope,
            managed,
            sources,
            merged_by,
            conflicts,
            identifiers,
        } = d;
        Self {
            device: device.clone(),
            class: class.clone(),
            class_rule: class_rule.clone(),
            os: os.clone(),
            last_seen: last_seen.clone(),
            in_scope: *in_scope,
            managed: *managed,
            sources: sources.clone(),
            merged_by: merged_by.clone(),
            conflicts: conflicts.clone(),
            identifiers: identifiers.clone(),
        }
    }
}

impl From<RegisterEntryV1> for RegisterEntry {
    fn from(d: RegisterEntryV1) -> Self {
        let RegisterEntryV1 {
            device,
            class,
            class_rule,
            os,
            last_seen,
            in_scope,
            managed,
            sources,
            merged_by,
            conflicts,
            identifiers,
        } = d;
        Self {
            device,
            class,
            class_rule,
            os,
            last_seen,
            in_scope,
            managed,
            sources,
            merged_by,
            conflicts,
            identifiers,
        }
    }
}

impl From<&IncidentEntry> for IncidentEntryV1 {
    fn from(i: &IncidentEntry) -> Self {
        let IncidentEntry {
            reference,
            detected,
            category,
            impact,
            outcome,
            status_at_t,
            ico_reference,
        } = i;
        Self {
            reference: reference.clone(),
            detected: detected.clone(),
            category: category.clone(),
            impact: impact.clone(),
            outcome: outcome.clone(),
            status_at_t: status_at_t.clone(),
            ico_reference: ico_reference.clone(),
        }
    }
}

impl From<IncidentEntryV1> for IncidentEntry {
    fn from(i: IncidentEntryV1) -> Self {
        let IncidentEntryV1 {
            reference,
            detected,
            category,
            impact,
            outcome,
            status_at_t,
            ico_reference,
        } = i;
        Self {
            reference,
            detected,
            category,
            impact,
            outcome,
            status_at_t,
            ico_reference,
        }
    }
}

impl From<&ExceptionEntry> for ExceptionEntryV1 {
    fn from(e: &ExceptionEntry) -> Self {
        let ExceptionEntry {
            device,
            finding,
            scope,
            kind,
            reason,
            owner,
            approver,
            expires,
            in_force,
        } = e;
        Self {
            device: device.clone(),
            finding: finding.clone(),
            scope: scope.clone(),
            kind: kind.clone(),
            reason: reason.clone(),
            owner: owner.clone(),
            approver: approver.clone(),
            expires: expires.clone(),
            in_force: *in_force,
        }
    }
}

impl From<ExceptionEntryV1> for ExceptionEntry {
    fn from(e: ExceptionEntryV1) -> Self {
        let ExceptionEntryV1 {
            device,
            finding,
            scope,
            kind,
            reason,
            owner,
            approver,
            expires,
            in_force,
        } = e;
        Self {
            device,
            finding,
            scope,
            kind,
            reason,
            owner,
            approver,
            expires,
            in_force,
        }
    }
}
