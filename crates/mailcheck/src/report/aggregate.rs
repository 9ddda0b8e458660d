//! The DMARC aggregate report parser (XML): the report's types, the
//! values the schema enumerates, and a strict recursive-descent reader
//! whose errors name the element at fault. It reads one document; the
//! containers it came in are `container`'s business.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};

use super::Res;
use super::text::{is_blank, line_col, open_elements, skip_blank, strip_bom, utf8_error};

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
    /// What was recovered to read the report (invalid UTF-8 read as
    /// windows-1252, unescaped markup read as text), each with the element,
    /// line and column; the importer logs them with the file's name.
    pub warnings: Vec<String>,
}

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

/// Most invalid UTF-8 bytes one report may have before it is refused as
/// not text at all (a binary file, a wrong encoding throughout).
const MAX_INVALID_UTF8: usize = 64;

/// One windows-1252 byte as a character.
fn cp1252(b: u8) -> char {
    match b {
        0x80..=0x9F => CP1252_HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

/// The XML as text: UTF-8, or ISO-8859-1 / windows-1252 when the
/// declaration says so. Invalid UTF-8 is what receivers send when one
/// field (a From header, an org name) was copied in windows-1252: each such
/// byte is read as windows-1252 (as parsedmarc does) with a warning, unless
/// there are so many that the file is not UTF-8 at all.
fn decode_xml<'d>(data: &'d [u8], warnings: &mut Vec<String>) -> Res<Cow<'d, str>> {
    let data = strip_bom(data);
    match declared_encoding(data).as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii") => match std::str::from_utf8(data) {
            Ok(s) => Ok(Cow::Borrowed(s)),
            Err(e) => lossy_utf8(data, e, warnings).map(Cow::Owned),
        },
        Some("iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1") => {
            Ok(Cow::Owned(data.iter().map(|&b| char::from(b)).collect()))
        }
        Some("windows-1252" | "cp1252") => {
            Ok(Cow::Owned(data.iter().map(|&b| cp1252(b)).collect()))
        }
        Some(other) => Err(format!(
            "XML declaration: encoding {other:?} is not supported (UTF-8, ISO-8859-1 and windows-1252 are)"
        )),
    }
}

/// UTF-8 with each invalid byte read as windows-1252, one warning each
/// (the element path, line and column, as [`utf8_error`] words a refusal).
fn lossy_utf8(data: &[u8], first: std::str::Utf8Error, warnings: &mut Vec<String>) -> Res<String> {
    let mut out = String::with_capacity(data.len() + 16);
    let mut rest = data;
    let mut err = Some(first);
    let mut invalid = 0usize;
    while let Some(e) = err {
        let (valid, after) = rest.split_at(e.valid_up_to());
        // the prefix was checked by from_utf8 up to valid_up_to
        out.push_str(std::str::from_utf8(valid).unwrap_or_default());
        let bad = e.error_len().unwrap_or(after.len()).max(1).min(after.len());
        for &b in &after[..bad] {
            invalid += 1;
            if invalid > MAX_INVALID_UTF8 {
                return Err(format!(
                    "not UTF-8 text: more than {MAX_INVALID_UTF8} invalid bytes ({})",
                    utf8_error(data, first, true)
                ));
            }
            warnings.push(recovered_byte(&out, b));
            out.push(cp1252(b));
        }
        rest = &after[bad..];
        err = std::str::from_utf8(rest).err();
    }
    out.push_str(std::str::from_utf8(rest).unwrap_or_default());
    Ok(out)
}

/// The warning for invalid byte `b` found after the text `before`.
fn recovered_byte(before: &str, b: u8) -> String {
    let (line, col) = line_col(before.as_bytes(), before.len() as u64);
    let what = format!(
        "invalid UTF-8 (byte 0x{b:02X}) at line {line}, column {col} read as windows-1252 {:?}",
        cp1252(b)
    );
    match open_elements(before) {
        inside if inside.is_empty() => what,
        inside => format!("{inside}: {what}"),
    }
}

