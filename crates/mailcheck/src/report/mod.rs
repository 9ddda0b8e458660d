//! DMARC aggregate (`rua`, RFC 7489 appendix C and RFC 9990) and SMTP TLS
//! (TLS-RPT, RFC 8460) report parsing.
//!
//! [`parse_bytes`] takes one received file and returns the reports in it.
//! It is pure: no storage, no network, no clock. The container is told by
//! content, not by name: gzip (one or more members), zip (every member), a
//! MIME message (every attachment or inline part that is a report, any
//! transfer encoding, forwarded `message/rfc822` parts too), bare XML and
//! bare JSON. Containers may nest (a zip in an e-mail) up to four levels.
//!
//! Parsing is strict where it matters for the numbers a council sees:
//! enumerated values must be spelt as the schema spells them (`pass`, not
//! `Pass`), counts and times must be integers, addresses must be addresses,
//! and a required element that is missing is an error. Errors name the
//! element or field at fault as a path — XML paths are XPath-like with
//! 1-based record numbers (`feedback/record[3]/row/source_ip`), JSON paths
//! use 0-based indexes (`policies[0]/summary/total-failure-session-count`)
//! — with the line where it helps. It is tolerant where real reporters
//! differ harmlessly: unknown elements and fields (DMARCbis additions,
//! vendor extensions) are skipped, namespaces are ignored, values are
//! trimmed, a report wrapped in an unclosed `<xs:schema>` element is
//! accepted, TLS-RPT's `mx-host` may be a string or a list, and the
//! DMARCbis `pass` disposition is accepted.
//!
//! Two faults real receivers make are recovered, each with a warning in
//! [`AggregateReport::warnings`] naming the element, line and column: bytes
//! that are not UTF-8 (a field copied in windows-1252) are read as
//! windows-1252, and markup where text belongs (`<email><x@example></email>`,
//! `bad<name</header_from>`) is read as that text. Beyond that the report
//! is refused: more than 64 invalid bytes, or end tags that match nothing.
//!
//! Decompression is capped: every decompressed file (a gzip stream, a zip
//! member) may be at most [`MAX_DECOMPRESSED`] bytes, and one call
//! decompresses at most four times that in all; beyond that the input is
//! refused as a possible zip bomb.
//!
//! DMARC failure (forensic, `ruf`) reports are recognised and refused with
//! a reason that says so: they are not aggregate reports.
//!
//! The work is split by what it reads: `container` opens gzip, zip and
//! MIME wrappers and hands each report's bytes to `aggregate` (DMARC XML)
//! or `tlsrpt` (TLS-RPT JSON); `text` finds lines and columns for their
//! errors, and `date` turns TLS-RPT's RFC 3339 times into unix seconds.

mod aggregate;
mod container;
#[cfg(test)]
mod fixtures;
mod text;
mod tlsrpt;

pub use aggregate::{AggregateRecord, AggregateReport, AuthResult, PublishedPolicy};
pub use tlsrpt::{TlsFailure, TlsPolicyResult, TlsReport};

/// Largest size one decompressed file (a gzip stream, a zip member) may
/// have; larger ones are refused as possible zip bombs.
pub const MAX_DECOMPRESSED: u64 = 64 * 1024 * 1024;

/// A report found in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Dmarc(AggregateReport),
    TlsRpt(TlsReport),
}

/// Why a file gave no reports. `file` is the name the caller gave.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ReportError {
    pub file: String,
    pub reason: String,
}

/// Detects the container by content (not only the extension): gzip, zip
/// (every member), MIME message (.eml: every attachment or inline part
/// that is a report, any transfer encoding), bare XML, bare JSON. `file`
/// names the input in errors.
///
/// Either every report in the file parses and all are returned, or the
/// first problem is returned.
pub fn parse_bytes(file: &str, data: &[u8]) -> Result<Vec<Parsed>, ReportError> {
    container::parse_limited(file, data, MAX_DECOMPRESSED)
}

