//! Greenbone / OpenVAS XML reports (GMP `get_reports`, the XML report
//! format): `report/report/results/result` and `report/report/host`.
//! Log-level results (severity 0) are skipped.

use std::collections::HashMap;

use crate::model::{AssetObs, FindingObs, ScanObs, VulnDef};

use super::xml::{Node, attr, ends_with, walk};
use super::{ParseError, Parsed};
use parapet_core::calendar::parse_datetime;

#[derive(Default)]
struct Res {
    n: usize,
    depth: usize,
    line: u64,
    name: String,
    host: String,
    hostname: String,
    port: String,
    oid: String,
    v3: Option<f32>,
    severity: Option<f32>,
    threat: String,
    cves: Vec<String>,
    solution_type: Option<String>,
    solution: Option<String>,
    published: Option<i64>,
    sev_type: String,
    nvt_name: String,
}

#[derive(Default)]
struct HostBlock {
    depth: usize,
    ip: String,
    start: Option<i64>,
    end: Option<i64>,
    detail_name: String,
    details: Vec<(String, String)>,
}

fn score(file: &str, loc: &str, field: &str, text: &str) -> Result<Option<f32>, ParseError> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<f32>()
        .ok()
        .filter(|s| (0.0..=10.0).contains(s))
        .map(Some)
        .ok_or_else(|| ParseError::new(file, loc, field, format!("`{text}` is not a CVSS score")))
}

pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let mut results: Vec<Res> = Vec::new();
    let mut hosts: Vec<HostBlock> = Vec::new();
    let mut cur: Option<Res> = None;
    let mut hb: Option<HostBlock> = None;
    let mut scan_start = None;
    let mut scan_end = None;
    let mut root_ok = false;
    walk(file, bytes, |node| {
        match node {
            Node::Open { path, attrs, line } => {
                if path.len() == 1 {
                    if path[0] != "report" && path[0] != "get_reports_response" {
                        return Err(ParseError::new(
                            file,
                            format!("line {line}"),
                            &path[0],
                            "not a Greenbone/OpenVAS report (the root element must be <report>)",
                        ));
                    }
                    root_ok = true;
                }
                if cur.is_none()
                    && path.len() >= 3
                    && ends_with(path, &["report", "results", "result"])
                {
                    cur = Some(Res {
                        n: results.len() + 1,
                        depth: path.len(),
                        line,
                        ..Res::default()
                    });
                } else if cur.is_none() && path.len() >= 2 && ends_with(path, &["report", "host"]) {
                    hb = Some(HostBlock {
                        depth: path.len(),
                        ..HostBlock::default()
                    });
                } else if let Some(r) = cur.as_mut() {
                    let rel: Vec<&str> = path[r.depth..].iter().map(String::as_str).collect();
                    match rel.as_slice() {
                        ["nvt"] => r.oid = attr(attrs, "oid").unwrap_or_default().to_string(),
                        ["nvt", "refs", "ref"] if attr(attrs, "type") == Some("cve") => {
                            if let Some(id) = attr(attrs, "id") {
                                r.cves.push(id.to_string());
                            }
                        }
                        ["nvt", "solution"] => {
                            r.solution_type = attr(attrs, "type").map(str::to_string)
                        }
                        ["nvt", "severities", "severity"] => {
                            r.sev_type = attr(attrs, "type").unwrap_or_default().to_string();
                        }
                        _ => {}
                    }
                }
            }
            Node::Close {
                path, text, line, ..
            } => {
                if let Some(r) = cur.as_mut() {
                    if path.len() == r.depth {
                        results.push(cur.take().expect("open"));
                        return Ok(());
                    }
                    let loc = format!("line {line}, result {}", r.n);
                    let rel: Vec<&str> = path[r.depth..].iter().map(String::as_str).collect();
                    match rel.as_slice() {
                        ["name"] => r.name = text.to_string(),
                        ["nvt", "name"] => r.nvt_name = text.to_string(),
                        ["host"] => r.host = text.to_string(),
                        ["host", "hostname"] => r.hostname = text.to_string(),
                        ["port"] => r.port = text.to_string(),
                        ["threat"] => r.threat = text.to_string(),
                        ["severity"] => r.severity = score(file, &loc, "severity", text)?,
                        ["nvt", "cvss_base"] if r.severity.is_none() => {
                            r.severity = score(file, &loc, "nvt/cvss_base", text)?
                        }
                        ["nvt", "severities", "severity", "score"] => {
                            let s = score(file, &loc, "nvt/severities/severity/score", text)?;
                            if r.v3.is_none() && r.sev_type.contains("v3") {
                                r.v3 = s;
                            }
                        }
                        ["nvt", "severities", "severity", "date"] => {
                            r.published = Some(parse_datetime(text).ok_or_else(|| {
                                ParseError::new(
                                    file,
                                    &loc,
                                    "nvt/severities/severity/date",
                                    format!("`{text}` is not a date"),
                                )
                            })?);
                        }
                        ["nvt", "solution"] if !text.is_empty() => {
                            r.solution = Some(text.to_string())
                        }
                        _ => {}
                    }
                    return Ok(());
                }
                if let Some(h) = hb.as_mut() {
                    if path.len() == h.depth {
                        hosts.push(hb.take().expect("open"));
                        return Ok(());
                    }
                    let loc = format!("line {line}, host {}", hosts.len() + 1);
                    let rel: Vec<&str> = path[h.depth..].iter().map(String::as_str).collect();
                    let date = |what: &str| -> Result<Option<i64>, ParseError> {
                        if text.is_empty() {
                            return Ok(None);
                        }
                        parse_datetime(text).map(Some).ok_or_else(|| {
                            ParseError::new(file, &loc, what, format!("`{text}` is not a date"))
                        })
                    };
                    match rel.as_slice() {
                        ["ip"] => h.ip = text.to_string(),
                        ["start"] => h.start = date("host/start")?,
                        ["end"] => h.end = date("host/end")?,
                        ["detail", "name"] => h.detail_name = text.to_string(),
                        ["detail", "value"] => h
                            .details
                            .push((std::mem::take(&mut h.detail_name), text.to_string())),
                        _ => {}
                    }
                    return Ok(());
                }
                if ends_with(path, &["report", "scan_start"]) && !text.is_empty() {
                    scan_start = parse_datetime(text);
                } else if ends_with(path, &["report", "scan_end"]) && !text.is_empty() {
                    scan_end = parse_datetime(text);
                }
            }
        }
        Ok(())
    })?;
    if !root_ok {
        return Err(ParseError::new(
            file,
            "line 1",
            "report",
            "not a Greenbone/OpenVAS report",
        ));
    }
    build(file, results, hosts, scan_end.or(scan_start))
}

