//! The Northshire fixture estate (testdata/assets/estate/README.md) loaded
//! into an in-memory [`AssuranceStore`], so the crate's quarter freezing can
//! be tested without the store crate (which depends on this one).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;

use parapet_assurance::model::{AssetException, AssetImport, AssetImported, ImportMeta, Incident};
use parapet_assurance::parse::{Source, build_import};
use parapet_assurance::store::{AssuranceStore, SnapshotVersion};
use parapet_core::calendar::{parse_datetime, ymd_hms};

pub const TENANT: &str = "northshire";

/// The quarter the estate's figures are worked out for by hand
/// (crates/cli/tests/it/assets.rs).
pub const QUARTER: &str = "2021-22-Q2";

/// When the figures are computed: two weeks after the quarter ended, so
/// they are frozen, and fixed, so what is frozen does not depend on today.
pub fn now() -> i64 {
    ymd_hms(2021, 10, 15, 9, 0, 0).unwrap()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn date(s: &str) -> i64 {
    parse_datetime(s).unwrap()
}

/// What a store keeps, in memory; each call behaves as the SQLite store's.
#[derive(Default)]
pub struct MemStore {
    imports: Vec<(ImportMeta, AssetImport)>,
    incidents: Vec<Incident>,
    exceptions: Vec<AssetException>,
    /// `(tenant, quarter)` to its frozen versions, oldest first.
    pub snapshots: BTreeMap<(String, String), Vec<(SnapshotVersion, String)>>,
}

impl AssuranceStore for MemStore {
    type Error = Infallible;

    fn import_assets(
        &mut self,
        import: &AssetImport,
        now: i64,
    ) -> Result<AssetImported, Infallible> {
        if let Some((m, _)) = self
            .imports
            .iter()
            .find(|(m, _)| m.tenant == import.tenant && m.sha256 == import.sha256)
        {
            return Ok(AssetImported::Duplicate(m.id));
        }
        let id = self.imports.len() as i64 + 1;
        let meta = ImportMeta {
            id,
            tenant: import.tenant.clone(),
            source: import.source.clone(),
            path: import.path.clone(),
            sha256: import.sha256.clone(),
            as_of: import.as_of,
            imported_at: now,
            assets: import.assets.len() as u64,
            findings: import.findings.len() as u64,
        };
        self.imports.push((meta, import.clone()));
        Ok(AssetImported::New(id))
    }

    fn asset_imports(&mut self, tenant: &str, until: i64) -> Result<Vec<ImportMeta>, Infallible> {
        let mut v: Vec<ImportMeta> = self
            .imports
            .iter()
            .map(|(m, _)| m)
            .filter(|m| m.tenant == tenant && m.as_of <= until)
            .cloned()
            .collect();
        v.sort_by_key(|m| (m.as_of, m.id));
        Ok(v)
    }

    fn load_import(&mut self, id: i64) -> Result<AssetImport, Infallible> {
        let (_, imp) = self
            .imports
            .iter()
            .find(|(m, _)| m.id == id)
            .expect("the import was listed by asset_imports");
        Ok(imp.clone())
    }

    fn add_incident(&mut self, incident: &Incident, now: i64) -> Result<i64, Infallible> {
        let id = self.incidents.len() as i64 + 1;
        self.incidents.push(Incident {
            id,
            created_at: now,
            ..incident.clone()
        });
        Ok(id)
    }

    fn incidents(&mut self, tenant: Option<&str>) -> Result<Vec<Incident>, Infallible> {
        let mut v: Vec<Incident> = self
            .incidents
            .iter()
            .filter(|i| tenant.is_none_or(|t| i.tenant == t))
            .cloned()
            .collect();
        v.sort_by_key(|i| std::cmp::Reverse((i.detected_at, i.id)));
        Ok(v)
    }

    fn close_incident(&mut self, id: i64, at: i64) -> Result<Incident, Infallible> {
        let i = self
            .incidents
            .iter_mut()
            .find(|i| i.id == id)
            .expect("a known incident");
        i.status = "closed".into();
        i.closed_at = i.closed_at.or(Some(at));
        Ok(i.clone())
    }

    fn add_exception(&mut self, exception: &AssetException, from: i64) -> Result<i64, Infallible> {
        let id = self.exceptions.len() as i64 + 1;
        self.exceptions.push(AssetException {
            id,
            created_at: from,
            ..exception.clone()
        });
        Ok(id)
    }

    fn exceptions(&mut self, tenant: &str) -> Result<Vec<AssetException>, Infallible> {
        Ok(self
            .exceptions
            .iter()
            .filter(|e| e.tenant == tenant)
            .cloned()
            .collect())
    }

    fn kpi_snapshot(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Option<(SnapshotVersion, String)>, Infallible> {
        Ok(self
            .snapshots
            .get(&(tenant.to_string(), quarter.to_string()))
            .and_then(|v| v.last())
            .filter(|(v, _)| v.reopened_at.is_none())
            .cloned())
    }

    fn kpi_snapshot_version(
        &mut self,
        tenant: &str,
        quarter: &str,
        version: u32,
    ) -> Result<Option<(SnapshotVersion, String)>, Infallible> {
        Ok(self
            .snapshots
            .get(&(tenant.to_string(), quarter.to_string()))
            .and_then(|v| v.iter().find(|(v, _)| v.version == version))
            .cloned())
    }

    fn kpi_versions(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Vec<SnapshotVersion>, Infallible> {
        Ok(self
            .snapshots
            .get(&(tenant.to_string(), quarter.to_string()))
            .map(|v| v.iter().map(|(v, _)| v.clone()).collect())
            .unwrap_or_default())
    }

    fn freeze_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        frozen_at: i64,
        frozen_by: &str,
        body: &str,
    ) -> Result<Option<u32>, Infallible> {
        let versions = self
            .snapshots
            .entry((tenant.to_string(), quarter.to_string()))
            .or_default();
        if versions
            .last()
            .is_some_and(|(v, _)| v.reopened_at.is_none())
        {
            return Ok(None);
        }
        let version = versions.len() as u32 + 1;
        versions.push((
            SnapshotVersion {
                version,
                frozen_at,
                frozen_by: frozen_by.to_string(),
                ..SnapshotVersion::default()
            },
            body.to_string(),
        ));
        Ok(Some(version))
    }

    fn reopen_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        at: i64,
        by: &str,
        reason: &str,
    ) -> Result<Option<u32>, Infallible> {
        let Some((v, _)) = self
            .snapshots
            .get_mut(&(tenant.to_string(), quarter.to_string()))
            .and_then(|v| v.last_mut())
            .filter(|(v, _)| v.reopened_at.is_none())
        else {
            return Ok(None);
        };
        v.reopened_at = Some(at);
        v.reopened_by = Some(by.to_string());
        v.reopen_reason = Some(reason.to_string());
        Ok(Some(v.version))
    }

    /// No DNS or alert data is kept here.
    fn detection_covered(&mut self, _: &str, _: i64, _: i64) -> Result<bool, Infallible> {
        Ok(false)
    }
}

/// The estate as the cli tests import it (crates/cli/tests/it/assets.rs):
/// the six exports, the two incidents, and the three exceptions of
/// `exceptions_are_shown_beside_the_kpi_not_inside_it`, so a report has
/// counted and excepted evidence, findings, a register, incidents and
/// exceptions (one not yet in force at the quarter's end).
pub fn northshire() -> MemStore {
    let mut s = MemStore::default();
    for (source, file) in [
        (Source::InventoryCsv, "inventory.csv"),
        (Source::DefenderCsv, "defender.csv"),
        (Source::Osquery, "osquery.json"),
        (Source::Nessus, "scan-2021-06.nessus"),
        (Source::Nessus, "scan-2021-09.nessus"),
        (Source::Openvas, "openvas-2021-09.xml"),
    ] {
        let path = format!("testdata/assets/estate/{file}");
        let bytes = std::fs::read(repo_root().join(&path)).unwrap();
        let imp = build_import(TENANT, source, &path, &bytes, None).unwrap();
        s.import_assets(&imp, now()).unwrap();
    }
    let incident = |reference: &str, detected: &str, category: &str, outcome: &str| Incident {
        tenant: TENANT.into(),
        reference: reference.into(),
        detected_at: date(detected),
        category: category.into(),
        outcome: outcome.into(),
        status: "closed".into(),
        ..Incident::default()
    };
    s.add_incident(
        &Incident {
            impact: "one mailbox compromised".into(),
            closed_at: Some(date("2021-08-20")),
            // a fictional reference: the breach was reported to the ICO
            ico_reference: Some("ICO-2021-0815".into()),
            ..incident("INC-2021-007", "2021-08-12", "phishing", "successful")
        },
        now(),
    )
    .unwrap();
    s.add_incident(
        &Incident {
            closed_at: Some(date("2021-09-03")),
            ..incident("INC-2021-008", "2021-09-03", "malware", "attempted")
        },
        now(),
    )
    .unwrap();
    let exception = |device: &str, finding: Option<&str>, scope: &str, kind: &str| AssetException {
        tenant: TENANT.into(),
        asset: device.into(),
        finding: finding.map(str::to_string),
        scope: scope.into(),
        kind: kind.into(),
        owner: "ICT".into(),
        ..AssetException::default()
    };
    for (e, from) in [
        (
            AssetException {
                reason: "SMB signing enforced by GPO; scanner false positive".into(),
                approver: "Head of ICT".into(),
                expires_at: date("2022-02-28"),
                ..exception(
                    "SRV-DC01",
                    Some("nessus:1005"),
                    "patching",
                    "compensating-control",
                )
            },
            "2021-09-01",
        ),
        (
            AssetException {
                reason: "EDR-only Linux policy".into(),
                approver: "CISO".into(),
                expires_at: date("2022-02-28"),
                ..exception("srv-app01.northshire.local", None, "av", "risk-accepted")
            },
            "2021-09-01",
        ),
        (
            AssetException {
                reason: "late".into(),
                approver: "CISO".into(),
                expires_at: date("2022-01-31"),
                ..exception("lt-0002", None, "av", "risk-accepted")
            },
            "2021-10-05",
        ),
    ] {
        s.add_exception(&e, date(from)).unwrap();
    }
    s
}
