//! CSV exports: a generic asset inventory (with Intune "All devices" and
//! SCCM `v_R_System`-style column names understood too) and the Microsoft
//! Defender for Endpoint device inventory / antivirus health export.
//!
//! Columns are matched by name, case-, space- and punctuation-insensitively
//! (`Last check-in` = `lastcheckin`); unknown columns are ignored. The
//! accepted names are listed in [`INVENTORY_COLUMNS`] and
//! [`DEFENDER_COLUMNS`] (and in docs/assurance.md).

use crate::model::{AssetObs, AvObs};

use super::{ParseError, Parsed, split_multi};
use parapet_core::calendar::parse_datetime;

/// Inventory fields and the column names that fill them (normalised:
/// lower case, letters and digits only).
pub const INVENTORY_COLUMNS: &[(&str, &[&str])] = &[
    (
        "hostname",
        &[
            "hostname",
            "host",
            "name",
            "devicename",
            "computername",
            "computer",
            "netbiosname",
            "name0",
            "machinename",
            "assetname",
        ],
    ),
    (
        "fqdn",
        &[
            "fqdn",
            "dnsname",
            "dnshostname",
            "computerdnsname",
            "fullyqualifieddomainname",
        ],
    ),
    (
        "ip",
        &[
            "ip",
            "ipaddress",
            "ipaddresses",
            "ipv4address",
            "wifiipv4address",
            "lastipaddress",
            "deviceips",
            "ipaddresses0",
        ],
    ),
    (
        "mac",
        &[
            "mac",
            "macaddress",
            "wifimac",
            "wifimacaddress",
            "ethernetmac",
            "ethernetmacaddress",
            "macaddresses0",
        ],
    ),
    (
        "os",
        &[
            "os",
            "operatingsystem",
            "osname",
            "operatingsystemnameand0",
            "caption0",
            "osplatform",
        ],
    ),
    (
        "os_version",
        &["osversion", "version0", "operatingsystemversion"],
    ),
    (
        "device_type",
        &[
            "devicetype",
            "type",
            "chassis",
            "chassistype",
            "formfactor",
            "assettype",
            "class",
        ],
    ),
    (
        "owner",
        &[
            "owner",
            "primaryuser",
            "primaryuserupn",
            "userprincipalname",
            "upn",
            "user",
            "assignedto",
            "username0",
        ],
    ),
    ("location", &["location", "site", "office"]),
    (
        "last_seen",
        &[
            "lastseen",
            "lastcontact",
            "lastcheckin",
            "lastsynctime",
            "lastsyncdatetime",
            "lastlogontimestamp",
            "lastlogontimestamp0",
            "lastdeviceupdate",
        ],
    ),
    ("serial", &["serial", "serialnumber", "serialnumber0"]),
    (
        "device_id",
        &[
            "deviceid",
            "azureaddeviceid",
            "aaddeviceid",
            "entradeviceid",
        ],
    ),
    ("lifecycle", &["status", "lifecycle", "lifecyclestatus"]),
];

/// Defender fields and their column names (portal export display names
/// and API property names).
pub const DEFENDER_COLUMNS: &[(&str, &[&str])] = &[
    ("device_id", &["deviceid", "id", "machineid"]),
    ("aad_device_id", &["aaddeviceid", "azureaddeviceid"]),
    ("hostname", &["devicename", "computerdnsname", "name"]),
    ("os", &["osplatform"]),
    ("os_version", &["osversion"]),
    ("device_type", &["devicetype", "devicecategory"]),
    ("ip", &["deviceips", "lastipaddress", "ipaddresses"]),
    ("last_seen", &["lastdeviceupdate", "lastseen"]),
    ("onboarding", &["onboardingstatus"]),
    ("av_mode", &["avmode", "antivirusmode"]),
    ("av_status", &["antivirusstatus", "defenderavstatus"]),
    (
        "signature_version",
        &["avsignatureversion", "signatureversion"],
    ),
    (
        "signature_time",
        &[
            "avsignatureupdatetime",
            "signatureupdatetime",
            "avsignaturelastupdated",
            "signaturelastupdated",
        ],
    ),
    (
        "signature_up_to_date",
        &["avissignatureuptodate", "signatureuptodate"],
    ),
    ("reported_at", &["datarefreshtimestamp", "lastreported"]),
];

