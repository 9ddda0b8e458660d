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
//! Decompression is capped: every decompressed file (a gzip stream, a zip
//! member) may be at most [`MAX_DECOMPRESSED`] bytes, and one call
//! decompresses at most four times that in all; beyond that the input is
//! refused as a possible zip bomb.
//!
//! DMARC failure (forensic, `ruf`) reports are recognised and refused with
//! a reason that says so: they are not aggregate reports.

use std::borrow::Cow;
use std::fmt;
use std::io::{Cursor, Read};
use std::net::IpAddr;
use std::str::FromStr;

use flate2::bufread::GzDecoder;
use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};
use serde_json::{Map, Value};

/// Largest size one decompressed file (a gzip stream, a zip member) may
/// have; larger ones are refused as possible zip bombs.
pub const MAX_DECOMPRESSED: u64 = 64 * 1024 * 1024;
/// How many containers may nest (an e-mail holding a zip holding a gzip...).
const MAX_NESTING: u32 = 4;
/// One call decompresses at most this many times [`MAX_DECOMPRESSED`] in all.
const TOTAL_FACTOR: u64 = 4;
/// Most members a zip archive may have.
const MAX_ZIP_MEMBERS: usize = 1000;
/// The reason given for DMARC failure reports.
const FAILURE_REPORT: &str =
    "a DMARC failure (forensic) report, not an aggregate report: not imported";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const ZIP_EMPTY_MAGIC: &[u8] = b"PK\x05\x06";

/// `policy_evaluated/disposition`; `pass` is DMARCbis (RFC 9990).
const DISPOSITIONS: &[&str] = &["none", "pass", "quarantine", "reject"];
/// `policy_published/p` and `sp`.
const POLICIES: &[&str] = &["none", "quarantine", "reject"];
/// `policy_evaluated/dkim` and `spf`.
const DMARC_RESULTS: &[&str] = &["pass", "fail"];
/// `auth_results/dkim/result` (DKIMResultType).
const DKIM_RESULTS: &[&str] = &[
    "none",
    "pass",
    "fail",
    "policy",
    "neutral",
    "temperror",
    "permerror",
];
/// `auth_results/spf/result` (SPFResultType).
const SPF_RESULTS: &[&str] = &[
    "none",
    "neutral",
    "pass",
    "fail",
    "softfail",
    "temperror",
    "permerror",
];
/// `auth_results/spf/scope`.
const SPF_SCOPES: &[&str] = &["helo", "mfrom"];
/// `policy_published/adkim` and `aspf`.
const ALIGNMENTS: &[&str] = &["r", "s"];
/// TLS-RPT `policy-type`.
const TLS_POLICY_TYPES: &[&str] = &["sts", "tlsa", "no-policy-found"];

/// `feedback/policy_published`: the DMARC policy the receiver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPolicy {
    pub domain: String,
    pub p: String,
    pub sp: Option<String>,
    pub pct: Option<u8>,
    pub adkim: Option<String>,
    pub aspf: Option<String>,
}

/// One `auth_results/dkim` (with `selector`) or `auth_results/spf` (with
/// `scope`) entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResult {
    pub domain: String,
    pub selector: Option<String>,
    pub scope: Option<String>,
    pub result: String,
}

/// One `feedback/record`: messages from one source with one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRecord {
    pub source_ip: IpAddr,
    pub count: u64,
    /// `none`, `quarantine` or `reject` (`pass` from DMARCbis reporters).
    pub disposition: String,
    /// `policy_evaluated/dkim` == `pass` (aligned DKIM pass).
    pub dkim_aligned: bool,
    /// `policy_evaluated/spf` == `pass` (aligned SPF pass).
    pub spf_aligned: bool,
    pub header_from: String,
    pub envelope_from: Option<String>,
    pub dkim: Vec<AuthResult>,
    pub spf: Vec<AuthResult>,
}

/// A DMARC aggregate report. Times are unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateReport {
    pub org_name: String,
    pub email: Option<String>,
    pub report_id: String,
    pub begin: i64,
    pub end: i64,
    pub policy: PublishedPolicy,
    pub records: Vec<AggregateRecord>,
}

/// One TLS-RPT `failure-details` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFailure {
    pub result_type: String,
    pub sending_mta_ip: Option<String>,
    pub receiving_mx_hostname: Option<String>,
    pub count: u64,
}

/// One TLS-RPT `policies` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicyResult {
    pub policy_type: String,
    pub policy_domain: String,
    pub mx_hosts: Vec<String>,
    pub successful: u64,
    pub failed: u64,
    pub failures: Vec<TlsFailure>,
}

/// An SMTP TLS report. Times are unix seconds (converted from RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReport {
    pub org_name: String,
    pub report_id: String,
    pub begin: i64,
    pub end: i64,
    pub policies: Vec<TlsPolicyResult>,
}

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
    parse_limited(file, data, MAX_DECOMPRESSED)
}

/// [`parse_bytes`] with another per-file decompression limit (tests).
fn parse_limited(file: &str, data: &[u8], limit: u64) -> Result<Vec<Parsed>, ReportError> {
    let mut cx = Cx {
        limit,
        budget: limit.saturating_mul(TOTAL_FACTOR),
    };
    let mut out = Vec::new();
    match cx.any(data, 0, &mut out) {
        Ok(()) => Ok(out),
        Err(reason) => Err(ReportError {
            file: file.to_owned(),
            reason,
        }),
    }
}

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    Gzip,
    Zip,
    Xml,
    Json,
    Mime,
    Utf16,
    Unknown,
}

fn strip_bom(data: &[u8]) -> &[u8] {
    data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data)
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0)
}

fn skip_blank(data: &[u8]) -> &[u8] {
    let n = data.iter().take_while(|&&b| is_blank(b)).count();
    &data[n..]
}

fn sniff(data: &[u8]) -> Kind {
    if data.starts_with(GZIP_MAGIC) {
        return Kind::Gzip;
    }
    if data.starts_with(ZIP_MAGIC) || data.starts_with(ZIP_EMPTY_MAGIC) {
        return Kind::Zip;
    }
    if data.starts_with(b"\xFF\xFE") || data.starts_with(b"\xFE\xFF") {
        return Kind::Utf16;
    }
    match skip_blank(strip_bom(data)).first() {
        None => Kind::Empty,
        Some(b'<') => Kind::Xml,
        Some(b'{') => Kind::Json,
        _ if looks_like_mime(data) => Kind::Mime,
        _ => Kind::Unknown,
    }
}

/// Without an mbox `From ` separator line, if there is one.
fn strip_mbox_line(data: &[u8]) -> &[u8] {
    if data.starts_with(b"From ") {
        match data.iter().position(|&b| b == b'\n') {
            Some(n) => &data[n + 1..],
            None => &[],
        }
    } else {
        data
    }
}

/// Whether the data starts with an RFC 5322 header field.
fn looks_like_mime(data: &[u8]) -> bool {
    let data = strip_mbox_line(data);
    let line = &data[..data.iter().position(|&b| b == b'\n').unwrap_or(data.len())];
    match line.iter().position(|&b| b == b':') {
        Some(n) if n > 0 => line[..n].iter().all(|&b| (33..=126).contains(&b)),
        _ => false,
    }
}

