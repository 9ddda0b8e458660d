//! RPZ zone files (draft-vixie-dnsop-dns-rpz): the zone-file syntax of
//! RFC 1035 §5 — `$ORIGIN`, `$TTL`, `@`, owner names carried over from the
//! previous record, parentheses, comments, quoted strings — and the QNAME
//! trigger semantics.
//!
//! The policy zone's apex is the owner of its SOA record, or else the first
//! `$ORIGIN`, or else the root (a file of absolute or origin-less names).
//! A trigger is a record's owner name minus the apex: `*.name` matches
//! strict subdomains, any other name matches itself only. Actions, by the
//! CNAME target: `.` NXDOMAIN, `*.` NODATA, `rpz-passthru.` (or the trigger
//! itself) PASSTHRU, `rpz-drop.` DROP; any other CNAME, and A, AAAA, TXT and
//! MX records, are local data answered in place of the real records.
//!
//! Response-IP (`.rpz-ip`) and client-IP (`.rpz-client-ip`) triggers are
//! parsed into [`parapet_core::ippolicy::IpRules`] (semantics there). Their
//! local data is what Unbound 1.17 accepts: A or AAAA of the prefix's family
//! or one CNAME for response-IP, A and AAAA for client-IP (Unbound answers a
//! client-IP CNAME only to CNAME queries; Parapet skips it).
//!
//! NSIP (`.rpz-nsip`) and NSDNAME (`.rpz-nsdname`) triggers match the name
//! servers of the delegation a name is resolved through. A forwarder sends
//! every query to its upstreams and never sees a delegation, so these are
//! skipped with a warning, as are `rpz-tcp-only.` and `*.`-prefixed CNAME
//! targets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use parapet_core::name::{key_to_text, push_text_as_key};
use parapet_core::policy::{Action, LocalRecord, Trigger, rtype};

use super::{MAX_LINE, Sink, name_error, show};

/// One token of a zone-file entry.
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    text: &'a [u8],
    quoted: bool,
}

/// Splits a chunk of a zone file into entries (one record or directive
/// each, joined across lines inside parentheses). A chunk ends at a line's
/// end; an entry whose parentheses are open at the end of a chunk that is
/// not the file's last is left for the next chunk.
struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
    /// Where the current line starts, to hold lines to [`MAX_LINE`].
    line_start: usize,
    /// Whether `data` runs to the end of the file.
    eof: bool,
}

/// What [`Lexer::next_entry`] found.
enum Next {
    Entry(EntryStart),
    /// An entry continues past the chunk; nothing of it was used.
    Incomplete,
    End,
}

/// Where an entry starts, and whether its owner was left blank.
struct EntryStart {
    line: usize,
    blank_owner: bool,
}

impl<'a> Lexer<'a> {
    /// Reads the next non-empty entry into `toks`. Errors carry the line.
    fn next_entry(&mut self, toks: &mut Vec<Tok<'a>>) -> Result<Next, (usize, String)> {
        let data = self.data;
        loop {
            toks.clear();
            if self.pos >= data.len() {
                return Ok(Next::End);
            }
            let (start_pos, start_line) = (self.pos, self.line);
            let blank_owner = matches!(data[self.pos], b' ' | b'\t');
            let mut depth = 0u32;
            loop {
                let Some(&b) = data.get(self.pos) else {
                    self.check_line_length()?;
                    if depth > 0 {
                        if !self.eof {
                            self.pos = start_pos;
                            self.line = start_line;
                            self.line_start = start_pos;
                            return Ok(Next::Incomplete);
                        }
                        return Err((start_line, "unclosed `(`".into()));
                    }
                    break;
                };
                match b {
                    b'\n' => {
                        self.check_line_length()?;
                        self.pos += 1;
                        self.line += 1;
                        self.line_start = self.pos;
                        if depth == 0 {
                            break;
                        }
                    }
                    b' ' | b'\t' | b'\r' => self.pos += 1,
                    b';' => {
                        while self.pos < data.len() && data[self.pos] != b'\n' {
                            self.pos += 1;
                        }
                    }
                    b'(' => {
                        depth += 1;
                        self.pos += 1;
                    }
                    b')' => {
                        if depth == 0 {
                            return Err((self.line, "`)` without `(`".into()));
                        }
                        depth -= 1;
                        self.pos += 1;
                    }
                    b'"' => {
                        let start = self.pos + 1;
                        let mut i = start;
                        loop {
                            match data.get(i) {
                                None | Some(b'\n') => {
                                    return Err((self.line, "unterminated quoted string".into()));
                                }
                                Some(b'\\') => i += 2,
                                Some(b'"') => break,
                                Some(_) => i += 1,
                            }
                        }
                        let end = i.min(data.len());
                        toks.push(Tok {
                            text: &data[start..end],
                            quoted: true,
                        });
                        self.pos = end + 1;
                    }
                    _ => {
                        let start = self.pos;
                        let mut i = start;
                        while let Some(&c) = data.get(i) {
                            match c {
                                b' ' | b'\t' | b'\r' | b'\n' | b';' | b'(' | b')' | b'"' => break,
                                b'\\' => i += 2,
                                _ => i += 1,
                            }
                        }
                        let end = i.min(data.len());
                        toks.push(Tok {
                            text: &data[start..end],
                            quoted: false,
                        });
                        self.pos = end;
                    }
                }
            }
            if !toks.is_empty() {
                return Ok(Next::Entry(EntryStart {
                    line: start_line,
                    blank_owner,
                }));
            }
        }
    }