fn norm(h: &str) -> String {
    h.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Column index per field, and the header's own spelling for errors.
struct Columns {
    idx: Vec<Option<(usize, String)>>,
}

impl Columns {
    fn new(headers: &csv::StringRecord, map: &[(&str, &[&str])]) -> Self {
        let normed: Vec<String> = headers.iter().map(norm).collect();
        let idx = map
            .iter()
            .map(|(_, aliases)| {
                aliases.iter().find_map(|a| {
                    normed
                        .iter()
                        .position(|h| h == a)
                        .map(|i| (i, headers[i].to_string()))
                })
            })
            .collect();
        Self { idx }
    }

    fn has(&self, field: usize) -> bool {
        self.idx[field].is_some()
    }

    /// The non-empty cell of `field`, with the column's name.
    fn get<'r>(&self, rec: &'r csv::StringRecord, field: usize) -> Option<(&'r str, &str)> {
        let (i, name) = self.idx[field].as_ref()?;
        let v = rec.get(*i)?.trim();
        (!v.is_empty() && v != "-" && !v.eq_ignore_ascii_case("null")).then_some((v, name.as_str()))
    }
}

fn field_index(map: &[(&str, &[&str])], name: &str) -> usize {
    map.iter()
        .position(|(n, _)| *n == name)
        .expect("known field")
}

fn reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    // Excel writes a BOM; csv handles it only on the first field name
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    csv::ReaderBuilder::new().flexible(false).from_reader(bytes)
}

fn csv_error(file: &str, e: &csv::Error) -> ParseError {
    let line = e
        .position()
        .map_or_else(|| "header".to_string(), |p| format!("line {}", p.line()));
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
        _ => e.to_string(),
    };
    ParseError::new(file, line, "row", reason)
}

fn date(file: &str, line: u64, col: &str, v: &str) -> Result<i64, ParseError> {
    parse_datetime(v).ok_or_else(|| {
        ParseError::new(
            file,
            format!("line {line}"),
            col,
            format!("`{v}` is not a date (write 2021-07-15 or 2021-07-15T10:00:00Z)"),
        )
    })
}

/// Reads rows, calling `row(line, record)` for each.
fn each_row(
    file: &str,
    bytes: &[u8],
    map: &[(&str, &[&str])],
    identity: &[&str],
    mut row: impl FnMut(&Columns, u64, &csv::StringRecord) -> Result<Option<AssetObs>, ParseError>,
) -> Result<Parsed, ParseError> {
    let mut rdr = reader(bytes);
    let headers = rdr.headers().map_err(|e| csv_error(file, &e))?.clone();
    let cols = Columns::new(&headers, map);
    if !identity.iter().any(|f| cols.has(field_index(map, f))) {
        let names: Vec<&str> = identity
            .iter()
            .flat_map(|f| map[field_index(map, f)].1.iter().take(3).copied())
            .collect();
        return Err(ParseError::new(
            file,
            "line 1",
            "header",
            format!(
                "no column identifies the device (expected one of: {})",
                names.join(", ")
            ),
        ));
    }
    let mut parsed = Parsed::default();
    let mut rec = csv::StringRecord::new();
    // a file without a final newline may have been cut inside its last row
    let unterminated = !bytes.is_empty() && !bytes.ends_with(b"\n");
    let mut last = None;
    loop {
        match rdr.read_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(file, &e)),
        }
        let line = rec.position().map_or(0, |p| p.line());
        if unterminated {
            last = Some((line, rec.clone()));
        }
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if let Some(a) = row(&cols, line, &rec)? {
            parsed.assets.push(a);
        }
    }
    if let Some((line, rec)) = last {
        cut_short(file, bytes, map, &cols, line, &rec)?;
    }
    Ok(parsed)
}