fn size(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// Decompression allowance for one call.
struct Cx {
    /// Per decompressed file.
    limit: u64,
    /// Left for the whole call.
    budget: u64,
}

impl Cx {
    fn any(&mut self, data: &[u8], depth: u32, out: &mut Vec<Parsed>) -> Res<()> {
        if depth > MAX_NESTING {
            return Err(format!(
                "containers nested more than {MAX_NESTING} deep: refused"
            ));
        }
        match sniff(data) {
            Kind::Empty => Err("empty file".into()),
            Kind::Gzip => {
                let inner = self.gunzip(data)?;
                if sniff(&inner) == Kind::Empty {
                    return Err("gzip: empty after decompression".into());
                }
                self.any(&inner, depth + 1, out)
            }
            Kind::Zip => self.unzip(data, depth, out),
            Kind::Xml => {
                out.push(Parsed::Dmarc(parse_aggregate(data)?));
                Ok(())
            }
            Kind::Json => {
                out.push(Parsed::TlsRpt(parse_tlsrpt(data)?));
                Ok(())
            }
            Kind::Mime => self.mime(data, depth, out),
            Kind::Utf16 => Err("UTF-16 text: not supported (reports are UTF-8)".into()),
            Kind::Unknown => {
                let head = &data[..data.len().min(16)];
                Err(format!(
                    "not a gzip, zip, MIME, XML or JSON report (it starts with {:?})",
                    String::from_utf8_lossy(head)
                ))
            }
        }
    }

    /// The most the next decompressed file may hold.
    fn cap(&self) -> u64 {
        self.limit.min(self.budget)
    }

    fn too_big(&self) -> String {
        if self.budget < self.limit {
            format!(
                "decompresses to more than {} in all: refused as a possible zip bomb",
                size(self.limit.saturating_mul(TOTAL_FACTOR))
            )
        } else {
            format!(
                "decompresses to more than {} (the per-file limit): refused as a possible zip bomb",
                size(self.limit)
            )
        }
    }

    /// Every gzip member, concatenated; blank bytes after the last member
    /// (some reporters add a line break) are ignored.
    fn gunzip(&mut self, data: &[u8]) -> Res<Vec<u8>> {
        let cap = self.cap();
        let mut out = Vec::new();
        let mut rest = data;
        loop {
            let room = cap.saturating_sub(out.len() as u64);
            let mut dec = GzDecoder::new(rest);
            (&mut dec)
                .take(room.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            if out.len() as u64 > cap {
                return Err(self.too_big());
            }
            rest = dec.into_inner();
            let tail = skip_blank(rest);
            if tail.is_empty() {
                break;
            }
            if !tail.starts_with(GZIP_MAGIC) {
                return Err(format!(
                    "gzip: {} bytes of unexpected data after the compressed stream",
                    tail.len()
                ));
            }
            rest = tail;
        }
        self.budget = self.budget.saturating_sub(out.len() as u64);
        Ok(out)
    }

    fn unzip(&mut self, data: &[u8], depth: u32, out: &mut Vec<Parsed>) -> Res<()> {
        let mut zip = zip::ZipArchive::new(Cursor::new(data)).map_err(|e| format!("zip: {e}"))?;
        if zip.len() > MAX_ZIP_MEMBERS {
            return Err(format!(
                "zip: {} members, more than the {MAX_ZIP_MEMBERS} allowed: refused",
                zip.len()
            ));
        }
        let mut files = 0;
        for i in 0..zip.len() {
            let cap = self.cap();
            let (name, buf) = {
                let mut f = zip
                    .by_index(i)
                    .map_err(|e| format!("zip member {}: {e}", i + 1))?;
                let name = f
                    .name()
                    .map(|n| n.into_owned())
                    .unwrap_or_else(|_| format!("#{}", i + 1));
                if f.is_dir() || name.starts_with("__MACOSX/") {
                    continue;
                }
                let mut buf = Vec::new();
                (&mut f)
                    .take(cap.saturating_add(1))
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("zip member {name:?}: {e}"))?;
                (name, buf)
            };
            if buf.len() as u64 > cap {
                return Err(format!("zip member {name:?}: {}", self.too_big()));
            }
            self.budget = self.budget.saturating_sub(buf.len() as u64);
            self.any(&buf, depth + 1, out)
                .map_err(|e| format!("zip member {name:?}: {e}"))?;
            files += 1;
        }
        if files == 0 {
            return Err("zip: the archive holds no files".into());
        }
        Ok(())
    }

    fn mime(&mut self, data: &[u8], depth: u32, out: &mut Vec<Parsed>) -> Res<()> {
        let parser = MessageParser::new()
            .with_mime_headers()
            .header_text(HeaderName::Subject)
            .default_header_ignore();
        let body = strip_mbox_line(data);
        // mail-parser 0.11 (pinned: 1.0 needs a newer rustc) has internal
        // `debug_assert!`s that malformed MIME can trip (found by fuzzing;
        // harmless in release builds, where they compile away). A panic
        // there must not take the importer down: it becomes an error.
        let msg = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(body)))
            .map_err(|_| "not a readable MIME message (the MIME parser gave up)".to_string())?
            .ok_or_else(|| "not a readable MIME message".to_string())?;
        let before = out.len();
        self.message(&msg, depth, out)?;
        if out.len() > before {
            Ok(())
        } else if msg.subject().is_some_and(forensic_subject) {
            Err(FAILURE_REPORT.into())
        } else {
            Err("no DMARC aggregate or TLS-RPT report found in the message".into())
        }
    }

    fn message(&mut self, msg: &Message<'_>, depth: u32, out: &mut Vec<Parsed>) -> Res<()> {
        if msg.parts.iter().any(is_failure_part) {
            return Err(FAILURE_REPORT.into());
        }
        for (i, part) in msg.parts.iter().enumerate() {
            match &part.body {
                PartType::Multipart(_) => {}
                PartType::Message(inner) => {
                    if depth + 1 > MAX_NESTING {
                        return Err(format!(
                            "{}: containers nested more than {MAX_NESTING} deep: refused",
                            part_label(i, part)
                        ));
                    }
                    self.message(inner, depth + 1, out)
                        .map_err(|e| format!("{}: {e}", part_label(i, part)))?;
                }
                _ => {
                    if is_report_part(part) {
                        self.any(part.contents(), depth + 1, out)
                            .map_err(|e| format!("{}: {e}", part_label(i, part)))?;
                    }
                }
            }
        }
        Ok(())
    }
}

fn content_type(part: &MessagePart<'_>) -> (String, String) {
    match part.content_type() {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase(),
        ),
        None => ("text".into(), "plain".into()),
    }
}

/// `message/feedback-report` (ARF) parts and `multipart/report` with
/// `report-type=feedback-report` mark failure reports.
fn is_failure_part(part: &MessagePart<'_>) -> bool {
    let (ty, sub) = content_type(part);
    match (ty.as_str(), sub.as_str()) {
        ("message", "feedback-report") => true,
        ("multipart", "report") => part
            .content_type()
            .and_then(|ct| ct.attributes())
            .is_some_and(|attrs| {
                attrs.iter().any(|a| {
                    a.name.eq_ignore_ascii_case("report-type")
                        && a.value.eq_ignore_ascii_case("feedback-report")
                })
            }),
        _ => false,
    }
}

/// Failure reports without an ARF part (Exim's) say so in the subject.
fn forensic_subject(subject: &str) -> bool {
    let s = subject.to_ascii_lowercase();
    s.contains("forensic") || s.contains("failure report") || s.contains("dmarc failure")
}

fn starts_like_report_xml(data: &[u8]) -> bool {
    let t = skip_blank(strip_bom(data));
    t.starts_with(b"<?xml") || t.starts_with(b"<feedback")
}

/// Whether a MIME leaf part should hold a report: by type, by file name,
/// or by content (compressed data, XML that starts like a report).
fn is_report_part(part: &MessagePart<'_>) -> bool {
    let (ty, sub) = content_type(part);
    let data = part.contents();
    match (ty.as_str(), sub.as_str()) {
        (
            "application",
            "gzip" | "x-gzip" | "zip" | "x-zip" | "x-zip-compressed" | "xml" | "json"
            | "tlsrpt+json" | "tlsrpt+gzip",
        )
        | ("text", "xml") => return true,
        _ => {}
    }
    let name = part.attachment_name().unwrap_or("").to_ascii_lowercase();
    if [".xml", ".gz", ".zip", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext))
    {
        return true;
    }
    match (ty.as_str(), sub.as_str()) {
        ("text", "plain") => starts_like_report_xml(data),
        ("text", _) => false,
        _ => {
            data.starts_with(GZIP_MAGIC)
                || data.starts_with(ZIP_MAGIC)
                || starts_like_report_xml(data)
        }
    }
}

fn part_label(i: usize, part: &MessagePart<'_>) -> String {
    let (ty, sub) = content_type(part);
    match part.attachment_name() {
        Some(name) => format!("MIME part {i} {name:?} ({ty}/{sub})"),
        None => format!("MIME part {i} ({ty}/{sub})"),
    }
}

// ---------------------------------------------------------------------------
// Text positions
// ---------------------------------------------------------------------------

/// 1-based line and column (in characters) of byte offset `pos`.
fn line_col(src: &[u8], pos: u64) -> (usize, usize) {
    let pos = usize::try_from(pos).unwrap_or(usize::MAX).min(src.len());
    let before = &src[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |n| n + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

/// Describes invalid UTF-8 at `e` in `data`; `xml` adds the element path.
fn utf8_error(data: &[u8], e: std::str::Utf8Error, xml: bool) -> String {
    let off = e.valid_up_to();
    let (line, col) = line_col(data, off as u64);
    let byte = data.get(off).copied().unwrap_or(0);
    let what = format!("invalid UTF-8 (byte 0x{byte:02X}) at line {line}, column {col}");
    let inside = if xml {
        std::str::from_utf8(&data[..off])
            .map(open_elements)
            .unwrap_or_default()
    } else {
        String::new()
    };
    if inside.is_empty() {
        what
    } else {
        format!("{inside}: {what}")
    }
}

/// The path of the elements still open at the end of `prefix`.
fn open_elements(prefix: &str) -> String {
    let mut r = Reader::from_str(prefix);
    r.config_mut().check_end_names = false;
    let mut stack: Vec<String> = Vec::new();
    let mut records = 0;
    while let Ok(ev) = r.read_event() {
        match ev {
            Event::Start(s) => {
                let name = s.local_name().into_inner().to_owned();
                if stack.len() == 1 && name == "record" {
                    records += 1;
                    stack.push(format!("record[{records}]"));
                } else {
                    stack.push(name);
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack.join("/")
}

// ---------------------------------------------------------------------------
// DMARC aggregate reports (XML)
// ---------------------------------------------------------------------------

/// The encoding named in the XML declaration, lower-cased.
fn declared_encoding(data: &[u8]) -> Option<String> {
    let t = skip_blank(data);
    if !t.starts_with(b"<?xml") {
        return None;
    }
    let decl = &t[..t.len().min(512)];
    let decl = &decl[..decl
        .windows(2)
        .position(|w| w == b"?>")
        .unwrap_or(decl.len())];
    let at = decl.windows(8).position(|w| w == b"encoding")?;
    let rest = skip_blank(&decl[at + 8..]);
    let rest = skip_blank(rest.strip_prefix(b"=")?);
    let quote = *rest.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let value = &rest[1..];
    let end = value.iter().position(|&b| b == quote)?;
    Some(String::from_utf8_lossy(&value[..end]).to_ascii_lowercase())
}

/// windows-1252 bytes 0x80..=0x9F; the rest is ISO-8859-1.
const CP1252_HIGH: [char; 32] = [
    '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}',
    '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
];

/// The XML as text: UTF-8 (strictly), or ISO-8859-1 / windows-1252 when
/// the declaration says so.
fn decode_xml(data: &[u8]) -> Res<Cow<'_, str>> {
    let data = strip_bom(data);
    match declared_encoding(data).as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii") => match std::str::from_utf8(data) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => Err(utf8_error(data, e, true)),
        },
        Some("iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1") => {
            Ok(Cow::Owned(data.iter().map(|&b| char::from(b)).collect()))
        }
        Some("windows-1252" | "cp1252") => Ok(Cow::Owned(
            data.iter()
                .map(|&b| match b {
                    0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
                    _ => char::from(b),
                })
                .collect(),
        )),
        Some(other) => Err(format!(
            "XML declaration: encoding {other:?} is not supported (UTF-8, ISO-8859-1 and windows-1252 are)"
        )),
    }
}

fn parse_aggregate(data: &[u8]) -> Res<AggregateReport> {
    let text = decode_xml(data)?;
    Xml::new(&text).document()
}

/// An element path, rendered only for errors.
#[derive(Clone, Copy)]
struct Path<'p> {
    parent: Option<&'p Path<'p>>,
    name: &'p str,
    /// 1-based position among siblings of that name; 0 when not shown.
    index: usize,
}

impl<'p> Path<'p> {
    const fn root(name: &'p str) -> Self {
        Path {
            parent: None,
            name,
            index: 0,
        }
    }

    fn child<'q>(&'q self, name: &'q str) -> Path<'q> {
        Path {
            parent: Some(self),
            name,
            index: 0,
        }
    }

    fn nth<'q>(&'q self, name: &'q str, index: usize) -> Path<'q> {
        Path {
            parent: Some(self),
            name,
            index,
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent
            && (!parent.name.is_empty() || parent.parent.is_some())
        {
            write!(f, "{parent}/")?;
        }
        f.write_str(self.name)?;
        if self.index > 0 {
            write!(f, "[{}]", self.index)?;
        }
        Ok(())
    }
}

/// A child element just opened.
struct Child<'n> {
    /// Local name (without namespace prefix).
    name: &'n str,
    /// `<name/>`: there is no content and no end tag to read.
    empty: bool,
    /// Byte offset of its start tag.
    pos: u64,
}

/// A leaf element's trimmed text and where it started.
struct Field {
    value: String,
    pos: u64,
}

type Slot = Option<Field>;

struct Meta {
    org_name: String,
    email: Option<String>,
    report_id: String,
    begin: i64,
    end: i64,
}

struct Row {
    source_ip: IpAddr,
    count: u64,
    evaluated: Evaluated,
}

struct Evaluated {
    disposition: String,
    dkim: bool,
    spf: bool,
}

struct Identifiers {
    header_from: String,
    envelope_from: Option<String>,
}

fn append<'a>(acc: &mut Cow<'a, str>, s: Cow<'a, str>) {
    if acc.is_empty() {
        *acc = s;
    } else {
        acc.to_mut().push_str(&s);
    }
}

/// A recursive-descent reader over quick-xml events. Recursion follows the
/// report schema (at most five levels); unknown elements are skipped
/// iteratively, so deep nesting cannot overflow the stack.
struct Xml<'a> {
    r: Reader<&'a [u8]>,
    src: &'a str,
}

