//! SPF (RFC 7208): a strict parser, record-level checks, and an evaluator
//! that walks the whole include/redirect tree counting DNS lookups exactly
//! as §4.6.4 defines them — and says which term spent each lookup and which
//! lookups were void.
//!
//! Counted (limit 10): `include`, `a`, `mx`, `ptr`, `exists` and
//! `redirect`, in the record and in every record they pull in. Not counted:
//! `all`, `ip4`, `ip6`, `exp`. Each `mx` may name at most 10 mail servers
//! (whose address lookups are not terms). Void lookups (limit 2): `a`, `mx`
//! and `exists` lookups that return no records or NXDOMAIN.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::dns::{Dns, Lookup};
use crate::finding::Finding;

/// The most DNS-querying terms an evaluation may use.
pub const LOOKUP_LIMIT: u32 = 10;
/// The most void lookups an evaluation may meet.
pub const VOID_LIMIT: u32 = 2;
/// Longest record NCSC Mail Check accepts (fits one UDP answer).
pub const MAX_LEN: usize = 450;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

impl Qualifier {
    pub fn symbol(self) -> char {
        match self {
            Self::Pass => '+',
            Self::Fail => '-',
            Self::SoftFail => '~',
            Self::Neutral => '?',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    All,
    Include(String),
    A {
        domain: Option<String>,
        v4: Option<u8>,
        v6: Option<u8>,
    },
    Mx {
        domain: Option<String>,
        v4: Option<u8>,
        v6: Option<u8>,
    },
    Ptr(Option<String>),
    Ip4(Ipv4Addr, u8),
    Ip6(Ipv6Addr, u8),
    Exists(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    Directive(Qualifier, Mechanism),
    Redirect(String),
    Exp(String),
    /// An unknown modifier (allowed, ignored).
    Unknown(String, String),
}

impl Term {
    fn is_mechanism(&self) -> bool {
        matches!(self, Term::Directive(..))
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Directive(q, m) => {
                if *q != Qualifier::Pass {
                    write!(f, "{}", q.symbol())?;
                }
                let cidr = |f: &mut fmt::Formatter<'_>, v4: &Option<u8>, v6: &Option<u8>| {
                    if let Some(p) = v4 {
                        write!(f, "/{p}")?;
                    }
                    if let Some(p) = v6 {
                        write!(f, "//{p}")?;
                    }
                    Ok(())
                };
                match m {
                    Mechanism::All => f.write_str("all"),
                    Mechanism::Include(d) => write!(f, "include:{d}"),
                    Mechanism::A { domain, v4, v6 } => {
                        f.write_str("a")?;
                        if let Some(d) = domain {
                            write!(f, ":{d}")?;
                        }
                        cidr(f, v4, v6)
                    }
                    Mechanism::Mx { domain, v4, v6 } => {
                        f.write_str("mx")?;
                        if let Some(d) = domain {
                            write!(f, ":{d}")?;
                        }
                        cidr(f, v4, v6)
                    }
                    Mechanism::Ptr(d) => match d {
                        Some(d) => write!(f, "ptr:{d}"),
                        None => f.write_str("ptr"),
                    },
                    Mechanism::Ip4(a, p) => write!(f, "ip4:{a}/{p}"),
                    Mechanism::Ip6(a, p) => write!(f, "ip6:{a}/{p}"),
                    Mechanism::Exists(d) => write!(f, "exists:{d}"),
                }
            }
            Term::Redirect(d) => write!(f, "redirect={d}"),
            Term::Exp(d) => write!(f, "exp={d}"),
            Term::Unknown(n, v) => write!(f, "{n}={v}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpfRecord {
    pub raw: String,
    pub terms: Vec<Term>,
}

impl SpfRecord {
    pub fn redirect(&self) -> Option<&str> {
        self.terms.iter().find_map(|t| match t {
            Term::Redirect(d) => Some(d.as_str()),
            _ => None,
        })
    }

    /// The qualifier of the first `all`, if any.
    pub fn all(&self) -> Option<Qualifier> {
        self.terms.iter().find_map(|t| match t {
            Term::Directive(q, Mechanism::All) => Some(*q),
            _ => None,
        })
    }
}

/// Whether a TXT string is an SPF record (`v=spf1` then a space or the end).
pub fn is_spf(txt: &str) -> bool {
    let t = txt.as_bytes();
    t.len() >= 6 && t[..6].eq_ignore_ascii_case(b"v=spf1") && (t.len() == 6 || t[6] == b' ')
}

/// Picks the SPF record among the TXT records of a name: `Ok(None)` when
/// there is none, an error finding when there are several (RFC 7208 §4.5:
/// permerror).
pub fn select(txts: &[String]) -> Result<Option<String>, Finding> {
    let spf: Vec<&String> = txts.iter().filter(|t| is_spf(t)).collect();
    match spf.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(Finding::error(
            "spf.multiple_records",
            format!(
                "{} SPF records were found; receivers must treat that as a permanent error, so SPF fails for all your mail. Merge them into one record.",
                many.len()
            ),
        )
        .on(many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" | "))),
    }
}

/// Parses an SPF record. Returns it when every term parsed, and a finding
/// per bad term (code `spf.syntax`).
pub fn parse(txt: &str) -> (Option<SpfRecord>, Vec<Finding>) {
    let mut findings = Vec::new();
    if !is_spf(txt) {
        findings.push(
            Finding::error(
                "spf.syntax",
                "an SPF record must start with `v=spf1` followed by a space",
            )
            .on(txt),
        );
        return (None, findings);
    }
    let mut terms = Vec::new();
    for word in txt[6..].split(' ').filter(|w| !w.is_empty()) {
        match parse_term(word) {
            Ok(t) => terms.push(t),
            Err(why) => findings.push(
                Finding::error(
                    "spf.syntax",
                    format!(
                        "`{word}`: {why}; receivers treat the whole record as a permanent error"
                    ),
                )
                .on(txt),
            ),
        }
    }
    let rec = findings.is_empty().then(|| SpfRecord {
        raw: txt.to_string(),
        terms,
    });
    (rec, findings)
}

fn parse_term(word: &str) -> Result<Term, String> {
    // modifier: name=value, name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
    if let Some((name, value)) = word.split_once('=') {
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid_name && !name.contains(':') && !name.contains('/') {
            return match name.to_ascii_lowercase().as_str() {
                "redirect" => domain_spec(value).map(|d| Term::Redirect(d.to_string())),
                "exp" => domain_spec(value).map(|d| Term::Exp(d.to_string())),
                _ => {
                    macro_string(value)?;
                    Ok(Term::Unknown(name.to_string(), value.to_string()))
                }
            };
        }
    }
    let (qualifier, rest) = match word.as_bytes()[0] {
        b'+' => (Qualifier::Pass, &word[1..]),
        b'-' => (Qualifier::Fail, &word[1..]),
        b'~' => (Qualifier::SoftFail, &word[1..]),
        b'?' => (Qualifier::Neutral, &word[1..]),
        _ => (Qualifier::Pass, word),
    };
    let (name, arg) = match rest.find([':', '/']) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let lower = name.to_ascii_lowercase();
    let colon_arg = |arg: Option<&str>| -> Result<Option<String>, String> {
        match arg {
            None => Ok(None),
            Some(a) => match a.strip_prefix(':') {
                Some(d) => domain_spec(d).map(|d| Some(d.to_string())),
                None => Err("unexpected `/`".into()),
            },
        }
    };
    let m = match lower.as_str() {
        "all" => {
            if arg.is_some() {
                return Err("`all` takes no argument".into());
            }
            Mechanism::All
        }
        "include" => Mechanism::Include(
            colon_arg(arg)?.ok_or("`include` needs a domain: `include:example.com`")?,
        ),
        "exists" => Mechanism::Exists(colon_arg(arg)?.ok_or("`exists` needs a domain")?),
        "ptr" => Mechanism::Ptr(colon_arg(arg)?),
        "a" | "mx" => {
            let (domain, v4, v6) = match arg {
                None => (None, None, None),
                Some(a) => {
                    let (dom, cidr) = match a.strip_prefix(':') {
                        Some(r) => match r.find('/') {
                            Some(i) => (Some(&r[..i]), &r[i..]),
                            None => (Some(r), ""),
                        },
                        None => (None, a),
                    };
                    let dom = dom.map(domain_spec).transpose()?.map(str::to_string);
                    let (v4, v6) = dual_cidr(cidr)?;
                    (dom, v4, v6)
                }
            };
            if lower == "a" {
                Mechanism::A { domain, v4, v6 }
            } else {
                Mechanism::Mx { domain, v4, v6 }
            }
        }
        "ip4" => {
            let a = arg
                .and_then(|a| a.strip_prefix(':'))
                .ok_or("`ip4` needs an address: `ip4:192.0.2.0/24`")?;
            let (ip, len) = match a.split_once('/') {
                Some((ip, l)) => (ip, cidr_len(l, 32)?),
                None => (a, 32),
            };
            let ip: Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("`{ip}` is not an IPv4 address"))?;
            Mechanism::Ip4(ip, len)
        }
        "ip6" => {
            let a = arg
                .and_then(|a| a.strip_prefix(':'))
                .ok_or("`ip6` needs an address: `ip6:2001:db8::/32`")?;
            let (ip, len) = match a.rsplit_once('/') {
                Some((ip, l)) => (ip, cidr_len(l, 128)?),
                None => (a, 128),
            };
            let ip: Ipv6Addr = ip
                .parse()
                .map_err(|_| format!("`{ip}` is not an IPv6 address"))?;
            Mechanism::Ip6(ip, len)
        }
        "" => return Err("a qualifier with no mechanism".into()),
        _ => return Err(format!("unknown mechanism `{name}`")),
    };
    Ok(Term::Directive(qualifier, m))
}

fn cidr_len(s: &str, max: u8) -> Result<u8, String> {
    match s.parse::<u8>() {
        Ok(n) if n <= max && !(s.len() > 1 && s.starts_with('0')) => Ok(n),
        _ => Err(format!("`/{s}` is not a prefix length (0-{max})")),
    }
}

/// `/24`, `//64`, `/24//64` or nothing.
fn dual_cidr(s: &str) -> Result<(Option<u8>, Option<u8>), String> {
    if s.is_empty() {
        return Ok((None, None));
    }
    if let Some(v6) = s.strip_prefix("//") {
        return Ok((None, Some(cidr_len(v6, 128)?)));
    }
    let s = s.strip_prefix('/').ok_or("bad prefix length")?;
    match s.split_once("//") {
        Some((v4, v6)) => Ok((Some(cidr_len(v4, 32)?), Some(cidr_len(v6, 128)?))),
        None => Ok((Some(cidr_len(s, 32)?), None)),
    }
}

/// A domain-spec: a macro-string that, when it has no macros, is a domain
/// name with at least two labels... or any name ending in a macro.
fn domain_spec(s: &str) -> Result<&str, String> {
    if s.is_empty() {
        return Err("empty domain".into());
    }
    macro_string(s)?;
    if !s.contains('%') {
        let name = s.strip_suffix('.').unwrap_or(s);
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty() || l.len() > 63) {
            return Err(format!("`{s}` is not a domain name"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(format!("`{s}` is not a domain name"));
        }
    }
    Ok(s)
}

/// Validates macro syntax: `%{letter[digits][r][delimiters]}`, `%%`, `%_`, `%-`.
fn macro_string(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match b.get(i + 1) {
                Some(b'%' | b'_' | b'-') => i += 2,
                Some(b'{') => {
                    let end = s[i..].find('}').ok_or("unclosed macro `%{`")? + i;
                    let body = &s[i + 2..end];
                    let mut c = body.chars();
                    match c.next().map(|c| c.to_ascii_lowercase()) {
                        Some('s' | 'l' | 'o' | 'd' | 'i' | 'p' | 'v' | 'h' | 'c' | 'r' | 't') => {}
                        _ => return Err(format!("bad macro `%{{{body}}}`")),
                    }
                    let rest: String = c.collect();
                    let rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
                    let rest = rest.strip_prefix(['r', 'R']).unwrap_or(rest);
                    if !rest.chars().all(|c| ".-+,/_=".contains(c)) {
                        return Err(format!("bad macro `%{{{body}}}`"));
                    }
                    i = end + 1;
                }
                _ => return Err("a `%` must start a macro (`%{d}`) or be written `%%`".into()),
            }
        } else if !(0x21..=0x7e).contains(&b[i]) {
            return Err("non-printable or non-ASCII character".into());
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Findings about one record on its own (no DNS).
pub fn check_record(rec: &SpfRecord) -> Vec<Finding> {
    let mut f = Vec::new();
    let raw = rec.raw.as_str();
    let redirects = rec
        .terms
        .iter()
        .filter(|t| matches!(t, Term::Redirect(_)))
        .count();
    let exps = rec
        .terms
        .iter()
        .filter(|t| matches!(t, Term::Exp(_)))
        .count();
    if redirects > 1 || exps > 1 {
        f.push(
            Finding::error(
                "spf.duplicate_modifier",
                "`redirect` and `exp` may each appear only once; receivers treat a repeat as a permanent error",
            )
            .on(raw),
        );
    }
    if let Some(pos) = rec
        .terms
        .iter()
        .position(|t| matches!(t, Term::Directive(_, Mechanism::All)))
        && pos + 1 < rec.terms.len()
        && rec.terms[pos + 1..].iter().any(Term::is_mechanism)
    {
        f.push(
            Finding::warning(
                "spf.all_not_last",
                "mechanisms after `all` are never reached; put `all` last",
            )
            .on(raw),
        );
    }
    if rec.all().is_some() && redirects > 0 {
        f.push(
            Finding::warning(
                "spf.redirect_with_all",
                "`redirect` is ignored when the record has an `all` mechanism; keep one of them",
            )
            .on(raw),
        );
    }
    if rec
        .terms
        .iter()
        .any(|t| matches!(t, Term::Directive(_, Mechanism::Ptr(_))))
    {
        f.push(
            Finding::warning(
                "spf.ptr",
                "the `ptr` mechanism is slow, unreliable and deprecated (RFC 7208 §5.5); list the senders' addresses or use `a`/`include` instead",
            )
            .on(raw),
        );
    }
    let first_modifier = rec
        .terms
        .iter()
        .position(|t| matches!(t, Term::Redirect(_) | Term::Exp(_)));
    if let Some(m) = first_modifier
        && rec.terms[m..].iter().any(Term::is_mechanism)
    {
        f.push(
            Finding::warning(
                "spf.modifier_before_mechanism",
                "put `redirect` and `exp` after all mechanisms, as RFC 7208 recommends",
            )
            .on(raw),
        );
    }
    if raw.len() > MAX_LEN {
        f.push(
            Finding::warning(
                "spf.too_long",
                format!(
                    "the record is {} characters; keep it within {MAX_LEN} so the answer fits one UDP packet (use include: to split it)",
                    raw.len()
                ),
            )
            .on(raw),
        );
    }
    f
}

/// What evaluating a domain's SPF tree found.
#[derive(Debug, Clone, Default)]
pub struct SpfEval {
    /// DNS-querying terms, each as `domain: term`.
    pub lookups: Vec<String>,
    /// Void lookups, each as `domain: term`.
    pub void_lookups: Vec<String>,
    /// Every SPF record met, as (domain, record).
    pub records: Vec<(String, String)>,
    /// The `all` that ends evaluation (following `redirect`).
    pub effective_all: Option<Qualifier>,
    pub findings: Vec<Finding>,
}

/// Evaluates `rec` (published at `domain`) and everything it includes.
pub async fn evaluate(dns: &Dns, domain: &str, rec: &SpfRecord) -> SpfEval {
    let mut ev = SpfEval::default();
    ev.records.push((domain.to_string(), rec.raw.clone()));
    let mut stack = vec![domain.to_ascii_lowercase()];
    let all = walk(dns, domain, rec, &mut ev, &mut stack, 0).await;
    ev.effective_all = all;
    let n = ev.lookups.len() as u32;
    let list = ev.lookups.join(", ");
    if n > LOOKUP_LIMIT {
        ev.findings.push(
            Finding::error(
                "spf.too_many_lookups",
                format!(
                    "evaluating this SPF record takes {n} DNS lookups; the limit is {LOOKUP_LIMIT} (RFC 7208 §4.6.4), beyond which receivers fail SPF for all your mail. Replace includes you do not need, or list addresses with ip4:/ip6:. Lookups: {list}"
                ),
            )
            .on(&rec.raw),
        );
    } else if n == LOOKUP_LIMIT {
        ev.findings.push(
            Finding::warning(
                "spf.lookups_at_limit",
                format!("{n} of {LOOKUP_LIMIT} DNS lookups used: one more include (or a provider adding one) breaks SPF. Lookups: {list}"),
            )
            .on(&rec.raw),
        );
    } else {
        ev.findings.push(
            Finding::info(
                "spf.lookups",
                format!(
                    "{n} of {LOOKUP_LIMIT} DNS lookups used{}",
                    if n > 0 {
                        format!(": {list}")
                    } else {
                        String::new()
                    }
                ),
            )
            .on(&rec.raw),
        );
    }
    let v = ev.void_lookups.len() as u32;
    if v > VOID_LIMIT {
        ev.findings.push(
            Finding::error(
                "spf.too_many_void_lookups",
                format!(
                    "{v} lookups found no records (limit {VOID_LIMIT}, RFC 7208 §4.6.4): {}. Remove the terms that point at names without records.",
                    ev.void_lookups.join(", ")
                ),
            )
            .on(&rec.raw),
        );
    } else if v > 0 {
        ev.findings.push(
            Finding::warning(
                "spf.void_lookup",
                format!(
                    "{} found no records; remove it (more than {VOID_LIMIT} such lookups make SPF fail)",
                    ev.void_lookups.join(", ")
                ),
            )
            .on(&rec.raw),
        );
    }
    match all {
        Some(Qualifier::Fail) => {}
        Some(Qualifier::SoftFail) => ev.findings.push(
            Finding::info(
                "spf.all_softfail",
                "the record ends `~all` (soft fail), which the UK standard accepts; `-all` tells receivers to reject spoofed mail outright",
            )
            .on(&rec.raw),
        ),
        Some(Qualifier::Pass) => ev.findings.push(
            Finding::error(
                "spf.all_pass",
                "`+all` authorises every server on the Internet to send as this domain; end the record with `-all` (or `~all`)",
            )
            .on(&rec.raw),
        ),
        Some(Qualifier::Neutral) => ev.findings.push(
            Finding::error(
                "spf.all_neutral",
                "`?all` makes no statement about other senders, so it gives no protection; end the record with `-all` (or `~all`)",
            )
            .on(&rec.raw),
        ),
        None => ev.findings.push(
            Finding::error(
                "spf.all_missing",
                "the record does not end with `all` (nor redirect to a record that does), so mail from other servers is neutral; end it with `-all` (or `~all`)",
            )
            .on(&rec.raw),
        ),
    }
    ev
}

/// Walks one record; returns the `all` qualifier that ends its evaluation.
fn walk<'a>(
    dns: &'a Dns,
    domain: &'a str,
    rec: &'a SpfRecord,
    ev: &'a mut SpfEval,
    stack: &'a mut Vec<String>,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Qualifier>> + Send + 'a>> {
    Box::pin(async move {
        let mut all = None;
        for term in &rec.terms {
            let label = format!("{domain}: {term}");
            match term {
                Term::Directive(q, m) => match m {
                    Mechanism::All => {
                        if all.is_none() {
                            all = Some(*q);
                        }
                    }
                    Mechanism::Ip4(..) | Mechanism::Ip6(..) => {}
                    Mechanism::Include(target) => {
                        ev.lookups.push(label);
                        follow(dns, domain, target, "include", ev, stack, depth).await;
                    }
                    Mechanism::A { domain: d, .. } => {
                        ev.lookups.push(label.clone());
                        let name = d.as_deref().unwrap_or(domain);
                        if has_macro(name) {
                            continue;
                        }
                        match addresses(dns, name).await {
                            Ok(true) => {}
                            Ok(false) => ev.void_lookups.push(label),
                            Err(e) => ev.findings.push(lookup_failed(&label, &e)),
                        }
                    }
                    Mechanism::Mx { domain: d, .. } => {
                        ev.lookups.push(label.clone());
                        let name = d.as_deref().unwrap_or(domain);
                        if has_macro(name) {
                            continue;
                        }
                        match dns.mx(name).await {
                            Ok(l) if l.is_void() => ev.void_lookups.push(label),
                            Ok(l) => {
                                let hosts = l.records();
                                if hosts.len() > 10 {
                                    ev.findings.push(Finding::error(
                                        "spf.mx_too_many",
                                        format!("`{label}` names {} mail servers; an `mx` mechanism may use at most 10 (RFC 7208 §4.6.4), or SPF fails", hosts.len()),
                                    ).on(&rec.raw));
                                }
                                for (_, host) in hosts.iter().take(10) {
                                    if let Ok(false) = addresses(dns, host).await {
                                        ev.findings.push(Finding::warning(
                                            "spf.mx_host_without_address",
                                            format!("mail server {host} (from `{label}`) has no address, so the `mx` term can never match it"),
                                        ).on(&rec.raw));
                                    }
                                }
                            }
                            Err(e) => ev.findings.push(lookup_failed(&label, &e)),
                        }
                    }
                    Mechanism::Ptr(_) => ev.lookups.push(label),
                    Mechanism::Exists(name) => {
                        ev.lookups.push(label.clone());
                        if has_macro(name) {
                            continue;
                        }
                        match dns.addrs(name, false).await {
                            Ok(l) if l.is_void() => ev.void_lookups.push(label),
                            Ok(_) => {}
                            Err(e) => ev.findings.push(lookup_failed(&label, &e)),
                        }
                    }
                },
                Term::Redirect(_) | Term::Exp(_) | Term::Unknown(..) => {}
            }
        }
        // redirect applies only when no `all` ended the record
        if all.is_none()
            && let Some(target) = rec.redirect()
        {
            ev.lookups.push(format!("{domain}: redirect={target}"));
            return follow(dns, domain, target, "redirect", ev, stack, depth).await;
        }
        all
    })
}

/// Fetches, parses and walks an included or redirected record. Returns the
/// target's `all` (meaningful for `redirect`).
async fn follow(
    dns: &Dns,
    from: &str,
    target: &str,
    how: &str,
    ev: &mut SpfEval,
    stack: &mut Vec<String>,
    depth: usize,
) -> Option<Qualifier> {
    if has_macro(target) {
        ev.findings.push(Finding::info(
            "spf.macro_not_evaluated",
            format!("`{how}:{target}` in {from} uses macros, which depend on each message; it was counted but not followed"),
        ));
        return None;
    }
    let key = target.trim_end_matches('.').to_ascii_lowercase();
    if stack.contains(&key) {
        ev.findings.push(Finding::error(
            "spf.loop",
            format!("{from} {how}s {target}, which is already being evaluated ({}): the loop makes SPF fail", stack.join(" → ")),
        ));
        return None;
    }
    if depth >= 10 {
        return None;
    }
    let txts = match dns.txt(&key).await {
        Ok(Lookup::Found(t)) => t,
        Ok(_) => Vec::new(),
        Err(e) => {
            ev.findings
                .push(lookup_failed(&format!("{from}: {how}:{target}"), &e));
            return None;
        }
    };
    let code = if how == "include" {
        "spf.include_missing"
    } else {
        "spf.redirect_missing"
    };
    let raw = match select(&txts) {
        Ok(Some(r)) => r,
        Ok(None) => {
            ev.findings.push(Finding::error(
                code,
                format!("{from} uses `{how}:{target}`, but {target} publishes no SPF record: receivers treat that as a permanent error and SPF fails"),
            ));
            return None;
        }
        Err(mut f) => {
            f.message = format!("{target} (reached by `{how}` from {from}): {}", f.message);
            ev.findings.push(f);
            return None;
        }
    };
    ev.records.push((key.clone(), raw.clone()));
    let (rec, errors) = parse(&raw);
    let Some(rec) = rec else {
        for mut f in errors {
            f.code = "spf.include_syntax";
            f.message = format!("{target} (reached by `{how}` from {from}): {}", f.message);
            ev.findings.push(f);
        }
        return None;
    };
    stack.push(key);
    let all = walk(dns, target, &rec, ev, stack, depth + 1).await;
    stack.pop();
    all
}

/// Whether a name has any address (A or AAAA).
async fn addresses(dns: &Dns, name: &str) -> Result<bool, crate::dns::DnsError> {
    if !dns.addrs(name, false).await?.is_void() {
        return Ok(true);
    }
    Ok(!dns.addrs(name, true).await?.is_void())
}

fn has_macro(s: &str) -> bool {
    s.contains('%')
}

fn lookup_failed(label: &str, e: &crate::dns::DnsError) -> Finding {
    Finding::warning(
        "spf.lookup_failed",
        format!("`{label}` could not be checked: {e}; receivers would get a temporary error too"),
    )
}

/// Collects every record's set of seen domains (for tests and reports).
pub fn domains(ev: &SpfEval) -> HashSet<&str> {
    ev.records.iter().map(|(d, _)| d.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(f: &[Finding]) -> Vec<&'static str> {
        f.iter().map(|f| f.code).collect()
    }

    #[test]
    fn parses_every_term() {
        let (r, f) = parse(
            "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 a mx:mail.example.com/24//64 a//64 ~include:_spf.google.com \
             exists:%{i}._spf.example.com ?ptr:example.org redirect=_spf.example.net exp=explain.%{d} custom.mod=x -all",
        );
        assert!(f.is_empty(), "{f:?}");
        let r = r.unwrap();
        assert_eq!(r.terms.len(), 12);
        assert_eq!(
            r.terms[3],
            Term::Directive(
                Qualifier::Pass,
                Mechanism::Mx {
                    domain: Some("mail.example.com".into()),
                    v4: Some(24),
                    v6: Some(64)
                }
            )
        );
        assert_eq!(
            r.terms[4],
            Term::Directive(
                Qualifier::Pass,
                Mechanism::A {
                    domain: None,
                    v4: None,
                    v6: Some(64)
                }
            )
        );
        assert_eq!(r.all(), Some(Qualifier::Fail));
        assert_eq!(r.redirect(), Some("_spf.example.net"));
        // display round-trips the terms
        assert_eq!(r.terms[5].to_string(), "~include:_spf.google.com");
    }

    #[test]
    fn syntax_errors_name_the_term() {
        for bad in [
            "v=spf1 ip4:300.1.1.1 -all",
            "v=spf1 ip4:192.0.2.0/33 -all",
            "v=spf1 include -all",
            "v=spf1 foo:bar -all",
            "v=spf1 a:%{z}.example.com -all",
            "v=spf1 include:nodots -all",
            "v=spf1 -all/24",
            "v=spf1 redirect=",
        ] {
            let (r, f) = parse(bad);
            assert!(r.is_none(), "{bad}");
            assert_eq!(codes(&f), ["spf.syntax"], "{bad}");
        }
        assert!(!is_spf("v=spf10 -all"));
        assert!(is_spf("V=SPF1"));
    }

    #[test]
    fn select_finds_one_and_refuses_two() {
        let txts = vec![
            "google-site-verification=x".to_string(),
            "v=spf1 -all".to_string(),
        ];
        assert_eq!(select(&txts).unwrap().as_deref(), Some("v=spf1 -all"));
        let two = vec!["v=spf1 -all".to_string(), "v=spf1 mx -all".to_string()];
        assert_eq!(select(&two).unwrap_err().code, "spf.multiple_records");
    }

    #[test]
    fn record_checks() {
        let check = |s: &str| codes(&check_record(&parse(s).0.unwrap()));
        assert_eq!(check("v=spf1 -all mx"), ["spf.all_not_last"]);
        assert_eq!(check("v=spf1 ptr -all"), ["spf.ptr"]);
        assert_eq!(
            check("v=spf1 redirect=a.example mx"),
            ["spf.modifier_before_mechanism"]
        );
        assert_eq!(
            check("v=spf1 mx redirect=a.example -all"),
            ["spf.redirect_with_all", "spf.modifier_before_mechanism"]
        );
        assert_eq!(
            check("v=spf1 redirect=a.example redirect=b.example"),
            ["spf.duplicate_modifier"]
        );
        let long = format!("v=spf1 {} -all", "ip4:192.0.2.1 ".repeat(40));
        assert_eq!(check(long.trim()), ["spf.too_long"]);
        assert!(check("v=spf1 mx include:_spf.example.com -all").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "v=spf1 .{0,200}") {
            let (r, _) = parse(&s);
            if let Some(r) = r {
                let _ = check_record(&r);
            }
        }

        #[test]
        fn parse_never_panics_on_anything(s in "\\PC{0,100}") {
            let _ = parse(&s);
        }
    }
}