/// Values a column can take, for the columns that have a fixed set: a last
/// value that is a strict prefix of one of them ("Act" for "Active") is a
/// row cut short.
fn vocabulary(field: &str) -> &'static [&'static str] {
    match field {
        "lifecycle" => &[
            "active",
            "in use",
            "inactive",
            "in service",
            "in repair",
            "assigned",
            "deployed",
            "disposed",
            "in stock",
            "awaiting disposal",
            "retired",
            "decommissioned",
            "lost",
            "stolen",
        ],
        "onboarding" => &[
            "onboarded",
            "can be onboarded",
            "unsupported",
            "insufficient info",
        ],
        "signature_up_to_date" => &["true", "false", "yes", "no"],
        _ => &[],
    }
}

/// Refuses a file that ends, without a newline, inside a quoted field or
/// inside a value of a fixed set: an export cut short would otherwise
/// import its last row with a truncated value.
fn cut_short(
    file: &str,
    bytes: &[u8],
    map: &[(&str, &[&str])],
    cols: &Columns,
    line: u64,
    rec: &csv::StringRecord,
) -> Result<(), ParseError> {
    let cut = |field: &str, why: String| {
        Err(ParseError::new(
            file,
            format!("line {line}"),
            field,
            format!("{why}: the file ends without a newline and looks cut short; export it again"),
        ))
    };
    // quotes pair up ("" inside a quoted field is two), so an odd count
    // means the file ends inside a quoted field
    if bytes.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
        return cut("row", "the last field's quotes are not closed".into());
    }
    let Some(at) = rec.len().checked_sub(1) else {
        return Ok(());
    };
    let value = rec[at].trim().to_ascii_lowercase();
    let Some(((name, _), Some((_, column)))) = map
        .iter()
        .zip(&cols.idx)
        .find(|(_, i)| i.as_ref().is_some_and(|(i, _)| *i == at))
    else {
        return Ok(());
    };
    if !value.is_empty()
        && vocabulary(name)
            .iter()
            .any(|w| w.len() > value.len() && w.starts_with(&value))
    {
        return cut(
            column,
            format!("`{}` is the start of a known value", &rec[at]),
        );
    }
    Ok(())
}

fn require_identity(file: &str, line: u64, a: &AssetObs) -> Result<(), ParseError> {
    if a.hostname.is_none()
        && a.fqdn.is_none()
        && a.ips.is_empty()
        && a.macs.is_empty()
        && a.device_id.is_none()
        && a.serial.is_none()
    {
        return Err(ParseError::new(
            file,
            format!("line {line}"),
            "hostname",
            "the row names no device (no host name, FQDN, IP, MAC, serial or device id)",
        ));
    }
    Ok(())
}

fn ips(file: &str, line: u64, col: &str, v: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    for p in split_multi(v) {
        let ip: std::net::IpAddr = p.parse().map_err(|_| {
            ParseError::new(
                file,
                format!("line {line}"),
                col,
                format!("`{p}` is not an IP address"),
            )
        })?;
        out.push(ip.to_string());
    }
    Ok(out)
}