pub(super) fn parse_aggregate(data: &[u8]) -> Res<AggregateReport> {
    let mut warnings = Vec::new();
    let text = decode_xml(data, &mut warnings)?;
    let mut xml = Xml::new(&text);
    xml.warnings = warnings;
    xml.document()
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
    /// Recoveries so far, for [`AggregateReport::warnings`].
    warnings: Vec<String>,
}

impl<'a> Xml<'a> {
    fn new(src: &'a str) -> Self {
        let mut r = Reader::from_str(src);
        // End tags are matched here, not by quick-xml: unescaped markup
        // read as text (see `text`) leaves a start tag that never closes.
        r.config_mut().check_end_names = false;
        Xml {
            r,
            src,
            warnings: Vec::new(),
        }
    }

    /// The source text between two byte offsets of the reader.
    fn raw(&self, from: u64, to: u64) -> &'a str {
        let (from, to) = (from as usize, to as usize);
        self.src.get(from..to).unwrap_or_default()
    }

    /// Refuses end tag `found` where `</want>` should be, as quick-xml's
    /// own check words it.
    fn end_mismatch(&self, path: &Path<'_>, want: &str, found: &str, pos: u64) -> String {
        format!(
            "XML syntax error at {} (in {path}): expected </{want}>, found </{found}>",
            self.at(pos)
        )
    }

    /// Checks that the end tag just read closes the element at `path`.
    fn closes(&self, path: &Path<'_>, found: &str, pos: u64) -> Res<()> {
        if found == path.name {
            Ok(())
        } else {
            Err(self.end_mismatch(path, path.name, found, pos))
        }
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
                Event::End(e) => return self.closes(path, e.local_name().into_inner(), pos),
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
        // the names of the elements open inside, to match their end tags
        let mut open: Vec<String> = Vec::new();
        loop {
            let pos = self.r.buffer_position();
            match self.next(path)? {
                Event::Start(s) => open.push(s.local_name().into_inner().to_owned()),
                Event::End(e) => {
                    let found = e.local_name().into_inner();
                    match open.pop() {
                        None => return self.closes(path, found, pos),
                        Some(want) if want == found => {}
                        Some(want) => return Err(self.end_mismatch(path, &want, found, pos)),
                    }
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
        // Markup where text belongs (`<email><x@example></email>`, an
        // address nobody escaped) is read as the text it was meant to be;
        // these are the start tags of it still open.
        let mut stray: Vec<String> = Vec::new();
        loop {
            let pos = self.r.buffer_position();
            match self.next(path)? {
                Event::Text(t) => append(&mut acc, t.into_inner()),
                Event::CData(t) => append(&mut acc, t.into_inner()),
                Event::GeneralRef(r) => {
                    let c = self.entity(path, &r, pos)?;
                    acc.to_mut().push(c);
                }
                Event::End(e) => {
                    let found = e.local_name().into_inner();
                    if found == path.name {
                        break;
                    }
                    if stray.last().map(String::as_str) != Some(found) {
                        let want = stray.last().map_or(path.name, String::as_str);
                        return Err(self.end_mismatch(path, want, found, pos));
                    }
                    stray.pop();
                    let raw = self.raw(pos, self.r.buffer_position());
                    append(&mut acc, Cow::Borrowed(raw));
                }
                Event::Start(s) | Event::Empty(s) => {
                    let raw = self.raw(pos, self.r.buffer_position());
                    if let Some(lt) = raw[1..].rfind('<').map(|i| i + 1) {
                        // a bare `<` in text (`bad<x.net</header_from>`)
                        // reads as a start tag running up to the end tag
                        let text = &raw[..lt];
                        self.warnings.push(format!(
                            "{path}: unescaped markup {text} at {} read as text",
                            self.at(pos)
                        ));
                        append(&mut acc, Cow::Borrowed(text));
                        let end = raw[lt..].trim_start_matches("</").trim_end_matches('>');
                        let end = end.trim_end();
                        let end = end.rsplit(':').next().unwrap_or(end);
                        if raw[lt..].starts_with("</") && stray.is_empty() {
                            self.closes(path, end, pos + lt as u64)?;
                            break;
                        }
                        return Err(format!(
                            "{path}: unreadable markup {raw} at {}",
                            self.at(pos)
                        ));
                    }
                    if raw.ends_with("/>") {
                        // an empty-element tag opens nothing
                    } else {
                        stray.push(s.local_name().into_inner().to_owned());
                    }
                    self.warnings.push(format!(
                        "{path}: unescaped markup {raw} at {} read as text",
                        self.at(pos)
                    ));
                    append(&mut acc, Cow::Borrowed(raw));
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
                Event::End(e) => {
                    self.closes(&path, e.local_name().into_inner(), pos)?;
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
            warnings: std::mem::take(&mut self.warnings),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::*;
    use crate::report::{Parsed, parse_bytes};

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
        // Syntax errors give the line and column.
        let got = str_reason(&minimal(META, POLICY, RECORD).replace("</count>", "</cnt>"));
        assert!(
            got.contains("(in feedback/record[1]/row/count): expected </count>, found </cnt>"),
            "{got}"
        );
    }

    fn warnings_of(xml: &[u8]) -> (AggregateReport, Vec<String>) {
        match parse_bytes("t.xml", xml).unwrap().as_slice() {
            [Parsed::Dmarc(r)] => (r.clone(), r.warnings.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn recovery_warns_with_line_and_column() {
        // Markup inside a leaf is its text, nested or empty-element.
        let xml = minimal(META, POLICY, RECORD).replace(
            "<org_name>Org</org_name>",
            "<org_name>A <b>bold</b> <br/>Org</org_name>",
        );
        let (r, w) = warnings_of(xml.as_bytes());
        assert_eq!(r.org_name, "A <b>bold</b> <br/>Org");
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with(
                "feedback/report_metadata/org_name: unescaped markup <b> at line 1, column "
            ),
            "{w:?}"
        );
        assert!(w[1].contains("unescaped markup <br/> at line 1"), "{w:?}");
        // Two stray bytes on line 2: each recovered, each with its column.
        let mut xml = minimal(META, POLICY, RECORD)
            .replace("<org_name>Org", "\n<org_name>O\u{1}r\u{1}g")
            .into_bytes();
        for b in xml.iter_mut().filter(|b| **b == 1) {
            *b = 0x93;
        }
        let (r, w) = warnings_of(&xml);
        assert_eq!(r.org_name, "O\u{201C}r\u{201C}g");
        let col = |w: &str| {
            w.split("column ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert!(
            w[0].contains("invalid UTF-8 (byte 0x93) at line 2, column "),
            "{w:?}"
        );
        assert_eq!(
            (col(&w[0]), col(&w[1])),
            ("12".to_string(), "14".to_string())
        );
        assert!(
            w[0].starts_with("feedback/report_metadata/org_name: "),
            "{w:?}"
        );
    }

    #[test]
    fn truly_broken_reports_are_still_refused() {
        let base = minimal(META, POLICY, RECORD);
        // A stray start tag whose element runs past its parent's end.
        let got = str_reason(&base.replace("<org_name>Org</org_name>", "<org_name>Org"));
        assert!(
            got.contains("(in feedback/report_metadata/org_name): expected </org_name>, found </report_metadata>"),
            "{got}"
        );
        // An end tag closing the wrong element between children.
        let got = str_reason(&base.replace("</policy_published>", "</policy>"));
        assert!(
            got.starts_with("XML syntax error at line 1, column ")
                && got.ends_with(
                    "(in feedback/policy_published): expected </policy_published>, found </policy>"
                ),
            "{got}"
        );
        // Binary data in a UTF-8 file is not recovered byte by byte.
        let mut bin = base.clone().into_bytes();
        let at = bin.windows(3).position(|w| w == b"Org").unwrap();
        bin.splice(at..at, std::iter::repeat_n(0xFF, 100));
        let got = str_reason_bytes(&bin);
        assert!(
            got.starts_with("not UTF-8 text: more than 64 invalid bytes (feedback/report_metadata/org_name: invalid UTF-8 (byte 0xFF) at line 1, column "),
            "{got}"
        );
    }

    fn str_reason_bytes(data: &[u8]) -> String {
        match parse_bytes("t.xml", data) {
            Ok(v) => panic!("parsed, expected an error: {v:?}"),
            Err(e) => e.reason,
        }
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
}
