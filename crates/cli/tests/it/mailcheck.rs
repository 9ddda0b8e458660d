//! `parapet mailcheck` against fixture zones served by a real NSD
//! (testdata/mail): every case gives its findings, with raw records.

use std::process::Command;

use crate::harness::{
    free_port, repo_root, start_https_policy_server, start_nsd, start_smtp_mode, start_smtp_with,
};

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
    "tls.test",
    "sts.test",
    "sts2.test",
    "mixed.test",
    "rpt.test",
    "sts3.test",
    "sts4.test",
    "nomx.test",
    "manymx.test",
    "codes.test",
    "fetch.test",
];

fn mailcheck(ns: std::net::SocketAddr, domains: &[&str]) -> (Option<i32>, serde_json::Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("mailcheck")
        .args(domains)
        .args([
            "--nameserver",
            &ns.to_string(),
            "--format",
            "json",
            "--no-tls",
        ])
        .args(["--dkim-selector", "sel1", "--dkim-selector", "old"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    // always an array, one report per domain; one domain: that report
    assert_eq!(v.as_array().map(Vec::len), Some(domains.len()), "{v:#}");
    let v = if domains.len() == 1 { v[0].clone() } else { v };
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

pub(crate) fn fixture_nsd() -> crate::harness::Peer {
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
    start_nsd(&zones)
}

#[test]
fn findings_for_every_fixture_domain() {
    let nsd = fixture_nsd();
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
            "nomx.test",
            "manymx.test",
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
    has("nomx.test", &["mx.missing"]);
    has("manymx.test", &["spf.mx_too_many"]);
    let many = by("manymx.test");
    assert_eq!(many["records"]["mx"].as_array().unwrap().len(), 11);
    let msg = many["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "spf.mx_too_many")
        .unwrap()["message"]
        .to_string();
    assert!(msg.contains("names 11 mail servers"), "{msg}");
    has(
        "weak.test",
        &["dkim.selector_missing", "tlsrpt.missing", "mta_sts.missing"],
    );
    let (_, mixed) = mailcheck(ns, &["mixed.test"]);
    for want in [
        "mx.null_mixed",
        "spf.include_missing",
        "spf.all_missing",
        "mta_sts.multiple_records",
        "tlsrpt.rua_missing",
    ] {
        assert!(
            codes(&mixed).iter().any(|c| c == want),
            "expected {want} in {mixed:#}"
        );
    }
    let (_, missing) = mailcheck(ns, &["nonexistent.good.test"]);
    assert!(
        codes(&missing).contains(&"domain.missing".to_string()),
        "{missing:#}"
    );
    assert_eq!(by("sub.org.test")["records"]["dmarc_domain"], "org.test");
    // NSD refuses names outside its zones: every lookup fails, and each
    // check says so instead of reporting the records missing
    let (_, unserved) = mailcheck(ns, &["unserved.example"]);
    let c = codes(&unserved);
    for want in [
        "mx.lookup_failed",
        "spf.lookup_failed",
        "dmarc.lookup_failed",
        "mta_sts.lookup_failed",
        "tlsrpt.lookup_failed",
    ] {
        assert!(
            c.iter().any(|c| c == want),
            "expected {want} in {unserved:#}"
        );
    }
    assert!(!c.iter().any(|c| c.ends_with(".missing")), "{unserved:#}");
}

/// Every SPF, DMARC and DKIM finding code, end to end: (domain, DKIM
/// selector, code). Each codes.test name carries one deliberate defect and
/// is called after the code it gives (testdata/mail/codes.test.zone); codes
/// asserted by the other tests in this file are not repeated here.
const RECORD_CODES: &[(&str, Option<&str>, &str)] = &[
    ("spf-missing.codes.test", None, "spf.missing"),
    ("spf-syntax.codes.test", None, "spf.syntax"),
    ("spf-all-neutral.codes.test", None, "spf.all_neutral"),
    ("spf-all-softfail.codes.test", None, "spf.all_softfail"),
    ("spf-all-not-last.codes.test", None, "spf.all_not_last"),
    (
        "spf-duplicate-modifier.codes.test",
        None,
        "spf.duplicate_modifier",
    ),
    (
        "spf-modifier-before-mechanism.codes.test",
        None,
        "spf.modifier_before_mechanism",
    ),
    (
        "spf-redirect-with-all.codes.test",
        None,
        "spf.redirect_with_all",
    ),
    (
        "spf-redirect-missing.codes.test",
        None,
        "spf.redirect_missing",
    ),
    ("spf-include-syntax.codes.test", None, "spf.include_syntax"),
    (
        "spf-macro-not-evaluated.codes.test",
        None,
        "spf.macro_not_evaluated",
    ),
    ("spf-void-lookup.codes.test", None, "spf.void_lookup"),
    (
        "spf-mx-host-without-address.codes.test",
        None,
        "spf.mx_host_without_address",
    ),
    (
        "spf-lookups-at-limit.codes.test",
        None,
        "spf.lookups_at_limit",
    ),
    ("spf-too-long.codes.test", None, "spf.too_long"),
    ("dmarc-missing.codes.test", None, "dmarc.missing"),
    ("dmarc-syntax.codes.test", None, "dmarc.syntax"),
    ("dmarc-version-case.codes.test", None, "dmarc.version_case"),
    (
        "dmarc-version-not-first.codes.test",
        None,
        "dmarc.version_not_first",
    ),
    ("dmarc-empty-tag.codes.test", None, "dmarc.empty_tag"),
    (
        "dmarc-duplicate-tag.codes.test",
        None,
        "dmarc.duplicate_tag",
    ),
    ("dmarc-unknown-tag.codes.test", None, "dmarc.unknown_tag"),
    ("dmarc-truncated.codes.test", None, "dmarc.truncated"),
    (
        "dmarc-multiple-records.codes.test",
        None,
        "dmarc.multiple_records",
    ),
    (
        "dmarc-subdomain-policy-none.codes.test",
        None,
        "dmarc.subdomain_policy_none",
    ),
    ("dmarc-testing.codes.test", None, "dmarc.testing"),
    ("dmarc-pct-partial.codes.test", None, "dmarc.pct_partial"),
    ("dmarc-pct-obsolete.codes.test", None, "dmarc.pct_obsolete"),
    ("dmarc-rua-missing.codes.test", None, "dmarc.rua_missing"),
    (
        "dmarc-ncsc-rua-missing.codes.test",
        None,
        "dmarc.ncsc_rua_missing",
    ),
    (
        "dmarc-ncsc-rua-misconfigured.codes.test",
        None,
        "dmarc.ncsc_rua_misconfigured",
    ),
    ("dmarc-ncsc-ruf.codes.test", None, "dmarc.ncsc_ruf"),
    (
        "dmarc-uri-not-mailto.codes.test",
        None,
        "dmarc.uri_not_mailto",
    ),
    (
        "dmarc-too-many-uris.codes.test",
        None,
        "dmarc.too_many_uris",
    ),
    (
        "dmarc-duplicate-uri.codes.test",
        None,
        "dmarc.duplicate_uri",
    ),
    ("dmarc-too-long.codes.test", None, "dmarc.too_long"),
    ("dkim-syntax.codes.test", Some("sel"), "dkim.syntax"),
    ("dkim-empty-tag.codes.test", Some("sel"), "dkim.empty_tag"),
    (
        "dkim-unknown-tag.codes.test",
        Some("sel"),
        "dkim.unknown_tag",
    ),
    (
        "dkim-unknown-hash.codes.test",
        Some("sel"),
        "dkim.unknown_hash",
    ),
    ("dkim-truncated.codes.test", Some("sel"), "dkim.truncated"),
    (
        "dkim-key-missing.codes.test",
        Some("sel"),
        "dkim.key_missing",
    ),
    (
        "dkim-key-corrupt.codes.test",
        Some("sel"),
        "dkim.key_corrupt",
    ),
    (
        "dkim-key-too-short.codes.test",
        Some("sel"),
        "dkim.key_too_short",
    ),
    ("dkim-sha1-only.codes.test", Some("sel"), "dkim.sha1_only"),
    ("dkim-testing.codes.test", Some("sel"), "dkim.testing"),
    (
        "dkim-service-not-email.codes.test",
        Some("sel"),
        "dkim.service_not_email",
    ),
    // NSD refuses names outside its zones
    ("unserved.example", Some("sel"), "dkim.lookup_failed"),
];

/// One `parapet mailcheck` run over every domain of [`RECORD_CODES`] and the
/// clean control: each code is reported for its domain (and selector), none
/// for the control, and no code the checkers define lacks an end-to-end
/// case in this file.
#[test]
fn every_record_finding_code_end_to_end() {
    let nsd = fixture_nsd();
    let mut domains: Vec<&str> = RECORD_CODES.iter().map(|(d, _, _)| *d).collect();
    domains.push("clean.codes.test");
    domains.dedup();
    let mut selectors: Vec<&str> = RECORD_CODES.iter().filter_map(|(_, s, _)| *s).collect();
    selectors.sort();
    selectors.dedup();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("mailcheck")
        .args(&domains)
        .args([
            "--nameserver",
            &nsd.addr.to_string(),
            "--format",
            "json",
            "--no-tls",
        ])
        .args(selectors.iter().flat_map(|s| ["--dkim-selector", s]))
        .output()
        .unwrap();
    let reports: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert_eq!(o.status.code(), Some(1), "{reports:#}");
    let report = |d: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["domain"] == d)
            .unwrap_or_else(|| panic!("no report for {d}"))
    };

    let mut missing = Vec::new();
    for &(domain, selector, code) in RECORD_CODES {
        let r = report(domain);
        let found = r["findings"].as_array().unwrap().iter().any(|f| {
            f["code"] == code
                // about that selector: key findings start with it, lookup
                // findings name the key's DNS name
                && selector.is_none_or(|s| {
                    let msg = f["message"].as_str().unwrap();
                    msg.starts_with(&format!("selector `{s}`: "))
                        || msg.contains(&format!("{s}._domainkey.{domain}"))
                })
        });
        if !found {
            missing.push(format!(
                "{domain} ({selector:?}): no {code} in {:?}",
                codes(r)
            ));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));

    // the control has none of these defects, and no error at all
    let clean = report("clean.codes.test");
    let c = codes(clean);
    assert!(
        !RECORD_CODES
            .iter()
            .any(|(_, _, code)| c.iter().any(|c| c == code)),
        "{clean:#}"
    );
    assert!(
        clean["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] != "error"),
        "{clean:#}"
    );

    // every code the checkers define (spf., dmarc., dkim., tls., mta_sts.,
    // tlsrpt., mx., domain., parked.) has its case in this
    // file, here or in the tests above (a textual check: the quoted code
    // must appear in this file), so a new code needs an end-to-end case too
    let this =
        std::fs::read_to_string(repo_root().join("crates/cli/tests/it/mailcheck.rs")).unwrap();
    let mut untested: Vec<String> = Vec::new();
    for file in [
        "spf.rs", "dmarc.rs", "dkim.rs", "check.rs", "tls.rs", "sts.rs",
    ] {
        let src =
            std::fs::read_to_string(repo_root().join("crates/mailcheck/src").join(file)).unwrap();
        // the checker's code, not its unit tests' strings
        let src = src.split("#[cfg(test)]").next().unwrap();
        for (i, _) in src.match_indices('"') {
            let rest = &src[i + 1..];
            let Some(dot) = [
                "spf.", "dmarc.", "dkim.", "tls.", "mta_sts.", "tlsrpt.", "mx.", "domain.",
                "parked.",
            ]
            .iter()
            .find(|p| rest.starts_with(**p)) else {
                continue;
            };
            let name_len = rest[dot.len()..]
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(0);
            if name_len == 0 || !rest[dot.len() + name_len..].starts_with('"') {
                continue;
            }
            let code = &rest[..dot.len() + name_len];
            if !this.contains(&format!("\"{code}\"")) && !untested.iter().any(|u| u == code) {
                untested.push(code.to_string());
            }
        }
    }
    assert!(untested.is_empty(), "no end-to-end case for {untested:?}");
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

/// When a test certificate is valid.
#[derive(Clone, Copy)]
enum Validity {
    /// From the past until a year or more from now (rcgen's default).
    Current,
    /// Expired in 2021.
    Expired,
    /// Valid now, expiring this many days from now.
    ExpiresIn(u64),
    /// Valid from this many days from now.
    NotYet(u64),
}

/// A test CA, and certificates it issued for `names`.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn ca(&self) -> (rcgen::Issuer<'static, rcgen::KeyPair>, std::path::PathBuf) {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Parapet test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, cert.pem()).unwrap();
        (rcgen::Issuer::new(params, key), path)
    }

    /// Writes `<tag>.crt` and `<tag>.key`; returns their paths.
    fn leaf(
        &self,
        ca: &rcgen::Issuer<'static, rcgen::KeyPair>,
        tag: &str,
        names: &[&str],
        validity: Validity,
    ) -> (String, String) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        // now plus `days` days (rcgen does not export its date type)
        let from_now = |days: u64| {
            rcgen::date_time_ymd(1970, 1, 1)
                + std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                + std::time::Duration::from_secs(days * 86_400)
        };
        match validity {
            Validity::Current => {}
            Validity::Expired => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = rcgen::date_time_ymd(2021, 1, 1);
            }
            Validity::ExpiresIn(days) => {
                params.not_before = rcgen::date_time_ymd(2020, 1, 1);
                params.not_after = from_now(days);
            }
            Validity::NotYet(days) => {
                params.not_before = from_now(days);
                params.not_after = from_now(days + 365);
            }
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        let crt = self.dir.path().join(format!("{tag}.crt"));
        let keyp = self.dir.path().join(format!("{tag}.key"));
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&keyp, key.serialize_pem()).unwrap();
        (crt.to_str().unwrap().into(), keyp.to_str().unwrap().into())
    }
}

