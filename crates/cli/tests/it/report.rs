//! `parapet report`: the public report and the exempt appendix from the
//! Northshire fixture estate. The leak test extracts every word of the
//! public HTML and PDF (pdftotext, pdfinfo) and checks that no host name,
//! address, MAC, user name, CVE, plugin id, finding title or tenant id of the
//! estate appears in it, while the exempt appendix holds them all.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{repo_root, store_config};

const TENANT: &str = "nsh-internal-7";

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

fn estate(name: &str) -> PathBuf {
    repo_root().join("testdata/assets/estate").join(name)
}

fn import_estate(d: &Path) {
    for (kind, file) in [
        ("inventory-csv", "inventory.csv"),
        ("defender-csv", "defender.csv"),
        ("osquery", "osquery.json"),
        ("nessus", "scan-2021-06.nessus"),
        ("nessus", "scan-2021-09.nessus"),
        ("openvas", "openvas-2021-09.xml"),
    ] {
        ok(
            d,
            &[
                "assets",
                "import",
                "--tenant",
                TENANT,
                "--source",
                kind,
                estate(file).to_str().unwrap(),
            ],
        );
    }
    ok(
        d,
        &[
            "incidents",
            "add",
            "--tenant",
            TENANT,
            "--reference",
            "INC-2021-007",
            "--date",
            "2021-08-12",
            "--category",
            "phishing",
            "--impact",
            "mailbox of j.smith compromised",
            "--outcome",
            "successful",
            "--status",
            "closed",
        ],
    );
}

fn report(d: &Path, quarter: &str, out: &str) -> PathBuf {
    report_with(d, quarter, out, &[])
}

fn report_with(d: &Path, quarter: &str, out: &str, extra: &[&str]) -> PathBuf {
    let dir = d.join(out);
    let mut args = vec![
        "report",
        "--tenant",
        TENANT,
        "--quarter",
        quarter,
        "--out",
        dir.to_str().unwrap(),
        "--council",
        "Northshire District Council",
        "--freeze",
    ];
    args.extend_from_slice(extra);
    ok(d, &args);
    dir
}

/// The tenant's report profile, in a config over the same store as the
/// commands without one (`parapet-data` beside it).
const PROFILE: &str = r#"[[tenants]]
name = "nsh-internal-7"
networks = ["10.99.0.0/16"]
report = { author = "Pat Example, Head of Digital Services", contact = "digital@northshire.example", agenda_item = "Item 9", recommendation = "That the committee notes the report and the actions in section 8.", psn = { certified = "2021-03-15", expires = "2099-03-14" } }
"#;

/// Officer commentary in the Markdown form: public words only.
const COMMENTARY: &str = "# KPI 2: servers without anti-virus\nThe servers are being rebuilt with the new agent.\n## Actions\n- Rebuild the remaining servers by November\n# Options considered\nDoing nothing was considered and rejected.\n# Implications\n## Financial implications\nMet from the existing ICT budget.\n## Legal implications\nNone beyond the council's data protection duties.\n## Risk implications\nThe risk falls once the rebuild ends.\n## Equalities implications\nNone arising.\n# Background papers\n- Cyber security strategy 2021 to 2024\n";

/// What the profile and the commentary put in the public report.
const PROFILED: &[&str] = &[
    "Pat Example, Head of Digital Services",
    "digital@northshire.example",
    "Item 9",
    "That the committee notes the report and the actions in section 8.",
    "issued 15 March 2021, valid until 14 March 2099",
    "The servers are being rebuilt with the new agent.",
    "Rebuild the remaining servers by November",
    "Doing nothing was considered and rejected.",
    "Met from the existing ICT budget.",
    "The risk falls once the rebuild ends.",
    "Cyber security strategy 2021 to 2024",
    "Public interest test:",
    "paragraph 3 of Part 1 of Schedule 12A",
];