type Res<T> = Result<T, String>;

#[cfg(test)]
mod tests {
    use super::container::FAILURE_REPORT;
    use super::fixtures::*;
    use super::*;

    // -- every sample ------------------------------------------------------

    /// Samples that parse: file, report id, policy domain, records.
    const PARSES: &[(&str, &str, &str, usize)] = &[
        (
            "aggregate/!example.com!1538204542!1538463818.xml",
            "example.com:1538463741",
            "example.com",
            1,
        ),
        (LARGE, "example.com:1711897200", "example.com", 2286),
        (
            "aggregate/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml",
            "949348866075514174",
            "borschow.com",
            1,
        ),
        (
            "aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml",
            "3ceb5548498640beaeb47327e202b0b9",
            "example.com",
            1,
        ),
        (
            "aggregate/empty_reason.xml",
            "20240125141224705995",
            "example.com",
            1,
        ),
        (
            "aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip",
            "2940",
            "example.com",
            1,
        ),
        (
            "aggregate/example.net!example.com!1529366400!1529452799.xml",
            "b043f0e264cf4ea995e93765242f6dfb",
            "example.com",
            1,
        ),
        (
            "aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
            "102675056",
            "indemed.com",
            1,
        ),
        (
            "aggregate/ikea.com!example.de!1538690400!1538776800.xml",
            "aggr_report_2018_10_05_5bc7e9b4f3e8a",
            "example.de",
            1,
        ),
        (
            "aggregate/invalid_utf_8.xml",
            "example.com:1538463741",
            "example.com",
            1,
        ),
        (
            "aggregate/invalid_xml.xml",
            "sonexushealth.com:1530233361",
            "example.com",
            1,
        ),
        (
            "aggregate/mimecast-weird-gzip.eml",
            "157a5fe30ec76f4bc0d8bccfc96c118a167a1280fee7c7465af5115e73082e5e",
            "ab.id.au",
            1,
        ),
        (
            "aggregate/old_draft_from_wiki.xml",
            "9391651994964116463",
            "example.com",
            1,
        ),
        (
            "aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml",
            "cfeafefe4129445e8c81018bd9177197",
            "example.com",
            1,
        ),
        (
            "aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml",
            "dmarcbis-test-report-001",
            "example.com",
            2,
        ),
        (
            "aggregate/rfc9990-sample.xml",
            "3v98abbp8ya9n3va8yr8oa3ya",
            "example.com",
            1,
        ),
        (
            "aggregate/twilight.eml",
            "1627703331531660819",
            "twlnet.com",
            1,
        ),
        (
            "aggregate/usssa.com!example.com!1538784000!1538870399.xml",
            "8953b4d4a4ee4218b6ac0e2cb2667ee1",
            "example.com",
            2,
        ),
        (
            "aggregate/veeam.com!example.com!1530133200!1530219600.xml",
            "sonexushealth.com:1530233361",
            "example.com",
            1,
        ),
        (
            "extract_report/changed-input.xml",
            "11038226378739404135",
            "example.com",
            20,
        ),
        (NICE, "11038226378739404135", "example.com", 20),
        (
            "extract_report/nice-input.xml.gz",
            "11038226378739404135",
            "example.com",
            20,
        ),
        (
            "extract_report/nice-input.xml.zip",
            "11038226378739404135",
            "example.com",
            20,
        ),
    ];

    /// TLS-RPT samples that parse: file, report id, policies.
    const TLS_PARSES: &[(&str, &str, usize)] = &[
        (
            "smtp_tls/google.com_smtp_tls_report.eml",
            "2024-09-03T00:00:00Z_cardinalhealth.ca",
            1,
        ),
        (
            "smtp_tls/mail.ru.json",
            "b28254de-7b2e-be36-bb5c-4c3b92da8b25@mail.ru",
            1,
        ),
        (
            "smtp_tls/rfc8460.json",
            "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
            1,
        ),
        (
            "smtp_tls/smtp_tls.json",
            "2024-01-09T00:00:00Z_example.com",
            1,
        ),
    ];