fn tls_check(
    ns: std::net::SocketAddr,
    port: u16,
    ca: Option<&std::path::Path>,
) -> serde_json::Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parapet"));
    cmd.args([
        "mailcheck",
        "tls.test",
        "--nameserver",
        &ns.to_string(),
        "--format",
        "json",
    ])
    .args(["--smtp-port", &port.to_string()]);
    if let Some(ca) = ca {
        cmd.arg("--ca-file").arg(ca);
    }
    let o = cmd.output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    v[0].clone()
}

fn tls_codes(r: &serde_json::Value) -> Vec<(String, String)> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"].as_str().unwrap().starts_with("tls."))
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["record"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// STARTTLS against real SMTP servers (aiosmtpd) with test certificates.
#[test]
fn starttls_offered_valid_mismatched_untrusted_expired_or_missing() {
    let nsd = fixture_nsd();
    let pki = Pki::new();
    let (ca, ca_path) = pki.ca();
    let good = pki.leaf(&ca, "good", &["mx.tls.test"], Validity::Current);
    let old = pki.leaf(
        &ca,
        "old",
        &["mx.tls.test", "other.tls.test"],
        Validity::Expired,
    );
    let tls_smtp = start_smtp_with(&["--tlscert", &good.0, "--tlskey", &good.1]);
    let expired_smtp = start_smtp_with(&["--tlscert", &old.0, "--tlskey", &old.1]);
    let plain_smtp = start_smtp_with(&[]);

    let r = tls_check(nsd.addr, tls_smtp.addr.port(), Some(&ca_path));
    let c = tls_codes(&r);
    assert!(
        c.contains(&("tls.ok".into(), "10 mx.tls.test".into())),
        "{r:#}"
    );
    assert!(
        c.contains(&("tls.cert_name_mismatch".into(), "20 other.tls.test".into())),
        "{r:#}"
    );
    let mx = &r["records"]["tls"][0];
    assert_eq!(mx["host"], "mx.tls.test");
    assert!(
        mx["version"].as_str().unwrap().starts_with("TLSv1_"),
        "{mx}"
    );
    assert!(mx["days_left"].as_i64().unwrap() > 300, "{mx}");

    let r = tls_check(nsd.addr, tls_smtp.addr.port(), None);
    assert!(
        tls_codes(&r).contains(&("tls.cert_untrusted".into(), "10 mx.tls.test".into())),
        "{r:#}"
    );

    let r = tls_check(nsd.addr, expired_smtp.addr.port(), Some(&ca_path));
    assert!(
        tls_codes(&r).contains(&("tls.cert_expired".into(), "10 mx.tls.test".into())),
        "{r:#}"
    );

    let r = tls_check(nsd.addr, plain_smtp.addr.port(), Some(&ca_path));
    let c = tls_codes(&r);
    assert_eq!(
        c.iter()
            .filter(|(c, _)| c == "tls.starttls_missing")
            .count(),
        2,
        "{r:#}"
    );
}

/// The finding with `code` about `record`, or a panic showing the report.
fn tls_finding<'a>(r: &'a serde_json::Value, code: &str, record: &str) -> &'a serde_json::Value {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == code && f["record"] == record)
        .unwrap_or_else(|| panic!("no {code} about `{record}` in {r:#}"))
}