    /// Refuses a line longer than [`MAX_LINE`], once the lexer is at its end.
    fn check_line_length(&self) -> Result<(), (usize, String)> {
        if self.pos - self.line_start > MAX_LINE {
            return Err((
                self.line,
                format!("line longer than {MAX_LINE} bytes: this is not a zone file"),
            ));
        }
        Ok(())
    }
}

/// Record types that may appear in a policy zone.
fn type_code(t: &[u8]) -> Option<u16> {
    const TYPES: &[(&[u8], u16)] = &[
        (b"A", rtype::A),
        (b"NS", rtype::NS),
        (b"CNAME", rtype::CNAME),
        (b"SOA", rtype::SOA),
        (b"PTR", rtype::PTR),
        (b"MX", rtype::MX),
        (b"TXT", rtype::TXT),
        (b"AAAA", rtype::AAAA),
        (b"SRV", 33),
        (b"NAPTR", 35),
        (b"DNAME", 39),
        (b"DS", 43),
        (b"SSHFP", 44),
        (b"RRSIG", 46),
        (b"NSEC", 47),
        (b"DNSKEY", 48),
        (b"NSEC3", 50),
        (b"NSEC3PARAM", 51),
        (b"TLSA", 52),
        (b"SVCB", 64),
        (b"HTTPS", 65),
        (b"CAA", 257),
        (b"HINFO", 13),
        (b"LOC", 29),
        (b"SPF", 99),
        (b"NULL", rtype::NULL),
    ];
    if let Some(&(_, c)) = TYPES.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) {
        return Some(c);
    }
    let digits = t
        .strip_prefix(b"TYPE")
        .or_else(|| t.strip_prefix(b"type"))?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn is_class(t: &[u8]) -> bool {
    [&b"IN"[..], b"CH", b"HS", b"CS", b"ANY"]
        .iter()
        .any(|c| c.eq_ignore_ascii_case(t))
}

/// A TTL: seconds, or BIND units (`1h30m`, `2d`, `1w`).
fn parse_ttl(t: &[u8]) -> Option<u32> {
    if t.is_empty() || !t[0].is_ascii_digit() {
        return None;
    }
    let mut total: u64 = 0;
    let mut n: u64 = 0;
    let mut unit_seen = false;
    let mut digits = false;
    for &b in t {
        match b {
            b'0'..=b'9' => {
                n = n.checked_mul(10)?.checked_add((b - b'0') as u64)?;
                digits = true;
            }
            _ => {
                let mult = match b.to_ascii_lowercase() {
                    b's' => 1,
                    b'm' => 60,
                    b'h' => 3600,
                    b'd' => 86400,
                    b'w' => 604_800,
                    _ => return None,
                };
                if !digits {
                    return None;
                }
                total = total.checked_add(n.checked_mul(mult)?)?;
                n = 0;
                digits = false;
                unit_seen = true;
            }
        }
    }
    if digits {
        if unit_seen {
            return None;
        }
        total = n;
    }
    u32::try_from(total).ok().filter(|&v| v <= i32::MAX as u32)
}

/// Whether a presentation-format name ends in an unescaped dot.
fn is_absolute(t: &[u8]) -> bool {
    if t.last() != Some(&b'.') {
        return false;
    }
    let backslashes = t[..t.len() - 1]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    backslashes % 2 == 0
}

/// Whether `suffix` is `name` or a parent of it, at a label boundary.
fn is_under(name: &[u8], suffix: &[u8]) -> bool {
    if suffix.is_empty() {
        return true;
    }
    if name.len() < suffix.len() || !name.ends_with(suffix) {
        return false;
    }
    let target = name.len() - suffix.len();
    let mut i = 0;
    while i < target {
        i += 1 + name[i] as usize;
    }
    i == target
}

fn key_of(text: &str) -> Vec<u8> {
    let mut k = Vec::new();
    push_text_as_key(text, &mut k).expect("valid constant name");
    k
}

/// An RPZ parse in progress, fed a chunk of whole lines at a time.
pub(super) struct Parser<'f> {
    pub(super) sink: Sink<'f>,
    /// Lines parsed so far.
    line: usize,
    /// A syntax error lost the parser's place: the rest is not read.
    stopped: bool,
    origin: Vec<u8>,
    first_origin: Option<Vec<u8>>,
    apex: Option<Vec<u8>>,
    default_ttl: Option<u32>,
    last_ttl: u32,
    owner: Vec<u8>,
    have_owner: bool,
    /// Local-data record sets by trigger, so that records of one name that
    /// are not adjacent in the file still form one answer.
    local: HashMap<(Vec<u8>, bool), u32>,
    /// The same for address triggers, by prefix and kind (client-IP or not).
    ip_local: HashMap<(IpNet, bool), u32>,
    target: Vec<u8>,
    passthru: Vec<u8>,
    drop: Vec<u8>,
    tcp_only: Vec<u8>,
}

/// Triggers on the name servers of a delegation. A forwarder sends every
/// query to its upstreams and never sees a delegation, so it cannot apply
/// them.
const NS_TRIGGERS: &[&[u8]] = &[b"rpz-nsip", b"rpz-nsdname"];

impl<'f> Parser<'f> {
    pub(super) fn new(sink: Sink<'f>) -> Self {
        Parser {
            sink,
            line: 0,
            stopped: false,
            origin: Vec::new(),
            first_origin: None,
            apex: None,
            default_ttl: None,
            last_ttl: 3600,
            owner: Vec::with_capacity(256),
            have_owner: false,
            local: HashMap::new(),
            ip_local: HashMap::new(),
            target: Vec::with_capacity(256),
            passthru: key_of("rpz-passthru"),
            drop: key_of("rpz-drop"),
            tcp_only: key_of("rpz-tcp-only"),
        }
    }

