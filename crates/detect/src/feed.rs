//! Threat feeds: RPZ zone files, hosts files and plain domain lists.
//!
//! Every format is parsed straight from the file's bytes into one
//! [`FeedRules`] arena, without an allocation per line, so that a
//! million-entry feed loads in well under a second.
//!
//! A feed is all or nothing: any error (a malformed name, a bad address, an
//! unclosed parenthesis) fails the whole file, so that the loader keeps the
//! last good version rather than serving half a feed. Errors name the file,
//! line and field. Lines that are valid but mean something Parapet does not
//! implement (RPZ IP triggers, `localhost` in a hosts file) are skipped with
//! a warning.

mod rpz;

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use parapet_core::name::{NameError, push_text_as_key};
use parapet_core::policy::{Action, FeedRules, Trigger};

/// Errors reported before giving up on a file.
pub const MAX_ERRORS: usize = 20;
/// Warnings kept (the count of the rest is reported in one more warning).
pub const MAX_WARNINGS: usize = 1000;
/// The longest line a feed may have, in bytes. Real feed lines are under
/// 300 bytes; a longer one is garbage, or a file that is not a feed.
pub const MAX_LINE: usize = 4096;
/// The longest error or warning message, in bytes.
pub const MAX_MESSAGE: usize = 200;
/// The most of a feed's own text a message quotes, in bytes.
const MAX_QUOTE: usize = 64;
/// The longest RPZ entry that parentheses spread over several lines.
const MAX_ENTRY: usize = 64 * 1024;
/// Bytes read from a feed file at a time.
const CHUNK: usize = 256 * 1024;

/// The formats a feed file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedFormat {
    /// A DNS Response Policy Zone in zone-file syntax (QNAME triggers).
    Rpz,
    /// `ADDRESS NAME [NAME...]` lines, as in `/etc/hosts` blocklists.
    Hosts,
    /// One domain per line.
    Domains,
}

impl FeedFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rpz => "rpz",
            Self::Hosts => "hosts",
            Self::Domains => "domains",
        }
    }
}

impl fmt::Display for FeedFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown feed format `{0}` (expected rpz, hosts or domains)")]
pub struct UnknownFormat(String);

impl FromStr for FeedFormat {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rpz" => Ok(Self::Rpz),
            "hosts" => Ok(Self::Hosts),
            "domains" => Ok(Self::Domains),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// A feed that parsed: its rules, and what was skipped.
#[derive(Debug, Default)]
pub struct ParsedFeed {
    pub rules: FeedRules,
    pub warnings: Vec<FeedWarning>,
}

/// A line that was valid but skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedWarning {
    pub line: usize,
    pub message: String,
}

/// Why a feed file was refused: file, line (1-based; 0 for the file as a
/// whole), the field at fault, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct FeedError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// Reads and parses a feed file, a chunk at a time: memory stays bounded
/// by the rules kept, whatever the file holds.
pub fn load_feed(path: &Path, format: FeedFormat) -> Result<ParsedFeed, Vec<FeedError>> {
    let file = path.display().to_string();
    match std::fs::File::open(path) {
        Ok(f) => parse_reader(f, format, &file),
        Err(e) => Err(vec![FeedError {
            file,
            line: 0,
            field: "file".into(),
            message: clip(format!("cannot read: {e}")),
        }]),
    }
}

/// Parses a feed held in memory; `file` names it in errors.
pub fn parse_feed(
    data: &[u8],
    format: FeedFormat,
    file: &str,
) -> Result<ParsedFeed, Vec<FeedError>> {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let mut parse = Parse::new(format, file);
    parse.chunk(data, true);
    parse.finish()
}

