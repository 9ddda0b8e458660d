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
//! Response-IP, NSIP, NSDNAME and client-IP triggers, `rpz-tcp-only.` and
//! `*.`-prefixed CNAME targets are skipped with a warning.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use parapet_core::name::{key_to_text, push_text_as_key};
use parapet_core::policy::{Action, LocalRecord, Trigger, rtype};

use super::{Sink, name_error};

/// One token of a zone-file entry.
#[derive(Debug, Clone, Copy)]
struct Tok<'a> {
    text: &'a [u8],
    quoted: bool,
}

/// Splits a zone file into entries (one record or directive each, joined
/// across lines inside parentheses).
struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
}

/// Where an entry starts, and whether its owner was left blank.
struct EntryStart {
    line: usize,
    blank_owner: bool,
}

impl<'a> Lexer<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            line: 1,
        }
    }

    /// Reads the next non-empty entry into `toks`. Errors carry the line.
    fn next_entry(
        &mut self,
        toks: &mut Vec<Tok<'a>>,
    ) -> Result<Option<EntryStart>, (usize, String)> {
        toks.clear();
        let data = self.data;
        loop {
            if self.pos >= data.len() {
                return Ok(None);
            }
            let start_line = self.line;
            let blank_owner = matches!(data[self.pos], b' ' | b'\t');
            let mut depth = 0u32;
            loop {
                let Some(&b) = data.get(self.pos) else {
                    if depth > 0 {
                        return Err((start_line, "unclosed `(`".into()));
                    }
                    break;
                };
                match b {
                    b'\n' => {
                        self.pos += 1;
                        self.line += 1;
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
                return Ok(Some(EntryStart {
                    line: start_line,
                    blank_owner,
                }));
            }
        }
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

struct Parser<'s, 'f> {
    sink: &'s mut Sink<'f>,
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
    target: Vec<u8>,
    passthru: Vec<u8>,
    drop: Vec<u8>,
    tcp_only: Vec<u8>,
}

const SPECIAL_TRIGGERS: &[&[u8]] = &[b"rpz-ip", b"rpz-nsip", b"rpz-nsdname", b"rpz-client-ip"];

pub(super) fn parse(data: &[u8], sink: &mut Sink<'_>) {
    let mut p = Parser {
        sink,
        origin: Vec::new(),
        first_origin: None,
        apex: None,
        default_ttl: None,
        last_ttl: 3600,
        owner: Vec::with_capacity(256),
        have_owner: false,
        local: HashMap::new(),
        target: Vec::with_capacity(256),
        passthru: key_of("rpz-passthru"),
        drop: key_of("rpz-drop"),
        tcp_only: key_of("rpz-tcp-only"),
    };
    let mut lexer = Lexer::new(data);
    let mut toks = Vec::with_capacity(16);
    loop {
        match lexer.next_entry(&mut toks) {
            Ok(None) => break,
            Ok(Some(start)) => p.entry(start, &toks),
            Err((line, message)) => {
                p.sink.error(line, "syntax", message);
                break;
            }
        }
        if p.sink.full() {
            break;
        }
    }
}

impl Parser<'_, '_> {
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
            self.sink.error(
                line,
                field,
                format!("`{}` is not UTF-8", String::from_utf8_lossy(t)),
            );
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
                    self.sink.error(
                        line,
                        "class",
                        format!("class {} is not IN", String::from_utf8_lossy(t)),
                    );
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
                format!(
                    "unknown record type `{}`",
                    String::from_utf8_lossy(type_tok.text)
                ),
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
                format!("unknown directive `{}`", String::from_utf8_lossy(name)),
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
        if SPECIAL_TRIGGERS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(last_label))
        {
            let kind = String::from_utf8_lossy(last_label).into_owned();
            self.sink
                .warn(line, format!("{kind} triggers are not supported"));
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
                let mut wire = Vec::with_capacity(self.target.len() + 1);
                wire.extend_from_slice(&self.target);
                wire.push(0);
                LocalRecord {
                    rtype: rtype::CNAME,
                    ttl,
                    rdata: wire.into(),
                }
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
                    format!(
                        "{} local data is not supported",
                        String::from_utf8_lossy(type_text)
                    ),
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
            "$ORIGIN rpz.\n@ SOA a. b. 1 2 3 4 5\n32.1.2.0.192.rpz-ip CNAME .\nns.rpz-nsdname CNAME .\n\
             tcp.test CNAME rpz-tcp-only.\npre.test CNAME *.garden.example.\nout.example. CNAME .\n\
             srv.test SRV 0 0 443 x.example.\nok.test CNAME .\n",
        );
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.warnings.len(), 6, "{:?}", p.warnings);
        assert_eq!(p.warnings[0].line, 3);
        assert!(p.warnings[0].message.contains("rpz-ip"));
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
