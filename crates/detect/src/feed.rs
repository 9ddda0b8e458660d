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
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

use parapet_core::name::{NameError, push_text_as_key};
use parapet_core::policy::{Action, FeedRules, Trigger};

/// Errors reported before giving up on a file.
pub const MAX_ERRORS: usize = 20;
/// Warnings kept (the count of the rest is reported in one more warning).
pub const MAX_WARNINGS: usize = 1000;

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

/// Reads and parses a feed file.
pub fn load_feed(path: &Path, format: FeedFormat) -> Result<ParsedFeed, Vec<FeedError>> {
    let file = path.display().to_string();
    match std::fs::read(path) {
        Ok(data) => parse_feed(&data, format, &file),
        Err(e) => Err(vec![FeedError {
            file,
            line: 0,
            field: "file".into(),
            message: format!("cannot read: {e}"),
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
    let mut sink = Sink::new(file);
    match format {
        FeedFormat::Rpz => rpz::parse(data, &mut sink),
        FeedFormat::Hosts => parse_lines(data, &mut sink, hosts_line),
        FeedFormat::Domains => parse_lines(data, &mut sink, domains_line),
    }
    sink.finish()
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
                message: message.into(),
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
                message: message.into(),
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

/// Runs `each` on every line with its comment removed and whitespace
/// trimmed, skipping empty lines.
fn parse_lines(data: &[u8], sink: &mut Sink<'_>, each: fn(&mut Sink<'_>, usize, &[u8])) {
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let line = match memchr_hash(raw) {
            Some(p) => &raw[..p],
            None => raw,
        }
        .trim_ascii();
        if line.is_empty() {
            continue;
        }
        each(sink, i + 1, line);
        if sink.full() {
            return;
        }
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
                String::from_utf8_lossy(line)
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
                String::from_utf8_lossy(addr)
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
            format!(
                "`{}` is not a domain name: {what}",
                String::from_utf8_lossy(name)
            ),
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
        NameError::EmptyLabel(t) => {
            format!("`{t}` has an empty label (two dots in a row, or a leading dot)")
        }
        NameError::LabelTooLong(t) => format!("`{t}` has a label longer than 63 characters"),
        NameError::NameTooLong(t) => format!("`{t}` is longer than 255 octets"),
        NameError::BadEscape(t) => format!("`{t}` has a bad `\\` escape"),
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