/// Parses a feed read from `reader` in chunks of [`CHUNK`] bytes. Each
/// chunk handed to the parser ends at a line's end; a line with no end
/// within [`MAX_LINE`] bytes, or an RPZ entry left open for
/// [`MAX_ENTRY`] bytes, stops the parse with an error.
pub fn parse_reader(
    mut reader: impl Read,
    format: FeedFormat,
    file: &str,
) -> Result<ParsedFeed, Vec<FeedError>> {
    let mut parse = Parse::new(format, file);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut bom_checked = false;
    loop {
        let old = buf.len();
        buf.resize(old + CHUNK, 0);
        let n = loop {
            match reader.read(&mut buf[old..]) {
                Ok(n) => break Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(old + *n.as_ref().unwrap_or(&0));
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                let line = parse.line();
                parse
                    .sink()
                    .error(line, "file", format!("cannot read: {e}"));
                break;
            }
        };
        let eof = n == 0;
        if !bom_checked && (buf.len() >= 3 || eof) {
            if buf.starts_with(b"\xef\xbb\xbf") {
                buf.drain(..3);
            }
            bom_checked = true;
        }
        // only whole lines go to the parser, until the end of the file
        let usable = match buf.iter().rposition(|&b| b == b'\n') {
            _ if eof => buf.len(),
            Some(i) => i + 1,
            None => 0,
        };
        let tail = buf.len() - usable;
        if tail > MAX_LINE {
            let line = parse.line() + buf[..usable].iter().filter(|&&b| b == b'\n').count() + 1;
            parse.sink().error(
                line,
                "line",
                format!("longer than {MAX_LINE} bytes: this is not a feed line"),
            );
            break;
        }
        let used = parse.chunk(&buf[..usable], eof);
        buf.drain(..used);
        if eof || parse.done() {
            break;
        }
        if buf.len() - tail > MAX_ENTRY {
            let line = parse.line();
            parse.sink().error(
                line,
                "syntax",
                format!("`(` not closed within {} KiB", MAX_ENTRY / 1024),
            );
            break;
        }
    }
    parse.finish()
}

/// A parse in progress, fed a chunk of whole lines at a time.
enum Parse<'f> {
    Rpz(Box<rpz::Parser<'f>>),
    Lines(Box<Lines<'f>>),
}

impl<'f> Parse<'f> {
    fn new(format: FeedFormat, file: &'f str) -> Self {
        let sink = Sink::new(file);
        match format {
            FeedFormat::Rpz => Self::Rpz(Box::new(rpz::Parser::new(sink))),
            FeedFormat::Hosts => Self::Lines(Box::new(Lines::new(sink, hosts_line))),
            FeedFormat::Domains => Self::Lines(Box::new(Lines::new(sink, domains_line))),
        }
    }

    /// Parses what it can of `data`; returns the bytes used (an RPZ entry
    /// whose parentheses are still open is left for the next chunk).
    fn chunk(&mut self, data: &[u8], eof: bool) -> usize {
        match self {
            Self::Rpz(p) => p.chunk(data, eof),
            Self::Lines(l) => l.chunk(data),
        }
    }

    /// The number of lines parsed so far.
    fn line(&self) -> usize {
        match self {
            Self::Rpz(p) => p.line(),
            Self::Lines(l) => l.line,
        }
    }

    fn sink(&mut self) -> &mut Sink<'f> {
        match self {
            Self::Rpz(p) => &mut p.sink,
            Self::Lines(l) => &mut l.sink,
        }
    }

    /// Whether reading on is pointless (enough errors, or a syntax error
    /// that loses the parser's place).
    fn done(&self) -> bool {
        match self {
            Self::Rpz(p) => p.stopped(),
            Self::Lines(l) => l.sink.full(),
        }
    }

    fn finish(self) -> Result<ParsedFeed, Vec<FeedError>> {
        match self {
            Self::Rpz(p) => p.sink.finish(),
            Self::Lines(l) => l.sink.finish(),
        }
    }
}

/// Collects rules, warnings and errors while a feed is parsed.
struct Sink<'f> {
    file: &'f str,
    parsed: ParsedFeed,
    errors: Vec<FeedError>,
    extra_warnings: usize,
    /// Scratch buffer for one name in key form.
    key: Vec<u8>,
}

impl<'f> Sink<'f> {
    fn new(file: &'f str) -> Self {
        Self {
            file,
            parsed: ParsedFeed::default(),
            errors: Vec::new(),
            extra_warnings: 0,
            key: Vec::with_capacity(256),
        }
    }

    fn error(&mut self, line: usize, field: &str, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(FeedError {
                file: self.file.to_string(),
                line,
                field: field.to_string(),
                message: clip(message.into()),
            });
        }
    }

    /// Whether parsing should stop (enough errors reported).
    fn full(&self) -> bool {
        self.errors.len() >= MAX_ERRORS
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        if self.parsed.warnings.len() < MAX_WARNINGS {
            self.parsed.warnings.push(FeedWarning {
                line,
                message: clip(message.into()),
            });
        } else {
            self.extra_warnings += 1;
        }
    }

    fn finish(mut self) -> Result<ParsedFeed, Vec<FeedError>> {
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        if self.extra_warnings > 0 {
            let line = self.parsed.warnings.last().map_or(0, |w| w.line);
            self.parsed.warnings.push(FeedWarning {
                line,
                message: format!("and {} more lines skipped", self.extra_warnings),
            });
        }
        self.parsed.rules.shrink_to_fit();
        Ok(self.parsed)
    }
}

