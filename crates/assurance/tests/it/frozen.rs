//! Frozen quarters: what `quarter_kpis` stores for an ended quarter must
//! stay readable by every later build, and a body this build does not know
//! must be refused, never read as something else.

use parapet_assurance::frozen::{
    QuarterError, freeze_quarter, quarter_kpis, quarter_version, quarter_versions, reopen_quarter,
};
use parapet_assurance::kpi::{KpiReport, Rag, Settings};
use parapet_assurance::quarter::Quarter;
use parapet_assurance::snapshot::{FrozenQuarter, SnapshotError};
use parapet_assurance::store::SnapshotVersion;
use serde_json::Value;

use crate::estate::{self, MemStore, QUARTER, TENANT};

/// The body stored for 2021-22-Q2 before snapshots had a version, written
/// by the build before them (testdata/assurance/README.md). Never rewrite it.
const FROZEN_V0: &str = "testdata/assurance/frozen-v0-2021-22-Q2.json";

fn frozen_v0() -> String {
    std::fs::read_to_string(estate::repo_root().join(FROZEN_V0)).unwrap()
}

fn quarter(q: &str) -> Quarter {
    q.parse().unwrap()
}

fn kpis(
    store: &mut MemStore,
    q: &str,
) -> Result<KpiReport, QuarterError<std::convert::Infallible>> {
    quarter_kpis(
        store,
        TENANT,
        quarter(q),
        &Settings::default(),
        estate::now(),
    )
}

/// A store holding only `body` as the tenant's frozen `q`.
fn store_with(q: &str, body: String) -> MemStore {
    let mut store = MemStore::default();
    let v = SnapshotVersion {
        version: 1,
        frozen_at: estate::now(),
        ..SnapshotVersion::default()
    };
    store
        .snapshots
        .insert((TENANT.into(), q.into()), vec![(v, body)]);
    store
}

/// The body that today's build stores for `q`.
fn stored<'a>(store: &'a MemStore, q: &str) -> &'a str {
    let versions = &store.snapshots[&(TENANT.to_string(), q.to_string())];
    &versions.last().expect("a version").1
}