/// STARTTLS that goes wrong before a certificate is looked at: a server
/// speaking only TLS 1.0/1.1 (named by the hand-built ClientHello probe),
/// one refusing STARTTLS with 454, one answering the ClientHello with bytes
/// that are not TLS, and a port where nothing listens.
#[test]
fn starttls_old_versions_refusal_garbage_and_no_server() {
    let nsd = fixture_nsd();
    let pki = Pki::new();
    let (ca, ca_path) = pki.ca();
    let (crt, key) = pki.leaf(
        &ca,
        "mx",
        &["mx.tls.test", "other.tls.test"],
        Validity::Current,
    );
    let old_tls = start_smtp_mode("old-tls", Some((&crt, &key)));
    let refusing = start_smtp_mode("refuse-starttls", None);
    let garbage = start_smtp_mode("garbage-tls", None);

    let r = tls_check(nsd.addr, old_tls.addr.port(), Some(&ca_path));
    let f = tls_finding(&r, "tls.version_too_old", "10 mx.tls.test");
    assert_eq!(f["severity"], "error");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains("negotiated TLS 1.1"), "{msg}");
    tls_finding(&r, "tls.version_too_old", "20 other.tls.test");
    let mx = &r["records"]["tls"][0];
    assert_eq!(mx["starttls"], true, "{mx}");
    assert_eq!(mx["version"], "TLSv1_1", "{mx}");
    assert!(mx["cipher"].as_str().unwrap().contains("_CBC_"), "{mx}");
    assert!(
        !tls_codes(&r)
            .iter()
            .any(|(c, _)| c == "tls.handshake_failed" || c == "tls.ok")
    );

    let r = tls_check(nsd.addr, refusing.addr.port(), Some(&ca_path));
    let f = tls_finding(&r, "tls.starttls_failed", "10 mx.tls.test");
    assert!(f["message"].as_str().unwrap().contains("454"), "{f}");

    let r = tls_check(nsd.addr, garbage.addr.port(), Some(&ca_path));
    tls_finding(&r, "tls.handshake_failed", "10 mx.tls.test");
    assert!(
        !tls_codes(&r)
            .iter()
            .any(|(c, _)| c == "tls.version_too_old"),
        "{r:#}"
    );

    // nothing listens there: connection refused, at once
    let r = tls_check(nsd.addr, free_port(), Some(&ca_path));
    let f = tls_finding(&r, "tls.connect_failed", "10 mx.tls.test");
    assert_eq!(f["severity"], "warning");
    tls_finding(&r, "tls.connect_failed", "20 other.tls.test");
}