    pub(super) fn line(&self) -> usize {
        self.line
    }

    pub(super) fn stopped(&self) -> bool {
        self.stopped || self.sink.full()
    }

    /// Parses the entries of `data` (whole lines; `eof` when the file ends
    /// with it) and returns the bytes used.
    pub(super) fn chunk(&mut self, data: &[u8], eof: bool) -> usize {
        let mut lexer = Lexer {
            data,
            pos: 0,
            line: self.line + 1,
            line_start: 0,
            eof,
        };
        let mut toks = Vec::with_capacity(16);
        while !self.stopped() {
            match lexer.next_entry(&mut toks) {
                Ok(Next::End | Next::Incomplete) => break,
                Ok(Next::Entry(start)) => self.entry(start, &toks),
                Err((line, message)) => {
                    self.sink.error(line, "syntax", message);
                    self.stopped = true;
                }
            }
        }
        self.line = lexer.line - 1;
        lexer.pos
    }
}

impl Parser<'_> {
    /// Local data: a CNAME to the entry's target (held in wire form without
    /// its root label).
    fn target_cname(&self, ttl: u32) -> LocalRecord {
        let mut wire = Vec::with_capacity(self.target.len() + 1);
        wire.extend_from_slice(&self.target);
        wire.push(0);
        LocalRecord {
            rtype: rtype::CNAME,
            ttl,
            rdata: wire.into(),
        }
    }

    /// Parses a name relative to the current origin into `out` (key form).
    fn name_into(&mut self, line: usize, field: &str, t: &[u8], into_target: bool) -> bool {
        let out = if into_target {
            &mut self.target
        } else {
            &mut self.owner
        };
        out.clear();
        if t == b"@" {
            out.extend_from_slice(&self.origin);
            return true;
        }
        let Ok(text) = std::str::from_utf8(t) else {
            self.sink
                .error(line, field, format!("`{}` is not UTF-8", show(t)));
            return false;
        };
        if let Err(e) = push_text_as_key(text, out) {
            self.sink.error(line, field, name_error(&e));
            return false;
        }
        if !is_absolute(t) {
            out.extend_from_slice(&self.origin);
            if out.len() > parapet_core::name::MAX_KEY_LEN {
                self.sink.error(
                    line,
                    field,
                    format!("`{text}` with the origin appended is longer than 255 octets"),
                );
                return false;
            }
        }
        true
    }

    fn entry(&mut self, start: EntryStart, toks: &[Tok<'_>]) {
        let line = start.line;
        let first = toks[0];
        if !start.blank_owner && !first.quoted && first.text.starts_with(b"$") {
            return self.directive(line, toks);
        }
        let mut rest = toks;
        if start.blank_owner {
            if !self.have_owner {
                self.sink.error(
                    line,
                    "owner",
                    "record with no owner name and no previous record",
                );
                return;
            }
        } else {
            if first.quoted || !self.name_into(line, "owner", first.text, false) {
                if first.quoted {
                    self.sink
                        .error(line, "owner", "an owner name cannot be a quoted string");
                }
                self.have_owner = false;
                return;
            }
            self.have_owner = true;
            rest = &toks[1..];
        }
        // [TTL] [CLASS] TYPE, TTL and class in either order
        let mut ttl = None;
        let mut i = 0;
        while i < rest.len() && i < 2 {
            let t = rest[i].text;
            if let Some(v) = parse_ttl(t) {
                ttl = Some(v);
            } else if is_class(t) {
                if !t.eq_ignore_ascii_case(b"IN") {
                    self.sink
                        .error(line, "class", format!("class {} is not IN", show(t)));
                    return;
                }
            } else {
                break;
            }
            i += 1;
        }
        let Some(type_tok) = rest.get(i) else {
            self.sink.error(line, "type", "record has no type");
            return;
        };
        let Some(rr_type) = type_code(type_tok.text) else {
            self.sink.error(
                line,
                "type",
                format!("unknown record type `{}`", show(type_tok.text)),
            );
            return;
        };
        let rdata = &rest[i + 1..];
        let ttl = ttl.or(self.default_ttl).unwrap_or(self.last_ttl);
        self.last_ttl = ttl;
        self.record(line, rr_type, type_tok.text, ttl, rdata);
    }

    fn directive(&mut self, line: usize, toks: &[Tok<'_>]) {
        let name = toks[0].text;
        if name.eq_ignore_ascii_case(b"$ORIGIN") {
            let Some(arg) = toks.get(1) else {
                self.sink.error(line, "$ORIGIN", "missing name");
                return;
            };
            if !self.name_into(line, "$ORIGIN", arg.text, true) {
                return;
            }
            self.origin.clear();
            self.origin.extend_from_slice(&self.target);
            if self.first_origin.is_none() {
                self.first_origin = Some(self.origin.clone());
            }
        } else if name.eq_ignore_ascii_case(b"$TTL") {
            match toks.get(1).and_then(|t| parse_ttl(t.text)) {
                Some(v) => self.default_ttl = Some(v),
                None => self
                    .sink
                    .error(line, "$TTL", "expected a TTL in seconds (or 1h, 2d...)"),
            }
        } else if name.eq_ignore_ascii_case(b"$INCLUDE") {
            self.sink.error(
                line,
                "$INCLUDE",
                "$INCLUDE is not supported in feeds: give each file as its own feed",
            );
        } else {
            self.sink.error(
                line,
                "directive",
                format!("unknown directive `{}`", show(name)),
            );
        }
    }

    fn record(&mut self, line: usize, rr_type: u16, type_text: &[u8], ttl: u32, rdata: &[Tok<'_>]) {
        // The apex: SOA and NS there describe the zone, not policy.
        if rr_type == rtype::SOA {
            match &self.apex {
                None => self.apex = Some(self.owner.clone()),
                Some(a) if *a == self.owner => {}
                Some(_) => self.sink.warn(
                    line,
                    format!("a second SOA, at `{}`", key_to_text(&self.owner)),
                ),
            }
            return;
        }
        let apex = self
            .apex
            .get_or_insert_with(|| self.first_origin.clone().unwrap_or_default());
        if !is_under(&self.owner, apex) {
            let msg = format!(
                "`{}` is outside the policy zone `{}`",
                key_to_text(&self.owner),
                key_to_text(apex)
            );
            self.sink.warn(line, msg);
            return;
        }
        let trigger_len = self.owner.len() - apex.len();
        if trigger_len == 0 {
            // records at the apex itself (NS, TXT version strings...)
            return;
        }
        if rr_type == rtype::NS {
            self.sink.warn(
                line,
                "NS records below the apex have no meaning in a policy zone",
            );
            return;
        }
        let trigger = &self.owner[..trigger_len];
        // the label just above the apex says what kind of trigger this is
        let mut last = 0;
        for off in parapet_core::name::parent_offsets(trigger) {
            last = off;
        }
        let last_label = &trigger[last + 1..];
        let client = last_label.eq_ignore_ascii_case(b"rpz-client-ip");
        if client || last_label.eq_ignore_ascii_case(b"rpz-ip") {
            let labels = trigger[..last].to_vec();
            return self.ip_trigger(line, client, &labels, rr_type, type_text, ttl, rdata);
        }
        if NS_TRIGGERS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(last_label))
        {
            let kind = String::from_utf8_lossy(last_label).into_owned();
            self.sink.warn(
                line,
                format!(
                    "{kind} triggers are not supported: they match a delegation's name servers, \
                     which a forwarder never sees"
                ),
            );
            return;
        }
        let (kind, name_off) = if trigger.starts_with(b"\x01*") {
            (Trigger::Wildcard, 2)
        } else {
            (Trigger::Exact, 0)
        };
        if name_off == trigger.len() {
            self.sink.warn(
                line,
                "`*` at the apex would rewrite every name on the Internet",
            );
            return;
        }
        let expect = |n: usize| rdata.len() == n;
        let local = match rr_type {
            rtype::CNAME => {
                if !expect(1) {
                    self.sink.error(line, "CNAME", "expected one target name");
                    return;
                }
                if !self.name_into(line, "CNAME", rdata[0].text, true) {
                    return;
                }
                let trigger = &self.owner[..trigger_len];
                let action = if self.target.is_empty() {
                    Some(Action::Block)
                } else if self.target == b"\x01*" {
                    Some(Action::Nodata)
                } else if self.target == self.passthru || self.target == trigger {
                    Some(Action::Passthru)
                } else if self.target == self.drop {
                    Some(Action::Drop)
                } else if self.target == self.tcp_only {
                    self.sink.warn(line, "rpz-tcp-only is not supported");
                    return;
                } else if self.target.starts_with(b"\x01*") {
                    self.sink.warn(
                        line,
                        "CNAME to `*.name` (rewriting to a prefix of the query) is not supported",
                    );
                    return;
                } else {
                    None
                };
                if let Some(action) = action {
                    let name = &self.owner[name_off..trigger_len];
                    self.sink.parsed.rules.push(name, kind, action);
                    return;
                }
                self.target_cname(ttl)
            }
            rtype::A | rtype::AAAA => {
                let field = if rr_type == rtype::A { "A" } else { "AAAA" };
                let text = rdata.first().and_then(|t| std::str::from_utf8(t.text).ok());
                let bytes: Option<Box<[u8]>> = match (expect(1), text) {
                    (true, Some(t)) if rr_type == rtype::A => {
                        t.parse::<Ipv4Addr>().ok().map(|a| a.octets().into())
                    }
                    (true, Some(t)) => t.parse::<Ipv6Addr>().ok().map(|a| a.octets().into()),
                    _ => None,
                };
                let Some(rdata) = bytes else {
                    self.sink.error(
                        line,
                        field,
                        format!(
                            "expected one IPv{} address",
                            if rr_type == rtype::A { 4 } else { 6 }
                        ),
                    );
                    return;
                };
                LocalRecord {
                    rtype: rr_type,
                    ttl,
                    rdata,
                }
            }
            rtype::TXT => {
                if rdata.is_empty() {
                    self.sink.error(line, "TXT", "expected at least one string");
                    return;
                }
                let mut wire = Vec::new();
                for t in rdata {
                    let start = wire.len();
                    wire.push(0);
                    if !unescape(t.text, &mut wire) || wire.len() - start - 1 > 255 {
                        self.sink.error(
                            line,
                            "TXT",
                            "bad escape, or a string longer than 255 octets",
                        );
                        return;
                    }
                    wire[start] = (wire.len() - start - 1) as u8;
                }
                LocalRecord {
                    rtype: rr_type,
                    ttl,
                    rdata: wire.into(),
                }
            }
            rtype::MX => {
                let pref = rdata
                    .first()
                    .and_then(|t| std::str::from_utf8(t.text).ok()?.parse::<u16>().ok());
                let (true, Some(pref)) = (expect(2), pref) else {
                    self.sink.error(
                        line,
                        "MX",
                        "expected a preference (0-65535) and a mail server name",
                    );
                    return;
                };
                if !self.name_into(line, "MX", rdata[1].text, true) {
                    return;
                }
                let mut wire = Vec::with_capacity(self.target.len() + 3);
                wire.extend_from_slice(&pref.to_be_bytes());
                wire.extend_from_slice(&self.target);
                wire.push(0);
                LocalRecord {
                    rtype: rr_type,
                    ttl,
                    rdata: wire.into(),
                }
            }
            _ => {
                self.sink.warn(
                    line,
                    format!("{} local data is not supported", show(type_text)),
                );
                return;
            }
        };
        let name = &self.owner[name_off..trigger_len];
        let key = (name.to_vec(), kind == Trigger::Wildcard);
        let rules = &mut self.sink.parsed.rules;
        match self.local.get(&key) {
            Some(&i) => rules.local[i as usize].push(local),
            None => {
                let action = rules.push_local(vec![local]);
                rules.push(name, kind, action);
                if let Action::Local(i) = action {
                    self.local.insert(key, i);
                }
            }
        }
    }
}

/// The labels of a key-form name, first to last.
fn labels(key: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = *key.get(pos)? as usize;
        let label = key.get(pos + 1..pos + 1 + len)?;
        pos += 1 + len;
        Some(label)
    })
}

