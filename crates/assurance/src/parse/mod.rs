//! Parsers for the files councils' tools export. Each turns one file into
//! observations ([`Parsed`]) or fails with the file, the place in it
//! (line or element) and the field that is wrong: nothing of a bad file is
//! imported.

mod csv_inv;
mod nessus;
mod openvas;
mod osquery;
mod xml;

use std::fmt;
use std::str::FromStr;

use crate::model::{AssetObs, FindingObs, VulnDef};

pub use csv_inv::{DEFENDER_COLUMNS, INVENTORY_COLUMNS};

/// The kinds of file `parapet assets import --source` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// A generic asset inventory CSV (and Intune / SCCM style exports).
    InventoryCsv,
    /// Microsoft Defender for Endpoint device inventory / AV health CSV.
    DefenderCsv,
    /// Nessus v2 `.nessus` XML.
    Nessus,
    /// Greenbone / OpenVAS XML report.
    Openvas,
    /// osquery JSON results (osqueryd / Fleet result logs).
    Osquery,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::InventoryCsv,
        Source::DefenderCsv,
        Source::Nessus,
        Source::Openvas,
        Source::Osquery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::InventoryCsv => "inventory-csv",
            Source::DefenderCsv => "defender-csv",
            Source::Nessus => "nessus",
            Source::Openvas => "openvas",
            Source::Osquery => "osquery",
        }
    }

    /// Vulnerability scanners: their host records are assessments, and
    /// only they make a device "assessed" for the patching KPIs.
    pub fn is_scanner(self) -> bool {
        matches!(self, Source::Nessus | Source::Openvas)
    }

    /// Sources that manage the device (inventory, MDM, EDR, agent): a
    /// device only scanners saw is "unmanaged".
    pub fn is_managed(self) -> bool {
        !self.is_scanner()
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Source::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown source `{s}`: one of {}",
                    Source::ALL.map(Source::as_str).join(", ")
                )
            })
    }
}

/// What a file says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub assets: Vec<AssetObs>,
    pub vulns: Vec<VulnDef>,
    pub findings: Vec<FindingObs>,
    /// When the extract was taken, when the file says (scan end, newest
    /// "last seen").
    pub as_of: Option<i64>,
}

/// A file that cannot be imported, and exactly where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {location}: {field}: {reason}")]
pub struct ParseError {
    pub file: String,
    /// `line 12`, `ReportHost 3`, `result 7`, `record 4`.
    pub location: String,
    /// The column, element or key.
    pub field: String,
    pub reason: String,
}

impl ParseError {
    pub(crate) fn new(
        file: &str,
        location: impl Into<String>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_string(),
            location: location.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Parses `bytes` (the content of `file`) as `source`.
pub fn parse(source: Source, file: &str, bytes: &[u8]) -> Result<Parsed, ParseError> {
    let mut parsed = match source {
        Source::InventoryCsv => csv_inv::parse_inventory(file, bytes),
        Source::DefenderCsv => csv_inv::parse_defender(file, bytes),
        Source::Nessus => nessus::parse(file, bytes),
        Source::Openvas => openvas::parse(file, bytes),
        Source::Osquery => osquery::parse(file, bytes),
    }?;
    for a in &mut parsed.assets {
        a.hostname = a.hostname.take().filter(|h| !h.trim().is_empty());
        a.fqdn = a.fqdn.take().filter(|h| !h.trim().is_empty());
        for m in &mut a.macs {
            *m = normalise_mac(m);
        }
        a.macs.retain(|m| !m.is_empty());
    }
    if parsed.as_of.is_none() {
        parsed.as_of = parsed
            .assets
            .iter()
            .filter_map(|a| a.scan.map(|s| s.at).or(a.last_seen))
            .max();
    }
    Ok(parsed)
}

/// `00:50:56:81:01:E3`, `00-50-56-81-01-e3` and `0050.5681.01e3` to
/// `00:50:56:81:01:e3`; anything not 12 hex digits to "".
pub fn normalise_mac(m: &str) -> String {
    let hex: String = m.chars().filter(char::is_ascii_hexdigit).collect();
    if hex.len() != 12
        || m.chars()
            .any(|c| !(c.is_ascii_hexdigit() || ":-. ".contains(c)))
    {
        return String::new();
    }
    let hex = hex.to_ascii_lowercase();
    (0..6)
        .map(|i| &hex[i * 2..i * 2 + 2])
        .collect::<Vec<_>>()
        .join(":")
}

/// Splits a multi-valued cell (`10.0.0.1; 10.0.0.2`, `a,b`).
pub(crate) fn split_multi(s: &str) -> Vec<String> {
    s.split([';', ',', ' ', '|'])
        .map(|p| p.trim().trim_matches(|c| c == '[' || c == ']' || c == '"'))
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses one file into an import ready to store: hashes its bytes
/// (SHA-256, the evidence chain) and dates it — `as_of` when given, else
/// the date the file carries (scan end, newest "last seen").
pub fn build_import(
    tenant: &str,
    source: Source,
    path: &str,
    bytes: &[u8],
    as_of: Option<i64>,
) -> Result<crate::model::AssetImport, ParseError> {
    use sha2::Digest;
    let mut parsed = parse(source, path, bytes)?;
    let as_of = as_of.or(parsed.as_of).ok_or_else(|| {
        ParseError::new(
            path,
            "file",
            "date",
            "the file carries no date (no scan time or last-seen column): give --as-of DATE",
        )
    })?;
    for a in &mut parsed.assets {
        if let Some(scan) = a.scan.as_mut().filter(|s| s.at == i64::MIN) {
            scan.at = as_of;
        }
    }
    Ok(crate::model::AssetImport {
        tenant: tenant.to_string(),
        source: source.as_str().to_string(),
        path: path.to_string(),
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
        as_of,
        assets: parsed.assets,
        vulns: parsed.vulns,
        findings: parsed.findings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_sources() {
        assert_eq!(normalise_mac("00-50-56-81-01-E3"), "00:50:56:81:01:e3");
        assert_eq!(normalise_mac("0050.5681.01e3"), "00:50:56:81:01:e3");
        assert_eq!(normalise_mac("nonsense"), "");
        assert_eq!(normalise_mac("00:50:56:81:01:e3:ff"), "");
        for s in Source::ALL {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
        }
        assert!("qualys".parse::<Source>().unwrap_err().contains("nessus"));
    }
}