pub fn parse_inventory(file: &str, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let m = INVENTORY_COLUMNS;
    let f = |n| field_index(m, n);
    let (host, fqdn, ip, mac, os, osv, ty, owner, loc, seen, serial, id, life) = (
        f("hostname"),
        f("fqdn"),
        f("ip"),
        f("mac"),
        f("os"),
        f("os_version"),
        f("device_type"),
        f("owner"),
        f("location"),
        f("last_seen"),
        f("serial"),
        f("device_id"),
        f("lifecycle"),
    );
    each_row(
        file,
        bytes,
        m,
        &["hostname", "fqdn", "ip", "device_id"],
        |c, line, rec| {
            let s = |i| c.get(rec, i).map(|(v, _)| v.to_string());
            let mut a = AssetObs {
                locator: format!("line {line}"),
                hostname: s(host),
                fqdn: s(fqdn),
                serial: s(serial),
                device_id: s(id),
                device_type: s(ty),
                owner: s(owner),
                location: s(loc),
                lifecycle: s(life),
                ..AssetObs::default()
            };
            a.os = match (s(os), s(osv)) {
                (Some(o), Some(v)) if !o.contains(&v) => Some(format!("{o} {v}")),
                (o, v) => o.or(v),
            };
            if let Some((v, col)) = c.get(rec, ip) {
                a.ips = ips(file, line, col, v)?;
            }
            if let Some((v, col)) = c.get(rec, mac) {
                for p in split_multi(v) {
                    if super::normalise_mac(&p).is_empty() {
                        return Err(ParseError::new(
                            file,
                            format!("line {line}"),
                            col,
                            format!("`{p}` is not a MAC address"),
                        ));
                    }
                    a.macs.push(p);
                }
            }
            if let Some((v, col)) = c.get(rec, seen) {
                a.last_seen = Some(date(file, line, col, v)?);
            }
            // an FQDN in the host-name column: keep both forms
            if a.fqdn.is_none()
                && a.hostname
                    .as_deref()
                    .is_some_and(|h| h.contains('.') && h.parse::<std::net::IpAddr>().is_err())
            {
                a.fqdn = a.hostname.clone();
            }
            require_identity(file, line, &a)?;
            Ok(Some(a))
        },
    )
}

/// Defender `avMode`: 0 Active, 1 Passive, 2 Disabled, 4 EDR in block
/// mode, 5 Passive audit — as numbers (API) or words (portal).
fn av_mode(v: &str) -> Option<(&'static str, bool)> {
    let n = norm(v);
    Some(match n.as_str() {
        "0" | "active" | "normal" => ("Active", true),
        "1" | "passive" => ("Passive", false),
        "2" | "disabled" | "off" => ("Disabled", false),
        "4" | "edrblocked" | "edrinblockmode" | "edrblockmode" => ("EDR in block mode", true),
        "5" | "passiveaudit" => ("Passive audit", false),
        _ => return None,
    })
}

fn boolean(v: &str) -> Option<bool> {
    match norm(v).as_str() {
        "true" | "yes" | "1" | "updated" | "uptodate" => Some(true),
        "false" | "no" | "0" | "notupdated" | "outofdate" => Some(false),
        _ => None,
    }
}