/// Certificates that are valid but close to expiry, or not valid yet.
#[test]
fn certificates_expiring_soon_or_not_yet_valid() {
    let nsd = fixture_nsd();
    let pki = Pki::new();
    let (ca, ca_path) = pki.ca();
    let soon = pki.leaf(&ca, "soon", &["mx.tls.test"], Validity::ExpiresIn(10));
    let future = pki.leaf(&ca, "future", &["mx.tls.test"], Validity::NotYet(10));
    let soon_smtp = start_smtp_with(&["--tlscert", &soon.0, "--tlskey", &soon.1]);
    let future_smtp = start_smtp_with(&["--tlscert", &future.0, "--tlskey", &future.1]);

    let r = tls_check(nsd.addr, soon_smtp.addr.port(), Some(&ca_path));
    let f = tls_finding(&r, "tls.cert_expiring", "10 mx.tls.test");
    assert_eq!(f["severity"], "warning");
    // the handshake itself succeeded
    tls_finding(&r, "tls.ok", "10 mx.tls.test");
    let days = r["records"]["tls"][0]["days_left"].as_i64().unwrap();
    assert!((8..=10).contains(&days), "{days}");

    let r = tls_check(nsd.addr, future_smtp.addr.port(), Some(&ca_path));
    let f = tls_finding(&r, "tls.cert_invalid", "10 mx.tls.test");
    assert!(
        f["message"].as_str().unwrap().contains("not valid yet"),
        "{f}"
    );
}

