//! `parapet mailcheck` against fixture zones served by a real NSD
//! (testdata/mail): every case gives its findings, with raw records.

use std::process::Command;

use crate::harness::{repo_root, start_nsd};

const ZONES: &[&str] = &[
    "good.test",
    "weak.test",
    "broken.test",
    "lookups.test",
    "nomail.test",
    "badpark.test",
    "org.test",
    "reports.test",
    "dmarc.service.gov.uk",
];

fn mailcheck(ns: std::net::SocketAddr, domains: &[&str]) -> (Option<i32>, serde_json::Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("mailcheck")
        .args(domains)
        .args(["--nameserver", &ns.to_string(), "--format", "json"])
        .args(["--dkim-selector", "sel1", "--dkim-selector", "old"])
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o.status.code(), v)
}

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn findings_for_every_fixture_domain() {
    let texts: Vec<(String, String)> = ZONES
        .iter()
        .map(|z| {
            let path = repo_root().join(format!("testdata/mail/{z}.zone"));
            (z.to_string(), std::fs::read_to_string(path).unwrap())
        })
        .collect();
    let zones: Vec<(&str, &str)> = texts
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let nsd = start_nsd(&zones);
    let ns = nsd.addr;

    let (code, good) = mailcheck(ns, &["good.test"]);
    let c = codes(&good);
    assert_eq!(code, Some(0), "{good:#}");
    assert!(
        good["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"),
        "{good:#}"
    );
    assert!(c.contains(&"spf.lookups".to_string()), "{c:?}");
    assert!(c.contains(&"dkim.revoked".to_string()), "{c:?}");
    assert!(!c.iter().any(|c| c.starts_with("dmarc.")), "{c:?}");
    assert_eq!(
        good["records"]["mx"],
        serde_json::json!(["10 mx1.good.test", "20 mx2.good.test"])
    );
    assert_eq!(
        good["records"]["spf_includes"][0]["domain"],
        "_spf.good.test"
    );
    assert_eq!(good["records"]["dmarc_domain"], "good.test");

    let (code, all) = mailcheck(
        ns,
        &[
            "weak.test",
            "broken.test",
            "lookups.test",
            "nomail.test",
            "badpark.test",
            "sub.org.test",
        ],
    );
    assert_eq!(code, Some(1));
    let by = |d: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|r| r["domain"] == d)
            .unwrap_or_else(|| panic!("no report for {d}"))
            .clone()
    };
    let has = |d: &str, want: &[&str]| {
        let r = by(d);
        let c = codes(&r);
        for w in want {
            assert!(
                c.iter().any(|c| c == w),
                "{d}: expected {w} in {c:?}\n{r:#}"
            );
        }
    };
    has(
        "weak.test",
        &[
            "spf.all_pass",
            "spf.ptr",
            "dmarc.policy_none",
            "dmarc.external_rua_unauthorised",
            "dkim.key_short",
        ],
    );
    has(
        "broken.test",
        &[
            "spf.multiple_records",
            "dmarc.policy_missing",
            "mx.host_no_address",
        ],
    );
    // raw records are kept even when invalid
    assert_eq!(
        by("broken.test")["records"]["spf"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    has(
        "lookups.test",
        &[
            "spf.too_many_lookups",
            "spf.too_many_void_lookups",
            "spf.loop",
        ],
    );
    let lookups = by("lookups.test");
    let msg = lookups["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "spf.too_many_lookups")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        msg.contains("takes 11 DNS lookups")
            && msg.contains("one.lookups.test: a:void1.lookups.test"),
        "{msg}"
    );
    has("nomail.test", &["mx.null"]);
    assert!(
        !codes(&by("nomail.test"))
            .iter()
            .any(|c| c.starts_with("parked."))
    );
    has("badpark.test", &["mx.null", "parked.spf", "parked.dmarc"]);
    has("sub.org.test", &["dmarc.inherited"]);
    assert_eq!(by("sub.org.test")["records"]["dmarc_domain"], "org.test");
}

#[test]
fn bad_usage_exits_2() {
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args([
            "mailcheck",
            "--nameserver",
            "not-an-address",
            "example.test",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("mailcheck")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