/// The figures of the estate's 2021-22-Q2 with the cli tests' exceptions,
/// as worked out by hand in crates/cli/tests/it/assets.rs.
fn assert_northshire_q2(r: &KpiReport) {
    assert_eq!(
        (
            r.tenant.as_str(),
            r.quarter.as_str(),
            r.period.as_str(),
            r.snapshot_date.as_str(),
            r.computed_at.as_str()
        ),
        (
            TENANT,
            QUARTER,
            "July–September 2021",
            "2021-09-30",
            "2021-10-15T09:00:00Z"
        )
    );
    assert_eq!(r.settings, Settings::default());
    let by =
        |f: fn(&parapet_assurance::kpi::Kpi) -> u64| -> Vec<u64> { r.kpis.iter().map(f).collect() };
    assert_eq!(by(|k| u64::from(k.id)), [1, 2, 3, 4, 5]);
    assert_eq!(by(|k| k.count), [1, 2, 1, 3, 2]);
    assert_eq!(by(|k| k.denominator), [2, 5, 4, 5, 4]);
    assert_eq!(by(|k| k.excepted), [0, 1, 0, 0, 0]);
    assert_eq!(by(|k| k.ce_figure), [1, 3, 1, 3, 2]);
    assert_eq!(by(|k| k.previous.unwrap()), [0, 2, 0, 1, 0]);
    let rags: Vec<Rag> = r.kpis.iter().map(|k| k.rag).collect();
    // KPI 2: two servers counted is within the amber count, once srv-app01 is excepted
    assert_eq!(rags, [Rag::Red, Rag::Amber, Rag::Red, Rag::Red, Rag::Red]);
    let percents: Vec<f64> = r.kpis.iter().map(|k| k.percent).collect();
    assert_eq!(percents, [50.0, 40.0, 25.0, 60.0, 50.0]);
    assert_eq!(r.kpis[1].change, Some(0));
    assert_eq!(r.kpis[1].direction, "unchanged");
    assert_eq!(r.kpis[3].direction, "worse");

    let devices = |id: usize| -> Vec<&str> {
        r.kpis[id - 1]
            .evidence
            .iter()
            .map(|e| e.device.as_str())
            .collect()
    };
    assert_eq!(devices(1), ["INC-2021-007"]);
    assert_eq!(devices(2), ["10.10.0.99", "srv-fs01"]);
    assert_eq!(devices(3), ["lt-0002"]);
    assert_eq!(devices(4), ["10.10.0.99", "srv-dc01", "srv-fs01"]);
    assert_eq!(devices(5), ["lt-0001", "tab-0004"]);
    let k2 = &r.kpis[1];
    assert_eq!(k2.evidence[1].reasons, ["D"]);
    assert!(k2.evidence[1].details[0].contains("defender.csv line 3"));
    assert!(
        k2.evidence[1]
            .identifiers
            .contains(&"10.10.0.11".to_string())
    );
    assert_eq!(k2.excepted_evidence[0].device, "srv-app01");
    assert_eq!(
        k2.excepted_evidence[0].details[1],
        "excepted: risk-accepted (EDR-only Linux policy; owner ICT, approved by CISO, expires 2022-02-28)"
    );
    assert_eq!(k2.breakdown.get("D"), Some(&1));
    // srv-dc01 still counts for 1001; 1005 is excepted
    let dc = &r.kpis[3].evidence[1];
    assert_eq!(dc.findings.len(), 1);
    let f = &dc.findings[0];
    assert_eq!(
        (
            f.key.as_str(),
            f.severity.as_str(),
            f.fix_released.as_str(),
            f.days_past_fix,
            f.source.as_str()
        ),
        (
            "nessus:1001",
            "High (CVSS v3 8.8)",
            "2021-09-16",
            14,
            "scan-2021-09.nessus (nessus)"
        )
    );
    assert_eq!(f.cves, ["CVE-2021-1001"]);
    assert_eq!(r.kpis[3].evidence[2].reasons, ["unsupported-os"]);
    assert_eq!(r.kpis[3].not_assessed, ["srv-app01 (no scan)"]);

    let ce = |id: &str| r.cyber_essentials.iter().find(|c| c.id == id).unwrap();
    assert_eq!(ce("SU-1").devices, ["srv-fs01"]);
    assert_eq!(ce("AS-3").devices, ["lt-0005 (last seen 2021-08-01)"]);
    assert!(ce("AS-4").pass);
    assert_eq!(r.cyber_essentials.len(), 9);

    assert_eq!(r.evidence_files.len(), 6);
    let inv = r
        .evidence_files
        .iter()
        .find(|f| f.file == "inventory.csv")
        .unwrap();
    use sha2::Digest;
    let bytes = std::fs::read(estate::repo_root().join("testdata/assets/estate/inventory.csv"));
    assert_eq!(
        inv.sha256,
        hex::encode(sha2::Sha256::digest(bytes.unwrap()))
    );
    assert_eq!((inv.assets, inv.stale), (10, false));
    assert!(r.evidence_files.iter().any(|f| f.stale), "the June scan");

    assert_eq!(r.register.len(), 11);
    let dc = r.register.iter().find(|d| d.device == "srv-dc01").unwrap();
    assert_eq!(
        (dc.class.as_str(), dc.os.as_deref(), dc.in_scope, dc.managed),
        ("server", Some("Windows Server 2019"), true, true)
    );
    let lt1 = r.register.iter().find(|d| d.device == "lt-0001").unwrap();
    assert!(
        lt1.merged_by
            .iter()
            .any(|m| m.contains("address 10.20.0.21"))
    );

    let refs: Vec<(&str, Option<&str>)> = r
        .incidents
        .iter()
        .map(|i| (i.reference.as_str(), i.ico_reference.as_deref()))
        .collect();
    assert_eq!(
        refs,
        [
            ("INC-2021-008", None),
            ("INC-2021-007", Some("ICO-2021-0815"))
        ]
    );
    assert_eq!(r.exceptions.len(), 3);
    assert_eq!(r.exceptions[0].finding.as_deref(), Some("nessus:1005"));
    let in_force: Vec<bool> = r.exceptions.iter().map(|e| e.in_force).collect();
    assert_eq!(in_force, [true, true, false], "lt-0002's starts after T");
}

#[test]
fn a_quarter_frozen_before_snapshots_had_a_version_reads_as_version_1() {
    let body = frozen_v0();
    assert!(!body.contains("\"version\""));
    let f = FrozenQuarter::parse(&body).unwrap();
    assert_eq!(f.version(), 1);
    let r = KpiReport::from(f);
    assert!(!r.frozen, "stored as computed");
    assert_northshire_q2(&r);
}