/// Cuts a message to [`MAX_MESSAGE`] bytes with control characters
/// escaped, so that no feed line reaches a log or an alert whole.
fn clip(message: String) -> String {
    if message.len() <= MAX_MESSAGE && !message.chars().any(char::is_control) {
        return message;
    }
    escape_cut(message.as_bytes(), MAX_MESSAGE)
}

/// A piece of a feed quoted in a message: at most [`MAX_QUOTE`] bytes,
/// control bytes and bytes that are not UTF-8 escaped.
fn show(bytes: &[u8]) -> String {
    escape_cut(bytes, MAX_QUOTE)
}

/// `bytes` as text of at most `max` bytes (`…` marking a cut), with
/// control characters and invalid UTF-8 written as `\xNN` or `\u{N}`.
fn escape_cut(bytes: &[u8], max: usize) -> String {
    const MORE: &str = "…";
    let mut out = String::with_capacity(max.min(bytes.len() * 4) + MORE.len());
    let mut piece = String::with_capacity(12);
    let room = max - MORE.len();
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid().chars().map(|c| match c {
            c if c.is_control() && (c as u32) < 0x100 => format!("\\x{:02x}", c as u32),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        });
        let invalid = chunk.invalid().iter().map(|b| format!("\\x{b:02x}"));
        for p in valid.chain(invalid) {
            piece.clear();
            piece.push_str(&p);
            if out.len() + piece.len() > room {
                out.push_str(MORE);
                return out;
            }
            out.push_str(&piece);
        }
    }
    out
}

/// The hosts and domain-list parsers: `each` runs on every line with its
/// comment removed and whitespace trimmed, skipping empty lines.
struct Lines<'f> {
    sink: Sink<'f>,
    each: fn(&mut Sink<'_>, usize, &[u8]),
    /// Lines parsed so far.
    line: usize,
}

impl<'f> Lines<'f> {
    fn new(sink: Sink<'f>, each: fn(&mut Sink<'_>, usize, &[u8])) -> Self {
        Self {
            sink,
            each,
            line: 0,
        }
    }

    fn chunk(&mut self, data: &[u8]) -> usize {
        let mut rest = data;
        while !rest.is_empty() && !self.sink.full() {
            let (raw, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            rest = next;
            self.line += 1;
            if raw.len() > MAX_LINE {
                self.sink.error(
                    self.line,
                    "line",
                    format!("longer than {MAX_LINE} bytes: this is not a feed line"),
                );
                continue;
            }
            let line = match memchr_hash(raw) {
                Some(p) => &raw[..p],
                None => raw,
            }
            .trim_ascii();
            if !line.is_empty() {
                (self.each)(&mut self.sink, self.line, line);
            }
        }
        data.len()
    }
}

fn memchr_hash(line: &[u8]) -> Option<usize> {
    line.iter().position(|&b| b == b'#')
}

/// Names a hosts file maps that are not threats.
const HOSTS_IGNORED: &[&[u8]] = &[
    b"localhost",
    b"localhost.localdomain",
    b"local",
    b"broadcasthost",
    b"ip6-localhost",
    b"ip6-loopback",
    b"ip6-localnet",
    b"ip6-mcastprefix",
    b"ip6-allnodes",
    b"ip6-allrouters",
    b"ip6-allhosts",
];

fn domains_line(sink: &mut Sink<'_>, line_no: usize, line: &[u8]) {
    if line.iter().any(u8::is_ascii_whitespace) {
        sink.error(
            line_no,
            "domain",
            format!(
                "`{}` contains whitespace: a domain list has one name per line",
                show(line)
            ),
        );
        return;
    }
    push_list_name(sink, line_no, "domain", line);
}