impl<'a> Xml<'a> {
    fn new(src: &'a str) -> Self {
        let mut r = Reader::from_str(src);
        r.config_mut().check_end_names = true;
        Xml { r, src }
    }

    fn at(&self, pos: u64) -> String {
        let (line, col) = line_col(self.src.as_bytes(), pos);
        format!("line {line}, column {col}")
    }

    fn line(&self, pos: u64) -> usize {
        line_col(self.src.as_bytes(), pos).0
    }

    fn next(&mut self, path: &Path<'_>) -> Res<Event<'a>> {
        self.r.read_event().map_err(|e| {
            let at = self.at(self.r.error_position());
            if path.name.is_empty() {
                format!("XML syntax error at {at}: {e}")
            } else {
                format!("XML syntax error at {at} (in {path}): {e}")
            }
        })
    }

    fn unclosed(&self, path: &Path<'_>) -> String {
        format!("{path}: the file ends before the element is closed")
    }

    fn misplaced(&self, path: &Path<'_>, pos: u64) -> String {
        format!(
            "{path}: misplaced XML declaration or DOCTYPE at {}",
            self.at(pos)
        )
    }

    /// Calls `f` for each child element of the element at `path` (whose
    /// start tag was just read) up to its end tag. `f` must read the child
    /// to its end ([`Self::text`], [`Self::skip`] or a parser). Text between
    /// child elements is ignored.
    fn children<F>(&mut self, path: &Path<'_>, empty: bool, mut f: F) -> Res<()>
    where
        F: FnMut(&mut Self, Child<'_>) -> Res<()>,
    {
        if empty {
            return Ok(());
        }
        loop {
            let pos = self.r.buffer_position();
            match self.next(path)? {
                Event::Start(s) => f(
                    self,
                    Child {
                        name: s.local_name().into_inner(),
                        empty: false,
                        pos,
                    },
                )?,
                Event::Empty(s) => f(
                    self,
                    Child {
                        name: s.local_name().into_inner(),
                        empty: true,
                        pos,
                    },
                )?,
                Event::End(_) => return Ok(()),
                Event::Eof => return Err(self.unclosed(path)),
                Event::Decl(_) | Event::DocType(_) => return Err(self.misplaced(path, pos)),
                Event::Text(_)
                | Event::CData(_)
                | Event::GeneralRef(_)
                | Event::Comment(_)
                | Event::PI(_) => {}
            }
        }
    }

    /// Skips the element just opened, whatever it holds.
    fn skip(&mut self, path: &Path<'_>, empty: bool) -> Res<()> {
        if empty {
            return Ok(());
        }
        let mut depth = 0usize;
        loop {
            match self.next(path)? {
                Event::Start(_) => depth += 1,
                Event::End(_) => {
                    if depth == 0 {
                        return Ok(());
                    }
                    depth -= 1;
                }
                Event::Eof => return Err(self.unclosed(path)),
                _ => {}
            }
        }
    }

    fn entity(&self, path: &Path<'_>, r: &BytesRef<'_>, pos: u64) -> Res<char> {
        if r.is_char_ref() {
            return match r.resolve_char_ref() {
                Ok(Some(c)) => Ok(c),
                _ => Err(format!(
                    "{path}: invalid character reference &{}; at {}",
                    &**r,
                    self.at(pos)
                )),
            };
        }
        match &**r {
            "amp" => Ok('&'),
            "lt" => Ok('<'),
            "gt" => Ok('>'),
            "quot" => Ok('"'),
            "apos" => Ok('\''),
            other => Err(format!(
                "{path}: unknown entity &{other}; at {}",
                self.at(pos)
            )),
        }
    }

    /// The trimmed text of the leaf element just opened.
    fn text(&mut self, path: &Path<'_>, empty: bool) -> Res<String> {
        if empty {
            return Ok(String::new());
        }
        let mut acc: Cow<'a, str> = Cow::Borrowed("");
        loop {
            let pos = self.r.buffer_position();
            match self.next(path)? {
                Event::Text(t) => append(&mut acc, t.into_inner()),
                Event::CData(t) => append(&mut acc, t.into_inner()),
                Event::GeneralRef(r) => {
                    let c = self.entity(path, &r, pos)?;
                    acc.to_mut().push(c);
                }
                Event::End(_) => break,
                Event::Start(s) | Event::Empty(s) => {
                    return Err(format!(
                        "{path}: unexpected element <{}> at {} (only text is allowed here)",
                        s.name().into_inner(),
                        self.at(pos)
                    ));
                }
                Event::Eof => return Err(self.unclosed(path)),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Decl(_) | Event::DocType(_) => return Err(self.misplaced(path, pos)),
            }
        }
        Ok(acc.trim().to_owned())
    }

    /// Reads a leaf into `slot`, refusing a second one.
    fn leaf(&mut self, slot: &mut Slot, parent: &Path<'_>, c: &Child<'_>) -> Res<()> {
        let p = parent.child(c.name);
        let value = self.text(&p, c.empty)?;
        if slot.is_some() {
            return Err(self.twice(&p, c.pos));
        }
        *slot = Some(Field { value, pos: c.pos });
        Ok(())
    }

    fn twice(&self, path: &Path<'_>, pos: u64) -> String {
        format!(
            "{path}: appears more than once (again at line {})",
            self.line(pos)
        )
    }

    fn once<T>(&self, slot: &mut Option<T>, value: T, path: &Path<'_>, pos: u64) -> Res<()> {
        if slot.is_some() {
            return Err(self.twice(path, pos));
        }
        *slot = Some(value);
        Ok(())
    }

    fn req(&self, slot: Slot, parent: &Path<'_>, name: &str) -> Res<Field> {
        slot.ok_or_else(|| format!("{parent}/{name}: missing"))
    }

    /// A required leaf that must not be empty.
    fn non_empty(&self, slot: Slot, parent: &Path<'_>, name: &str) -> Res<String> {
        let f = self.req(slot, parent, name)?;
        if f.value.is_empty() {
            return Err(format!(
                "{parent}/{name}: empty (line {})",
                self.line(f.pos)
            ));
        }
        Ok(f.value)
    }

    fn bad(&self, parent: &Path<'_>, name: &str, f: &Field, what: &str) -> String {
        format!(
            "{parent}/{name}: {:?} {what} (line {})",
            f.value,
            self.line(f.pos)
        )
    }

    fn one_of(&self, f: Field, parent: &Path<'_>, name: &str, allowed: &[&str]) -> Res<String> {
        if allowed.contains(&f.value.as_str()) {
            Ok(f.value)
        } else {
            let what = format!("is not one of {}", allowed.join("|"));
            Err(self.bad(parent, name, &f, &what))
        }
    }

    /// An optional enumerated leaf; empty counts as absent.
    fn opt_one_of(
        &self,
        slot: Slot,
        parent: &Path<'_>,
        name: &str,
        allowed: &[&str],
    ) -> Res<Option<String>> {
        match slot {
            Some(f) if !f.value.is_empty() => self.one_of(f, parent, name, allowed).map(Some),
            _ => Ok(None),
        }
    }

    fn number<T: FromStr>(&self, f: &Field, parent: &Path<'_>, name: &str, what: &str) -> Res<T> {
        f.value
            .parse()
            .map_err(|_| self.bad(parent, name, f, &format!("is not {what}")))
    }

    // -- the document ------------------------------------------------------

    fn document(&mut self) -> Res<AggregateReport> {
        let doc = Path::root("");
        loop {
            let pos = self.r.buffer_position();
            let (start, empty) = match self.next(&doc)? {
                Event::Start(s) => (s, false),
                Event::Empty(s) => (s, true),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => continue,
                Event::Text(t) if t.bytes().all(is_blank) => continue,
                Event::Eof => return Err("no XML element in the file".into()),
                Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) | Event::End(_) => {
                    return Err(format!(
                        "unexpected content before the root element at {}",
                        self.at(pos)
                    ));
                }
            };
            return match start.local_name().into_inner() {
                "feedback" => {
                    let report = self.feedback(empty)?;
                    self.epilogue()?;
                    Ok(report)
                }
                "schema" if !empty => self.schema_wrapper(),
                _ => Err(format!(
                    "the root element is <{}>, not <feedback>: not a DMARC aggregate report",
                    start.name().into_inner()
                )),
            };
        }
    }

    /// After `</feedback>`: only comments, processing instructions and
    /// blanks.
    fn epilogue(&mut self) -> Res<()> {
        let doc = Path::root("");
        loop {
            let pos = self.r.buffer_position();
            match self.next(&doc)? {
                Event::Eof => return Ok(()),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) if t.bytes().all(is_blank) => {}
                _ => {
                    return Err(format!(
                        "unexpected content after </feedback> at {}",
                        self.at(pos)
                    ));
                }
            }
        }
    }

    /// Some reporters wrap the report in an `<xs:schema>` element they
    /// never close: find `<feedback>` inside and tolerate the missing end.
    fn schema_wrapper(&mut self) -> Res<AggregateReport> {
        let path = Path::root("schema");
        let mut report = None;
        loop {
            let pos = self.r.buffer_position();
            let (start, empty) = match self.next(&path)? {
                Event::Start(s) => (s, false),
                Event::Empty(s) => (s, true),
                Event::End(_) => {
                    self.epilogue()?;
                    break;
                }
                Event::Eof => break,
                _ => continue,
            };
            let name = start.local_name().into_inner();
            if name == "feedback" {
                let r = self.feedback(empty)?;
                self.once(&mut report, r, &Path::root("feedback"), pos)?;
            } else {
                self.skip(&path.child(name), empty)?;
            }
        }
        report.ok_or_else(|| {
            "the root element is <schema> and holds no <feedback>: not a DMARC aggregate report"
                .into()
        })
    }

    fn feedback(&mut self, empty: bool) -> Res<AggregateReport> {
        let path = Path::root("feedback");
        let mut meta = None;
        let mut policy = None;
        let mut records = Vec::new();
        self.children(&path, empty, |x, c| match c.name {
            "report_metadata" => {
                let p = path.child(c.name);
                let m = x.metadata(&p, c.empty)?;
                x.once(&mut meta, m, &p, c.pos)
            }
            "policy_published" => {
                let p = path.child(c.name);
                let m = x.policy(&p, c.empty)?;
                x.once(&mut policy, m, &p, c.pos)
            }
            "record" => {
                let p = path.nth(c.name, records.len() + 1);
                records.push(x.record(&p, c.empty)?);
                Ok(())
            }
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        let meta = meta.ok_or_else(|| format!("{path}/report_metadata: missing"))?;
        let policy = policy.ok_or_else(|| format!("{path}/policy_published: missing"))?;
        Ok(AggregateReport {
            org_name: meta.org_name,
            email: meta.email,
            report_id: meta.report_id,
            begin: meta.begin,
            end: meta.end,
            policy,
            records,
        })
    }

    fn metadata(&mut self, path: &Path<'_>, empty: bool) -> Res<Meta> {
        let (mut org, mut email, mut id) = (None, None, None);
        let mut range = None;
        self.children(path, empty, |x, c| match c.name {
            "org_name" => x.leaf(&mut org, path, &c),
            "email" => x.leaf(&mut email, path, &c),
            "report_id" => x.leaf(&mut id, path, &c),
            "date_range" => {
                let p = path.child(c.name);
                let r = x.date_range(&p, c.empty)?;
                x.once(&mut range, r, &p, c.pos)
            }
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        let org_name = self.req(org, path, "org_name")?.value;
        let report_id = self.non_empty(id, path, "report_id")?;
        let (begin, end) = range.ok_or_else(|| format!("{path}/date_range: missing"))?;
        Ok(Meta {
            org_name,
            email: email.map(|f| f.value).filter(|v| !v.is_empty()),
            report_id,
            begin,
            end,
        })
    }

    fn date_range(&mut self, path: &Path<'_>, empty: bool) -> Res<(i64, i64)> {
        let (mut begin, mut end) = (None, None);
        self.children(path, empty, |x, c| match c.name {
            "begin" => x.leaf(&mut begin, path, &c),
            "end" => x.leaf(&mut end, path, &c),
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        let what = "a time in unix seconds";
        let b = self.req(begin, path, "begin")?;
        let begin = self.number(&b, path, "begin", what)?;
        let e = self.req(end, path, "end")?;
        let end: i64 = self.number(&e, path, "end", what)?;
        if begin > end {
            return Err(format!(
                "{path}: begin ({begin}) is after end ({end}) (line {})",
                self.line(b.pos)
            ));
        }
        Ok((begin, end))
    }

    fn policy(&mut self, path: &Path<'_>, empty: bool) -> Res<PublishedPolicy> {
        let (mut domain, mut p, mut sp, mut pct) = (None, None, None, None);
        let (mut adkim, mut aspf) = (None, None);
        self.children(path, empty, |x, c| match c.name {
            "domain" => x.leaf(&mut domain, path, &c),
            "p" => x.leaf(&mut p, path, &c),
            "sp" => x.leaf(&mut sp, path, &c),
            "pct" => x.leaf(&mut pct, path, &c),
            "adkim" => x.leaf(&mut adkim, path, &c),
            "aspf" => x.leaf(&mut aspf, path, &c),
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        let domain = self.non_empty(domain, path, "domain")?;
        let p = self.req(p, path, "p")?;
        let p = self.one_of(p, path, "p", POLICIES)?;
        let pct = match pct {
            Some(f) if !f.value.is_empty() => {
                let n: u8 = self.number(&f, path, "pct", "a percentage (0-100)")?;
                if n > 100 {
                    return Err(self.bad(path, "pct", &f, "is not a percentage (0-100)"));
                }
                Some(n)
            }
            _ => None,
        };
        Ok(PublishedPolicy {
            domain,
            p,
            sp: self.opt_one_of(sp, path, "sp", POLICIES)?,
            pct,
            adkim: self.opt_one_of(adkim, path, "adkim", ALIGNMENTS)?,
            aspf: self.opt_one_of(aspf, path, "aspf", ALIGNMENTS)?,
        })
    }

    fn record(&mut self, path: &Path<'_>, empty: bool) -> Res<AggregateRecord> {
        let (mut row, mut ids, mut auth) = (None, None, None);
        self.children(path, empty, |x, c| {
            let p = path.child(c.name);
            match c.name {
                "row" => {
                    let r = x.row(&p, c.empty)?;
                    x.once(&mut row, r, &p, c.pos)
                }
                "identifiers" => {
                    let r = x.identifiers(&p, c.empty)?;
                    x.once(&mut ids, r, &p, c.pos)
                }
                "auth_results" => {
                    let r = x.auth_results(&p, c.empty)?;
                    x.once(&mut auth, r, &p, c.pos)
                }
                _ => x.skip(&p, c.empty),
            }
        })?;
        let row: Row = row.ok_or_else(|| format!("{path}/row: missing"))?;
        let ids: Identifiers = ids.ok_or_else(|| format!("{path}/identifiers: missing"))?;
        let (dkim, spf) = auth.unwrap_or_default();
        Ok(AggregateRecord {
            source_ip: row.source_ip,
            count: row.count,
            disposition: row.evaluated.disposition,
            dkim_aligned: row.evaluated.dkim,
            spf_aligned: row.evaluated.spf,
            header_from: ids.header_from,
            envelope_from: ids.envelope_from,
            dkim,
            spf,
        })
    }

    fn row(&mut self, path: &Path<'_>, empty: bool) -> Res<Row> {
        let (mut ip, mut count, mut evaluated) = (None, None, None);
        self.children(path, empty, |x, c| match c.name {
            "source_ip" => x.leaf(&mut ip, path, &c),
            "count" => x.leaf(&mut count, path, &c),
            "policy_evaluated" => {
                let p = path.child(c.name);
                let r = x.evaluated(&p, c.empty)?;
                x.once(&mut evaluated, r, &p, c.pos)
            }
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        let ip = self.req(ip, path, "source_ip")?;
        let source_ip = self.number(&ip, path, "source_ip", "an IP address")?;
        let count = self.req(count, path, "count")?;
        let count = self.number(&count, path, "count", "a message count")?;
        let evaluated = evaluated.ok_or_else(|| format!("{path}/policy_evaluated: missing"))?;
        Ok(Row {
            source_ip,
            count,
            evaluated,
        })
    }

    fn evaluated(&mut self, path: &Path<'_>, empty: bool) -> Res<Evaluated> {
        let (mut disposition, mut dkim, mut spf) = (None, None, None);
        self.children(path, empty, |x, c| match c.name {
            "disposition" => x.leaf(&mut disposition, path, &c),
            "dkim" => x.leaf(&mut dkim, path, &c),
            "spf" => x.leaf(&mut spf, path, &c),
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        let d = self.req(disposition, path, "disposition")?;
        let disposition = self.one_of(d, path, "disposition", DISPOSITIONS)?;
        let d = self.req(dkim, path, "dkim")?;
        let dkim = self.one_of(d, path, "dkim", DMARC_RESULTS)? == "pass";
        let s = self.req(spf, path, "spf")?;
        let spf = self.one_of(s, path, "spf", DMARC_RESULTS)? == "pass";
        Ok(Evaluated {
            disposition,
            dkim,
            spf,
        })
    }

    fn identifiers(&mut self, path: &Path<'_>, empty: bool) -> Res<Identifiers> {
        let (mut header_from, mut envelope_from) = (None, None);
        self.children(path, empty, |x, c| match c.name {
            "header_from" => x.leaf(&mut header_from, path, &c),
            "envelope_from" => x.leaf(&mut envelope_from, path, &c),
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        Ok(Identifiers {
            header_from: self.req(header_from, path, "header_from")?.value,
            envelope_from: envelope_from.map(|f| f.value).filter(|v| !v.is_empty()),
        })
    }

    fn auth_results(
        &mut self,
        path: &Path<'_>,
        empty: bool,
    ) -> Res<(Vec<AuthResult>, Vec<AuthResult>)> {
        let (mut dkim, mut spf) = (Vec::new(), Vec::new());
        self.children(path, empty, |x, c| match c.name {
            "dkim" => {
                let p = path.nth(c.name, dkim.len() + 1);
                dkim.push(x.auth(&p, c.empty, true)?);
                Ok(())
            }
            "spf" => {
                let p = path.nth(c.name, spf.len() + 1);
                spf.push(x.auth(&p, c.empty, false)?);
                Ok(())
            }
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        Ok((dkim, spf))
    }

    /// An `auth_results/dkim` (`is_dkim`) or `auth_results/spf` entry.
    fn auth(&mut self, path: &Path<'_>, empty: bool, is_dkim: bool) -> Res<AuthResult> {
        let (mut domain, mut result, mut extra) = (None, None, None);
        let extra_name = if is_dkim { "selector" } else { "scope" };
        self.children(path, empty, |x, c| match c.name {
            "domain" => x.leaf(&mut domain, path, &c),
            "result" => x.leaf(&mut result, path, &c),
            n if n == extra_name => x.leaf(&mut extra, path, &c),
            _ => x.skip(&path.child(c.name), c.empty),
        })?;
        let domain = self.req(domain, path, "domain")?.value;
        let r = self.req(result, path, "result")?;
        let allowed = if is_dkim { DKIM_RESULTS } else { SPF_RESULTS };
        let result = self.one_of(r, path, "result", allowed)?;
        let (selector, scope) = if is_dkim {
            (extra.map(|f| f.value).filter(|v| !v.is_empty()), None)
        } else {
            (None, self.opt_one_of(extra, path, "scope", SPF_SCOPES)?)
        };
        Ok(AuthResult {
            domain,
            selector,
            scope,
            result,
        })
    }
}

// ---------------------------------------------------------------------------
// TLS-RPT (JSON)
// ---------------------------------------------------------------------------

fn json_kind(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

/// JSON field access with the path (`at`, ending in `/` unless empty) in
/// errors. `null` counts as missing.
struct J<'v> {
    obj: &'v Map<String, Value>,
    at: String,
}

impl<'v> J<'v> {
    fn get(&self, key: &str) -> Option<&'v Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn req(&self, key: &str) -> Res<&'v Value> {
        self.get(key)
            .ok_or_else(|| format!("{}{key}: missing", self.at))
    }

    fn wrong(&self, key: &str, want: &str, v: &Value) -> String {
        format!("{}{key}: expected {want}, found {}", self.at, json_kind(v))
    }

    fn str(&self, key: &str) -> Res<&'v str> {
        let v = self.req(key)?;
        v.as_str().ok_or_else(|| self.wrong(key, "a string", v))
    }

    fn non_empty(&self, key: &str) -> Res<&'v str> {
        let s = self.str(key)?.trim();
        if s.is_empty() {
            return Err(format!("{}{key}: empty", self.at));
        }
        Ok(s)
    }

    fn opt_str(&self, key: &str) -> Res<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.trim().to_owned()).filter(|s| !s.is_empty()))
                .ok_or_else(|| self.wrong(key, "a string", v)),
        }
    }

    fn count(&self, key: &str) -> Res<u64> {
        let v = self.req(key)?;
        v.as_u64()
            .ok_or_else(|| self.wrong(key, "a non-negative integer", v))
    }

    fn obj(&self, key: &str) -> Res<J<'v>> {
        let v = self.req(key)?;
        let obj = v
            .as_object()
            .ok_or_else(|| self.wrong(key, "an object", v))?;
        Ok(J {
            obj,
            at: format!("{}{key}/", self.at),
        })
    }

    fn arr(&self, key: &str) -> Res<Option<&'v Vec<Value>>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_array()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a list", v)),
        }
    }

    fn time(&self, key: &str) -> Res<i64> {
        let s = self.str(key)?;
        rfc3339(s).ok_or_else(|| {
            format!(
                "{}{key}: {:?} is not an RFC 3339 date-time",
                self.at,
                s.chars().take(60).collect::<String>()
            )
        })
    }

    /// The `index`th element of list `key`, which must be an object.
    fn item(&self, key: &str, index: usize, v: &'v Value) -> Res<J<'v>> {
        let at = format!("{}{key}[{index}]", self.at);
        let obj = v
            .as_object()
            .ok_or_else(|| format!("{at}: expected an object, found {}", json_kind(v)))?;
        Ok(J {
            obj,
            at: format!("{at}/"),
        })
    }
}

fn parse_tlsrpt(data: &[u8]) -> Res<TlsReport> {
    let data = strip_bom(data);
    let text = std::str::from_utf8(data).map_err(|e| utf8_error(data, e, false))?;
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("the JSON top level is not an object: not a TLS-RPT report")?;
    let top = J {
        obj,
        at: String::new(),
    };
    let org_name = top.str("organization-name")?.trim().to_owned();
    let report_id = top.non_empty("report-id")?.to_owned();
    let range = top.obj("date-range")?;
    let begin = range.time("start-datetime")?;
    let end = range.time("end-datetime")?;
    if begin > end {
        return Err("date-range: start-datetime is after end-datetime".into());
    }
    let mut policies = Vec::new();
    let list = top
        .arr("policies")?
        .ok_or_else(|| "policies: missing".to_string())?;
    for (i, item) in list.iter().enumerate() {
        let entry = top.item("policies", i, item)?;
        let policy = entry.obj("policy")?;
        let policy_type = policy.str("policy-type")?.trim();
        if !TLS_POLICY_TYPES.contains(&policy_type) {
            return Err(format!(
                "{}policy-type: {policy_type:?} is not one of {}",
                policy.at,
                TLS_POLICY_TYPES.join("|")
            ));
        }
        let policy_domain = policy.non_empty("policy-domain")?.to_owned();
        let mx_hosts = match policy.get("mx-host") {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.trim().to_owned()],
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(j, h)| {
                    h.as_str().map(|s| s.trim().to_owned()).ok_or_else(|| {
                        format!(
                            "{}mx-host[{j}]: expected a string, found {}",
                            policy.at,
                            json_kind(h)
                        )
                    })
                })
                .collect::<Res<Vec<_>>>()?,
            Some(other) => return Err(policy.wrong("mx-host", "a string or a list", other)),
        };
        let summary = entry.obj("summary")?;
        let successful = summary.count("total-successful-session-count")?;
        let failed = summary.count("total-failure-session-count")?;
        let mut failures = Vec::new();
        for (j, d) in entry
            .arr("failure-details")?
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let d = entry.item("failure-details", j, d)?;
            failures.push(TlsFailure {
                result_type: d.non_empty("result-type")?.to_owned(),
                sending_mta_ip: d.opt_str("sending-mta-ip")?,
                receiving_mx_hostname: d.opt_str("receiving-mx-hostname")?,
                count: d.count("failed-session-count")?,
            });
        }
        policies.push(TlsPolicyResult {
            policy_type: policy_type.to_owned(),
            policy_domain,
            mx_hosts,
            successful,
            failed,
            failures,
        });
    }
    Ok(TlsReport {
        org_name,
        report_id,
        begin,
        end,
        policies,
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Unix seconds of an RFC 3339 `date-time` (`2016-04-01T23:59:59Z`,
/// fractions and `±hh:mm` offsets allowed; a leap second counts as the
/// next second).
fn rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, to: usize| -> Option<i64> {
        let digits = b.get(from..to)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')),
        )
    };
    let sep = |at: usize, ok: &[u8]| b.get(at).is_some_and(|c| ok.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i..)? {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1, i + 3)?, num(i + 4, i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use std::io::Write;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/dmarc");
    const LARGE: &str = "aggregate/!large-example.com!1711897200!1711983600.xml";
    const NICE: &str = "extract_report/nice-input.xml";

    fn read(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}/{rel}")).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn parse(rel: &str) -> Result<Vec<Parsed>, ReportError> {
        parse_bytes(rel, &read(rel))
    }

    fn one_dmarc(rel: &str) -> AggregateReport {
        match parse(rel).unwrap_or_else(|e| panic!("{e}")).as_slice() {
            [Parsed::Dmarc(r)] => r.clone(),
            other => panic!("{rel}: expected one aggregate report, got {other:?}"),
        }
    }

    fn one_tls(rel: &str) -> TlsReport {
        match parse(rel).unwrap_or_else(|e| panic!("{e}")).as_slice() {
            [Parsed::TlsRpt(r)] => r.clone(),
            other => panic!("{rel}: expected one TLS report, got {other:?}"),
        }
    }

    fn reason(rel: &str) -> String {
        match parse(rel) {
            Ok(v) => panic!("{rel}: parsed, expected an error: {v:?}"),
            Err(e) => {
                assert_eq!(e.file, rel);
                e.reason
            }
        }
    }

    fn str_reason(xml: &str) -> String {
        match parse_bytes("t.xml", xml.as_bytes()) {
            Ok(v) => panic!("parsed, expected an error: {v:?}"),
            Err(e) => e.reason,
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in members {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// A multipart e-mail with a text part and one attachment.
    fn eml(ctype: &str, encoding: &str, name: &str, body: &str) -> Vec<u8> {
        format!(
            "From: reporter@example.net\r\nTo: rua@example.gov.uk\r\n\
             Subject: Report domain: example.com Submitter: example.net\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report.\r\n\
             --b1\r\nContent-Type: {ctype}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: {encoding}\r\n\r\n{body}\r\n--b1--\r\n"
        )
        .into_bytes()
    }

    fn b64(data: &[u8]) -> String {
        let s = STANDARD.encode(data);
        s.as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn minimal(metadata: &str, policy: &str, record: &str) -> String {
        format!(
            "<?xml version=\"1.0\"?><feedback><report_metadata>{metadata}</report_metadata>\
             <policy_published>{policy}</policy_published><record>{record}</record></feedback>"
        )
    }

    const META: &str = "<org_name>Org</org_name><email>r@example.net</email>\
        <report_id>42</report_id><date_range><begin>100</begin><end>200</end></date_range>";
    const POLICY: &str = "<domain>example.com</domain><p>reject</p>";
    const RECORD: &str = "<row><source_ip>192.0.2.1</source_ip><count>3</count>\
        <policy_evaluated><disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>\
        </policy_evaluated></row><identifiers><header_from>example.com</header_from>\
        </identifiers><auth_results><spf><domain>example.com</domain><result>pass</result>\
        </spf></auth_results>";

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
            "aggregate/invalid_utf_8.xml",
            "feedback/record[1]/identifiers/header_from: invalid UTF-8 (byte 0x91) at line 31, column 25",
        ),
        (
            "aggregate/invalid_xml.xml",
            "feedback/report_metadata/email: unexpected element <bad-xml@bad-xml.net> at line 5, column 10",
        ),
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

    #[test]
    fn large_report_fields() {
        let r = one_dmarc(LARGE);
        assert_eq!(r.org_name, "");
        assert_eq!(
            r.email.as_deref(),
            Some("administrator@accurateplastics.com")
        );
        assert_eq!((r.begin, r.end), (1_711_897_200, 1_711_983_600));
        assert_eq!(
            r.policy,
            PublishedPolicy {
                domain: "example.com".into(),
                p: "none".into(),
                sp: Some("reject".into()),
                pct: Some(100),
                adkim: Some("r".into()),
                aspf: Some("r".into()),
            }
        );
        assert_eq!(r.records.iter().map(|x| x.count).sum::<u64>(), 2286);
        assert_eq!(r.records[0].source_ip.to_string(), "12.20.121.1");
        assert_eq!(r.records[2285].source_ip.to_string(), "12.20.129.254");
        assert!(r.records.iter().all(|x| {
            x.disposition == "none"
                && !x.dkim_aligned
                && !x.spf_aligned
                && x.dkim.is_empty()
                && x.spf.len() == 1
                && x.spf[0].domain.is_empty()
                && x.spf[0].result == "none"
        }));
    }

    #[test]
    fn record_fields() {
        let r = one_dmarc("aggregate/empty_reason.xml");
        assert_eq!(r.org_name, "example.org");
        assert_eq!(
            r.records,
            vec![AggregateRecord {
                source_ip: "198.51.100.123".parse().unwrap(),
                count: 2,
                disposition: "none".into(),
                dkim_aligned: true,
                spf_aligned: false,
                header_from: "example.com".into(),
                envelope_from: Some("example.edu".into()),
                dkim: vec![AuthResult {
                    domain: "example.com".into(),
                    selector: Some("example".into()),
                    scope: None,
                    result: "pass".into(),
                }],
                spf: vec![AuthResult {
                    domain: "example.edu".into(),
                    selector: None,
                    scope: Some("mfrom".into()),
                    result: "pass".into(),
                }],
            }]
        );
        // Trimmed values; the DMARCbis "pass" disposition.
        let r = one_dmarc("aggregate/rfc9990-sample.xml");
        assert_eq!(r.records[0].disposition, "pass");
        assert_eq!(r.records[0].count, 123);
        assert_eq!(r.policy.pct, None);
        assert_eq!(r.records[0].dkim[0].selector.as_deref(), Some("abc123"));
        // A schema-wrapped report.
        let r = one_dmarc("aggregate/ikea.com!example.de!1538690400!1538776800.xml");
        assert_eq!(r.org_name, "ikea.com");
        assert_eq!(r.records[0].source_ip.to_string(), "234.234.234.234");
        assert_eq!(r.records[0].spf[0].scope.as_deref(), Some("helo"));
        assert_eq!(r.records[0].envelope_from.as_deref(), Some("example.de"));
        // Empty envelope_from is absent.
        let r = one_dmarc("aggregate/usssa.com!example.com!1538784000!1538870399.xml");
        assert!(r.records.iter().all(|x| x.envelope_from.is_none()));
        // Inside a zip inside an e-mail.
        let r = one_dmarc(
            "aggregate/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml",
        );
        assert_eq!(r.org_name, "google.com");
        assert_eq!(r.records[0].disposition, "reject");
        assert_eq!(r.records[0].source_ip.to_string(), "92.53.116.102");
        let r = one_dmarc("aggregate/twilight.eml");
        assert_eq!(r.policy.adkim.as_deref(), Some("s"));
        assert_eq!(r.records[0].dkim[0].selector.as_deref(), Some("201810"));
        let r = one_dmarc(NICE);
        assert_eq!(r.records.iter().map(|x| x.count).sum::<u64>(), 3047);
        assert_eq!(r.records[1].dkim.len(), 2);
    }

    #[test]
    fn containers_give_the_same_result() {
        let plain = parse(NICE).unwrap();
        assert_eq!(parse("extract_report/nice-input.xml.gz").unwrap(), plain);
        assert_eq!(parse("extract_report/nice-input.xml.zip").unwrap(), plain);
        let xml = read(NICE);
        let gz = read("extract_report/nice-input.xml.gz");
        let zip = read("extract_report/nice-input.xml.zip");
        let cases = [
            eml("application/gzip", "base64", "r.xml.gz", &b64(&gz)),
            eml("application/zip", "base64", "r.zip", &b64(&zip)),
            eml("application/octet-stream", "base64", "r.zip", &b64(&zip)),
            eml("text/xml", "base64", "r.xml", &b64(&xml)),
            eml(
                "text/xml",
                "quoted-printable",
                "r.xml",
                std::str::from_utf8(&xml).unwrap(),
            ),
            eml(
                "application/xml",
                "7bit",
                "r.xml",
                std::str::from_utf8(&xml).unwrap(),
            ),
        ];
        for (i, m) in cases.iter().enumerate() {
            assert_eq!(parse_bytes("m.eml", m).unwrap(), plain, "case {i}");
        }
        // A gzip of the zip, a zip of the gzip, and a forwarded e-mail.
        assert_eq!(parse_bytes("x", &gzip(&zip)).unwrap(), plain);
        assert_eq!(parse_bytes("x", &zip_of(&[("a.gz", &gz)])).unwrap(), plain);
        let inner = String::from_utf8(cases[0].clone()).unwrap();
        let fwd = format!(
            "From: someone@example.gov.uk\r\nSubject: Fwd: report\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n\
             Content-Type: text/plain\r\n\r\nSee attached.\r\n--outer\r\n\
             Content-Type: message/rfc822\r\n\r\n{inner}\r\n--outer--\r\n"
        );
        assert_eq!(parse_bytes("fwd.eml", fwd.as_bytes()).unwrap(), plain);
        // A single-part message whose body is the report, and an mbox line.
        let single = format!(
            "From nobody Mon Jan  1 00:00:00 2024\nFrom: r@example.net\nMIME-Version: 1.0\n\
             Content-Type: application/gzip\nContent-Transfer-Encoding: base64\n\n{}\n",
            b64(&gz)
        );
        assert_eq!(parse_bytes("s.eml", single.as_bytes()).unwrap(), plain);
        // Several reports in one zip, each returned.
        let two = zip_of(&[("a.xml", &xml), ("b.xml.gz", &gz)]);
        let got = parse_bytes("two.zip", &two).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0], plain[0]);
        assert_eq!(got[1], plain[0]);
        // The changed copy differs only in org_name.
        let mut changed = one_dmarc("extract_report/changed-input.xml");
        assert_eq!(changed.org_name, "fred.com");
        changed.org_name = "google.com".into();
        assert_eq!(vec![Parsed::Dmarc(changed)], plain);
    }

    #[test]
    fn tlsrpt_fields() {
        let r = one_tls("smtp_tls/rfc8460.json");
        assert_eq!(r.org_name, "Company-X");
        assert_eq!(r.begin, 1_459_468_800); // 2016-04-01T00:00:00Z
        assert_eq!(r.end, 1_459_555_199); // 2016-04-01T23:59:59Z
        let p = &r.policies[0];
        assert_eq!(p.policy_type, "sts");
        assert_eq!(p.policy_domain, "company-y.example");
        assert_eq!(p.mx_hosts, vec!["*.mail.company-y.example".to_string()]);
        assert_eq!((p.successful, p.failed), (5326, 303));
        assert_eq!(
            p.failures[0],
            TlsFailure {
                result_type: "certificate-expired".into(),
                sending_mta_ip: Some("2001:db8:abcd:0012::1".into()),
                receiving_mx_hostname: Some("mx1.mail.company-y.example".into()),
                count: 100,
            }
        );
        assert_eq!(p.failures.iter().map(|f| f.count).sum::<u64>(), 303);
        let r = one_tls("smtp_tls/google.com_smtp_tls_report.eml");
        assert_eq!(r.org_name, "Google Inc.");
        assert_eq!((r.begin, r.end), (1_725_321_600, 1_725_407_999));
        let p = &r.policies[0];
        assert_eq!(p.policy_type, "no-policy-found");
        assert_eq!(p.policy_domain, "cardinalhealth.ca");
        assert_eq!((p.successful, p.failed), (48, 0));
        assert!(p.failures.is_empty() && p.mx_hosts.is_empty());
        let r = one_tls("smtp_tls/mail.ru.json");
        assert_eq!(
            r.policies[0].failures[1].result_type,
            "sts-policy-fetch-error"
        );
        assert_eq!(r.policies[0].failures[1].sending_mta_ip, None);
        // mx-host as a list.
        let json = br#"{"organization-name":"o","report-id":"r",
            "date-range":{"start-datetime":"2024-01-01T00:00:00+01:00","end-datetime":"2024-01-01T23:59:59.5Z"},
            "policies":[{"policy":{"policy-type":"tlsa","policy-domain":"d","mx-host":["a","b"]},
            "summary":{"total-successful-session-count":1,"total-failure-session-count":0}}]}"#;
        match parse_bytes("j", json).unwrap().as_slice() {
            [Parsed::TlsRpt(r)] => {
                assert_eq!(r.policies[0].mx_hosts, vec!["a", "b"]);
                assert_eq!(r.begin, 1_704_067_200 - 3600);
                assert_eq!(r.end, 1_704_153_599);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tlsrpt_errors_name_the_field() {
        let base: Value = serde_json::from_slice(&read("smtp_tls/rfc8460.json")).unwrap();
        let cases: &[(&str, Value, &str)] = &[
            ("/report-id", Value::Null, "report-id: missing"),
            ("/report-id", "".into(), "report-id: empty"),
            (
                "/date-range/start-datetime",
                "2016-04-01".into(),
                "date-range/start-datetime: \"2016-04-01\" is not an RFC 3339 date-time",
            ),
            (
                "/date-range/end-datetime",
                "2015-04-01T00:00:00Z".into(),
                "date-range: start-datetime is after end-datetime",
            ),
            (
                "/policies/0/summary/total-failure-session-count",
                (-1).into(),
                "policies[0]/summary/total-failure-session-count: expected a non-negative integer, found -1",
            ),
            (
                "/policies/0/policy/policy-type",
                "STS".into(),
                "policies[0]/policy/policy-type: \"STS\" is not one of sts|tlsa|no-policy-found",
            ),
            (
                "/policies/0/policy/mx-host",
                5.into(),
                "policies[0]/policy/mx-host: expected a string or a list, found 5",
            ),
            (
                "/policies/0/failure-details/2/failed-session-count",
                "3".into(),
                "policies[0]/failure-details[2]/failed-session-count: expected a non-negative integer, found \"3\"",
            ),
            ("/policies", Value::Null, "policies: missing"),
        ];
        for (pointer, value, want) in cases {
            let mut v = base.clone();
            *v.pointer_mut(pointer).unwrap() = value.clone();
            let data = serde_json::to_vec(&v).unwrap();
            let e = parse_bytes("t.json", &data).unwrap_err();
            assert_eq!(&e.reason, want, "{pointer}");
        }
        let e = parse_bytes("t.json", b"{\"a\": [1, 2,}").unwrap_err();
        assert!(
            e.reason.starts_with("invalid JSON: ") && e.reason.contains("line 1"),
            "{e}"
        );
        let e = parse_bytes("t.json", b"{\"organization-name\": \"\x91\"}").unwrap_err();
        assert!(
            e.reason
                .starts_with("invalid UTF-8 (byte 0x91) at line 1, column 24"),
            "{e}"
        );
    }

    #[test]
    fn xml_errors_name_the_element() {
        let cases: &[(String, &str)] = &[
            (
                minimal(
                    &META.replace("<report_id>42</report_id>", ""),
                    POLICY,
                    RECORD,
                ),
                "feedback/report_metadata/report_id: missing",
            ),
            (
                minimal(&META.replace(">42<", "> <"), POLICY, RECORD),
                "feedback/report_metadata/report_id: empty (line 1)",
            ),
            (
                minimal(META, "<p>none</p>", RECORD),
                "feedback/policy_published/domain: missing",
            ),
            (
                minimal(META, "<domain>example.com</domain>", RECORD),
                "feedback/policy_published/p: missing",
            ),
            (
                minimal(META, &format!("{POLICY}<pct>101</pct>"), RECORD),
                "feedback/policy_published/pct: \"101\" is not a percentage (0-100) (line 1)",
            ),
            (
                minimal(META, &format!("{POLICY}<adkim>relaxed</adkim>"), RECORD),
                "feedback/policy_published/adkim: \"relaxed\" is not one of r|s (line 1)",
            ),
            (
                minimal(&format!("{META}<report_id>43</report_id>"), POLICY, RECORD),
                "feedback/report_metadata/report_id: appears more than once (again at line 1)",
            ),
            (
                minimal(&META.replace("<begin>100", "<begin>300"), POLICY, RECORD),
                "feedback/report_metadata/date_range: begin (300) is after end (200) (line 1)",
            ),
            (
                minimal(&META.replace("<end>200", "<end>2x"), POLICY, RECORD),
                "feedback/report_metadata/date_range/end: \"2x\" is not a time in unix seconds (line 1)",
            ),
            (
                minimal(META, POLICY, &RECORD.replace("192.0.2.1", "192.0.2.300")),
                "feedback/record[1]/row/source_ip: \"192.0.2.300\" is not an IP address (line 1)",
            ),
            (
                minimal(META, POLICY, &RECORD.replace(">3<", ">-3<")),
                "feedback/record[1]/row/count: \"-3\" is not a message count (line 1)",
            ),
            (
                minimal(META, POLICY, &RECORD.replace("<dkim>pass</dkim>", "")),
                "feedback/record[1]/row/policy_evaluated/dkim: missing",
            ),
            (
                minimal(
                    META,
                    POLICY,
                    &RECORD.replace("<spf>fail</spf>", "<spf>Fail</spf>"),
                ),
                "feedback/record[1]/row/policy_evaluated/spf: \"Fail\" is not one of pass|fail (line 1)",
            ),
            (
                minimal(
                    META,
                    POLICY,
                    &RECORD.replace("<result>pass", "<result>hardfail"),
                ),
                "feedback/record[1]/auth_results/spf[1]/result: \"hardfail\" is not one of none|neutral|pass|fail|softfail|temperror|permerror (line 1)",
            ),
            (
                minimal(
                    META,
                    POLICY,
                    &RECORD.replace("<header_from>example.com</header_from>", ""),
                ),
                "feedback/record[1]/identifiers/header_from: missing",
            ),
            (
                minimal(META, POLICY, &RECORD.replace("Org", ""))
                    .replace("<org_name>Org</org_name>", ""),
                "feedback/report_metadata/org_name: missing",
            ),
            (
                minimal(META, POLICY, RECORD).replace("</feedback>", ""),
                "feedback: the file ends before the element is closed",
            ),
            (
                minimal(META, POLICY, RECORD).replace("</feedback>", "</feedback><feedback/>"),
                "unexpected content after </feedback> at line 1, column",
            ),
            (
                minimal(META, POLICY, RECORD).replace("Org", "A &nbsp; B"),
                "feedback/report_metadata/org_name: unknown entity &nbsp; at line 1, column",
            ),
            (
                minimal(META, POLICY, RECORD).replace("</count>", "</cnt>"),
                "XML syntax error at line 1, column",
            ),
            (
                "<?xml version=\"1.0\"?>\n<html><body/></html>".into(),
                "the root element is <html>, not <feedback>: not a DMARC aggregate report",
            ),
            (
                "<?xml version=\"1.0\"?>\n<!-- nothing -->\n".into(),
                "no XML element in the file",
            ),
            (
                minimal(META, POLICY, RECORD).replace(
                    "<?xml version=\"1.0\"?>",
                    "<?xml version=\"1.0\" encoding=\"EBCDIC\"?>",
                ),
                "XML declaration: encoding \"ebcdic\" is not supported",
            ),
        ];
        // Sanity: the base document parses.
        let base = minimal(META, POLICY, RECORD);
        assert!(parse_bytes("t.xml", base.as_bytes()).is_ok(), "{base}");
        for (xml, want) in cases {
            let got = str_reason(xml);
            assert!(got.starts_with(want), "want {want}\n got {got}\n for {xml}");
        }
        // Later records are numbered.
        let two = minimal(
            META,
            POLICY,
            &format!("{RECORD}</record><record>{}", RECORD.replace(">3<", ">x<")),
        );
        assert!(str_reason(&two).starts_with("feedback/record[2]/row/count: \"x\""));
        // Syntax errors give the line.
        let got = reason("aggregate/invalid_xml.xml");
        assert!(got.contains("line 5"), "{got}");
    }

    #[test]
    fn xml_tolerance() {
        // Entities, character references, CDATA, comments, namespaces, a
        // BOM and blanks before the declaration, empty-element tags, and
        // unknown elements (DMARCbis, extensions) anywhere.
        let xml = format!(
            "\u{FEFF}\n  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE feedback>\n\
             <d:feedback xmlns:d=\"urn:ietf:params:xml:ns:dmarc-2.0\"><d:version>2.0</d:version>\
             <d:report_metadata><d:org_name>A &amp; B &#x41;&#66;</d:org_name>\
             <d:email/><d:report_id><![CDATA[<id>]]></d:report_id><!-- c -->\
             <d:date_range><d:begin> 100 </d:begin><d:end>200</d:end></d:date_range>\
             <d:generator>x</d:generator></d:report_metadata>\
             <d:policy_published>{POLICY}<d:sp/><d:np>reject</d:np><d:testing>n</d:testing>\
             </d:policy_published><d:extension><deep><deeper/></deep></d:extension>\
             <d:record>{RECORD}<x:extra xmlns:x=\"urn:x\">1</x:extra></d:record></d:feedback>\n<!-- end -->\n"
        );
        let r = match parse_bytes("t.xml", xml.as_bytes()).unwrap().as_slice() {
            [Parsed::Dmarc(r)] => r.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(r.org_name, "A & B AB");
        assert_eq!(r.report_id, "<id>");
        assert_eq!(r.email, None);
        assert_eq!((r.begin, r.end), (100, 200));
        assert_eq!(r.policy.sp, None);
        assert_eq!(r.records[0].count, 3);
        // An empty <feedback/> is an error, not a panic.
        assert_eq!(
            str_reason("<feedback/>"),
            "feedback/report_metadata: missing"
        );
        // Declared ISO-8859-1 and windows-1252 are decoded.
        let latin = minimal(META, POLICY, RECORD)
            .replace(
                "<?xml version=\"1.0\"?>",
                "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>",
            )
            .replace("Org", "Org\u{1}");
        let mut bytes = latin.into_bytes();
        let at = bytes.iter().position(|&b| b == 1).unwrap();
        bytes[at] = 0xE9; // é
        match parse_bytes("l.xml", &bytes).unwrap().as_slice() {
            [Parsed::Dmarc(r)] => assert_eq!(r.org_name, "Orgé"),
            other => panic!("{other:?}"),
        }
        let mut cp = String::from_utf8_lossy(&bytes)
            .replace("ISO-8859-1", "windows-1252")
            .into_bytes();
        let at = cp
            .windows(3)
            .position(|w| w == "\u{FFFD}".as_bytes())
            .unwrap();
        cp.splice(at..at + 3, [0x93]);
        match parse_bytes("w.xml", &cp).unwrap().as_slice() {
            [Parsed::Dmarc(r)] => assert_eq!(r.org_name, "Org“"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn input_kinds() {
        assert_eq!(parse_bytes("e", b"").unwrap_err().reason, "empty file");
        assert_eq!(
            parse_bytes("e", b" \r\n\t").unwrap_err().reason,
            "empty file"
        );
        assert!(
            parse_bytes("u", b"\xFF\xFE<\0f\0")
                .unwrap_err()
                .reason
                .starts_with("UTF-16")
        );
        assert!(
            parse_bytes("b", b"\x00\x01binary")
                .unwrap_err()
                .reason
                .starts_with("not a gzip, zip, MIME, XML or JSON report")
        );
        assert_eq!(
            parse_bytes("g", &gzip(b"")).unwrap_err().reason,
            "gzip: empty after decompression"
        );
        let e = parse_bytes("g", &read("extract_report/nice-input.xml.gz")[..300]).unwrap_err();
        assert!(e.reason.starts_with("gzip: "), "{e}");
        let e = parse_bytes("z", &read("extract_report/nice-input.xml.zip")[..300]).unwrap_err();
        assert!(e.reason.starts_with("zip"), "{e}");
        assert_eq!(
            parse_bytes("z", &zip_of(&[])).unwrap_err().reason,
            "zip: the archive holds no files"
        );
        let e =
            parse_bytes("z", &zip_of(&[("a.xml", &read(NICE)), ("b.txt", b"hello")])).unwrap_err();
        assert!(
            e.reason
                .starts_with("zip member \"b.txt\": not a gzip, zip"),
            "{e}"
        );
        // Multi-member gzip: the members are concatenated.
        let xml = read(NICE);
        let (a, b) = xml.split_at(5000);
        let mut two = gzip(a);
        two.extend(gzip(b));
        two.extend(b"\r\n\0");
        assert_eq!(parse_bytes("g", &two).unwrap(), parse(NICE).unwrap());
        let mut junk = gzip(&xml);
        junk.extend(b"junk");
        assert_eq!(
            parse_bytes("g", &junk).unwrap_err().reason,
            "gzip: 4 bytes of unexpected data after the compressed stream"
        );
        // Nesting is bounded.
        let mut nested = xml.clone();
        for _ in 0..=MAX_NESTING {
            nested = gzip(&nested);
        }
        assert!(
            parse_bytes("n", &nested)
                .unwrap_err()
                .reason
                .contains("nested more than")
        );
    }

    #[test]
    fn mime_messages() {
        // No report at all.
        let plain = b"From: a@example.net\r\nSubject: hello\r\n\r\nJust text.\r\n";
        assert_eq!(
            parse_bytes("m.eml", plain).unwrap_err().reason,
            "no DMARC aggregate or TLS-RPT report found in the message"
        );
        // A broken attachment is named.
        let m = eml(
            "application/gzip",
            "base64",
            "r.xml.gz",
            &b64(b"\x1f\x8bnot gzip"),
        );
        let e = parse_bytes("m.eml", &m).unwrap_err();
        assert!(
            e.reason
                .starts_with("MIME part 2 \"r.xml.gz\" (application/gzip): gzip: "),
            "{e}"
        );
        // A report whose content is wrong is named with its path.
        let bad = minimal(META, "<p>none</p>", RECORD);
        let m = eml(
            "application/gzip",
            "base64",
            "r.xml.gz",
            &b64(&gzip(bad.as_bytes())),
        );
        let e = parse_bytes("m.eml", &m).unwrap_err();
        assert_eq!(
            e.reason,
            "MIME part 2 \"r.xml.gz\" (application/gzip): feedback/policy_published/domain: missing"
        );
        // An HTML body is not mistaken for a report.
        let html = b"From: a@example.net\r\nContent-Type: text/html\r\n\r\n<?xml version=\"1.0\"?><html/>\r\n";
        assert!(
            parse_bytes("h.eml", html)
                .unwrap_err()
                .reason
                .starts_with("no DMARC")
        );
        // TLS-RPT's media type.
        let json = read("smtp_tls/smtp_tls.json");
        let m = eml(
            "application/tlsrpt+gzip",
            "base64",
            "r.json.gz",
            &b64(&gzip(&json)),
        );
        assert_eq!(
            parse_bytes("t.eml", &m).unwrap(),
            parse("smtp_tls/smtp_tls.json").unwrap()
        );
    }

    #[test]
    fn mime_parser_panics_become_errors() {
        // Found by fuzzing: trips a debug_assert! inside mail-parser 0.11
        // in debug builds (release builds give "no report found").
        let data = b"suived-SPF: Pass (smtp.caom\n\
            Content-type: multipart/mixed;\n\
            \tboundary=\"B_3622128044_155770608\"\n\
            \n\
            > This message 08--\n\
            \n\
            R5LRraW0=\n\
            --B_3622128044_155770608\n\
            Content-type: message/rfc822\n\
            Content-dispo622128044_155770608--\n\
            \n\
            eived: by 08\n\
            Content-type: message/rfc822\n\
            Conon: attachment\n\
            \n\
            Rece: sion: 1.0\n\
            \n\
            \n\
            --B_3622128044_155770608--\n\
            \n";
        let e = parse_bytes("f.eml", data).unwrap_err();
        assert!(
            e.reason.starts_with("not a readable MIME message")
                || e.reason.starts_with("no DMARC aggregate"),
            "{e}"
        );
    }

    #[test]
    fn zip_bomb_is_refused_at_the_real_limit() {
        // 64 MiB + 1 of zeros: about 64 KiB compressed.
        let zeros = vec![0u8; usize::try_from(MAX_DECOMPRESSED).unwrap() + 1];
        let bomb = gzip(&zeros);
        drop(zeros);
        assert!(bomb.len() < 1024 * 1024);
        let e = parse_bytes("bomb.xml.gz", &bomb).unwrap_err();
        assert_eq!(
            e.reason,
            "decompresses to more than 64 MiB (the per-file limit): refused as a possible zip bomb"
        );
    }

    #[test]
    fn zip_bomb_is_refused_with_a_lowered_limit() {
        const MIB: u64 = 1024 * 1024;
        // A valid report padded with 3 MiB of trailing blanks (still valid XML).
        let mut padded = read(NICE);
        padded.resize(padded.len() + 3 * 1024 * 1024, b'\n');
        let z = zip_of(&[("r.xml", &padded)]);
        assert_eq!(
            parse_limited("z", &z, 4 * MIB).unwrap(),
            parse(NICE).unwrap()
        );
        let e = parse_limited("z", &z, MIB).unwrap_err();
        assert_eq!(
            e.reason,
            "zip member \"r.xml\": decompresses to more than 1 MiB (the per-file limit): refused as a possible zip bomb"
        );
        let e = parse_limited("g", &gzip(&padded), MIB).unwrap_err();
        assert!(
            e.reason.starts_with("decompresses to more than 1 MiB"),
            "{e}"
        );
        // The total for one call: five members of 0.9 MiB under a 1 MiB limit.
        let mut part = read(NICE);
        part.resize(900 * 1024, b' ');
        let members: Vec<(String, &[u8])> = (0..5)
            .map(|i| (format!("{i}.xml"), part.as_slice()))
            .collect();
        let members: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let e = parse_limited("z", &zip_of(&members), MIB).unwrap_err();
        assert_eq!(
            e.reason,
            "zip member \"4.xml\": decompresses to more than 4 MiB in all: refused as a possible zip bomb"
        );
        assert_eq!(
            parse_limited("z", &zip_of(&members[..4]), MIB)
                .unwrap()
                .len(),
            4
        );
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2016-04-01T23:59:59Z"), Some(1_459_555_199));
        assert_eq!(rfc3339("2024-02-29T12:00:00.123456z"), Some(1_709_208_000));
        assert_eq!(rfc3339("2024-01-01 01:00:00+01:00"), Some(1_704_067_200));
        assert_eq!(rfc3339("2023-12-31T19:00:00-05:00"), Some(1_704_067_200));
        assert_eq!(rfc3339("1969-12-31T23:59:59Z"), Some(-1));
        for bad in [
            "",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+24:00",
            "2024-1-01T00:00:00Z",
            "+024-01-01T00:00:00Z",
            "2024-01-01T00:00:00ZZ",
            "2024-01-01T00:00:00Z\u{e9}",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
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