/// The prefix of an address trigger from the labels before `rpz-ip` or
/// `rpz-client-ip`: the prefix length, then the address with its labels
/// reversed (`32.1.2.0.192` is 192.0.2.1/32). An IPv6 address has eight
/// hexadecimal groups, or fewer with one `zz` standing for the `::`
/// (`128.1.zz.db8.2001` is 2001:db8::1/128). As in Unbound, an IPv6
/// address is one with more than four labels or a `zz`.
fn parse_ip_trigger(key: &[u8]) -> Result<IpNet, String> {
    let mut it = labels(key);
    let Some(len) = it.next() else {
        return Err("no prefix length before the address".into());
    };
    let bits = std::str::from_utf8(len)
        .ok()
        .filter(|t| (1..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse::<u8>().ok())
        .ok_or_else(|| format!("`{}` is not a prefix length", show(len)))?;
    let mut parts: Vec<&[u8]> = it.collect();
    parts.reverse();
    let v6 = parts.len() > 4 || parts.iter().any(|p| p.eq_ignore_ascii_case(b"zz"));
    let net = if v6 {
        let explicit = parts
            .iter()
            .filter(|p| !p.eq_ignore_ascii_case(b"zz"))
            .count();
        if parts.len() - explicit > 1 || explicit > 8 || (explicit < 8 && explicit == parts.len()) {
            return Err(format!(
                "an IPv6 trigger has eight groups, or fewer and one `zz`; found {} labels",
                parts.len()
            ));
        }
        let mut groups = [0u16; 8];
        let mut i = 0;
        for p in &parts {
            if p.eq_ignore_ascii_case(b"zz") {
                i += 8 - explicit;
                continue;
            }
            groups[i] = std::str::from_utf8(p)
                .ok()
                .filter(|t| (1..=4).contains(&t.len()))
                .and_then(|t| u16::from_str_radix(t, 16).ok())
                .ok_or_else(|| format!("`{}` is not an IPv6 group (1-4 hex digits)", show(p)))?;
            i += 1;
        }
        IpNet::new(Ipv6Addr::from(groups).into(), bits)
    } else {
        if parts.len() != 4 {
            return Err(format!(
                "an IPv4 trigger has four address labels, found {}",
                parts.len()
            ));
        }
        let mut octets = [0u8; 4];
        for (o, p) in octets.iter_mut().zip(&parts) {
            *o = std::str::from_utf8(p)
                .ok()
                .filter(|t| (1..=3).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("`{}` is not an IPv4 octet (0-255)", show(p)))?;
        }
        IpNet::new(Ipv4Addr::from(octets).into(), bits)
    };
    net.map_err(|_| {
        let max = if v6 { 128 } else { 32 };
        format!("prefix length {bits} is longer than {max} bits")
    })
}

impl Parser<'_> {
    /// A response-IP (`client` false) or client-IP trigger; `labels` holds
    /// the trigger's labels before `rpz-ip` or `rpz-client-ip`.
    #[allow(clippy::too_many_arguments)]
    fn ip_trigger(
        &mut self,
        line: usize,
        client: bool,
        labels: &[u8],
        rr_type: u16,
        type_text: &[u8],
        ttl: u32,
        rdata: &[Tok<'_>],
    ) {
        let field = if client { "rpz-client-ip" } else { "rpz-ip" };
        let net = match parse_ip_trigger(labels) {
            Ok(net) => net.trunc(),
            Err(message) => return self.sink.error(line, field, message),
        };
        let record = match rr_type {
            rtype::CNAME => {
                if rdata.len() != 1 {
                    return self.sink.error(line, "CNAME", "expected one target name");
                }
                if !self.name_into(line, "CNAME", rdata[0].text, true) {
                    return;
                }
                let action = if self.target.is_empty() {
                    Some(Action::Block)
                } else if self.target == b"\x01*" {
                    Some(Action::Nodata)
                } else if self.target == self.passthru {
                    Some(Action::Passthru)
                } else if self.target == self.drop {
                    Some(Action::Drop)
                } else {
                    None
                };
                if let Some(action) = action {
                    let rules = &mut self.sink.parsed.rules.ip;
                    let list = if client {
                        &mut rules.client
                    } else {
                        &mut rules.response
                    };
                    list.push((net, action));
                    return;
                }
                // Unbound refuses every other `rpz-` target (rpz-tcp-only
                // among them) and a prefix-rewriting `*.` target
                let tld = labels_last(&self.target);
                if tld.len() >= 4 && tld[..4].eq_ignore_ascii_case(b"rpz-")
                    || self.target.starts_with(b"\x01*")
                {
                    let target = key_to_text(&self.target);
                    return self.sink.warn(
                        line,
                        format!("CNAME {target}. is not supported for {field} triggers"),
                    );
                }
                if client {
                    // Unbound answers it only to queries of type CNAME
                    return self.sink.warn(
                        line,
                        "CNAME local data is not supported for rpz-client-ip triggers",
                    );
                }
                self.target_cname(ttl)
            }
            rtype::A | rtype::AAAA => {
                let text = rdata.first().and_then(|t| std::str::from_utf8(t.text).ok());
                let bytes: Option<Box<[u8]>> = match (rdata.len(), text) {
                    (1, Some(t)) if rr_type == rtype::A => {
                        t.parse::<Ipv4Addr>().ok().map(|a| a.octets().into())
                    }
                    (1, Some(t)) => t.parse::<Ipv6Addr>().ok().map(|a| a.octets().into()),
                    _ => None,
                };
                let v4 = rr_type == rtype::A;
                let Some(bytes) = bytes else {
                    let (f, n) = if v4 { ("A", 4) } else { ("AAAA", 6) };
                    return self
                        .sink
                        .error(line, f, format!("expected one IPv{n} address"));
                };
                // a response's address is replaced by one of its own family
                if !client && v4 != matches!(net, IpNet::V4(_)) {
                    return self.sink.warn(
                        line,
                        format!(
                            "{} local data for an IPv{} rpz-ip trigger is not supported",
                            show(type_text),
                            if v4 { 6 } else { 4 }
                        ),
                    );
                }
                LocalRecord {
                    rtype: rr_type,
                    ttl,
                    rdata: bytes,
                }
            }
            _ => {
                let supported = if client { "A, AAAA" } else { "A, AAAA, CNAME" };
                return self.sink.warn(
                    line,
                    format!(
                        "{} local data is not supported for {field} triggers (only {supported})",
                        show(type_text)
                    ),
                );
            }
        };
        self.push_ip_local(line, client, net, record);
    }

    /// Adds a record to the local data of an address trigger. Records of
    /// one prefix form one set; for a client-IP trigger Unbound 1.17 keeps
    /// only the last record of each type, and so does Parapet.
    fn push_ip_local(&mut self, line: usize, client: bool, net: IpNet, record: LocalRecord) {
        let rules = &mut self.sink.parsed.rules;
        match self.ip_local.get(&(net, client)) {
            Some(&i) => {
                let set = &mut rules.local[i as usize];
                let cname = |r: &LocalRecord| r.rtype == rtype::CNAME;
                if set.iter().any(cname) || (cname(&record) && !set.is_empty()) {
                    let msg =
                        "CNAME local data cannot be mixed with other local data for one prefix";
                    return self.sink.warn(line, msg);
                }
                if client {
                    set.retain(|r| r.rtype != record.rtype);
                }
                set.push(record);
            }
            None => {
                let action = rules.push_local(vec![record]);
                let list = if client {
                    &mut rules.ip.client
                } else {
                    &mut rules.ip.response
                };
                list.push((net, action));
                if let Action::Local(i) = action {
                    self.ip_local.insert((net, client), i);
                }
            }
        }
    }
}

/// The last label of a key-form name (empty for the root).
fn labels_last(key: &[u8]) -> &[u8] {
    labels(key).last().unwrap_or_default()
}

/// Appends a character-string's content with `\X` and `\DDD` escapes
/// resolved; false on a bad escape.
fn unescape(t: &[u8], out: &mut Vec<u8>) -> bool {
    let mut i = 0;
    while i < t.len() {
        if t[i] == b'\\' {
            let rest = &t[i + 1..];
            if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                let v = (rest[0] - b'0') as u32 * 100
                    + (rest[1] - b'0') as u32 * 10
                    + (rest[2] - b'0') as u32;
                if v > 255 {
                    return false;
                }
                out.push(v as u8);
                i += 4;
            } else if let Some(&c) = rest.first() {
                out.push(c);
                i += 2;
            } else {
                return false;
            }
        } else {
            out.push(t[i]);
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::super::{FeedFormat, parse_feed};
    use super::*;

    fn parse(text: &str) -> super::super::ParsedFeed {
        parse_feed(text.as_bytes(), FeedFormat::Rpz, "p.rpz").unwrap()
    }

    fn rules(text: &str) -> Vec<(String, Trigger, Action)> {
        parse(text)
            .rules
            .iter()
            .map(|(k, t, a)| (key_to_text(k), t, a))
            .collect()
    }

    #[test]
    fn actions_and_triggers() {
        let r = rules(
            "$TTL 60\n$ORIGIN rpz.example.\n@ IN SOA ns. admin. ( 1 2 3 4 5 ) ; parens\n  NS ns.\n\
             nx.test CNAME .\n*.wild.test 300 IN CNAME .\nnodata.test CNAME *.\n\
             pass.test CNAME rpz-passthru.\nold.pass.test CNAME old.pass.test.\ndrop.test IN 60 CNAME rpz-drop.\n\
             abs.test.rpz.example. CNAME .\n",
        );
        assert_eq!(
            r,
            vec![
                ("nx.test".into(), Trigger::Exact, Action::Block),
                ("wild.test".into(), Trigger::Wildcard, Action::Block),
                ("nodata.test".into(), Trigger::Exact, Action::Nodata),
                ("pass.test".into(), Trigger::Exact, Action::Passthru),
                ("old.pass.test".into(), Trigger::Exact, Action::Passthru),
                ("drop.test".into(), Trigger::Exact, Action::Drop),
                ("abs.test".into(), Trigger::Exact, Action::Block),
            ]
        );
    }

    #[test]
    fn no_soa_and_no_origin() {
        let r = rules("listed.zone.test CNAME rpz-passthru.\n");
        assert_eq!(
            r,
            vec![("listed.zone.test".into(), Trigger::Exact, Action::Passthru)]
        );
    }

    #[test]
    fn local_data_grouped_per_name() {
        let p = parse(
            "$TTL 30\ngarden.test A 192.0.2.1\n  A 192.0.2.2\n  AAAA 2001:db8::1\nother.test CNAME target.example.\n\
             garden.test TXT \"hello \\\"world\\\"\" two\nmx.test MX 10 mail.example.\n",
        );
        let r: Vec<_> = p
            .rules
            .iter()
            .map(|(k, t, a)| (key_to_text(k), t, a))
            .collect();
        assert_eq!(r.len(), 3, "{r:?}");
        let Action::Local(g) = r[0].2 else { panic!() };
        let garden = &p.rules.local[g as usize];
        assert_eq!(garden.len(), 4);
        assert_eq!(&*garden[1].rdata, &[192, 0, 2, 2]);
        assert_eq!(garden[2].rtype, rtype::AAAA);
        assert_eq!(&*garden[3].rdata, b"\x0dhello \"world\"\x03two");
        assert_eq!(garden[0].ttl, 30);
        let Action::Local(o) = r[1].2 else { panic!() };
        assert_eq!(
            &*p.rules.local[o as usize][0].rdata,
            b"\x06target\x07example\x00"
        );
        let Action::Local(m) = r[2].2 else { panic!() };
        assert_eq!(
            &*p.rules.local[m as usize][0].rdata,
            b"\x00\x0a\x04mail\x07example\x00"
        );
    }

    #[test]
    fn unsupported_triggers_are_skipped_with_warnings() {
        let p = parse(
            "$ORIGIN rpz.\n@ SOA a. b. 1 2 3 4 5\n32.1.2.0.192.rpz-nsip CNAME .\nns.rpz-nsdname CNAME .\n\
             tcp.test CNAME rpz-tcp-only.\npre.test CNAME *.garden.example.\nout.example. CNAME .\n\
             srv.test SRV 0 0 443 x.example.\nok.test CNAME .\n",
        );
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.warnings.len(), 6, "{:?}", p.warnings);
        assert_eq!(p.warnings[0].line, 3);
        assert!(p.warnings[0].message.contains("rpz-nsip"));
        assert!(p.warnings[1].message.contains("forwarder never sees"));
    }

    fn ip(text: &str) -> parapet_core::ippolicy::IpRules {
        let p = parse(text);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        p.rules.ip
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn response_ip_and_client_ip_triggers() {
        let r = ip("$ORIGIN rpz.\n@ SOA a. b. 1 2 3 4 5\n\
             32.1.2.0.192.rpz-ip CNAME .\n24.0.2.0.192.RPZ-IP CNAME *.\n\
             128.1.zz.db8.2001.rpz-ip CNAME rpz-passthru.\n48.zz.1.db8.2001.rpz-ip CNAME rpz-drop.\n\
             128.8.7.6.5.4.3.2.1.rpz-ip CNAME .\n64.zz.2001.rpz-ip CNAME .\n128.1.zz.rpz-ip CNAME .\n\
             24.0.2.0.192.rpz-client-ip CNAME rpz-drop.\n0.0.0.0.0.rpz-client-ip CNAME *.\n\
             32.1.0.0.127.rpz-client-ip CNAME rpz-passthru.\n");
        assert_eq!(
            r.response,
            vec![
                (net("192.0.2.1/32"), Action::Block),
                (net("192.0.2.0/24"), Action::Nodata),
                (net("2001:db8::1/128"), Action::Passthru),
                (net("2001:db8:1::/48"), Action::Drop),
                (net("1:2:3:4:5:6:7:8/128"), Action::Block),
                (net("2001::/64"), Action::Block),
                (net("::1/128"), Action::Block),
            ]
        );
        assert_eq!(
            r.client,
            vec![
                (net("192.0.2.0/24"), Action::Drop),
                (net("0.0.0.0/0"), Action::Nodata),
                (net("127.0.0.1/32"), Action::Passthru),
            ]
        );
    }

    #[test]
    fn address_triggers_with_local_data() {
        let p = parse(
            "$TTL 30\n$ORIGIN rpz.\n32.5.2.0.192.rpz-ip A 10.0.0.1\n  A 10.0.0.2\n\
             32.6.2.0.192.rpz-ip CNAME garden.example.\n128.1.zz.db8.2001.rpz-ip AAAA 2001:db8::99\n\
             32.3.0.0.127.rpz-client-ip A 10.9.9.1\n  A 10.9.9.2\n  AAAA ::9\n\
             32.7.2.0.192.rpz-ip AAAA ::1\n32.8.2.0.192.rpz-ip TXT x\n32.9.0.0.127.rpz-client-ip CNAME x.example.\n\
             32.6.2.0.192.rpz-ip A 10.0.0.3\n",
        );
        let local = |i: usize| {
            let Action::Local(n) = p.rules.ip.response.get(i).or(None).map(|r| r.1).unwrap() else {
                panic!("{:?}", p.rules.ip)
            };
            &p.rules.local[n as usize]
        };
        assert_eq!(p.rules.ip.response.len(), 3, "{:?}", p.rules.ip);
        assert_eq!(local(0).len(), 2);
        assert_eq!(&*local(0)[1].rdata, &[10, 0, 0, 2]);
        assert_eq!(local(0)[0].ttl, 30);
        assert_eq!(&*local(1)[0].rdata, b"\x06garden\x07example\x00");
        assert_eq!(local(2)[0].rtype, rtype::AAAA);
        // Unbound keeps the last record of each type for a client-IP trigger
        let Action::Local(c) = p.rules.ip.client[0].1 else {
            panic!()
        };
        let client = &p.rules.local[c as usize];
        assert_eq!(client.len(), 2);
        assert_eq!(&*client[0].rdata, &[10, 9, 9, 2]);
        // an AAAA for an IPv4 prefix, TXT, a client CNAME, CNAME mixed with A
        assert_eq!(p.warnings.len(), 4, "{:?}", p.warnings);
        assert!(
            p.warnings[3].message.contains("cannot be mixed"),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn bad_address_triggers_are_errors_naming_the_fault() {
        let cases = [
            (
                "33.1.2.0.192.rpz-ip",
                "prefix length 33 is longer than 32 bits",
            ),
            (
                "129.1.zz.rpz-ip",
                "prefix length 129 is longer than 128 bits",
            ),
            ("x.1.2.0.192.rpz-ip", "`x` is not a prefix length"),
            ("1000.1.2.0.192.rpz-ip", "`1000` is not a prefix length"),
            ("24.2.0.192.rpz-ip", "four address labels, found 3"),
            ("24.256.2.0.192.rpz-client-ip", "`256` is not an IPv4 octet"),
            ("64.zz.zz.1.rpz-ip", "eight groups, or fewer and one `zz`"),
            ("64.1.2.3.4.5.rpz-ip", "eight groups, or fewer and one `zz`"),
            ("64.12345.zz.rpz-ip", "`12345` is not an IPv6 group"),
            ("64.g.zz.rpz-ip", "`g` is not an IPv6 group"),
            ("rpz-ip", "no prefix length"),
        ];
        for (owner, want) in cases {
            let text = format!("$ORIGIN rpz.\n{owner} CNAME .\n");
            let e = parse_feed(text.as_bytes(), FeedFormat::Rpz, "ip.rpz").unwrap_err();
            let field = if owner.contains("client") {
                "rpz-client-ip"
            } else {
                "rpz-ip"
            };
            assert!(
                e[0].to_string()
                    .starts_with(&format!("ip.rpz:2: {field}: "))
                    && e[0].message.contains(want),
                "{owner}: {e:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn address_triggers_never_panic(
            labels in proptest::collection::vec("([0-9]{1,4}|[0-9a-fA-F]{1,5}|zz|ZZ|-?)", 0..12),
            client in proptest::bool::ANY,
        ) {
            let kind = if client { "rpz-client-ip" } else { "rpz-ip" };
            let owner = labels.iter().filter(|l| !l.is_empty()).cloned().collect::<Vec<_>>().join(".");
            let text = format!("$ORIGIN rpz.\n{owner}.{kind} CNAME .\n");
            if let Ok(p) = parse_feed(text.as_bytes(), FeedFormat::Rpz, "p") {
                let n = if client { p.rules.ip.client.len() } else { p.rules.ip.response.len() };
                proptest::prop_assert!(n == 1 || owner.is_empty());
            }
        }
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = parse_feed(
            b"$TTL abc\nbad..name CNAME .\nx.test A 300.1.1.1\nx.test FOO bar\n  CH A 1.2.3.4\ny.test TXT \"open\n",
            FeedFormat::Rpz,
            "z.rpz",
        )
        .unwrap_err();
        let e: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(e[0].starts_with("z.rpz:1: $TTL:"), "{e:?}");
        assert!(e[1].starts_with("z.rpz:2: owner:"), "{e:?}");
        assert!(e[2].starts_with("z.rpz:3: A:"), "{e:?}");
        assert!(
            e[3].starts_with("z.rpz:4: type: unknown record type `FOO`"),
            "{e:?}"
        );
        assert!(e[4].starts_with("z.rpz:5: class:"), "{e:?}");
        assert!(e[5].starts_with("z.rpz:6: syntax: unterminated"), "{e:?}");
    }

    #[test]
    fn unclosed_parenthesis() {
        let e = parse_feed(b"@ SOA a. b. ( 1 2\n 3 4\n", FeedFormat::Rpz, "u").unwrap_err();
        assert_eq!(e[0].line, 1);
        assert!(e[0].message.contains("unclosed"));
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl(b"3600"), Some(3600));
        assert_eq!(parse_ttl(b"1h30m"), Some(5400));
        assert_eq!(parse_ttl(b"1W"), Some(604_800));
        assert_eq!(parse_ttl(b"h"), None);
        assert_eq!(parse_ttl(b"1h30"), None);
        assert_eq!(parse_ttl(b"99999999999"), None);
    }

    #[test]
    fn the_bundled_example_feed_parses() {
        let p = parse(include_str!("../../../../etc/feeds/example.rpz"));
        assert_eq!(p.rules.len(), 8);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }
}