fn build(
    file: &str,
    results: Vec<Res>,
    hosts: Vec<HostBlock>,
    scan_time: Option<i64>,
) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed {
        as_of: scan_time,
        ..Parsed::default()
    };
    let mut by_host: HashMap<String, u32> = HashMap::new();
    let detail = |h: &HostBlock, name: &str| {
        h.details
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    for (i, h) in hosts.iter().enumerate() {
        let credentialed = h
            .details
            .iter()
            .any(|(n, v)| n.starts_with("Auth-") && n.ends_with("-Success") && !v.is_empty());
        let at = h.end.or(h.start).or(scan_time).unwrap_or(i64::MIN);
        let mut a = AssetObs {
            locator: format!("host {} ({})", i + 1, h.ip),
            hostname: detail(h, "hostname"),
            os: detail(h, "best_os_txt"),
            scan: Some(ScanObs { at, credentialed }),
            last_seen: (at != i64::MIN).then_some(at),
            ..AssetObs::default()
        };
        if let Some(mac) = detail(h, "MAC") {
            a.macs.push(mac);
        }
        set_address(&mut a, &h.ip);
        by_host.insert(h.ip.clone(), parsed.assets.len() as u32);
        parsed.assets.push(a);
    }
    let mut vuln_idx: HashMap<String, u32> = HashMap::new();
    for mut r in results {
        if !r.nvt_name.is_empty() {
            // the NVT's own name; the result's may be edited or anonymised
            r.name = std::mem::take(&mut r.nvt_name);
        }
        let sev = r.v3.or(r.severity).unwrap_or(0.0);
        let name_l = r.name.to_ascii_lowercase();
        let unsupported = name_l.contains("end of life")
            || name_l.contains("(eol)")
            || name_l.contains("unsupported");
        if (sev <= 0.0 || r.threat.eq_ignore_ascii_case("log")) && !unsupported {
            continue;
        }
        if r.oid.is_empty() {
            return Err(ParseError::new(
                file,
                format!("line {}, result {}", r.line, r.n),
                "nvt@oid",
                "the result names no NVT",
            ));
        }
        if r.host.is_empty() {
            return Err(ParseError::new(
                file,
                format!("line {}, result {}", r.line, r.n),
                "host",
                "the result names no host",
            ));
        }
        let asset = match by_host.get(&r.host) {
            Some(&i) => i,
            None => {
                let mut a = AssetObs {
                    locator: format!("result {} host {}", r.n, r.host),
                    scan: Some(ScanObs {
                        at: scan_time.unwrap_or(i64::MIN),
                        credentialed: false,
                    }),
                    last_seen: scan_time,
                    ..AssetObs::default()
                };
                set_address(&mut a, &r.host);
                let i = parsed.assets.len() as u32;
                parsed.assets.push(a);
                by_host.insert(r.host.clone(), i);
                i
            }
        };
        if !r.hostname.is_empty() {
            let a = &mut parsed.assets[asset as usize];
            if a.hostname.is_none() && a.fqdn.is_none() {
                if r.hostname.contains('.') {
                    a.fqdn = Some(r.hostname.clone());
                } else {
                    a.hostname = Some(r.hostname.clone());
                }
            }
        }
        let key = format!("openvas:{}", r.oid);
        let vuln = match vuln_idx.get(&key) {
            Some(&i) => i,
            None => {
                let fix_available = unsupported
                    || matches!(
                        r.solution_type.as_deref(),
                        Some("VendorFix" | "Mitigation" | "Workaround")
                    );
                let i = parsed.vulns.len() as u32;
                parsed.vulns.push(VulnDef {
                    key: key.clone(),
                    title: r.name.clone(),
                    score: r.v3,
                    label: (!r.threat.is_empty()).then(|| r.threat.clone()),
                    cves: r.cves.clone(),
                    fix_available,
                    fix_released: None,
                    vuln_published: r.published,
                    unsupported,
                    solution: r.solution.clone(),
                });
                vuln_idx.insert(key, i);
                i
            }
        };
        parsed.findings.push(FindingObs {
            asset,
            vuln,
            port: r.port,
        });
    }
    Ok(parsed)
}

