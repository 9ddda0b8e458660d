//! osquery results, as osqueryd / Fleet result logs write them: one JSON
//! object per line (or a JSON array of them), each
//! `{"name": "pack/…/TABLE", "hostIdentifier", "unixTime", "columns": {…}}`
//! (differential) or with `"snapshot": [{…}]`. Tables read:
//! `system_info`, `os_version`, `windows_security_products`,
//! `interface_addresses`, `interface_details`, `programs`, `deb_packages`.

use std::collections::BTreeMap;

use crate::model::{AssetObs, AvObs, FindingObs, ScanObs, VulnDef};
use serde_json::{Map, Value};

use super::{ParseError, Parsed};
use crate::eol;
use parapet_core::calendar::format_date;

#[derive(Default)]
struct Host {
    first: String,
    obs: AssetObs,
    unix_time: i64,
    av_rows: Vec<(bool, Option<bool>, String)>,
    eol: Vec<(String, String, i64)>,
}

fn s(cols: &Map<String, Value>, k: &str) -> Option<String> {
    match cols.get(k)? {
        Value::String(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn parse(file: &str, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ParseError::new(file, "file", "bytes", format!("not UTF-8: {e}")))?;
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    // (location, record)
    let mut records: Vec<(String, Value)> = Vec::new();
    if trimmed.starts_with('[') {
        let v: Value = serde_json::from_str(trimmed).map_err(|e| {
            ParseError::new(file, format!("line {}", e.line()), "json", e.to_string())
        })?;
        for (i, r) in v.as_array().into_iter().flatten().enumerate() {
            records.push((format!("record {}", i + 1), r.clone()));
        }
    } else {
        for (i, line) in text.lines().enumerate() {
            let line = line.trim().trim_start_matches('\u{feff}');
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                ParseError::new(file, format!("line {}", i + 1), "json", e.to_string())
            })?;
            records.push((format!("line {}", i + 1), v));
        }
    }
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    for (loc, rec) in &records {
        let obj = rec
            .as_object()
            .ok_or_else(|| ParseError::new(file, loc.clone(), "record", "not a JSON object"))?;
        let name = obj.get("name").and_then(Value::as_str).ok_or_else(|| {
            ParseError::new(
                file,
                loc.clone(),
                "name",
                "missing: which query produced this result",
            )
        })?;
        let host_id = obj
            .get("hostIdentifier")
            .and_then(Value::as_str)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ParseError::new(file, loc.clone(), "hostIdentifier", "missing"))?;
        let unix_time = match obj.get("unixTime") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| ParseError::new(file, loc.clone(), "unixTime", "missing or not a number"))?;
        let table = name.rsplit(['/', ':']).next().unwrap_or(name);
        let rows: Vec<&Map<String, Value>> = match (obj.get("columns"), obj.get("snapshot")) {
            (Some(Value::Object(c)), _) => vec![c],
            (_, Some(Value::Array(rows))) => rows.iter().filter_map(Value::as_object).collect(),
            _ => {
                return Err(ParseError::new(
                    file,
                    loc.clone(),
                    "columns",
                    "neither `columns` nor `snapshot` rows",
                ));
            }
        };
        if obj.get("action").and_then(Value::as_str) == Some("removed") {
            continue;
        }
        let h = hosts.entry(host_id.to_string()).or_insert_with(|| Host {
            first: loc.clone(),
            obs: AssetObs {
                hostname: Some(host_id.to_string()),
                ..AssetObs::default()
            },
            ..Host::default()
        });
        h.unix_time = h.unix_time.max(unix_time);
        for cols in rows {
            match table {
                t if t.ends_with("system_info") => {
                    if let Some(n) = s(cols, "hostname").or_else(|| s(cols, "computer_name")) {
                        if n.contains('.') {
                            h.obs.fqdn = Some(n.clone());
                        }
                        h.obs.hostname = Some(n);
                    }
                    h.obs.serial = s(cols, "hardware_serial").or(h.obs.serial.take());
                    h.obs.device_type = s(cols, "hardware_model").or(h.obs.device_type.take());
                }
                t if t.ends_with("os_version") => {
                    h.obs.os = match (s(cols, "name"), s(cols, "version")) {
                        (Some(n), Some(v)) if !n.contains(&v) => Some(format!("{n} {v}")),
                        (n, v) => n.or(v),
                    };
                }
                t if t.ends_with("windows_security_products")
                    && s(cols, "type").is_some_and(|t| t.eq_ignore_ascii_case("antivirus")) =>
                {
                    let on = s(cols, "state").is_some_and(|st| st.eq_ignore_ascii_case("on"));
                    let sig = match s(cols, "signatures_up_to_date").as_deref() {
                        Some("1") => Some(true),
                        Some("0") => Some(false),
                        None => None,
                        Some(v) => {
                            return Err(ParseError::new(
                                file,
                                loc.clone(),
                                "signatures_up_to_date",
                                format!("`{v}` is not 0 or 1"),
                            ));
                        }
                    };
                    h.av_rows
                        .push((on, sig, s(cols, "name").unwrap_or_default()));
                }
                t if t.ends_with("interface_addresses") => {
                    if let Some(ip) =
                        s(cols, "address").and_then(|a| a.parse::<std::net::IpAddr>().ok())
                    {
                        let link_local = matches!(ip, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
                        if !ip.is_loopback() && !link_local && !h.obs.ips.contains(&ip.to_string())
                        {
                            h.obs.ips.push(ip.to_string());
                        }
                    }
                }
                t if t.ends_with("interface_details") => {
                    if let Some(mac) = s(cols, "mac").filter(|m| m != "00:00:00:00:00:00")
                        && !h.obs.macs.contains(&mac)
                    {
                        h.obs.macs.push(mac);
                    }
                }
                t if t.ends_with("programs")
                    || t.ends_with("deb_packages")
                    || t.ends_with("rpm_packages") =>
                {
                    let (Some(name), version) =
                        (s(cols, "name"), s(cols, "version").unwrap_or_default())
                    else {
                        continue;
                    };
                    if let Some(until) = eol::software_end_of_life(&name, &version) {
                        h.eol.push((name, version, until));
                    }
                }
                _ => {}
            }
        }
    }
    let mut parsed = Parsed::default();
    let mut vuln_idx: BTreeMap<String, u32> = BTreeMap::new();
    for (_, h) in hosts {
        let mut a = h.obs;
        a.locator = format!(
            "{} (host {})",
            h.first,
            a.hostname.as_deref().unwrap_or("?")
        );
        a.last_seen = Some(h.unix_time);
        if !h.av_rows.is_empty() {
            let active = h
                .av_rows
                .iter()
                .find(|r| r.0)
                .or(h.av_rows.first())
                .expect("non-empty");
            a.av = Some(AvObs {
                product: Some(active.2.clone()),
                installed: true,
                active: Some(active.0),
                mode: Some(if active.0 { "On" } else { "Off" }.into()),
                signatures_at: None,
                signatures_current: active.1,
                reported_at: Some(h.unix_time),
            });
        }
        // the agent's software inventory is a credentialed look at the host:
        // software it no longer lists has been removed
        a.scan = Some(ScanObs {
            at: h.unix_time,
            credentialed: true,
        });
        let asset = parsed.assets.len() as u32;
        parsed.assets.push(a);
        for (name, version, until) in h.eol {
            let key = format!("osquery:eol:{name}");
            let vuln = *vuln_idx.entry(key.clone()).or_insert_with(|| {
                parsed.vulns.push(VulnDef {
                    key,
                    title: format!("Unsupported software: {name}"),
                    label: Some("High".into()),
                    fix_available: true,
                    fix_released: Some(until),
                    unsupported: true,
                    solution: Some(format!(
                        "Remove or upgrade {name}: vendor support ended {}.",
                        format_date(until)
                    )),
                    ..VulnDef::default()
                });
                parsed.vulns.len() as u32 - 1
            });
            parsed.findings.push(FindingObs {
                asset,
                vuln,
                port: version,
            });
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_logs_per_host() {
        let log = r#"{"name":"pack/assurance/system_info","hostIdentifier":"lt-0042","unixTime":1632816000,"columns":{"hostname":"LT-0042","hardware_serial":"PF2ABC","hardware_model":"Surface Laptop 4"},"action":"added"}
{"name":"pack/assurance/os_version","hostIdentifier":"lt-0042","unixTime":1632816000,"snapshot":[{"name":"Microsoft Windows 10 Pro","version":"10.0.19044"}],"action":"snapshot"}
{"name":"pack/assurance/windows_security_products","hostIdentifier":"lt-0042","unixTime":1632816000,"snapshot":[{"type":"Firewall","name":"Windows Firewall","state":"On"},{"type":"Antivirus","name":"Microsoft Defender Antivirus","state":"On","signatures_up_to_date":"0"}],"action":"snapshot"}
{"name":"pack/assurance/programs","hostIdentifier":"lt-0042","unixTime":1632816000,"snapshot":[{"name":"Adobe Flash Player 32 NPAPI","version":"32.0.0.465"},{"name":"7-Zip","version":"19.00"}],"action":"snapshot"}
"#;
        let p = parse("osq.json", log.as_bytes()).unwrap();
        let a = &p.assets[0];
        assert_eq!(a.hostname.as_deref(), Some("LT-0042"));
        assert_eq!(a.os.as_deref(), Some("Microsoft Windows 10 Pro 10.0.19044"));
        let av = a.av.as_ref().unwrap();
        assert_eq!(
            (av.active, av.signatures_current),
            (Some(true), Some(false))
        );
        assert_eq!(p.vulns.len(), 1);
        assert!(p.vulns[0].unsupported && p.vulns[0].title.contains("Adobe Flash"));
        let e = parse("osq.json", b"{\"name\":\"x\",\"unixTime\":1}\n").unwrap_err();
        assert_eq!(
            (e.location.as_str(), e.field.as_str()),
            ("line 1", "hostIdentifier")
        );
        let e = parse("osq.json", format!("{log}{{broken\n").as_bytes()).unwrap_err();
        assert_eq!(e.location, "line 5");
    }
}