/// Writes the profile's config and the commentary file; the arguments
/// that use them.
fn profiled(d: &Path) -> Vec<String> {
    std::fs::write(d.join("parapet.toml"), PROFILE).unwrap();
    std::fs::write(d.join("commentary.md"), COMMENTARY).unwrap();
    ["--config", "parapet.toml", "--commentary", "commentary.md"]
        .map(String::from)
        .to_vec()
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} (apt-get install poppler-utils): {e}"));
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn pdf_text(pdf: &Path) -> String {
    // whitespace collapsed: table cells wrap long values across lines
    tool("pdftotext", &["-raw", pdf.to_str().unwrap(), "-"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything of the estate that must never be published.
fn secrets(d: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let r: Value = serde_json::from_str(&ok(
        d,
        &[
            "kpi",
            "--tenant",
            TENANT,
            "--quarter",
            "2021-22-Q2",
            "--format",
            "json",
        ],
    ))
    .unwrap();
    // (must appear in the appendix too, must only be absent from the public report)
    let mut both = BTreeSet::new();
    let mut never = BTreeSet::new();
    for dev in r["register"].as_array().unwrap() {
        both.insert(dev["device"].as_str().unwrap().to_string());
        for i in dev["identifiers"].as_array().unwrap() {
            never.insert(i.as_str().unwrap().to_string());
        }
    }
    for k in r["kpis"].as_array().unwrap() {
        for e in k["evidence"].as_array().unwrap() {
            for f in e["findings"].as_array().unwrap() {
                let key = f["key"].as_str().unwrap();
                both.insert(key.to_string());
                both.insert(key.rsplit(':').next().unwrap().to_string()); // the bare plugin id / OID
                both.insert(f["title"].as_str().unwrap().to_string());
                for c in f["cves"].as_array().unwrap() {
                    both.insert(c.as_str().unwrap().to_string());
                }
            }
        }
    }
    // addresses the scanners reported
    for ip in [
        "10.10.0.10",
        "10.10.0.99",
        "10.20.0.21",
        "00:50:56:00:00:11",
    ] {
        both.insert(ip.to_string());
    }
    // user names and owners from the inventory, the tenant's internal id
    for u in [
        "j.smith",
        "a.jones",
        "c.brown",
        "d.green",
        "northshire.local",
        TENANT,
    ] {
        never.insert(u.to_string());
    }
    never.extend(both.iter().cloned());
    (both, never)
}

#[test]
fn the_public_report_leaks_nothing_and_the_appendix_holds_it_all() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    import_estate(d);
    // with a profile and commentary in place: public words by design
    let extra = profiled(d);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let out = report_with(d, "2021-22-Q2", "q2", &extra);
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "exempt-appendix.html",
            "exempt-appendix.pdf",
            "kpi.json",
            "public-report.html",
            "public-report.pdf"
        ]
    );

    let (both, never) = secrets(d);
    assert!(both.len() > 20, "{both:?}");
    let public_html = std::fs::read_to_string(out.join("public-report.html")).unwrap();
    let public_pdf = pdf_text(&out.join("public-report.pdf"));
    let public_meta = tool(
        "pdfinfo",
        &[out.join("public-report.pdf").to_str().unwrap()],
    );
    let kpi_json = std::fs::read_to_string(out.join("kpi.json")).unwrap();
    for (what, text) in [
        ("public HTML", &public_html),
        ("public PDF", &public_pdf),
        ("public PDF metadata", &public_meta),
        ("kpi.json", &kpi_json),
    ] {
        let lower = text.to_lowercase();
        for s in &never {
            let needle = s.to_lowercase();
            let found = if needle.chars().all(|c| c.is_ascii_digit()) {
                // a bare plugin id: as a whole number only
                lower
                    .split(|c: char| !c.is_ascii_digit())
                    .any(|w| w == needle)
            } else {
                lower.contains(&needle)
            };
            assert!(!found, "{what} contains `{s}`");
        }
        assert!(!lower.contains("cve-"), "{what} names a CVE");
    }
    // the public report does say what matters
    for want in [
        "Northshire District Council",
        "July–September 2021",
        "Servers without anti-virus",
        "Red",
        "successful cyber-attack",
        "NOT FOR PUBLICATION",
    ] {
        if want == "NOT FOR PUBLICATION" {
            assert!(!public_html.contains(want) && !public_pdf.contains(want));
            continue;
        }
        assert!(public_html.contains(want), "public HTML lacks {want}");
        assert!(
            public_pdf.contains(want),
            "public PDF lacks {want}: {public_pdf}"
        );
    }
    // the profile and the commentary, in both formats (the HTML escapes
    // the apostrophe)
    for want in PROFILED {
        assert!(public_html.contains(want), "public HTML lacks {want}");
        assert!(
            public_pdf.contains(want),
            "public PDF lacks {want}: {public_pdf}"
        );
    }

    let exempt_html = std::fs::read_to_string(out.join("exempt-appendix.html")).unwrap();
    let exempt_pdf = pdf_text(&out.join("exempt-appendix.pdf"));
    for (what, text) in [("exempt HTML", &exempt_html), ("exempt PDF", &exempt_pdf)] {
        assert!(
            text.contains("NOT FOR PUBLICATION — exempt information"),
            "{what}"
        );
        assert!(
            text.contains("paragraph 3 of Part 1 of Schedule 12A to the Local Government Act 1972"),
            "{what}"
        );
        for s in &both {
            let plain = s.replace('&', "&amp;");
            assert!(
                text.contains(s.as_str()) || text.contains(&plain),
                "{what} lacks `{s}`"
            );
        }
    }
}