fn hosts_line(sink: &mut Sink<'_>, line_no: usize, line: &[u8]) {
    let mut fields = line
        .split(u8::is_ascii_whitespace)
        .filter(|f| !f.is_empty());
    let Some(addr) = fields.next() else { return };
    let addr_ok = std::str::from_utf8(addr)
        .ok()
        .map(|a| a.split('%').next().unwrap_or(a))
        .is_some_and(|a| a.parse::<IpAddr>().is_ok());
    if !addr_ok {
        sink.error(
            line_no,
            "address",
            format!(
                "`{}` is not an IP address (hosts lines are `ADDRESS NAME...`)",
                show(addr)
            ),
        );
        return;
    }
    let mut names = 0;
    for name in fields {
        names += 1;
        if HOSTS_IGNORED.iter().any(|i| i.eq_ignore_ascii_case(name)) {
            continue;
        }
        push_list_name(sink, line_no, "name", name);
    }
    if names == 0 {
        sink.error(line_no, "name", "address with no host name");
    }
}

/// Validates a name from a hosts file or domain list and adds it as a
/// subtree block (`*.name` as a strict-subdomain block).
fn push_list_name(sink: &mut Sink<'_>, line_no: usize, field: &str, name: &[u8]) {
    let (kind, body) = match name.strip_prefix(b"*.") {
        Some(rest) => (Trigger::Wildcard, rest),
        None => (Trigger::Subtree, name),
    };
    if let Some(&bad) = body
        .iter()
        .find(|&&b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'))
    {
        let what = if bad.is_ascii_graphic() {
            format!("character `{}`", bad as char)
        } else {
            format!("byte 0x{bad:02x} (names must be ASCII; write IDNs as xn--)")
        };
        sink.error(
            line_no,
            field,
            format!("`{}` is not a domain name: {what}", show(name)),
        );
        return;
    }
    // valid ASCII from here on
    let text = std::str::from_utf8(body).unwrap_or_default();
    if text.parse::<std::net::Ipv4Addr>().is_ok() {
        sink.warn(line_no, format!("`{text}` is an IP address, not a name"));
        return;
    }
    sink.key.clear();
    let mut key = std::mem::take(&mut sink.key);
    match push_text_as_key(text, &mut key) {
        Ok(()) if key.is_empty() => {
            sink.error(line_no, field, "the root name `.` cannot be blocked")
        }
        Ok(()) => {
            if !key[1 + key[0] as usize..].is_empty() || kind == Trigger::Wildcard {
                sink.parsed.rules.push(&key, kind, Action::Block);
            } else {
                sink.warn(
                    line_no,
                    format!("`{text}` is a whole top-level domain; skipped"),
                );
            }
        }
        Err(e) => sink.error(line_no, field, name_error(&e)),
    }
    sink.key = key;
}

/// Plain-English reason for a name error.
fn name_error(e: &NameError) -> String {
    match e {
        NameError::EmptyLabel(t) => format!(
            "`{}` has an empty label (two dots in a row, or a leading dot)",
            show(t.as_bytes())
        ),
        NameError::LabelTooLong(t) => format!(
            "`{}` has a label longer than 63 characters",
            show(t.as_bytes())
        ),
        NameError::NameTooLong(t) => format!("`{}` is longer than 255 octets", show(t.as_bytes())),
        NameError::BadEscape(t) => format!("`{}` has a bad `\\` escape", show(t.as_bytes())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::name::key_to_text;

    fn rules(data: &str, format: FeedFormat) -> Vec<(String, Trigger, Action)> {
        let parsed = parse_feed(data.as_bytes(), format, "t").unwrap();
        parsed
            .rules
            .iter()
            .map(|(k, t, a)| (key_to_text(k), t, a))
            .collect()
    }

    fn errors(data: &str, format: FeedFormat) -> Vec<String> {
        parse_feed(data.as_bytes(), format, "f.txt")
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn domain_list() {
        let r = rules(
            "\u{feff}# comment\nEvil.Example\r\n\n  tracker.example.  # trailing\n*.wild.example\n",
            FeedFormat::Domains,
        );
        assert_eq!(
            r,
            vec![
                ("evil.example".into(), Trigger::Subtree, Action::Block),
                ("tracker.example".into(), Trigger::Subtree, Action::Block),
                ("wild.example".into(), Trigger::Wildcard, Action::Block),
            ]
        );
    }

    #[test]
    fn domain_list_errors_name_line_and_field() {
        let e = errors(
            "good.example\nbad..example\nalso good.example\nbü.example\n",
            FeedFormat::Domains,
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with("f.txt:2: domain: `bad..example` has an empty label"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("f.txt:3: domain: `also good.example` contains whitespace"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("f.txt:4: domain:") && e[2].contains("xn--"),
            "{e:?}"
        );
    }

    #[test]
    fn errors_stop_at_the_limit() {
        let data = "a..b\n".repeat(100);
        assert_eq!(errors(&data, FeedFormat::Domains).len(), MAX_ERRORS);
    }

    #[test]
    fn hosts_file() {
        let parsed = parse_feed(
            b"127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n0.0.0.0 a.example b.example # two\n\
              0.0.0.0 0.0.0.0\nfe80::1%lo0 c.example\n0.0.0.0 com\n",
            FeedFormat::Hosts,
            "h",
        )
        .unwrap();
        let names: Vec<_> = parsed
            .rules
            .iter()
            .map(|(k, _, _)| key_to_text(k))
            .collect();
        assert_eq!(names, ["a.example", "b.example", "c.example"]);
        assert_eq!(parsed.warnings.len(), 2, "{:?}", parsed.warnings);
        assert_eq!(parsed.warnings[0].line, 4);
        assert!(parsed.warnings[1].message.contains("top-level"));
    }

    #[test]
    fn hosts_errors() {
        let e = errors("bad.example\n0.0.0.0\n0.0.0.0 x..y\n", FeedFormat::Hosts);
        assert!(e[0].starts_with("f.txt:1: address:"), "{e:?}");
        assert!(
            e[1].starts_with("f.txt:2: name: address with no host name"),
            "{e:?}"
        );
        assert!(e[2].starts_with("f.txt:3: name:"), "{e:?}");
    }

    #[test]
    fn unreadable_file_is_line_zero() {
        let e = load_feed(Path::new("/nonexistent/feed.txt"), FeedFormat::Domains).unwrap_err();
        assert_eq!(e[0].line, 0);
        assert_eq!(e[0].field, "file");
    }

    #[test]
    fn format_names_round_trip() {
        for f in [FeedFormat::Rpz, FeedFormat::Hosts, FeedFormat::Domains] {
            assert_eq!(f.as_str().parse::<FeedFormat>().unwrap(), f);
        }
        assert!("csv".parse::<FeedFormat>().is_err());
    }

    /// A reader handing out `data` a few bytes at a time, then `tail`
    /// repeated for ever (when not empty), counting what it gave.
    struct Trickle<'a> {
        data: &'a [u8],
        tail: &'a [u8],
        step: usize,
        given: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = if self.data.is_empty() {
                if self.tail.is_empty() {
                    return Ok(0);
                }
                let n = buf.len().min(self.tail.len());
                buf[..n].copy_from_slice(&self.tail[..n]);
                n
            } else {
                let n = buf.len().min(self.step).min(self.data.len());
                buf[..n].copy_from_slice(&self.data[..n]);
                self.data = &self.data[n..];
                n
            };
            self.given += n;
            Ok(n)
        }
    }

    fn trickle<'a>(data: &'a [u8], step: usize) -> Trickle<'a> {
        Trickle {
            data,
            tail: b"",
            step,
            given: 0,
        }
    }

    #[test]
    fn a_feed_read_in_small_pieces_parses_as_in_memory() {
        let rpz = "\u{feff}$TTL 60\n@ SOA ns. admin. ( 1\n 2 3\n 4 5 )\nnx.test CNAME .\n\
                   multi.test ( CNAME\n . )\nlocal.test A 192.0.2.1\n  A 192.0.2.2\nlast.test CNAME *.";
        let domains = "\u{feff}a.example\n# c\nb.example\r\nc.example";
        for (text, format) in [(rpz, FeedFormat::Rpz), (domains, FeedFormat::Domains)] {
            let whole = parse_feed(text.as_bytes(), format, "t").unwrap();
            for step in [1, 2, 3, 7, 64] {
                let parsed = parse_reader(trickle(text.as_bytes(), step), format, "t").unwrap();
                let a: Vec<_> = whole.rules.iter().collect();
                let b: Vec<_> = parsed.rules.iter().collect();
                assert_eq!(a, b, "{format} in steps of {step}");
                assert_eq!(whole.rules.local, parsed.rules.local);
            }
        }
        // line numbers carry across pieces
        let e =
            parse_reader(trickle(b"a.example\n\nx..y\n", 3), FeedFormat::Domains, "t").unwrap_err();
        assert_eq!(e[0].line, 3);
        let e = parse_reader(
            trickle(b"$TTL 1\n\na ( A\n1.2.3.4 )\nx.test FOO 1\n", 2),
            FeedFormat::Rpz,
            "t",
        )
        .unwrap_err();
        assert_eq!(e[0].line, 5, "{e:?}");
    }

    #[test]
    fn a_line_over_4k_is_an_error_that_does_not_echo_it() {
        for format in [FeedFormat::Rpz, FeedFormat::Hosts, FeedFormat::Domains] {
            let text = format!("\n{}\n", "a".repeat(MAX_LINE + 1));
            let e = parse_feed(text.as_bytes(), format, "f").unwrap_err();
            assert_eq!(e[0].line, 2, "{format}: {e:?}");
            assert!(e[0].message.contains("4096"), "{e:?}");
            assert!(!e[0].message.contains("aaaa"), "{e:?}");
        }
        // a line of exactly the limit is fine
        let name = format!("{}.example", ["a"; 2040].join("."));
        assert!(name.len() <= MAX_LINE);
        assert!(
            parse_feed(name.as_bytes(), FeedFormat::Domains, "f")
                .is_err_and(|e| e[0].field != "line")
        );
    }

    #[test]
    fn messages_are_cut_at_200_bytes_with_control_bytes_escaped() {
        let bad = format!("x\x01\x1b[31m{}\u{85} y", "é".repeat(1000));
        let e = errors(&bad, FeedFormat::Domains);
        assert!(e[0].len() < MAX_MESSAGE + 40, "{e:?}");
        assert!(e[0].contains("x\\x01\\x1b[31m"), "{e:?}");
        assert!(!e[0].chars().any(char::is_control), "{e:?}");
        assert!(e[0].contains('…'), "{e:?}");
        // invalid UTF-8 is shown as escapes too, and warnings are cut the same way
        assert_eq!(show(b"a\xff\n"), "a\\xff\\x0a");
        assert_eq!(clip("short".into()), "short");
        let long = clip("z".repeat(1000));
        assert!(long.len() <= MAX_MESSAGE && long.ends_with('…'));
    }

    #[test]
    fn a_single_line_file_fails_after_reading_a_bounded_amount() {
        let mut reader = Trickle {
            data: b"",
            tail: &[0u8; 4096],
            step: 0,
            given: 0,
        };
        let e = parse_reader(&mut reader, FeedFormat::Domains, "big").unwrap_err();
        assert_eq!((e.len(), e[0].line, e[0].field.as_str()), (1, 1, "line"));
        assert!(
            reader.given <= CHUNK + MAX_LINE,
            "read {} bytes",
            reader.given
        );
        // an RPZ entry whose parenthesis never closes, on short lines
        let mut reader = Trickle {
            data: b"@ SOA a. b. (\n",
            tail: b"1\n",
            step: 64,
            given: 0,
        };
        let e = parse_reader(&mut reader, FeedFormat::Rpz, "open").unwrap_err();
        assert!(e[0].message.contains("not closed"), "{e:?}");
        assert!(
            reader.given <= 2 * CHUNK + MAX_ENTRY,
            "read {} bytes",
            reader.given
        );
    }

    #[test]
    fn garbage_stops_at_the_error_limit_without_reading_on() {
        let line = b"\x00\x01 garbage \xff\n";
        let mut reader = Trickle {
            data: b"",
            tail: line,
            step: 0,
            given: 0,
        };
        let e = parse_reader(&mut reader, FeedFormat::Hosts, "g").unwrap_err();
        assert_eq!(e.len(), MAX_ERRORS);
        assert!(reader.given <= 2 * CHUNK, "read {} bytes", reader.given);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            for f in [FeedFormat::Rpz, FeedFormat::Hosts, FeedFormat::Domains] {
                let _ = parse_feed(&data, f, "p");
            }
        }

        #[test]
        fn every_valid_name_becomes_one_rule(
            names in proptest::collection::vec("[a-z0-9]{1,10}(\\.[a-z0-9-]{1,10}){0,3}\\.[a-z]{2,6}", 1..50)
        ) {
            let text = names.join("\n");
            let parsed = parse_feed(text.as_bytes(), FeedFormat::Domains, "p").unwrap();
            let got: Vec<String> = parsed.rules.iter().map(|(k, _, _)| key_to_text(k)).collect();
            proptest::prop_assert_eq!(got, names);
        }
    }
}
