//! Nessus v2 (`.nessus`): `NessusClientData_v2/Report/ReportHost` with
//! `HostProperties/tag[@name]` and `ReportItem[@pluginID,@severity,@port]`.
//! Informational items (severity 0) are skipped unless they report
//! unsupported software.

use std::collections::HashMap;

use crate::model::{AssetObs, FindingObs, ScanObs, VulnDef};

use super::xml::{Node, attr, ends_with, walk};
use super::{ParseError, Parsed};
use parapet_core::calendar::parse_datetime;

#[derive(Default)]
struct Host {
    n: usize,
    name: String,
    tags: HashMap<String, String>,
    items: Vec<(u32, String)>,
}

#[derive(Default)]
struct Item {
    plugin: String,
    name: String,
    severity: u8,
    port: String,
    line: u64,
    cves: Vec<String>,
    cvss3: Option<f32>,
    risk: Option<String>,
    patch: Option<i64>,
    published: Option<i64>,
    solution: Option<String>,
    unsupported: bool,
}

fn is_unsupported(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    l.contains("unsupported") || l.contains("seol") || l.contains("end of life")
}

pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    let mut vuln_idx: HashMap<String, u32> = HashMap::new();
    let mut host: Option<Host> = None;
    let mut item: Option<Item> = None;
    let mut hosts = 0usize;
    let mut root_ok = false;
    walk(file, bytes, |node| {
        match node {
            Node::Open { path, attrs, line } => {
                if path.len() == 1 {
                    if path[0] != "NessusClientData_v2" {
                        return Err(ParseError::new(
                            file,
                            format!("line {line}"),
                            &path[0],
                            "not a Nessus v2 file (the root element must be NessusClientData_v2)",
                        ));
                    }
                    root_ok = true;
                }
                if ends_with(path, &["Report", "ReportHost"]) {
                    hosts += 1;
                    host = Some(Host {
                        n: hosts,
                        name: attr(attrs, "name").unwrap_or_default().to_string(),
                        ..Host::default()
                    });
                } else if ends_with(path, &["ReportHost", "ReportItem"]) {
                    let loc = || format!("line {line}, ReportHost {hosts}");
                    let plugin = attr(attrs, "pluginID").unwrap_or_default();
                    if plugin.is_empty() || !plugin.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ParseError::new(
                            file,
                            loc(),
                            "ReportItem@pluginID",
                            format!("`{plugin}` is not a plugin id"),
                        ));
                    }
                    let sev = attr(attrs, "severity").unwrap_or_default();
                    let severity = sev.parse::<u8>().ok().filter(|s| *s <= 4).ok_or_else(|| {
                        ParseError::new(
                            file,
                            loc(),
                            "ReportItem@severity",
                            format!("`{sev}` is not a severity 0-4"),
                        )
                    })?;
                    let port = match (attr(attrs, "port"), attr(attrs, "protocol")) {
                        (Some(p), Some(proto)) => format!("{p}/{proto}"),
                        (Some(p), None) => p.to_string(),
                        _ => String::new(),
                    };
                    let name = attr(attrs, "pluginName").unwrap_or_default().to_string();
                    item = Some(Item {
                        plugin: plugin.to_string(),
                        unsupported: is_unsupported(&name),
                        name,
                        severity,
                        port,
                        line,
                        ..Item::default()
                    });
                }
            }
            Node::Close {
                path,
                attrs,
                text,
                line,
            } => {
                let loc = || format!("line {line}, ReportHost {hosts}");
                if ends_with(path, &["HostProperties", "tag"]) {
                    if let (Some(h), Some(name)) = (host.as_mut(), attr(attrs, "name")) {
                        h.tags.insert(name.to_string(), text.to_string());
                    }
                } else if path.len() >= 2 && path[path.len() - 2] == "ReportItem" {
                    let Some(it) = item.as_mut() else {
                        return Ok(());
                    };
                    let field = path[path.len() - 1].as_str();
                    let date = |what: &str| {
                        parse_datetime(text).ok_or_else(|| {
                            ParseError::new(file, loc(), what, format!("`{text}` is not a date"))
                        })
                    };
                    match field {
                        "cve" => it.cves.push(text.to_string()),
                        "cvss3_base_score" => {
                            let s = text
                                .parse::<f32>()
                                .ok()
                                .filter(|s| (0.0..=10.0).contains(s))
                                .ok_or_else(|| {
                                    ParseError::new(
                                        file,
                                        loc(),
                                        "cvss3_base_score",
                                        format!("`{text}` is not a CVSS score"),
                                    )
                                })?;
                            it.cvss3 = Some(s);
                        }
                        "risk_factor" if !text.eq_ignore_ascii_case("none") => {
                            it.risk = Some(text.to_string())
                        }
                        "patch_publication_date" => {
                            it.patch = Some(date("patch_publication_date")?)
                        }
                        "vuln_publication_date" => {
                            it.published = Some(date("vuln_publication_date")?)
                        }
                        "solution" => it.solution = Some(text.to_string()),
                        "unsupported_by_vendor" if text.eq_ignore_ascii_case("true") => {
                            it.unsupported = true
                        }
                        _ => {}
                    }
                } else if ends_with(path, &["ReportHost", "ReportItem"]) {
                    let it = item.take().expect("opened");
                    if it.severity == 0 && !it.unsupported {
                        return Ok(());
                    }
                    let key = format!("nessus:{}", it.plugin);
                    let idx = match vuln_idx.get(&key) {
                        Some(&i) => i,
                        None => {
                            let fix_available = it.patch.is_some()
                                || it.unsupported
                                || it.solution.as_deref().is_some_and(|s| {
                                    let l = s.trim().to_ascii_lowercase();
                                    !(l.is_empty()
                                        || l == "n/a"
                                        || l == "none"
                                        || l.starts_with("there is no known solution"))
                                });
                            let label = it.risk.clone().or_else(|| {
                                Some(
                                    ["Info", "Low", "Medium", "High", "Critical"]
                                        [it.severity as usize]
                                        .to_string(),
                                )
                            });
                            let i = parsed.vulns.len() as u32;
                            parsed.vulns.push(VulnDef {
                                key: key.clone(),
                                title: it.name.clone(),
                                score: it.cvss3,
                                label,
                                cves: it.cves.clone(),
                                fix_available,
                                fix_released: it.patch,
                                vuln_published: it.published,
                                unsupported: it.unsupported,
                                solution: it.solution.clone(),
                            });
                            vuln_idx.insert(key, i);
                            i
                        }
                    };
                    let _ = it.line;
                    if let Some(h) = host.as_mut() {
                        h.items.push((idx, it.port));
                    }
                } else if ends_with(path, &["Report", "ReportHost"]) {
                    let h = host.take().expect("opened");
                    let a = host_obs(file, line, &h)?;
                    let asset = parsed.assets.len() as u32;
                    parsed.assets.push(a);
                    for (vuln, port) in h.items {
                        parsed.findings.push(FindingObs { asset, vuln, port });
                    }
                }
            }
        }
        Ok(())
    })?;
    if !root_ok {
        return Err(ParseError::new(
            file,
            "line 1",
            "NessusClientData_v2",
            "not a Nessus v2 file",
        ));
    }
    Ok(parsed)
}