/// MTA-STS policies fetched over HTTPS from a real server (Python's
/// http.server with TLS), resolved through the same nameserver; TLS-RPT.
#[test]
fn mta_sts_and_tls_rpt() {
    let nsd = fixture_nsd();
    let pki = Pki::new();
    let (ca, ca_path) = pki.ca();
    let (crt, key) = pki.leaf(
        &ca,
        "sts",
        &[
            "mta-sts.sts.test",
            "mta-sts.sts2.test",
            "mta-sts.rpt.test",
            "mta-sts.sts3.test",
            "mta-sts.sts4.test",
        ],
        Validity::Current,
    );
    let server = start_https_policy_server(&crt, &key);
    let port = server.addr.port();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args([
            "mailcheck",
            "sts.test",
            "sts2.test",
            "--no-tls",
            "--format",
            "json",
        ])
        .args([
            "--nameserver",
            &nsd.addr.to_string(),
            "--https-port",
            &port.to_string(),
        ])
        .arg("--ca-file")
        .arg(&ca_path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sts = &v[0];
    let c = codes(sts);
    assert!(
        !c.iter()
            .any(|c| c.starts_with("mta_sts.") || c.starts_with("tlsrpt.")),
        "{sts:#}"
    );
    assert!(
        sts["records"]["mta_sts_policy"]
            .as_str()
            .unwrap()
            .contains("mode: enforce")
    );
    let sts2 = &v[1];
    let c = codes(sts2);
    for want in [
        "mta_sts.bad_id",
        "mta_sts.mode_testing",
        "mta_sts.max_age_short",
        "mta_sts.mx_not_covered",
        "tlsrpt.missing",
    ] {
        assert!(c.iter().any(|c| c == want), "expected {want} in {c:?}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["mailcheck", "rpt.test", "--no-tls", "--format", "json"])
        .args([
            "--nameserver",
            &nsd.addr.to_string(),
            "--https-port",
            &port.to_string(),
        ])
        .arg("--ca-file")
        .arg(&ca_path)
        .output()
        .unwrap();
    let rpt: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rpt = &rpt[0];
    for want in [
        "mta_sts.policy_invalid",
        "tlsrpt.bad_uri",
        "tlsrpt.ncsc_rua_missing",
    ] {
        assert!(
            codes(rpt).iter().any(|c| c == want),
            "expected {want} in {rpt:#}"
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args([
            "mailcheck",
            "sts3.test",
            "sts4.test",
            "--no-tls",
            "--format",
            "json",
        ])
        .args([
            "--nameserver",
            &nsd.addr.to_string(),
            "--https-port",
            &port.to_string(),
        ])
        .arg("--ca-file")
        .arg(&ca_path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // a `none` policy (no `mx:` lines, which it needs none of), two TLS-RPT records
    let sts3 = &v[0];
    let c = codes(sts3);
    for want in ["mta_sts.mode_none", "tlsrpt.multiple_records"] {
        assert!(c.iter().any(|c| c == want), "expected {want} in {sts3:#}");
    }
    assert!(!c.iter().any(|c| c == "mta_sts.mx_not_covered"), "{sts3:#}");
    assert_eq!(
        sts3["records"]["tlsrpt"].as_array().unwrap().len(),
        2,
        "{sts3:#}"
    );
    // `mx: *.sts4.test` covers mx.sts4.test, but UK guidance wants each host
    let sts4 = &v[1];
    let c = codes(sts4);
    let wild = sts4["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "mta_sts.mx_wildcard")
        .unwrap_or_else(|| panic!("no mta_sts.mx_wildcard in {sts4:#}"));
    assert_eq!(wild["severity"], "warning", "{wild}");
    assert!(
        wild["message"]
            .as_str()
            .unwrap()
            .contains("`mx: *.sts4.test`"),
        "{wild}"
    );
    assert!(
        !c.iter()
            .any(|c| c == "mta_sts.mx_not_covered" || c == "mta_sts.policy_invalid"),
        "{sts4:#}"
    );
    // without the test CA the policy cannot be fetched
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["mailcheck", "sts.test", "--no-tls", "--format", "json"])
        .args([
            "--nameserver",
            &nsd.addr.to_string(),
            "--https-port",
            &port.to_string(),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        codes(&v[0]).contains(&"mta_sts.policy_fetch_failed".to_string()),
        "{v:#}"
    );
    assert_eq!(o.status.code(), Some(1));
}

/// MTA-STS policy fetches as RFC 8461 §3.3 wants them, from a real HTTPS
/// server: a chunked policy (behind an address that refuses connections,
/// and behind an IPv6 one), and the answers that must fail: a redirect,
/// text/html, a body past 64 KiB, and a host whose every address refuses.
#[test]
fn mta_sts_policy_fetch_follows_rfc_8461() {
    let nsd = fixture_nsd();
    let pki = Pki::new();
    let (ca, ca_path) = pki.ca();
    let hosts = ["chunked", "v6", "redirect", "html", "big", "down"];
    let names: Vec<String> = hosts
        .iter()
        .map(|h| format!("mta-sts.{h}.fetch.test"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (crt, key) = pki.leaf(&ca, "fetch", &names, Validity::Current);
    let server = start_https_policy_server(&crt, &key);
    let domains: Vec<String> = hosts.iter().map(|h| format!("{h}.fetch.test")).collect();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("mailcheck")
        .args(&domains)
        .args(["--no-tls", "--format", "json"])
        .args([
            "--nameserver",
            &nsd.addr.to_string(),
            "--https-port",
            &server.addr.port().to_string(),
        ])
        .arg("--ca-file")
        .arg(&ca_path)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let report = |d: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|r| r["domain"] == d)
            .unwrap_or_else(|| panic!("no report for {d}"))
    };
    for ok in ["chunked.fetch.test", "v6.fetch.test"] {
        let r = report(ok);
        assert!(!codes(r).iter().any(|c| c.starts_with("mta_sts.")), "{r:#}");
        assert_eq!(
            r["records"]["mta_sts_policy"],
            "version: STSv1\r\nmode: enforce\r\nmx: mx.fetch.test\r\nmax_age: 1209600\r\n",
            "{r:#}"
        );
    }
    let failure = |d: &str| {
        let r = report(d);
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "mta_sts.policy_fetch_failed")
            .unwrap_or_else(|| panic!("no mta_sts.policy_fetch_failed in {r:#}"))["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let m = failure("redirect.fetch.test");
    assert!(
        m.contains("301") && m.contains("must not be redirected"),
        "{m}"
    );
    assert!(m.contains("https://mta-sts.sts.test/"), "{m}");
    let m = failure("html.fetch.test");
    assert!(m.contains("`text/html`, not text/plain"), "{m}");
    let m = failure("big.fetch.test");
    assert!(m.contains("larger than 65536 bytes"), "{m}");
    // every address was tried, and each says why it failed
    let m = failure("down.fetch.test");
    let port = server.addr.port();
    assert!(
        m.contains(&format!("127.0.0.2:{port}: cannot connect"))
            && m.contains(&format!("127.0.0.3:{port}: cannot connect")),
        "{m}"
    );
}

/// A zone of `n` council-style domains, each with its own MX host and
/// DMARC record and an SPF record naming three shared include trees of 4, 4
/// and 2 records (like spf.protection.outlook.com, _spf.google.com and a
/// notification service): 10 DNS lookups, the most SPF allows.
pub(crate) fn council_zone(n: usize) -> String {
    let mut z = String::from(
        "$TTL 300\n@ SOA ns.council.test. hostmaster.council.test. 1 3600 600 86400 300\n\
         @ NS ns.council.test.\nns A 127.0.0.1\n\
         spf.protection TXT \"v=spf1 include:spfa.protection.council.test include:spfb.protection.council.test include:spfc.protection.council.test -all\"\n\
         spfa.protection TXT \"v=spf1 ip4:192.0.2.0/26 ip4:198.51.100.0/26 -all\"\n\
         spfb.protection TXT \"v=spf1 ip4:192.0.2.64/26 ip6:2001:db8:1::/48 -all\"\n\
         spfc.protection TXT \"v=spf1 ip4:192.0.2.128/26 ip6:2001:db8:2::/48 -all\"\n\
         _spf.google TXT \"v=spf1 include:_netblocks.google.council.test include:_netblocks2.google.council.test include:_netblocks3.google.council.test ~all\"\n\
         _netblocks.google TXT \"v=spf1 ip4:203.0.113.0/26 ~all\"\n\
         _netblocks2.google TXT \"v=spf1 ip6:2001:db8:3::/48 ~all\"\n\
         _netblocks3.google TXT \"v=spf1 ip4:203.0.113.64/26 ~all\"\n\
         spf.notify TXT \"v=spf1 include:_ses.notify.council.test -all\"\n\
         _ses.notify TXT \"v=spf1 ip4:198.51.100.128/25 -all\"\n",
    );
    for i in 0..n {
        z += &format!(
            "d{i} MX 10 d{i}.mail.protection.council.test.\n\
             d{i}.mail.protection A 192.0.2.{}\n\
             d{i} TXT \"v=spf1 include:spf.protection.council.test include:_spf.google.council.test include:spf.notify.council.test -all\"\n\
             _dmarc.d{i} TXT \"v=DMARC1; p=reject; rua=mailto:dmarc-rua@dmarc.service.gov.uk\"\n",
            i % 250 + 1
        );
    }
    z
}

/// The counts `--stats` prints: (lookups, cached, queries).
fn dns_stats(stderr: &[u8]) -> (u64, u64, u64) {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("dns: "))
        .unwrap_or_else(|| panic!("no stats line in {text}"));
    let n: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (n[0], n[1], n[2])
}

/// One run's DNS cache: the three shared include trees are asked once per
/// run, however many domains name them and however many checks ask at once
/// (32 domains at a time), and negative answers (no AAAA, no MTA-STS) are
/// kept too; without the cache every domain asks them again.
#[test]
fn one_run_asks_each_name_once() {
    let nsd = start_nsd(&[("council.test", &council_zone(30))]);
    let run = |n: usize, cache: bool| {
        let domains: Vec<String> = (0..n).map(|i| format!("d{i}.council.test")).collect();
        let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
            .arg("mailcheck")
            .args(&domains)
            .args(["--no-tls", "--format", "json", "--stats"])
            .args(["--nameserver", &nsd.addr.to_string()])
            .args((!cache).then_some("--no-dns-cache"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // every domain gets the same findings either way
        let lookups = v
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| codes(r).contains(&"spf.lookups_at_limit".to_string()))
            .count();
        assert_eq!(lookups, n, "{v:#}");
        dns_stats(&o.stderr)
    };
    let (c10, c20, c30) = (run(10, true), run(20, true), run(30, true));
    // each ten domains add the same queries: their own names only
    let per_ten = c20.2 - c10.2;
    assert_eq!(c30.2 - c20.2, per_ten, "{c10:?} {c20:?} {c30:?}");
    assert_eq!(per_ten % 10, 0, "{c10:?} {c20:?}");
    let per_domain = per_ten / 10;
    // the shared trees (10 TXT records) were asked once, though ten
    // domains asked for them at the same time
    let shared = c10.2 - per_ten;
    assert_eq!(shared, 10, "{c10:?} {c20:?}");
    assert!(c30.1 > 0 && c30.0 == c30.1 + c30.2, "{c30:?}");
    let (u10, u20) = (run(10, false), run(20, false));
    assert_eq!(u10.1, 0);
    // without the cache every domain asks the shared trees again
    assert_eq!(u10.2, u10.0, "{u10:?}");
    assert_eq!(u20.2 - u10.2, u10.2, "{u10:?} {u20:?}");
    assert_eq!(u10.2, 10 * (per_domain + 10), "{u10:?} vs {per_domain}");
}

/// The table: a count line per domain, then its findings worst first.
#[test]
fn table_output_is_worst_first_with_counts() {
    let nsd = fixture_nsd();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["mailcheck", "weak.test", "good.test", "--no-tls"])
        .args(["--nameserver", &nsd.addr.to_string()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let blocks: Vec<&str> = out.split("\n\n").filter(|b| !b.trim().is_empty()).collect();
    assert_eq!(blocks.len(), 2, "{out}");
    for (block, domain) in blocks.iter().zip(["weak.test", "good.test"]) {
        let mut lines = block.lines();
        let head = lines.next().unwrap();
        let rank = |s: &str| ["info", "warning", "error"].iter().position(|l| *l == s);
        let sev: Vec<usize> = lines
            .map(|l| rank(l.split_whitespace().next().unwrap()).unwrap())
            .collect();
        assert!(sev.windows(2).all(|w| w[0] >= w[1]), "{block}");
        let count = |r: usize| sev.iter().filter(|s| **s == r).count();
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        assert_eq!(
            head,
            format!(
                "{domain}: {} error{}, {} warning{}, {} info",
                count(2),
                plural(count(2)),
                count(1),
                plural(count(1)),
                count(0)
            ),
            "{block}"
        );
    }
    assert!(out.starts_with("weak.test: "), "{out}");
}

/// A file larger than any report may expand to is refused by its size,
/// before it is read (it used to be read whole: 1.06 GB RSS for 1 GB of
/// NUL bytes), and the other files still import.
#[test]
fn dmarc_import_refuses_an_oversized_file_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[store]\npath = \"data\"\n").unwrap();
    let big = dir.path().join("big.bin");
    // sparse: no disk used, and nothing to read quickly either
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["dmarc", "import", "--config"])
        .arg(&config)
        .arg(&big)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a skipped file is bad input: {err}"
    );
    assert!(
        err.contains("big.bin: 1073741824 bytes, more than the 67 MB an import may be"),
        "{err}"
    );
}

/// Every sample report imports (or is skipped with its reason), duplicates
/// are recognised, and the summary adds up.
#[test]
fn dmarc_reports_import_and_summarise() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[store]\npath = \"data\"\n").unwrap();
    let samples = repo_root().join("testdata/dmarc");
    let mut files = Vec::new();
    for sub in ["aggregate", "smtp_tls", "extract_report"] {
        for f in std::fs::read_dir(samples.join(sub)).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files.push(samples.join("empty.xml"));
    files.sort();
    let run = |files: &[std::path::PathBuf]| {
        Command::new(env!("CARGO_BIN_EXE_parapet"))
            .args(["dmarc", "import", "--config"])
            .arg(&config)
            .args(files)
            .output()
            .unwrap()
    };
    let o = run(&files);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    // the deliberately broken samples are named with a reason; the rest import
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("invalid_xml.xml:"), "{err}");
    assert!(err.contains("empty.xml:"), "{err}");
    let imported: u64 = out.split_whitespace().next().unwrap().parse().unwrap();
    assert!(imported >= 15, "{out}{err}");
    // a second import finds them all stored
    let o = run(&files);
    let out2 = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out2.starts_with("0 reports imported"), "{out2}");

    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args([
            "dmarc",
            "summary",
            "--domain",
            "example.com",
            "--format",
            "json",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let total: u64 = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["messages"].as_u64().unwrap())
        .sum();
    assert_eq!(v["messages"].as_u64().unwrap(), total);
    assert!(v["reports"].as_u64().unwrap() >= 5, "{v:#}");
}

/// `--store` keeps each result and says what changed since the last check.
#[test]
fn stored_checks_report_changes() {
    let nsd = fixture_nsd();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(&config, "[store]\npath = \"data\"\n").unwrap();
    let run = || {
        let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
            .args([
                "mailcheck",
                "weak.test",
                "--no-tls",
                "--format",
                "json",
                "--store",
                "--config",
            ])
            .arg(&config)
            .args(["--nameserver", &nsd.addr.to_string()])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()[0].clone()
    };
    // a DMARC report showing weak.test mail signed with selector `sel1`
    let xml = dir.path().join("report.xml");
    std::fs::write(
        &xml,
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>example.net</org_name>\
         <email>dmarc@example.net</email><report_id>r-1</report_id><date_range><begin>1700000000</begin>\
         <end>1700086399</end></date_range></report_metadata><policy_published><domain>weak.test</domain>\
         <p>none</p></policy_published><record><row><source_ip>192.0.2.20</source_ip><count>3</count>\
         <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated>\
         </row><identifiers><header_from>weak.test</header_from></identifiers><auth_results><dkim>\
         <domain>weak.test</domain><selector>sel1</selector><result>pass</result></dkim><spf>\
         <domain>weak.test</domain><result>pass</result></spf></auth_results></record></feedback>",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["dmarc", "import", "--config"])
        .arg(&config)
        .arg(&xml)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = run();
    assert!(first["changes"]["since"].is_null(), "{first:#}");
    // the selector learned from the report was checked (a 1024-bit key)
    assert_eq!(first["records"]["dkim"][0]["selector"], "sel1", "{first:#}");
    assert!(codes(&first).contains(&"dkim.key_short".to_string()));
    let second = run();
    assert!(second["changes"]["since"].is_string(), "{second:#}");
    assert_eq!(second["changes"]["new"], serde_json::json!([]));
    assert_eq!(second["changes"]["fixed"], serde_json::json!([]));
    let db = rusqlite::Connection::open(dir.path().join("data/parapet.sqlite")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM mailcheck_results WHERE domain = 'weak.test' AND worst = 'error'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 2);
}

/// `parapet serve` checks the configured domains on its own and stores the
/// results.
#[test]
fn serve_schedules_mail_checks() {
    let nsd = fixture_nsd();
    let p = crate::harness::Parapet::start(
        &format!("upstreams = [\"{}\"]", nsd.addr),
        &format!(
            "[mailcheck]\ndomains = [\"weak.test\", \"nomail.test\"]\nnameserver = \"{}\"\nsmtp_port = {}\n",
            nsd.addr,
            crate::harness::free_port()
        ),
        &[],
    );
    let db = p.path("parapet-data/parapet.sqlite");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let n: i64 = rusqlite::Connection::open(&db)
            .and_then(|c| {
                c.query_row(
                    "SELECT COUNT(DISTINCT domain) FROM mailcheck_results",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0);
        if n == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled checks stored:\n{}",
            p.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