/// Pages as PGM images: (width, height, share of non-white pixels).
fn pages(pdf: &Path, dir: &Path) -> Vec<f64> {
    let prefix = dir.join("page");
    tool(
        "pdftoppm",
        &[
            "-r",
            "40",
            "-gray",
            pdf.to_str().unwrap(),
            prefix.to_str().unwrap(),
        ],
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pgm"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let data = std::fs::read(f).unwrap();
            // P5 <w> <h> <max>\n<pixels>
            let mut fields = 0;
            let mut i = 0;
            while fields < 4 {
                while data[i].is_ascii_whitespace() {
                    i += 1;
                }
                while !data[i].is_ascii_whitespace() {
                    i += 1;
                }
                fields += 1;
            }
            let px = &data[i + 1..];
            px.iter().filter(|&&p| p < 200).count() as f64 / px.len() as f64
        })
        .collect()
}

#[test]
fn pdfs_are_a4_with_embedded_fonts_page_numbers_and_real_text() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    import_estate(d);
    let out = report(d, "2021-22-Q2", "q2");
    for doc in ["public-report.pdf", "exempt-appendix.pdf"] {
        let pdf = out.join(doc);
        let info = tool("pdfinfo", &[pdf.to_str().unwrap()]);
        assert!(info.contains("(A4)"), "{doc} is not A4: {info}");
        assert!(
            info.lines()
                .any(|l| l.starts_with("Tagged:") && l.contains("yes")),
            "{doc} is not tagged: {info}"
        );
        let fonts = tool("pdffonts", &[pdf.to_str().unwrap()]);
        let rows: Vec<&str> = fonts.lines().skip(2).collect();
        assert!(
            !rows.is_empty()
                && rows
                    .iter()
                    .all(|r| r.split_whitespace().rev().nth(4) == Some("yes")),
            "{doc}: fonts not embedded:\n{fonts}"
        );
        let imgs = tempfile::tempdir().unwrap();
        let inked = pages(&pdf, imgs.path());
        let n: usize = info
            .lines()
            .find_map(|l| l.strip_prefix("Pages:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(inked.len(), n);
        assert!(
            inked.iter().all(|&share| share > 0.002),
            "{doc}: a blank page: {inked:?}"
        );
        let text = pdf_text(&pdf);
        assert!(
            text.contains(&format!("page 1 of {n}")),
            "{doc}: no page numbers"
        );
    }
    let text = pdf_text(&out.join("public-report.pdf"));
    // the figures are text, not pictures of text
    assert!(
        text.contains("2. Servers without anti-virus 3 5 Red"),
        "{text}"
    );
    assert!(
        text.contains("Incidents and devices failing each measure"),
        "the trend chart's caption"
    );
}

#[test]
fn first_empty_and_breach_quarters() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // reports need a store: the first account makes one
    ok(d, &["users", "add", "officer", "--role", "supplier-admin"]);
    // an empty quarter: documents are still written and say so; nothing
    // is green, and the summary says what is missing
    let empty = report(d, "2019-20-Q1", "empty");
    let html = std::fs::read_to_string(empty.join("public-report.html")).unwrap();
    assert!(html.contains("Measure 1 could not be assessed (no data)"));
    assert!(html.contains("could not be assessed"));
    assert!(html.contains("Data missing this quarter: the incident register has never been used"));
    assert!(!html.contains("class=\"rag-green\""), "{html}");
    assert!(!html.contains(" 0 of 0"));
    assert!(html.contains("the trend starts next quarter"));
    assert!(!html.contains("<svg"));

    import_estate(d);
    // the first quarter with data: no trend
    let q1 = report(d, "2021-22-Q1", "q1");
    let html = std::fs::read_to_string(q1.join("public-report.html")).unwrap();
    assert!(
        html.contains("This is the first quarter reported"),
        "{html}"
    );
    assert!(!html.contains("<svg"));
    // the breach quarter: KPI 1 red, and the commentary says so; a trend
    let q2 = report(d, "2021-22-Q2", "q2");
    let html = std::fs::read_to_string(q2.join("public-report.html")).unwrap();
    assert!(
        html.contains("There was 1 successful cyber-attack or breach this quarter"),
        "{html}"
    );
    assert!(html.contains("<td class=\"rag-red\">Red</td>"));
    assert!(html.contains("<svg") && html.contains("2021-22-Q1") && html.contains("2021-22-Q2"));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(q2.join("kpi.json")).unwrap()).unwrap();
    assert_eq!(json["kpis"][0]["rag"], "red");
    assert_eq!(json["history"].as_array().unwrap().len(), 2);
}