fn host_obs(file: &str, line: u64, h: &Host) -> Result<AssetObs, ParseError> {
    let loc = || format!("line {line}, ReportHost {} ({})", h.n, h.name);
    let tag = |n: &str| h.tags.get(n).map(|s| s.trim()).filter(|s| !s.is_empty());
    let mut a = AssetObs {
        locator: format!("ReportHost {} ({})", h.n, h.name),
        ..AssetObs::default()
    };
    let mut ips = Vec::new();
    if let Some(ip) = tag("host-ip") {
        ips.push(ip.to_string());
    }
    if h.name.parse::<std::net::IpAddr>().is_ok() && !ips.contains(&h.name) {
        ips.push(h.name.clone());
    }
    for ip in &ips {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(ParseError::new(
                file,
                loc(),
                "host-ip",
                format!("`{ip}` is not an IP address"),
            ));
        }
    }
    a.ips = ips;
    let fqdn = tag("host-fqdn")
        .or(tag("host-rdns"))
        .filter(|f| f.parse::<std::net::IpAddr>().is_err());
    match fqdn {
        Some(f) if f.contains('.') => a.fqdn = Some(f.to_string()),
        Some(f) => a.hostname = Some(f.to_string()),
        None => {}
    }
    if let Some(n) = tag("netbios-name").or(tag("hostname")) {
        a.hostname = Some(n.to_string());
    }
    if a.hostname.is_none()
        && a.fqdn.is_none()
        && !h.name.is_empty()
        && h.name.parse::<std::net::IpAddr>().is_err()
    {
        a.hostname = Some(h.name.clone());
    }
    if let Some(m) = tag("mac-address") {
        a.macs = m.split_whitespace().map(str::to_string).collect();
    }
    a.os = tag("operating-system")
        .and_then(|o| o.lines().next())
        .map(|o| o.trim().to_string());
    a.device_type = tag("system-type").map(str::to_string);
    let time = |ts: &str, text: &str| -> Result<Option<i64>, ParseError> {
        if let Some(v) = tag(ts) {
            return v.parse::<i64>().map(Some).map_err(|_| {
                ParseError::new(file, loc(), ts, format!("`{v}` is not a unix time"))
            });
        }
        match tag(text) {
            Some(v) => parse_datetime(v)
                .map(Some)
                .ok_or_else(|| ParseError::new(file, loc(), text, format!("`{v}` is not a date"))),
            None => Ok(None),
        }
    };
    let at = match time("HOST_END_TIMESTAMP", "HOST_END")? {
        Some(t) => Some(t),
        None => time("HOST_START_TIMESTAMP", "HOST_START")?,
    };
    let credentialed = tag("Credentialed_Scan").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || tag("local-checks-proto").is_some();
    if let Some(at) = at {
        a.scan = Some(ScanObs { at, credentialed });
        a.last_seen = Some(at);
    } else {
        // dated later from --as-of; remember the credential flag
        a.scan = Some(ScanObs {
            at: i64::MIN,
            credentialed,
        });
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = r#"<?xml version="1.0" ?>
<NessusClientData_v2><Report name="q2">
<ReportHost name="10.1.2.3"><HostProperties>
<tag name="HOST_END">Thu Sep 23 10:00:00 2021</tag>
<tag name="host-ip">10.1.2.3</tag><tag name="host-fqdn">srv-fs01.council.local</tag>
<tag name="netbios-name">SRV-FS01</tag><tag name="operating-system">Microsoft Windows Server 2012 R2 Standard</tag>
<tag name="mac-address">00:50:56:81:01:e3
00:50:56:81:01:e4</tag><tag name="Credentialed_Scan">true</tag>
</HostProperties>
<ReportItem port="0" svc_name="general" protocol="tcp" severity="0" pluginID="19506" pluginName="Nessus Scan Information" pluginFamily="Settings"/>
<ReportItem port="445" svc_name="cifs" protocol="tcp" severity="4" pluginID="97833" pluginName="MS17-010: Security Update for Microsoft Windows SMB Server (ETERNALBLUE) &amp; more" pluginFamily="Windows">
<cve>CVE-2017-0143</cve><cve>CVE-2017-0144</cve><cvss3_base_score>8.1</cvss3_base_score>
<patch_publication_date>2017/03/14</patch_publication_date><risk_factor>High</risk_factor><solution>Apply MS17-010.</solution>
</ReportItem>
</ReportHost></Report></NessusClientData_v2>"#;

    #[test]
    fn hosts_items_and_dates() {
        let p = parse("q2.nessus", HOST.as_bytes()).unwrap();
        assert_eq!(p.assets.len(), 1);
        let a = &p.assets[0];
        assert_eq!(a.hostname.as_deref(), Some("SRV-FS01"));
        assert_eq!(a.fqdn.as_deref(), Some("srv-fs01.council.local"));
        assert_eq!(a.macs.len(), 2);
        assert_eq!(
            a.scan,
            Some(ScanObs {
                at: parse_datetime("2021-09-23T10:00:00Z").unwrap(),
                credentialed: true
            })
        );
        assert_eq!(p.vulns.len(), 1, "informational items are skipped");
        let v = &p.vulns[0];
        assert_eq!(v.key, "nessus:97833");
        assert!(v.title.ends_with("& more"));
        assert_eq!(
            (v.score, v.fix_available, v.fix_released),
            (Some(8.1), true, parse_datetime("2017-03-14"))
        );
        assert_eq!(
            p.findings,
            vec![FindingObs {
                asset: 0,
                vuln: 0,
                port: "445/tcp".into()
            }]
        );
    }

    #[test]
    fn corrupt_files_name_the_place() {
        let e = parse(
            "x.nessus",
            HOST.replace("8.1</cvss3", "high</cvss3").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "cvss3_base_score");
        assert!(e.location.starts_with("line 12, ReportHost 1"), "{e}");
        let e = parse("x.nessus", &HOST.as_bytes()[..HOST.len() - 40]).unwrap_err();
        assert!(
            e.reason.contains("ends inside") || e.reason.contains("malformed"),
            "{e}"
        );
        let e = parse(
            "x.nessus",
            HOST.replace("severity=\"4\"", "severity=\"9\"").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "ReportItem@severity");
        let e = parse("x.nessus", b"<report/>").unwrap_err();
        assert!(e.reason.contains("not a Nessus"));
        let e = parse(
            "x.nessus",
            HOST.replace("2017/03/14", "14/03/2017").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.field, "patch_publication_date");
    }

    #[test]
    fn defectdojo_samples() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/assets/defectdojo/"
        );
        let p = parse(
            "v",
            &std::fs::read(format!("{dir}nessus_v_unknown.xml")).unwrap(),
        )
        .unwrap();
        assert_eq!(p.assets.len(), 7);
        assert!(
            p.assets
                .iter()
                .all(|a| a.os.as_deref().is_some_and(|o| o.contains("2008 R2")))
        );
        assert_eq!(p.findings.len(), 30, "7 low + 23 medium items");
        let p = parse(
            "c",
            &std::fs::read(format!("{dir}nessus_with_cvssv3.nessus")).unwrap(),
        )
        .unwrap();
        assert_eq!(p.assets.len(), 1);
        assert_eq!(p.assets[0].scan.map(|s| s.credentialed), Some(false));
        assert!(
            p.vulns
                .iter()
                .any(|v| v.fix_released.is_some() && v.score.is_some())
        );
    }
}
