//! `parapet assets import`, `incidents` and `kpi` end to end on the
//! Northshire fixture estate (testdata/assets/estate/README.md). The
//! figures asserted here are worked out by hand below, device by device.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{repo_root, store_config};

fn estate(name: &str) -> PathBuf {
    repo_root().join("testdata/assets/estate").join(name)
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .current_dir(dir)
        .args(args)
        .env("PARAPET_CONFIG", store_config(dir))
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn import(dir: &Path, source: &str, file: &str) -> String {
    ok(
        dir,
        &[
            "assets",
            "import",
            "--source",
            source,
            estate(file).to_str().unwrap(),
        ],
    )
}

fn import_estate(dir: &Path) {
    import(dir, "inventory-csv", "inventory.csv");
    import(dir, "defender-csv", "defender.csv");
    import(dir, "osquery", "osquery.json");
    import(dir, "nessus", "scan-2021-06.nessus");
    import(dir, "nessus", "scan-2021-09.nessus");
    import(dir, "openvas", "openvas-2021-09.xml");
    ok(
        dir,
        &[
            "incidents",
            "add",
            "--reference",
            "INC-2021-007",
            "--date",
            "2021-08-12",
            "--category",
            "phishing",
            "--impact",
            "one mailbox compromised",
            "--outcome",
            "successful",
            "--status",
            "closed",
        ],
    );
    ok(
        dir,
        &[
            "incidents",
            "add",
            "--reference",
            "INC-2021-008",
            "--date",
            "2021-09-03",
            "--category",
            "malware",
            "--outcome",
            "attempted",
            "--status",
            "closed",
        ],
    );
}

fn kpi(dir: &Path, quarter: &str) -> Value {
    serde_json::from_str(&ok(dir, &["kpi", "--quarter", quarter, "--format", "json"])).unwrap()
}

fn k(r: &Value, id: u64) -> &Value {
    r["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .unwrap()
}

fn devices(k: &Value) -> Vec<String> {
    let mut v: Vec<String> = k["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["device"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn reasons(k: &Value, device: &str) -> Vec<String> {
    let e = k["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["device"] == device)
        .unwrap();
    e["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

fn finding_keys(k: &Value, device: &str) -> Vec<String> {
    let e = k["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["device"] == device)
        .unwrap();
    let mut v: Vec<String> = e["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn the_fixture_estate_gives_the_hand_computed_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_estate(d);
    let r = kpi(d, "2021-22-Q2");
    assert_eq!(r["period"], "July–September 2021");
    assert_eq!(r["snapshot_date"], "2021-09-30");

    // KPI 1: INC-2021-007 (successful, 12 Aug) counts; INC-2021-008 was an attempt.
    let k1 = k(&r, 1);
    assert_eq!(
        (
            k1["count"].as_u64(),
            k1["denominator"].as_u64(),
            k1["rag"].as_str()
        ),
        (Some(1), Some(2), Some("red"))
    );
    assert_eq!(devices(k1), vec!["INC-2021-007"]);

    // Servers in scope: srv-dc01 (inventory FQDN + Defender FQDN + Nessus NetBIOS),
    // srv-fs01, srv-app01, srv-web01, and 10.10.0.99 that only Nessus saw.
    // KPI 2: srv-fs01 Defender passive (D); srv-app01 Linux with no AV telemetry (N);
    // 10.10.0.99 unmanaged, no telemetry (N). 3 of 5, red.
    let k2 = k(&r, 2);
    assert_eq!(
        (
            k2["count"].as_u64(),
            k2["denominator"].as_u64(),
            k2["rag"].as_str()
        ),
        (Some(3), Some(5), Some("red"))
    );
    assert_eq!(devices(k2), vec!["10.10.0.99", "srv-app01", "srv-fs01"]);
    assert_eq!(reasons(k2, "srv-fs01"), vec!["D"]);
    assert_eq!(reasons(k2, "srv-app01"), vec!["N"]);

    // Workstations in scope: lt-0001, lt-0002, dt-0003, tab-0004 (lt-0005 silent
    // for 60 days and lt-0006 disposed are out). KPI 3: lt-0002's signatures
    // are 8 days old (S); tab-0004 is protected per osquery. 1 of 4, red (> 3%).
    let k3 = k(&r, 3);
    assert_eq!(
        (
            k3["count"].as_u64(),
            k3["denominator"].as_u64(),
            k3["rag"].as_str()
        ),
        (Some(1), Some(4), Some("red"))
    );
    assert_eq!(devices(k3), vec!["lt-0002"]);
    assert_eq!(reasons(k3, "lt-0002"), vec!["S"]);

    // KPI 4: srv-dc01 — 1001 (fix 16 Sep: more than 14 days before 30 Sep) and
    // 1005 (no dates: first detected 20 Jun, kept across the re-scan);
    // srv-web01 — 1002 (fix 17 Sep: 13 days) does not count, 1006 was closed by
    // the September credentialed scan; srv-fs01 — Server 2008 R2, unsupported
    // since 14 Jan 2020 (its medium finding does not count); 10.10.0.99 — 1004.
    let k4 = k(&r, 4);
    assert_eq!(
        (
            k4["count"].as_u64(),
            k4["denominator"].as_u64(),
            k4["rag"].as_str()
        ),
        (Some(3), Some(5), Some("red"))
    );
    assert_eq!(devices(k4), vec!["10.10.0.99", "srv-dc01", "srv-fs01"]);
    assert_eq!(
        finding_keys(k4, "srv-dc01"),
        vec!["nessus:1001", "nessus:1005"]
    );
    assert_eq!(reasons(k4, "srv-fs01"), vec!["unsupported-os"]);
    let f1005 = k4["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["device"] == "srv-dc01")
        .unwrap()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "nessus:1005")
        .unwrap()
        .clone();
    assert_eq!(
        f1005["first_detected"], "2021-06-20",
        "a re-scan must not reset first-detected"
    );
    assert_eq!(
        k4["not_assessed"],
        serde_json::json!(["srv-app01 (no scan)"])
    );

    // KPI 5: lt-0001 — OpenVAS saw only its address 10.20.0.21 (Firefox, high,
    // published 1 Aug); tab-0004 — Flash Player (osquery, unsupported software).
    let k5 = k(&r, 5);
    assert_eq!(
        (
            k5["count"].as_u64(),
            k5["denominator"].as_u64(),
            k5["rag"].as_str()
        ),
        (Some(2), Some(4), Some("red"))
    );
    assert_eq!(devices(k5), vec!["lt-0001", "tab-0004"]);

    // the previous quarter (data as of 30 Jun: the June scan only): KPI 2 = 2
    // (neither server had AV telemetry yet), KPI 4 = 1 (srv-web01, 1006)
    let counts: Vec<u64> = (1..=5)
        .map(|i| k(&r, i)["previous"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![0, 2, 0, 1, 0]);
    assert_eq!(k4["direction"], "worse");

    // Cyber Essentials checks the data decides, with the devices behind them
    let ce: std::collections::HashMap<String, Value> = r["cyber_essentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap().to_string(), c.clone()))
        .collect();
    assert_eq!(ce["SU-1"]["devices"], serde_json::json!(["srv-fs01"]));
    assert_eq!(ce["SU-2"]["devices"], serde_json::json!(["tab-0004"]));
    assert_eq!(ce["AS-2"]["devices"], serde_json::json!(["10.10.0.99"]));
    assert_eq!(
        ce["AS-3"]["devices"],
        serde_json::json!(["lt-0005 (last seen 2021-08-01)"])
    );
    assert_eq!(ce["SU-3/SU-4"]["pass"], false);

    // every counted device has evidence naming its source file
    for id in 2..=5 {
        for e in k(&r, id)["evidence"].as_array().unwrap() {
            let text = e.to_string();
            assert!(
                text.contains(".csv")
                    || text.contains(".nessus")
                    || text.contains(".xml")
                    || text.contains(".json")
                    || text.contains("no anti-virus"),
                "KPI {id}: {text}"
            );
        }
    }
    // the evidence chain: every file with its SHA-256
    let files = r["evidence_files"].as_array().unwrap();
    assert_eq!(files.len(), 6);
    let inv = files.iter().find(|f| f["file"] == "inventory.csv").unwrap();
    use sha2::Digest;
    assert_eq!(
        inv["sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(
            std::fs::read(estate("inventory.csv")).unwrap()
        ))
    );

    // the register keeps how devices were joined
    let reg = r["register"].as_array().unwrap();
    let lt1 = reg.iter().find(|d| d["device"] == "lt-0001").unwrap();
    assert!(
        lt1["merged_by"].to_string().contains("address 10.20.0.21"),
        "{lt1}"
    );
    let dc = reg.iter().find(|d| d["device"] == "srv-dc01").unwrap();
    assert_eq!(dc["class"], "server");
    assert!(
        dc["class_rule"]
            .as_str()
            .unwrap()
            .starts_with("inventory device type 'Server'")
    );
}

/// Freezing is deliberate: reading never freezes; a frozen quarter keeps
/// its figures under a late import; reopening keeps the frozen version,
/// a re-freeze makes the next one, and `report --version` reproduces the
/// one that was tabled.
#[test]
fn a_past_quarter_is_frozen_on_request_and_new_data_does_not_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_estate(d);
    let first = kpi(d, "2021-22-Q2");
    assert_eq!(first["frozen"], false, "reading never freezes");
    assert_eq!(kpi(d, "2021-22-Q2")["frozen"], false);
    let frozen = ok(
        d,
        &["kpi", "freeze", "--quarter", "2021-22-Q2", "--by", "clerk"],
    );
    assert!(frozen.contains("frozen as version 1 by clerk"), "{frozen}");
    let twice = run(d, &["kpi", "freeze", "--quarter", "2021-22-Q2"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already frozen (version 1)"));
    // a late, back-dated Defender export that would clear srv-fs01's AV case
    let late = d.join("defender-late.csv");
    std::fs::write(&late, "Device Name,Onboarding Status,AV mode,AV signature update time,Last device update\nsrv-fs01,Onboarded,0,2021-09-30,2021-09-30\n").unwrap();
    ok(
        d,
        &[
            "assets",
            "import",
            "--source",
            "defender-csv",
            late.to_str().unwrap(),
        ],
    );
    let again = kpi(d, "2021-22-Q2");
    assert_eq!(again["frozen"], true);
    assert_eq!(again["freeze"]["version"], 1);
    assert_eq!(again["freeze"]["frozen_by"], "clerk");
    assert_eq!(k(&again, 2)["count"], k(&first, 2)["count"]);
    assert_eq!(again["kpis"], first["kpis"]);
    // the table shows it too
    let table = ok(d, &["kpi", "--quarter", "2021-22-Q2"]);
    assert!(table.contains("frozen (version 1"), "{table}");
    assert!(table.contains("Servers with unpatched vulnerabilities"));

    // reopened with a reason: live figures (the late export counts), and
    // the tabled version is kept
    let r = run(
        d,
        &["kpi", "reopen", "--quarter", "2021-22-Q2", "--reason", " "],
    );
    assert_eq!(r.status.code(), Some(2), "a reason is required");
    ok(
        d,
        &[
            "kpi",
            "reopen",
            "--quarter",
            "2021-22-Q2",
            "--reason",
            "late Defender export",
            "--by",
            "admin",
        ],
    );
    let live = kpi(d, "2021-22-Q2");
    assert_eq!(live["frozen"], false);
    assert!(live["freeze"].is_null());
    ok(
        d,
        &["kpi", "freeze", "--quarter", "2021-22-Q2", "--by", "clerk"],
    );
    let versions = ok(d, &["kpi", "versions", "--quarter", "2021-22-Q2"]);
    let lines: Vec<&str> = versions.lines().skip(1).collect();
    assert_eq!(lines.len(), 2, "{versions}");
    assert!(
        lines[0].contains("reopened") && lines[0].contains("by admin: late Defender export"),
        "{versions}"
    );
    assert!(
        lines[1].trim_start().starts_with('2') && lines[1].ends_with("in force"),
        "{versions}"
    );
    let audit = rusqlite::Connection::open(d.join("parapet-data/parapet.sqlite"))
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM audit_log WHERE action IN ('kpi.freeze', 'kpi.reopen')",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap();
    assert_eq!(audit, 3);
    // the tabled report, reproduced; the current one has the new figures
    for (version, want) in [("1", &first), ("2", &live)] {
        let out = d.join(format!("v{version}"));
        ok(
            d,
            &[
                "report",
                "--quarter",
                "2021-22-Q2",
                "--version",
                version,
                "--out",
                out.to_str().unwrap(),
            ],
        );
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("kpi.json")).unwrap()).unwrap();
        assert_eq!(
            json["kpis"][1]["count"],
            k(want, 2)["count"],
            "version {version}"
        );
    }
}

#[test]
fn corrupt_input_of_every_kind_is_refused_whole_and_keeps_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import(d, "inventory-csv", "inventory.csv");
    let db = d.join("parapet-data/parapet.sqlite");
    let count = || -> (i64, i64) {
        let c = rusqlite::Connection::open(&db).unwrap();
        (
            c.query_row("SELECT COUNT(*) FROM asset_imports", [], |r| r.get(0))
                .unwrap(),
            c.query_row("SELECT COUNT(*) FROM asset_obs", [], |r| r.get(0))
                .unwrap(),
        )
    };
    let before = count();
    let read = |f: &str| std::fs::read_to_string(estate(f)).unwrap();
    let cases: Vec<(&str, &str, String, &[&str])> = vec![
        (
            "inventory-csv",
            "bad.csv",
            read("inventory.csv").replace("10.20.0.22", "10.20.0.300"),
            &["bad.csv: line 7: IP Address:", "not an IP address"],
        ),
        (
            "inventory-csv",
            "short.csv",
            read("inventory.csv").replace(",Home,2021-09-29,Active\nDT", ",Home\nDT"),
            &["short.csv: line 7:", "fields where the header has 10"],
        ),
        (
            "defender-csv",
            "mde.csv",
            read("defender.csv").replace("2021-09-22T23:00:00Z", "22/09/2021"),
            &["mde.csv: line 6: AV signature update time:", "not a date"],
        ),
        (
            "nessus",
            "scan.nessus",
            read("scan-2021-09.nessus").replace("<cvss3_base_score>8.8", "<cvss3_base_score>eight"),
            &["scan.nessus: line ", "ReportHost 1: cvss3_base_score:"],
        ),
        (
            "nessus",
            "cut.nessus",
            read("scan-2021-09.nessus")[..1500].to_string(),
            &["cut.nessus: line "],
        ),
        (
            "openvas",
            "ov.xml",
            read("openvas-2021-09.xml").replace("<score>8.1</score>", "<score>high</score>"),
            &["ov.xml: line 15, result 1: nvt/severities/severity/score:"],
        ),
        (
            "osquery",
            "osq.json",
            read("osquery.json").replace(
                "\"unixTime\":1632816000,\"snapshot\":[{\"name\":\"Ubuntu\"",
                "\"unixTime\":\"soon\",\"snapshot\":[{\"name\":\"Ubuntu\"",
            ),
            &["osq.json: line 6: unixTime:"],
        ),
    ];
    for (source, name, content, want) in cases {
        let path = d.join(name);
        std::fs::write(&path, content).unwrap();
        let o = run(
            d,
            &[
                "assets",
                "import",
                "--source",
                source,
                path.to_str().unwrap(),
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        for w in want {
            assert!(err.contains(w), "{name}: `{w}` not in: {err}");
        }
        assert!(err.contains("nothing of this file was imported"), "{err}");
        assert_eq!(
            count(),
            before,
            "{name}: nothing stored, earlier data intact"
        );
    }
    // a batch with one bad file imports the good ones and still exits 2
    let bad = d.join("bad.csv");
    let o = run(
        d,
        &[
            "assets",
            "import",
            "--source",
            "nessus",
            estate("scan-2021-09.nessus").to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(count().0, before.0 + 1);
    // the same file twice is recognised by its hash
    let again = ok(
        d,
        &[
            "assets",
            "import",
            "--source",
            "inventory-csv",
            estate("inventory.csv").to_str().unwrap(),
        ],
    );
    assert!(again.contains("already imported"), "{again}");
    // bad usage
    assert_eq!(
        run(d, &["assets", "import", "--source", "qualys", "x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(d, &["kpi", "--quarter", "2021-23-Q2"]).status.code(),
        Some(2)
    );
    // calendar quarters only where the config says so
    let o = run(d, &["kpi", "--quarter", "2021-Q3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("financial-year quarters"));
    let cfg = d.join("calendar.toml");
    std::fs::write(&cfg, "[assurance]\nquarters = \"calendar\"\n").unwrap();
    let o = run(
        d,
        &[
            "kpi",
            "--config",
            cfg.to_str().unwrap(),
            "--quarter",
            "2021-Q3",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["period"], "July–September 2021");
}

#[test]
fn incidents_register_and_alert_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // incidents add needs a store: the first account makes one
    ok(d, &["users", "add", "officer", "--role", "supplier-admin"]);
    ok(
        d,
        &[
            "incidents",
            "add",
            "--reference",
            "INC-1",
            "--date",
            "2021-10-02",
            "--category",
            "ransomware",
            "--status",
            "investigating",
            "--outcome",
            "attempted",
        ],
    );
    let dup = run(
        d,
        &[
            "incidents",
            "add",
            "--reference",
            "INC-1",
            "--date",
            "2021-10-02",
            "--category",
            "ransomware",
        ],
    );
    assert!(!dup.status.success());
    let list: Value =
        serde_json::from_str(&ok(d, &["incidents", "list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["reference"], "INC-1");
    // Q3 with one attempt still under investigation at quarter end: amber
    let r = kpi(d, "2021-22-Q3");
    assert_eq!(
        (k(&r, 1)["count"].as_u64(), k(&r, 1)["rag"].as_str()),
        (Some(0), Some("amber"))
    );
    ok(
        d,
        &[
            "incidents",
            "close",
            &list[0]["id"].to_string(),
            "--date",
            "2021-11-01",
        ],
    );
    let list: Value =
        serde_json::from_str(&ok(d, &["incidents", "list", "--format", "json"])).unwrap();
    assert_eq!(
        (list[0]["status"].as_str(), list[0]["closed"].as_str()),
        (Some("closed"), Some("2021-11-01"))
    );
    // an empty quarter: nothing counted, nothing to compare with; the
    // register is in use, so KPI 1 is measured, the others have no data
    let empty = kpi(d, "2020-21-Q1");
    let kpis = empty["kpis"].as_array().unwrap();
    assert!(kpis.iter().all(|k| k["count"] == 0));
    assert_eq!(kpis[0]["direction"], "first quarter");
    assert!(
        kpis[1..]
            .iter()
            .all(|k| k["rag"] == "no_data" && k["direction"] == "no data"),
        "{empty}"
    );

    // promote a detection alert
    let db = d.join("parapet-data/parapet.sqlite");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "INSERT INTO alerts (tenant, rule, domain, severity, first_seen, last_seen, count, reason) VALUES ('north', 'feed.block', 'evil.example', 'high', 1633046400000, 1633046400000, 3, 'listed in the malware feed')",
        [],
    )
    .unwrap();
    let id = c.last_insert_rowid().to_string();
    ok(
        d,
        &[
            "incidents",
            "add",
            "--from-alert",
            &id,
            "--outcome",
            "successful",
        ],
    );
    let list: Value = serde_json::from_str(&ok(
        d,
        &["incidents", "list", "--tenant", "north", "--format", "json"],
    ))
    .unwrap();
    assert_eq!(list[0]["reference"], format!("ALERT-{id}"));
    assert_eq!(list[0]["detected"], "2021-10-01");
    assert!(
        list[0]["summary"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
}

#[test]
fn exceptions_are_shown_beside_the_kpi_not_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    import_estate(d);
    ok(
        d,
        &[
            "assets",
            "except",
            "--device",
            "SRV-DC01",
            "--finding",
            "nessus:1005",
            "--kind",
            "compensating-control",
            "--reason",
            "SMB signing enforced by GPO; scanner false positive",
            "--owner",
            "ICT",
            "--approver",
            "Head of ICT",
            "--from",
            "2021-09-01",
            "--expires",
            "2022-02-28",
        ],
    );
    ok(
        d,
        &[
            "assets",
            "except",
            "--device",
            "srv-app01.northshire.local",
            "--scope",
            "av",
            "--reason",
            "EDR-only Linux policy",
            "--owner",
            "ICT",
            "--approver",
            "CISO",
            "--from",
            "2021-09-01",
            "--expires",
            "2022-02-28",
        ],
    );
    // one that starts after the quarter end does not apply to it
    ok(
        d,
        &[
            "assets",
            "except",
            "--device",
            "lt-0002",
            "--scope",
            "av",
            "--reason",
            "late",
            "--owner",
            "ICT",
            "--approver",
            "CISO",
            "--from",
            "2021-10-05",
            "--expires",
            "2022-01-31",
        ],
    );
    let far = parapet_assurance_date_in_days(400);
    assert_eq!(
        run(
            d,
            &[
                "assets",
                "except",
                "--device",
                "x",
                "--reason",
                "r",
                "--owner",
                "o",
                "--approver",
                "a",
                "--expires",
                &far
            ]
        )
        .status
        .code(),
        Some(2),
        "more than 6 months"
    );
    let r = kpi(d, "2021-22-Q2");
    let k2 = k(&r, 2);
    assert_eq!(
        (
            k2["count"].as_u64(),
            k2["excepted"].as_u64(),
            k2["ce_figure"].as_u64()
        ),
        (Some(2), Some(1), Some(3))
    );
    assert_eq!(k2["excepted_evidence"][0]["device"], "srv-app01");
    let k4 = k(&r, 4);
    // srv-dc01 still counts for 1001; only 1005 is excepted
    assert_eq!(finding_keys(k4, "srv-dc01"), vec!["nessus:1001"]);
    assert_eq!(devices(k(&r, 3)), vec!["lt-0002"]);
    let ex = r["exceptions"].as_array().unwrap();
    assert_eq!(ex.len(), 3);
    assert_eq!(ex.iter().filter(|e| e["in_force"] == true).count(), 2);
}

/// `YYYY-MM-DD`, `days` from today.
fn parapet_assurance_date_in_days(days: u64) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + days * 86_400;
    let z = (t / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{day:02}")
}