    /// Samples that fail, with (the start of) the reason.
    const FAILS: &[(&str, &str)] = &[
        ("empty.xml", "empty file"),
        (
            "aggregate_invalid/report_with_upper_cased_pass.xml",
            "feedback/record[1]/row/policy_evaluated/disposition: \"None\" is not one of none|pass|quarantine|reject (line 24)",
        ),
        (
            "failure/DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml",
            FAILURE_REPORT,
        ),
        (
            "failure/[Netease DMARC Failure Report] Rent Reminder.eml",
            FAILURE_REPORT,
        ),
        ("failure/dmarc_ruf_report_linkedin.crlf.eml", FAILURE_REPORT),
        ("failure/dmarc_ruf_report_linkedin.eml", FAILURE_REPORT),
        (
            "failure/exim_plain_text_only_no_arf_part.eml",
            FAILURE_REPORT,
        ),
    ];

    #[test]
    fn every_sample_is_covered() {
        let mut found = Vec::new();
        let mut dirs = vec![String::new()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(format!("{DIR}/{d}")).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                let rel = if d.is_empty() {
                    name
                } else {
                    format!("{d}/{name}")
                };
                if e.file_type().unwrap().is_dir() {
                    dirs.push(rel);
                } else if rel != "NOTICE.md" && rel != "LICENSE-parsedmarc" {
                    found.push(rel);
                }
            }
        }
        let known: Vec<&str> = PARSES
            .iter()
            .map(|p| p.0)
            .chain(TLS_PARSES.iter().map(|p| p.0))
            .chain(FAILS.iter().map(|p| p.0))
            .collect();
        for f in &found {
            assert!(known.contains(&f.as_str()), "sample {f} has no expectation");
        }
        assert_eq!(found.len(), known.len(), "{found:?}");
    }

    #[test]
    fn aggregate_samples_parse() {
        for &(rel, id, domain, records) in PARSES {
            let r = one_dmarc(rel);
            assert_eq!(r.report_id, id, "{rel}");
            assert_eq!(r.policy.domain, domain, "{rel}");
            assert_eq!(r.records.len(), records, "{rel}");
            assert!(r.begin <= r.end, "{rel}");
        }
    }

    /// The two samples parsedmarc recovers and a strict parser refuses:
    /// read, with a warning naming the element, line and column.
    #[test]
    fn recovered_samples_warn() {
        let r = one_dmarc("aggregate/invalid_utf_8.xml");
        assert_eq!(r.records[0].header_from, "bad_byte\u{2018}");
        assert_eq!(r.records[0].source_ip.to_string(), "12.20.127.122");
        assert_eq!(
            r.warnings,
            [
                "feedback/record[1]/identifiers/header_from: invalid UTF-8 (byte 0x91) at line 31, column 25 read as windows-1252 '\u{2018}'"
            ]
        );
        let r = one_dmarc("aggregate/invalid_xml.xml");
        assert_eq!(r.email.as_deref(), Some("<bad-xml@bad-xml.net>"));
        assert_eq!(r.records[0].source_ip.to_string(), "199.230.200.36");
        assert_eq!(r.records[0].count, 1);
        assert_eq!(
            r.warnings,
            [
                "feedback/report_metadata/email: unescaped markup <bad-xml@bad-xml.net> at line 5, column 10 read as text",
                "feedback/record[1]/identifiers/header_from: unescaped markup <xml.net at line 31, column 20 read as text",
            ]
        );
        assert_eq!(r.records[0].header_from, "bad<xml.net");
        // Samples that needed no recovery have no warnings.
        assert!(one_dmarc(NICE).warnings.is_empty());
    }

    #[test]
    fn tlsrpt_samples_parse() {
        for &(rel, id, policies) in TLS_PARSES {
            let r = one_tls(rel);
            assert_eq!(r.report_id, id, "{rel}");
            assert_eq!(r.policies.len(), policies, "{rel}");
        }
    }

    #[test]
    fn bad_samples_fail_with_reason() {
        for &(rel, want) in FAILS {
            let got = reason(rel);
            assert!(got.starts_with(want), "{rel}: {got}");
        }
        // Error display is "file: reason".
        let e = parse("empty.xml").unwrap_err();
        assert_eq!(e.to_string(), "empty.xml: empty file");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn small_samples() -> Vec<Vec<u8>> {
            [
                "aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml",
                "aggregate/ikea.com!example.de!1538690400!1538776800.xml",
                "aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz",
                "aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip",
                "aggregate/twilight.eml",
                "failure/dmarc_ruf_report_linkedin.eml",
                "smtp_tls/rfc8460.json",
                "smtp_tls/google.com_smtp_tls_report.eml",
            ]
            .iter()
            .map(|rel| read(rel))
            .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = parse_bytes("p", &data);
            }

            #[test]
            fn never_panics_on_prefixed_bytes(
                prefix in prop_oneof![
                    Just(&b"\x1f\x8b\x08\x00"[..]),
                    Just(&b"PK\x03\x04"[..]),
                    Just(&b"<feedback>"[..]),
                    Just(&b"{\"policies\":"[..]),
                    Just(&b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"[..]),
                ],
                rest in proptest::collection::vec(any::<u8>(), 0..1024),
            ) {
                let mut data = prefix.to_vec();
                data.extend(rest);
                let _ = parse_bytes("p", &data);
            }

            #[test]
            fn never_panics_on_mutated_samples(
                which in 0usize..8,
                edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
                cut in any::<usize>(),
            ) {
                let mut data = small_samples().swap_remove(which);
                for (at, b) in edits {
                    let i = at % data.len();
                    data[i] = b;
                }
                let _ = parse_bytes("p", &data);
                data.truncate(cut % (data.len() + 1));
                let _ = parse_bytes("p", &data);
            }
        }
    }

    /// Prints messages per source IP for every aggregate sample, one
    /// `COUNTS file ip messages` line each (or `REFUSED file reason`); run
    /// by `bench/mailcheck/diff_parsedmarc.py`, which compares them with
    /// parsedmarc's.
    #[test]
    #[ignore]
    fn dump_sample_counts() {
        let mut names: Vec<String> = std::fs::read_dir(format!("{DIR}/aggregate"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let rel = format!("aggregate/{name}");
            match parse(&rel) {
                Ok(reports) => {
                    let mut counts = std::collections::BTreeMap::<String, u64>::new();
                    for p in reports {
                        if let Parsed::Dmarc(r) = p {
                            for x in r.records {
                                *counts.entry(x.source_ip.to_string()).or_default() += x.count;
                            }
                        }
                    }
                    for (ip, n) in counts {
                        println!("COUNTS\t{name}\t{ip}\t{n}");
                    }
                }
                Err(e) => println!("REFUSED\t{name}\t{}", e.reason),
            }
        }
    }

    /// Times parsing the 2,286-record sample; run by
    /// `bench/mailcheck/parse_reports.sh` in a release build.
    #[test]
    #[ignore]
    fn bench_parse_large_report() {
        let data = read(LARGE);
        let n: u32 = std::env::var("PARSE_REPORTS_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(50);
        let records = match parse_bytes(LARGE, &data).unwrap().as_slice() {
            [Parsed::Dmarc(r)] => r.records.len(),
            other => panic!("{other:?}"),
        };
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(parse_bytes(LARGE, std::hint::black_box(&data)).unwrap());
        }
        let total = start.elapsed().as_secs_f64();
        println!(
            "BENCH parapet records={records} iterations={n} total_s={total:.6} per_parse_s={:.6}",
            total / f64::from(n)
        );
    }
}
