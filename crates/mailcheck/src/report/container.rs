//! Unwrapping what a reporter sends. The container is told by content
//! (gzip, zip, a MIME e-mail, bare XML or JSON), containers nested inside
//! one another are opened up to [`MAX_NESTING`] deep, and every
//! decompression is held to the per-file and per-call limits. The parsers
//! then see one report's bytes and know nothing of how it travelled.

use std::io::{Cursor, Read};

use flate2::bufread::GzDecoder;
use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::aggregate::parse_aggregate;
use super::text::{skip_blank, strip_bom};
use super::tlsrpt::parse_tlsrpt;
use super::{Parsed, ReportError, Res};

/// How many containers may nest (an e-mail holding a zip holding a gzip...).
const MAX_NESTING: u32 = 4;
/// One call decompresses at most this many times
/// [`MAX_DECOMPRESSED`](super::MAX_DECOMPRESSED) in all.
const TOTAL_FACTOR: u64 = 4;
/// Most members a zip archive may have.
const MAX_ZIP_MEMBERS: usize = 1000;
/// The reason given for DMARC failure reports.
pub(super) const FAILURE_REPORT: &str =
    "a DMARC failure (forensic) report, not an aggregate report: not imported";

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const ZIP_EMPTY_MAGIC: &[u8] = b"PK\x05\x06";

/// [`parse_bytes`](super::parse_bytes) with the per-file decompression
/// limit as a parameter, so that tests can lower it.
pub(super) fn parse_limited(
    file: &str,
    data: &[u8],
    limit: u64,
) -> Result<Vec<Parsed>, ReportError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;
    use crate::report::{MAX_DECOMPRESSED, parse_bytes};

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
}