/// With tenants configured, `kpi` and `report` must name one, and a tenant
/// nobody configured and with no data is refused: either used to report
/// tenant `default` (or the unknown one) with exit 0 and freeze its empty
/// quarter.
#[test]
fn kpi_and_report_refuse_a_missing_or_unknown_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("parapet.toml"),
        "[store]\npath = \"data\"\n[[tenants]]\nname = \"north\"\nnetworks = [\"10.1.0.0/16\"]\n\
         [[tenants]]\nname = \"south\"\nnetworks = [\"10.2.0.0/16\"]\n",
    )
    .unwrap();
    // kpi and report read an existing store: none yet, so none is made
    let o = run(
        d,
        &["kpi", "--quarter", "2021-22-Q2", "--config", "parapet.toml"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no store at"));
    assert!(!d.join("data").exists(), "no store was made");
    ok(
        d,
        &[
            "users",
            "add",
            "officer",
            "--role",
            "supplier-admin",
            "--config",
            "parapet.toml",
        ],
    );
    let out = d.join("out");
    let out = out.to_str().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["kpi", "--quarter", "2021-22-Q2"],
            "--tenant is required (configured: north, south)",
        ),
        (
            &["report", "--quarter", "2021-22-Q2", "--out", out],
            "--tenant is required",
        ),
        (
            &["kpi", "--quarter", "2021-22-Q2", "--tenant", "nosuch"],
            "`nosuch` is not a configured tenant and has no data (configured: north, south)",
        ),
        (
            &[
                "report",
                "--quarter",
                "2021-22-Q2",
                "--out",
                out,
                "--tenant",
                "default",
            ],
            "`default` is not a configured tenant",
        ),
    ];
    for (args, message) in cases {
        let mut args = args.to_vec();
        args.extend(["--config", "parapet.toml"]);
        let o = run(d, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    assert!(!d.join("out").exists(), "nothing was written");
    let db = rusqlite::Connection::open(d.join("data/parapet.sqlite")).unwrap();
    let frozen: i64 = db
        .query_row("SELECT COUNT(*) FROM kpi_snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(frozen, 0, "nothing was frozen");
    // a configured tenant is fine
    ok(
        d,
        &[
            "kpi",
            "--quarter",
            "2021-22-Q2",
            "--tenant",
            "north",
            "--config",
            "parapet.toml",
        ],
    );
}

/// `report` of an ended quarter that is not frozen says so and how to
/// freeze it, writing and freezing nothing.
#[test]
fn a_report_of_an_unfrozen_ended_quarter_asks_for_a_freeze() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    import_estate(d);
    let out = d.join("out");
    let o = run(
        d,
        &[
            "report",
            "--tenant",
            TENANT,
            "--quarter",
            "2021-22-Q2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("2021-22-Q2 has ended but"), "{err}");
    assert!(
        err.contains(&format!(
            "parapet kpi freeze --quarter 2021-22-Q2 --tenant {TENANT} --by NAME"
        )),
        "{err}"
    );
    assert!(err.contains("--freeze"), "{err}");
    assert!(!out.exists());
    let db = rusqlite::Connection::open(d.join("parapet-data/parapet.sqlite")).unwrap();
    let frozen: i64 = db
        .query_row("SELECT COUNT(*) FROM kpi_snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(frozen, 0);
}

/// An empty tenant: KPIs 2–5 `no_data` in JSON, grey in the HTML, "no
/// data" in the PDF text; and a report of the current quarter is marked
/// PROVISIONAL in both formats, never "For publication", and dated today,
/// not at the quarter's end.
#[test]
fn an_empty_current_quarter_is_provisional_and_shows_no_data() {
    use parapet_assurance::quarter::{Quarter, QuarterStyle};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let current = Quarter::containing(now, QuarterStyle::Financial).to_string();
    // the commands need a store: the first account makes one
    ok(d, &["users", "add", "officer", "--role", "supplier-admin"]);
    let json: Value =
        serde_json::from_str(&ok(d, &["kpi", "--quarter", &current, "--format", "json"])).unwrap();
    let rags: Vec<&str> = json["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["rag"].as_str().unwrap())
        .collect();
    assert_eq!(rags, ["no_data"; 5]);
    let table = ok(d, &["kpi", "--quarter", &current]);
    assert!(
        table.contains("no data") && table.contains("cannot be decided"),
        "{table}"
    );
    assert!(
        !table.contains("green") && !table.contains(" pass "),
        "{table}"
    );

    let out = d.join("now");
    let o = run(
        d,
        &[
            "report",
            "--quarter",
            &current,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("PROVISIONAL"));
    let html = std::fs::read_to_string(out.join("public-report.html")).unwrap();
    assert!(html.contains("<p class=\"watermark\" aria-hidden=\"true\">PROVISIONAL</p>"));
    assert!(html.contains("PROVISIONAL: the quarter has not ended"));
    assert!(!html.contains("For publication"));
    assert!(html.contains("<td class=\"rag-none\">No data</td>"));
    assert!(!html.contains("class=\"rag-green\""));
    assert!(!html.contains(">Pass<"));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("kpi.json")).unwrap()).unwrap();
    let today = json["date"].as_str().unwrap();
    assert!(
        json["snapshot_date"].as_str().unwrap() <= today,
        "a snapshot date in the future: {json}"
    );
    for doc in ["public-report.pdf", "exempt-appendix.pdf"] {
        let text = pdf_text(&out.join(doc));
        assert!(text.contains("PROVISIONAL"), "{doc}: {text}");
        assert!(!text.contains("For publication"), "{doc}");
        assert!(text.to_lowercase().contains("no data"), "{doc}: {text}");
    }
    // and nothing was frozen
    let db = rusqlite::Connection::open(d.join("parapet-data/parapet.sqlite")).unwrap();
    let frozen: i64 = db
        .query_row("SELECT COUNT(*) FROM kpi_snapshots", [], |r| r.get(0))
        .unwrap();
    assert_eq!(frozen, 0);
}

/// The report's Mail Check figures are `parapet mailcheck`'s: a domain
/// with any error finding does not meet the standard, and the counts by
/// finding are the command's own, on the same domains.
#[test]
fn the_reports_mail_check_agrees_with_parapet_mailcheck() {
    use parapet_assurance::quarter::{Quarter, QuarterStyle};
    let nsd = crate::mailcheck::fixture_nsd();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let domains = [
        "good.test",
        "weak.test",
        "mixed.test",
        "nomx.test",
        "rpt.test",
    ];
    std::fs::write(
        d.join("p.toml"),
        format!(
            "[store]\npath = \"data\"\n[dmarc]\nidentify_senders = false\n\
             [[tenants]]\nname = \"north\"\nnetworks = [\"10.1.0.0/16\"]\nmail_domains = {domains:?}\n"
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .current_dir(d)
        .arg("mailcheck")
        .args(domains)
        .args([
            "--no-tls", "--format", "json", "--store", "--config", "p.toml",
        ])
        .args(["--nameserver", &nsd.addr.to_string()])
        .output()
        .unwrap();
    let checks: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut failing = 0;
    let mut by_code = std::collections::BTreeMap::<(String, String), u64>::new();
    for r in checks.as_array().unwrap() {
        let mut seen = BTreeSet::new();
        for f in r["findings"].as_array().unwrap() {
            let key = (
                f["severity"].as_str().unwrap().to_string(),
                f["code"].as_str().unwrap().to_string(),
            );
            if seen.insert(key.clone()) {
                *by_code.entry(key).or_insert(0) += 1;
            }
        }
        if seen.iter().any(|(sev, _)| sev == "error") {
            failing += 1;
        }
    }
    assert!(failing > 0 && failing < domains.len(), "a mix: {failing}");
    assert_eq!(o.status.code(), Some(1), "mailcheck exits 1 on an error");

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let current = Quarter::containing(now, QuarterStyle::Financial).to_string();
    let out = d.join("out");
    ok(
        d,
        &[
            "report",
            "--tenant",
            "north",
            "--quarter",
            &current,
            "--out",
            out.to_str().unwrap(),
            "--config",
            "p.toml",
        ],
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("kpi.json")).unwrap()).unwrap();
    let n = domains.len() as u64;
    assert_eq!(json["mail"][0], n);
    assert_eq!(
        json["mail"][1],
        n - failing as u64,
        "domains meeting the standard"
    );
    assert_eq!(json["mail"][2], failing as u64);
    let listed: std::collections::BTreeMap<(String, String), u64> = json["mail_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                (
                    f[0].as_str().unwrap().to_string(),
                    f[1].as_str().unwrap().to_string(),
                ),
                f[2].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, by_code);
    let html = std::fs::read_to_string(out.join("public-report.html")).unwrap();
    let sentence = format!(
        "Mail Check: {} of {n} e-mail domains meet the required standard",
        n - failing as u64
    );
    assert!(html.contains(&sentence), "{html}");
    for (_, code) in by_code.keys() {
        assert!(html.contains(code.as_str()), "{code} not listed");
    }
}

/// Each word's box from `pdftotext -bbox`, against its page's size: no
/// text of the public report or the appendix (hashes, long names, the
/// profile's long lines) runs off the page.
#[test]
fn every_word_of_both_pdfs_stays_inside_its_page() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    import_estate(d);
    let extra = profiled(d);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let out = report_with(d, "2021-22-Q2", "q2", &extra);
    for doc in ["public-report.pdf", "exempt-appendix.pdf"] {
        let xml = tool(
            "pdftotext",
            &["-bbox", out.join(doc).to_str().unwrap(), "-"],
        );
        let attr = |tag: &str, name: &str| -> f64 {
            let i = tag.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
            tag[i..].split('"').next().unwrap().parse().unwrap()
        };
        let (mut pages, mut words) = (0, 0);
        for page in xml.split("<page ").skip(1) {
            pages += 1;
            let (w, h) = (attr(page, "width"), attr(page, "height"));
            for word in page.split("<word ").skip(1) {
                words += 1;
                let text = word.split('>').nth(1).unwrap().split('<').next().unwrap();
                let (x0, y0, x1, y1) = (
                    attr(word, "xMin"),
                    attr(word, "yMin"),
                    attr(word, "xMax"),
                    attr(word, "yMax"),
                );
                assert!(
                    x0 >= 0.0 && y0 >= 0.0 && x1 <= w && y1 <= h,
                    "{doc} page {pages}: `{text}` at ({x0}, {y0})–({x1}, {y1}) of {w}×{h}"
                );
            }
        }
        assert!(
            pages >= 2 && words > 300,
            "{doc}: {pages} pages, {words} words"
        );
    }
    // the appendix's SHA-256 column holds each hash whole (copied from the
    // PDF, it still verifies the file), inside the page as checked above
    let appendix = pdf_text(&out.join("exempt-appendix.pdf"));
    let sum = tool("sha256sum", &[estate("inventory.csv").to_str().unwrap()]);
    let hash = sum.split_whitespace().next().unwrap();
    assert!(appendix.contains(hash), "{hash}: {appendix}");
}

/// A commentary file with a mistake is refused with its file, line and
/// field, and nothing is written; once the quarter is frozen its
/// commentary is what was tabled and a new file is refused.
#[test]
fn commentary_files_are_checked_and_a_frozen_quarter_keeps_its_words() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    import_estate(d);
    let out = d.join("out");
    let args = |file: &str| {
        vec![
            "report".to_string(),
            "--tenant".into(),
            TENANT.into(),
            "--quarter".into(),
            "2021-22-Q2".into(),
            "--out".into(),
            out.to_str().unwrap().into(),
            "--commentary".into(),
            file.into(),
            "--freeze".into(),
        ]
    };
    for (name, text, says) in [
        (
            "bad.toml",
            "options = \"x\"\n[kpi.6]\ncommentary = \"y\"\n",
            "bad.toml:2: kpi.6: the KPIs are 1 to 5",
        ),
        (
            "bad.md",
            "# KPI 1\nfine\n# Budget\n",
            "bad.md:3: heading: `Budget` is not a section",
        ),
        (
            "bad.txt",
            "x",
            "bad.txt:0: file: the commentary must be a .toml or .md file",
        ),
    ] {
        std::fs::write(d.join(name), text).unwrap();
        let a = args(name);
        let o = run(d, &a.iter().map(String::as_str).collect::<Vec<_>>());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        assert!(!out.exists(), "{name}: nothing written");
    }
    std::fs::write(d.join("c.toml"), "[kpi.1]\ncommentary = \"The breach was contained within a day.\"\nactions = [\"Phishing exercise in October\"]\n").unwrap();
    let a = args("c.toml");
    ok(d, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let html = std::fs::read_to_string(out.join("public-report.html")).unwrap();
    assert!(
        html.contains("The breach was contained within a day."),
        "{html}"
    );
    assert!(
        html.contains("<li>Phishing exercise in October</li>"),
        "{html}"
    );
    // the report froze the ended quarter: new words are refused, the
    // tabled ones stay
    std::fs::write(d.join("later.toml"), "options = \"Rewritten later.\"\n").unwrap();
    let a = args("later.toml");
    let o = run(d, &a.iter().map(String::as_str).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is frozen"), "{err}");
    let again = report(d, "2021-22-Q2", "again");
    let html = std::fs::read_to_string(again.join("public-report.html")).unwrap();
    assert!(html.contains("The breach was contained within a day."));
    assert!(!html.contains("Rewritten later."));
}
