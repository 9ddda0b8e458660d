//! Version 2 of a frozen quarter: v1's keys, less `frozen`, plus the "no
//! data" state: a KPI's `rag` may be `no_data` with `missing` saying what
//! data was missing, and a Cyber Essentials check has `decided` (false:
//! "cannot be decided"). The parts v2 did not change are stored as in v1,
//! with v1's types.
//!
//! As in v1, every field name is a stored key, and the conversions
//! destructure the working types so that a new field fails to compile here
//! until someone decides whether it is stored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::v1::{
    DeviceEvidenceV1, EvidenceFileV1, ExceptionEntryV1, IncidentEntryV1, RegisterEntryV1,
    SettingsV1, all, into_all,
};
use crate::kpi::{CeRule, Kpi, KpiReport, Rag};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotV2 {
    pub tenant: String,
    pub quarter: String,
    pub period: String,
    pub snapshot_date: String,
    pub computed_at: String,
    pub settings: SettingsV1,
    pub kpis: Vec<KpiV2>,
    pub cyber_essentials: Vec<CeRuleV2>,
    pub evidence_files: Vec<EvidenceFileV1>,
    pub register: Vec<RegisterEntryV1>,
    pub incidents: Vec<IncidentEntryV1>,
    pub exceptions: Vec<ExceptionEntryV1>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RagV2 {
    #[serde(rename = "green")]
    Green,
    #[serde(rename = "amber")]
    Amber,
    #[serde(rename = "red")]
    Red,
    #[serde(rename = "no_data")]
    NoData,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KpiV2 {
    pub id: u8,
    pub name: String,
    pub definition: String,
    pub count: u64,
    pub denominator: u64,
    pub percent: f64,
    pub excepted: u64,
    pub rag: RagV2,
    pub missing: Option<String>,
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
pub struct CeRuleV2 {
    pub id: String,
    pub rule: String,
    pub level: String,
    pub pass: bool,
    pub decided: bool,
    pub devices: Vec<String>,
    pub detail: String,
}

impl From<&KpiReport> for SnapshotV2 {
    fn from(r: &KpiReport) -> Self {
        // `frozen` and `freeze` describe where a report was read from, not
        // what it says: they are not stored
        let KpiReport {
            tenant,
            quarter,
            period,
            snapshot_date,
            computed_at,
            frozen: _,
            freeze: _,
            settings,
            kpis,
            cyber_essentials,
            evidence_files,
            register,
            incidents,
            exceptions,
        } = r;
        Self {
            tenant: tenant.clone(),
            quarter: quarter.clone(),
            period: period.clone(),
            snapshot_date: snapshot_date.clone(),
            computed_at: computed_at.clone(),
            settings: settings.into(),
            kpis: all(kpis),
            cyber_essentials: all(cyber_essentials),
            evidence_files: all(evidence_files),
            register: all(register),
            incidents: all(incidents),
            exceptions: all(exceptions),
        }
    }
}

impl From<SnapshotV2> for KpiReport {
    fn from(s: SnapshotV2) -> Self {
        let SnapshotV2 {
            tenant,
            quarter,
            period,
            snapshot_date,
            computed_at,
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
            frozen: false,
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

impl From<Rag> for RagV2 {
    fn from(r: Rag) -> Self {
        match r {
            Rag::Green => Self::Green,
            Rag::Amber => Self::Amber,
            Rag::Red => Self::Red,
            Rag::NoData => Self::NoData,
        }
    }
}

impl From<RagV2> for Rag {
    fn from(r: RagV2) -> Self {
        match r {
            RagV2::Green => Self::Green,
            RagV2::Amber => Self::Amber,
            RagV2::Red => Self::Red,
            RagV2::NoData => Self::NoData,
        }
    }
}

impl From<&Kpi> for KpiV2 {
    fn from(k: &Kpi) -> Self {
        let Kpi {
            id,
            name,
            definition,
            count,
            denominator,
            percent,
            excepted,
            rag,
            missing,
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
            id: *id,
            name: name.clone(),
            definition: definition.clone(),
            count: *count,
            denominator: *denominator,
            percent: *percent,
            excepted: *excepted,
            rag: (*rag).into(),
            missing: missing.clone(),
            threshold: threshold.clone(),
            ce_figure: *ce_figure,
            ce_compliant: *ce_compliant,
            previous: *previous,
            change: *change,
            direction: direction.clone(),
            breakdown: breakdown.clone(),
            evidence: all(evidence),
            excepted_evidence: all(excepted_evidence),
            not_assessed: not_assessed.clone(),
        }
    }
}

impl From<KpiV2> for Kpi {
    fn from(k: KpiV2) -> Self {
        let KpiV2 {
            id,
            name,
            definition,
            count,
            denominator,
            percent,
            excepted,
            rag,
            missing,
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
            missing,
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

impl From<&CeRule> for CeRuleV2 {
    fn from(c: &CeRule) -> Self {
        let CeRule {
            id,
            rule,
            level,
            pass,
            decided,
            devices,
            detail,
        } = c;
        Self {
            id: id.clone(),
            rule: rule.clone(),
            level: level.clone(),
            pass: *pass,
            decided: *decided,
            devices: devices.clone(),
            detail: detail.clone(),
        }
    }
}

impl From<CeRuleV2> for CeRule {
    fn from(c: CeRuleV2) -> Self {
        let CeRuleV2 {
            id,
            rule,
            level,
            pass,
            decided,
            devices,
            detail,
        } = c;
        Self {
            id,
            rule,
            level,
            pass,
            decided,
            devices,
            detail,
        }
    }
}