#[test]
fn a_quarter_frozen_before_versioning_round_trips_through_the_current_version() {
    let v0 = frozen_v0();
    let r = KpiReport::from(FrozenQuarter::parse(&v0).unwrap());
    let v2 = FrozenQuarter::from(&r).to_json().unwrap();
    assert!(v2.starts_with("{\"version\":2,"), "{v2}");
    let again = FrozenQuarter::parse(&v2).unwrap();
    assert_eq!(again.version(), 2);
    assert_eq!(KpiReport::from(again), r);
    // v2 is v1 less `frozen`, with each KPI's `missing` and each check's
    // `decided`: the figures of a v1 quarter keep their meaning
    let mut v2: Value = serde_json::from_str(&v2).unwrap();
    let mut v0: Value = serde_json::from_str(&v0).unwrap();
    v0.as_object_mut().unwrap().remove("frozen");
    v2.as_object_mut().unwrap().remove("version");
    for k in v2["kpis"].as_array_mut().unwrap() {
        assert_eq!(
            k.as_object_mut().unwrap().remove("missing"),
            Some(Value::Null)
        );
    }
    for c in v2["cyber_essentials"].as_array_mut().unwrap() {
        assert_eq!(
            c.as_object_mut().unwrap().remove("decided"),
            Some(true.into())
        );
    }
    assert_eq!(v2, v0);
}

#[test]
fn quarter_kpis_reads_a_quarter_frozen_before_versioning() {
    let mut store = store_with(QUARTER, frozen_v0());
    let r = kpis(&mut store, QUARTER).unwrap();
    assert!(r.frozen);
    assert_northshire_q2(&r);
    assert_eq!(
        stored(&store, QUARTER),
        frozen_v0(),
        "a frozen body is never rewritten"
    );
    // and the next quarter takes its comparison from it
    let next = kpis(&mut store, "2021-22-Q3").unwrap();
    let previous: Vec<Option<u64>> = next.kpis.iter().map(|k| k.previous).collect();
    assert_eq!(previous, [1, 2, 1, 3, 2].map(Some));
}

#[test]
fn reading_never_freezes_and_a_reopened_quarter_keeps_its_versions() {
    let mut store = estate::northshire();
    let live = kpis(&mut store, QUARTER).unwrap();
    assert!(!live.frozen);
    assert!(store.snapshots.is_empty(), "a read froze something");
    let q = quarter(QUARTER);
    let first = freeze_quarter(
        &mut store,
        TENANT,
        q,
        &Settings::default(),
        estate::now(),
        "clerk",
    )
    .unwrap();
    assert!(first.frozen);
    let info = first.freeze.clone().unwrap();
    assert_eq!((info.version, info.frozen_by.as_str()), (1, "clerk"));
    let body: Value = serde_json::from_str(stored(&store, QUARTER)).unwrap();
    assert_eq!(body["version"], 2);
    assert_eq!(
        KpiReport {
            frozen: false,
            freeze: None,
            ..first.clone()
        },
        live
    );
    assert_northshire_q2(&first);
    assert_eq!(kpis(&mut store, QUARTER).unwrap(), first);
    // only the quarter asked for: the previous one stays open
    assert_eq!(store.snapshots.len(), 1);
    let again = freeze_quarter(
        &mut store,
        TENANT,
        q,
        &Settings::default(),
        estate::now(),
        "x",
    );
    assert!(
        matches!(again, Err(QuarterError::AlreadyFrozen { version: 1, .. })),
        "{again:?}"
    );

    let later = estate::now() + 86_400;
    assert_eq!(
        reopen_quarter(&mut store, TENANT, q, later, "admin", "late AV export").unwrap(),
        1
    );
    assert!(
        !kpis(&mut store, QUARTER).unwrap().frozen,
        "reopened reads live"
    );
    assert!(matches!(
        reopen_quarter(&mut store, TENANT, q, later, "admin", "again"),
        Err(QuarterError::NotFrozen { .. })
    ));
    let second =
        freeze_quarter(&mut store, TENANT, q, &Settings::default(), later, "clerk").unwrap();
    assert_eq!(second.freeze.as_ref().unwrap().version, 2);
    let versions = quarter_versions(&mut store, TENANT, q).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].reopen_reason.as_deref(), Some("late AV export"));
    assert_eq!(versions[0].reopened_by.as_deref(), Some("admin"));
    assert_eq!(versions[1].reopened_at, None);
    // the tabled version reads back as it was tabled
    let tabled = quarter_version(&mut store, TENANT, q, 1).unwrap();
    assert_eq!(tabled.kpis, first.kpis);
    assert_eq!(tabled.freeze.unwrap().reopened_by.as_deref(), Some("admin"));
    assert!(matches!(
        quarter_version(&mut store, TENANT, q, 3),
        Err(QuarterError::NoSuchVersion { version: 3, .. })
    ));
}