/// Greenbone puts an IP in `host`; a name there (or a mangled address)
/// is kept as the host name.
fn set_address(a: &mut AssetObs, host: &str) {
    if host.parse::<std::net::IpAddr>().is_ok() {
        a.ips = vec![host.to_string()];
    } else if a.hostname.is_none() && !host.is_empty() {
        a.hostname = Some(host.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/../../testdata/assets/defectdojo/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn gmp_22_report() {
        let p = parse("r", &sample("report_detail_v2.xml")).unwrap();
        assert_eq!(p.assets.len(), 1);
        assert_eq!(p.assets[0].ips, vec!["10.99.99.99"]);
        assert_eq!(p.assets[0].hostname.as_deref(), Some("server99"));
        let v = &p.vulns[0];
        assert_eq!((v.score, v.fix_available), (Some(9.8), true));
        assert!(v.cves.len() > 50);
        assert_eq!(p.as_of, parse_datetime("2025-08-22T17:09:57+02:00"));
    }

    #[test]
    fn older_reports_and_empty_ones() {
        let p = parse("m", &sample("many_vuln.xml")).unwrap();
        assert!(p.findings.len() >= 30, "{}", p.findings.len());
        assert!(
            p.vulns.iter().any(|v| v.unsupported),
            "the OS EOL detection is an unsupported-software finding"
        );
        let p = parse("n", &sample("no_vuln.xml")).unwrap();
        assert!(p.findings.is_empty());
        let p = parse("o", &sample("one_vuln.xml")).unwrap();
        assert_eq!(p.findings.len(), 1);
        assert_eq!(
            p.assets[0].scan.map(|s| s.at),
            parse_datetime("2023-09-28T16:12:15Z")
        );
    }

    #[test]
    fn corrupt_reports() {
        let good = String::from_utf8(sample("report_detail_v2.xml")).unwrap();
        let e = parse(
            "r.xml",
            good.replace("<severity>9.8</severity>", "<severity>nine</severity>")
                .as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "severity");
        assert!(e.location.contains("result 1"), "{e}");
        let e = parse("r.xml", b"<NessusClientData_v2/>").unwrap_err();
        assert!(e.reason.contains("not a Greenbone"));
        let e = parse("r.xml", &good.as_bytes()[..5000]).unwrap_err();
        assert!(
            e.reason.contains("ends inside") || e.reason.contains("malformed"),
            "{e}"
        );
    }
}