/// Defender's `osPlatform` (`WindowsServer2008R2`, `Windows10`) in words
/// (`Windows Server 2008 R2`), as other sources write it.
fn spaced_platform(p: &str) -> String {
    if !p.starts_with("Windows") || p.contains(' ') {
        return p.to_string();
    }
    let mut out = String::new();
    let mut prev: Option<char> = None;
    for c in p.chars() {
        if let Some(q) = prev {
            let boundary = (c.is_ascii_uppercase()
                && (q.is_ascii_lowercase() || q.is_ascii_digit()))
                || (c.is_ascii_digit() && q.is_ascii_lowercase());
            if boundary {
                out.push(' ');
            }
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

pub fn parse_defender(file: &str, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let m = DEFENDER_COLUMNS;
    let f = |n| field_index(m, n);
    let (id, aad, host, os, osv, ty, ip, seen, onb, mode, status, sigv, sigt, sigok, rep) = (
        f("device_id"),
        f("aad_device_id"),
        f("hostname"),
        f("os"),
        f("os_version"),
        f("device_type"),
        f("ip"),
        f("last_seen"),
        f("onboarding"),
        f("av_mode"),
        f("av_status"),
        f("signature_version"),
        f("signature_time"),
        f("signature_up_to_date"),
        f("reported_at"),
    );
    each_row(
        file,
        bytes,
        m,
        &["hostname", "device_id"],
        |c, line, rec| {
            let s = |i| c.get(rec, i).map(|(v, _)| v.to_string());
            let loc = || format!("line {line}");
            let mut a = AssetObs {
                locator: loc(),
                hostname: s(host),
                device_id: s(aad).or_else(|| s(id)),
                device_type: s(ty),
                ..AssetObs::default()
            };
            a.os = match (s(os).map(|o| spaced_platform(&o)), s(osv)) {
                (Some(o), Some(v)) => Some(format!("{o} {v}")),
                (o, v) => o.or(v),
            };
            if a.hostname.as_deref().is_some_and(|h| h.contains('.')) {
                a.fqdn = a.hostname.clone();
            }
            if let Some((v, col)) = c.get(rec, ip) {
                a.ips = ips(file, line, col, v)?;
            }
            if let Some((v, col)) = c.get(rec, seen) {
                a.last_seen = Some(date(file, line, col, v)?);
            }
            let mut av = AvObs {
                product: Some("Microsoft Defender".into()),
                ..AvObs::default()
            };
            let onboarded = c.get(rec, onb).map(|(v, _)| norm(v) == "onboarded");
            let mode = match c.get(rec, mode) {
            Some((v, col)) => Some(av_mode(v).ok_or_else(|| {
                ParseError::new(file, loc(), col, format!("`{v}` is not an AV mode (0 Active, 1 Passive, 2 Disabled, 4 EDR in block mode, 5 Passive audit)"))
            })?),
            None => None,
        };
            let status = c.get(rec, status).map(|(v, _)| norm(v));
            av.installed = onboarded.unwrap_or(true)
                && !matches!(status.as_deref(), Some("notsupported" | "notinstalled"));
            av.mode = mode
                .map(|(w, _)| w.to_string())
                .or_else(|| c.get(rec, f("av_status")).map(|(v, _)| v.to_string()));
            av.active = match (mode, status.as_deref()) {
                (_, Some("disabled")) => Some(false),
                (Some((_, on)), _) => Some(on),
                (None, Some("updated" | "notupdated")) => Some(true),
                _ => None,
            };
            if let Some((v, col)) = c.get(rec, sigt) {
                av.signatures_at = Some(date(file, line, col, v)?);
            }
            av.signatures_current = match c.get(rec, sigok) {
                Some((v, col)) => Some(boolean(v).ok_or_else(|| {
                    ParseError::new(file, loc(), col, format!("`{v}` is not true/false"))
                })?),
                None => status.as_deref().and_then(boolean),
            };
            let _ = c.get(rec, sigv);
            av.reported_at = match c.get(rec, rep) {
                Some((v, col)) => Some(date(file, line, col, v)?),
                None => a.last_seen,
            };
            if onboarded == Some(false) {
                av.installed = false;
                av.active = None;
            }
            a.av = Some(av);
            require_identity(file, line, &a)?;
            Ok(Some(a))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_with_intune_and_sccm_names() {
        let csv = "\u{feff}Device name,Azure AD Device ID,OS,OS version,Serial number,Wi-Fi MAC,Last check-in,Primary user UPN\n\
                   LT-0042,7d1e,Windows,10.0.19044,PF2ABC,00-50-56-81-01-E3,2021-09-28T08:00:00Z,a.user@council.gov.uk\n";
        let p = parse_inventory("intune.csv", csv.as_bytes()).unwrap();
        let a = &p.assets[0];
        assert_eq!(a.hostname.as_deref(), Some("LT-0042"));
        assert_eq!(a.os.as_deref(), Some("Windows 10.0.19044"));
        assert_eq!(a.macs, vec!["00-50-56-81-01-E3"]);
        assert_eq!(a.locator, "line 2");
        let sccm = "Name0,Operating_System_Name_and0,Last_Logon_Timestamp0\nSRV-FS01,Microsoft Windows NT Server 10.0,2021-09-01\n";
        assert_eq!(
            parse_inventory("sccm.csv", sccm.as_bytes()).unwrap().assets[0]
                .os
                .as_deref(),
            Some("Microsoft Windows NT Server 10.0")
        );
    }

    #[test]
    fn bad_rows_name_file_line_and_column() {
        let csv = "hostname,ip,last seen\nws1,10.0.0.1,2021-09-01\nws2,10.0.0.300,2021-09-01\n";
        let e = parse_inventory("inv.csv", csv.as_bytes()).unwrap_err();
        assert_eq!((e.location.as_str(), e.field.as_str()), ("line 3", "ip"));
        let e = parse_inventory("inv.csv", b"hostname,last seen\nws1,31/09/2021\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "inv.csv: line 2: last seen: `31/09/2021` is not a date (write 2021-07-15 or 2021-07-15T10:00:00Z)"
        );
        let e = parse_inventory("inv.csv", b"hostname,os\nws1,Windows\nws2\n").unwrap_err();
        assert_eq!(e.location, "line 3");
        let e = parse_inventory("inv.csv", b"colour,size\nred,2\n").unwrap_err();
        assert_eq!(e.field, "header");
        let e = parse_inventory("inv.csv", b"hostname,ip\n,\n\"\",\"\"\n  ,10.0.0.1\n").unwrap();
        assert_eq!(e.assets.len(), 1);
    }

    #[test]
    fn a_file_cut_inside_its_last_column_is_refused() {
        let csv = b"hostname,last seen,status\nws1,2021-09-01,Active\nws2,2021-09-01,Act";
        let e = parse_inventory("inv.csv", csv).unwrap_err();
        assert_eq!(
            (e.location.as_str(), e.field.as_str()),
            ("line 3", "status")
        );
        assert!(e.to_string().contains("cut short"), "{e}");
        let csv = b"hostname,last seen,owner\nws1,2021-09-01,\"Smith, J\"\nws2,2021-09-01,\"Jon";
        let e = parse_inventory("inv.csv", csv).unwrap_err();
        assert_eq!(e.location, "line 3");
        assert!(e.to_string().contains("quotes are not closed"), "{e}");
        // complete files, with or without the final newline, still import
        for csv in [
            &b"hostname,last seen,status\nws1,2021-09-01,Active"[..],
            b"hostname,last seen,status\nws1,2021-09-01,Act\n",
            b"hostname,last seen,owner\nws1,2021-09-01,\"Smith, J\"",
        ] {
            assert_eq!(parse_inventory("inv.csv", csv).unwrap().assets.len(), 1);
        }
    }

    #[test]
    fn defender_av_states() {
        let csv = "Device Name,Device Id,OS Platform,Onboarding Status,AV mode,AV signature update time,avIsSignatureUpToDate,Last device update\n\
                   srv-app1.council.local,a1,WindowsServer2019,Onboarded,1,2021-09-20,true,2021-09-29\n\
                   lt-0001,a2,Windows10,Onboarded,Active,2021-09-21T00:00:00Z,false,2021-09-29\n\
                   lt-0002,a3,Windows10,Can be onboarded,,,,2021-09-29\n";
        let p = parse_defender("mde.csv", csv.as_bytes()).unwrap();
        let av: Vec<_> = p.assets.iter().map(|a| a.av.clone().unwrap()).collect();
        assert_eq!(
            (av[0].installed, av[0].active, av[0].mode.as_deref()),
            (true, Some(false), Some("Passive"))
        );
        assert_eq!(p.assets[0].fqdn.as_deref(), Some("srv-app1.council.local"));
        assert_eq!(
            (av[1].active, av[1].signatures_current),
            (Some(true), Some(false))
        );
        assert!(!av[2].installed);
        assert_eq!(p.assets[0].os.as_deref(), Some("Windows Server 2019"));
        assert_eq!(
            spaced_platform("WindowsServer2008R2"),
            "Windows Server 2008 R2"
        );
        let e = parse_defender("mde.csv", b"Device Name,AV mode\nx,7\n").unwrap_err();
        assert_eq!(
            (e.location.as_str(), e.field.as_str()),
            ("line 2", "AV mode")
        );
    }
}

#[cfg(test)]
mod doc_tests {
    /// docs/assurance.md lists exactly the column names the parser knows.
    #[test]
    fn documented_column_names_match_the_parser() {
        let doc = include_str!("../../../../docs/assurance.md");
        for (map, _) in [
            (super::INVENTORY_COLUMNS, "inventory"),
            (super::DEFENDER_COLUMNS, "defender"),
        ] {
            for (field, aliases) in map {
                let row = format!("| {field} | {} |", aliases.join(", "));
                assert!(doc.contains(&row), "docs/assurance.md lacks the row: {row}");
            }
        }
    }
}