#[test]
fn a_quarter_that_has_not_ended_cannot_be_frozen() {
    let mut store = estate::northshire();
    let running = quarter("2021-22-Q3");
    let e = freeze_quarter(
        &mut store,
        TENANT,
        running,
        &Settings::default(),
        estate::now(),
        "clerk",
    )
    .unwrap_err();
    assert!(matches!(e, QuarterError::NotEnded { .. }), "{e}");
    let r = kpis(&mut store, "2021-22-Q3").unwrap();
    // a running quarter's figures are as they stand now, never dated ahead
    assert_eq!(r.snapshot_date, "2021-10-15");
    assert!(store.snapshots.is_empty());
}

/// A tenant with no data at all: nothing is green.
#[test]
fn an_empty_tenant_has_no_data_and_decides_no_check() {
    let mut store = MemStore::default();
    let r = kpis(&mut store, QUARTER).unwrap();
    for k in &r.kpis {
        assert_eq!(k.rag, Rag::NoData, "KPI {}", k.id);
        assert!(!k.ce_compliant);
        assert!(k.missing.as_deref().is_some_and(|m| !m.is_empty()));
    }
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["kpis"][1]["rag"], "no_data");
    for c in &r.cyber_essentials {
        assert!(!c.pass && !c.decided, "{}", c.id);
        assert_eq!(c.result(), "cannot be decided");
    }
}

#[test]
fn an_unknown_snapshot_version_is_refused_naming_tenant_quarter_and_version() {
    let mut v2: Value = serde_json::from_str(&frozen_v0()).unwrap();
    v2["version"] = 3.into();
    let v2 = v2.to_string();
    assert!(matches!(
        FrozenQuarter::parse(&v2),
        Err(SnapshotError::UnknownVersion(3))
    ));

    let mut store = store_with(QUARTER, v2.clone());
    let err = kpis(&mut store, QUARTER).unwrap_err();
    match &err {
        QuarterError::UnknownVersion {
            tenant,
            quarter,
            version,
        } => assert_eq!(
            (tenant.as_str(), quarter.as_str(), *version),
            (TENANT, QUARTER, 3)
        ),
        e => panic!("{e}"),
    }
    let msg = err.to_string();
    for want in [TENANT, QUARTER, "snapshot version 3"] {
        assert!(msg.contains(want), "`{want}` not in: {msg}");
    }
    // also when it is only the previous quarter, read for the comparison
    let mut store = store_with(QUARTER, v2);
    match kpis(&mut store, "2021-22-Q3").unwrap_err() {
        QuarterError::UnknownVersion {
            quarter, version, ..
        } => assert_eq!((quarter.as_str(), version), (QUARTER, 3)),
        e => panic!("{e}"),
    }
    assert!(
        !store
            .snapshots
            .contains_key(&(TENANT.into(), "2021-22-Q3".into()))
    );

    // a version never written is not a guess either
    assert!(matches!(
        FrozenQuarter::parse(r#"{"version":0}"#),
        Err(SnapshotError::UnknownVersion(0))
    ));
    let mut store = store_with(QUARTER, r#"{"version":"1"}"#.into());
    assert!(matches!(
        kpis(&mut store, QUARTER),
        Err(QuarterError::Snapshot { .. })
    ));
}

/// A quarter before any data is not frozen, so data imported for it later
/// shows; and a quarter that has not started is refused, not computed.
#[test]
fn empty_quarters_stay_open_and_future_quarters_are_refused() {
    let mut store = estate::northshire();
    let r = kpis(&mut store, "2019-20-Q1").unwrap();
    assert!(!r.frozen);
    assert!(
        !store
            .snapshots
            .contains_key(&(TENANT.to_string(), "2019-20-Q1".to_string())),
        "an empty quarter was frozen"
    );
    let e = kpis(&mut store, "2099-00-Q2").unwrap_err();
    assert!(matches!(e, QuarterError::Future { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "2099-00-Q2 has not started yet: there is nothing to report"
    );
    assert!(store.snapshots.keys().all(|(_, q)| q != "2099-00-Q2"));
}
