//! DMARC policy records (RFC 7489, with notes from DMARCbis).
//!
//! [`select`] picks the DMARC record among the TXT strings at
//! `_dmarc.<name>`, [`parse`] reads it strictly (reporting every syntax
//! problem with the tag and value at fault) and [`check`] turns a parsed
//! record into policy findings against the UK government standard and the
//! NCSC Mail Check rules. Nothing here does I/O: [`external_destinations`]
//! says which report destinations need an authorisation record, the caller
//! looks it up and [`authorises`] reads the answer.
//!
//! A note on the version tag: RFC 7489's ABNF spells `DMARC1` with `%x`
//! values, which makes it case-sensitive, while the `v` tag name and most
//! receivers are case-insensitive. We follow the receivers: [`select`] and
//! [`authorises`] match `v=DMARC1` case-insensitively, and [`parse`] accepts
//! `v=dmarc1` but reports `dmarc.version_case` so the owner can fix it.

use std::collections::HashSet;
use std::fmt;

use crate::finding::{Finding, Findings, Level};

/// The NCSC Mail Check aggregate-report mailbox UK public-sector domains
/// should list in `rua`.
pub const NCSC_RUA: &str = "dmarc-rua@dmarc.service.gov.uk";
/// `rua=` URI for [`NCSC_RUA`], as it should appear in a record.
pub const NCSC_RUA_URI: &str = "mailto:dmarc-rua@dmarc.service.gov.uk";
/// Domain of [`NCSC_RUA`].
const NCSC_RUA_DOMAIN: &str = "dmarc.service.gov.uk";
/// Newer Mail Check mailboxes are `<token>@` this domain; any local part is
/// accepted there.
const NCSC_TOKEN_DOMAIN: &str = "dmarc-rua.mailcheck.service.ncsc.gov.uk";
/// Longest record NCSC Mail Check accepts without comment (fits a UDP
/// response comfortably).
pub const MAX_RECORD_LEN: usize = 450;
/// Receivers only promise to send to this many URIs per tag (RFC 7489 §6.2).
pub const MAX_URIS: usize = 2;

/// A requested policy (`p=`, `sp=`, `np=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Quarantine => "quarantine",
            Self::Reject => "reject",
        }
    }

    /// Case-insensitive, as RFC 7489's ABNF literals are.
    fn from_value(v: &str) -> Option<Self> {
        if v.eq_ignore_ascii_case("none") {
            Some(Self::None)
        } else if v.eq_ignore_ascii_case("quarantine") {
            Some(Self::Quarantine)
        } else if v.eq_ignore_ascii_case("reject") {
            Some(Self::Reject)
        } else {
            None
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifier alignment mode (`adkim=`, `aspf=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Alignment {
    #[default]
    Relaxed,
    Strict,
}

impl Alignment {
    /// The tag value: `r` or `s`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Relaxed => "r",
            Self::Strict => "s",
        }
    }
}

/// One `rua`/`ruf` destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportUri {
    /// As written, including any `!size` suffix.
    pub raw: String,
    /// Lower-case scheme (`mailto`, `https`...).
    pub scheme: String,
    /// For `mailto:` the mailbox (without any `?query`); for other schemes
    /// the whole URI without the size limit.
    pub address: String,
    /// The mailbox's domain, lower-case, for `mailto:` URIs.
    pub domain: Option<String>,
    /// The `!size` limit (`10m`), when given.
    pub size_limit: Option<String>,
}

/// A parsed DMARC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcRecord {
    pub raw: String,
    /// `p=`. `None` also when `p` is missing or invalid but `rua` is usable
    /// (RFC 7489 §6.6.3: such records are treated as `p=none`).
    pub policy: Policy,
    /// `sp=`
    pub subdomain_policy: Option<Policy>,
    /// `np=` (DMARCbis: policy for non-existent subdomains)
    pub np: Option<Policy>,
    pub adkim: Alignment,
    pub aspf: Alignment,
    /// `pct=` (removed in DMARCbis)
    pub pct: Option<u8>,
    /// Syntactically valid aggregate-report URIs (invalid ones are reported
    /// and left out).
    pub rua: Vec<ReportUri>,
    /// Syntactically valid failure-report URIs.
    pub ruf: Vec<ReportUri>,
    /// `fo=` as written, e.g. `1` or `d:s`.
    pub fo: Option<String>,
    /// `ri=` seconds (removed in DMARCbis)
    pub ri: Option<u32>,
    /// `rf=` as written (removed in DMARCbis)
    pub rf: Option<String>,
    /// `t=` (DMARCbis testing flag)
    pub t: Option<bool>,
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn trim_wsp(s: &str) -> &str {
    s.trim_matches(is_wsp)
}

/// A value quoted for a message, with control characters escaped.
fn q(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

/// Whether `s` begins with `v=DMARC1` (case-insensitive, white space allowed
/// around `=`). Used to tell DMARC records from other TXT records.
fn starts_with_version(s: &str) -> bool {
    let s = s.trim_start_matches(is_wsp);
    let Some(rest) = s.strip_prefix(['v', 'V']) else {
        return false;
    };
    let Some(rest) = rest.trim_start_matches(is_wsp).strip_prefix('=') else {
        return false;
    };
    let rest = rest.trim_start_matches(is_wsp).as_bytes();
    rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"DMARC1")
}

/// `ALPHA *(ALPHA / DIGIT / "_")`
fn valid_tag_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn syntax(message: String, raw: &str) -> Finding {
    Finding::error("dmarc.syntax", message).on(raw)
}

/// Parses one TXT record string. Returns the record when it is usable
/// (`v=DMARC1` first and a valid `p=`, or the RFC 7489 §6.6.3 `p=none`
/// fallback), and every finding about its syntax and content. Never panics.
pub fn parse(txt: &str) -> (Option<DmarcRecord>, Vec<Finding>) {
    let mut findings = Findings::new("dmarc.truncated", "this record");
    let raw = txt;

    let mut version_ok = false;
    let mut version_first = false;
    let mut version_elsewhere = false;
    let mut seen: HashSet<String> = HashSet::new();

    let mut policy: Option<Policy> = None;
    let mut p_present = false;
    let mut sp_invalid = false;
    let mut sp = None;
    let mut np = None;
    let mut adkim = Alignment::Relaxed;
    let mut aspf = Alignment::Relaxed;
    let mut pct = None;
    let mut rua = Vec::new();
    let mut ruf = Vec::new();
    let mut fo = None;
    let mut ri = None;
    let mut rf = None;
    let mut t = None;

    let parts: Vec<&str> = txt.split(';').collect();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        let element = trim_wsp(part);
        if element.is_empty() {
            if i == last && i > 0 {
                continue; // a trailing ';' is allowed
            }
            if i == 0 {
                // Reported below as "version not first".
                continue;
            }
            findings.push(
                Finding::info(
                    "dmarc.empty_tag",
                    "The record has an empty element between semicolons (\";;\"). Receivers \
                     generally skip it, but the DMARC grammar does not allow it: remove the \
                     extra semicolon.",
                )
                .on(raw),
            );
            continue;
        }
        let Some((name, value)) = element.split_once('=') else {
            findings.push(syntax(
                format!(
                    "{} is not a tag=value pair. Each element must look like tag=value, \
                     separated by semicolons (is a '=' or ';' missing?).",
                    q(element)
                ),
                raw,
            ));
            continue;
        };
        let name = trim_wsp(name);
        let value = trim_wsp(value);
        if !valid_tag_name(name) {
            findings.push(syntax(
                format!(
                    "{} is not a valid tag name (letters, digits and '_', starting with a \
                     letter).",
                    q(name)
                ),
                raw,
            ));
            continue;
        }
        let lname = name.to_ascii_lowercase();
        if !seen.insert(lname.clone()) {
            findings.push(
                Finding::error(
                    "dmarc.duplicate_tag",
                    format!(
                        "The {lname}= tag appears more than once; receivers may use either \
                         value or reject the record. Keep one {lname}= tag."
                    ),
                )
                .on(raw),
            );
            continue;
        }

        match lname.as_str() {
            "v" => {
                if i != 0 {
                    version_elsewhere = true;
                    continue;
                }
                version_first = true;
                if value == "DMARC1" {
                    version_ok = true;
                } else if value.eq_ignore_ascii_case("DMARC1") {
                    version_ok = true;
                    findings.push(
                        Finding::warning(
                            "dmarc.version_case",
                            format!(
                                "The version is written v={value}; RFC 7489 requires exactly \
                                 \"DMARC1\" in capitals. Most receivers accept it, but a strict \
                                 one may ignore the whole record: write v=DMARC1."
                            ),
                        )
                        .on(raw),
                    );
                } else {
                    let hint = if value.len() > 6
                        && value.as_bytes()[..6].eq_ignore_ascii_case(b"DMARC1")
                    {
                        " Is the ';' after v=DMARC1 missing?"
                    } else {
                        ""
                    };
                    findings.push(syntax(
                        format!(
                            "The version tag v={} is not v=DMARC1, so receivers ignore the \
                             whole record.{hint}",
                            q(value)
                        ),
                        raw,
                    ));
                }
            }
            "p" => {
                p_present = true;
                match Policy::from_value(value) {
                    Some(p) => policy = Some(p),
                    None => findings.push(syntax(
                        format!(
                            "p={} is not a valid policy (none, quarantine or reject). \
                             Receivers treat the record as p=none if it has a valid rua \
                             address, and ignore it otherwise.",
                            q(value)
                        ),
                        raw,
                    )),
                }
            }
            "sp" => match Policy::from_value(value) {
                Some(p) => sp = Some(p),
                None => {
                    sp_invalid = true;
                    findings.push(syntax(
                        format!(
                            "sp={} is not a valid policy (none, quarantine or reject). An \
                             invalid sp= makes receivers treat the whole record as p=none (or \
                             ignore it when there is no valid rua).",
                            q(value)
                        ),
                        raw,
                    ));
                }
            },
            "np" => match Policy::from_value(value) {
                Some(p) => np = Some(p),
                None => findings.push(syntax(
                    format!(
                        "np={} is not a valid policy (none, quarantine or reject); receivers \
                         will ignore it.",
                        q(value)
                    ),
                    raw,
                )),
            },
            "adkim" | "aspf" => {
                let mode = if value.eq_ignore_ascii_case("r") {
                    Some(Alignment::Relaxed)
                } else if value.eq_ignore_ascii_case("s") {
                    Some(Alignment::Strict)
                } else {
                    None
                };
                match mode {
                    Some(m) if lname == "adkim" => adkim = m,
                    Some(m) => aspf = m,
                    None => findings.push(syntax(
                        format!(
                            "{lname}={} is not a valid alignment mode: use r (relaxed) or s \
                             (strict).",
                            q(value)
                        ),
                        raw,
                    )),
                }
            }
            "pct" => match value.parse::<u8>() {
                Ok(n) if n <= 100 && is_digits(value) && value.len() <= 3 => pct = Some(n),
                _ => findings.push(syntax(
                    format!(
                        "pct={} is not a whole number from 0 to 100; receivers will apply the \
                         policy to all mail.",
                        q(value)
                    ),
                    raw,
                )),
            },
            "rua" | "ruf" => {
                let uris = parse_uri_list(&lname, value, raw, &mut findings);
                if lname == "rua" {
                    rua = uris;
                } else {
                    ruf = uris;
                }
            }
            "fo" => {
                let ok = !value.is_empty()
                    && value.split(':').all(|o| {
                        let o = trim_wsp(o);
                        matches!(o, "0" | "1" | "d" | "s" | "D" | "S")
                    });
                if ok {
                    fo = Some(value.to_string());
                } else {
                    findings.push(syntax(
                        format!(
                            "fo={} is not valid: use one or more of 0, 1, d and s separated by \
                             ':' (for example fo=1).",
                            q(value)
                        ),
                        raw,
                    ));
                }
            }
            "ri" => match value.parse::<u32>() {
                Ok(n) if is_digits(value) => ri = Some(n),
                _ => findings.push(syntax(
                    format!(
                        "ri={} is not a valid report interval in seconds (for example \
                         ri=86400).",
                        q(value)
                    ),
                    raw,
                )),
            },
            "rf" => {
                let ok = !value.is_empty()
                    && value
                        .split(':')
                        .all(|f| trim_wsp(f).eq_ignore_ascii_case("afrf"));
                if ok {
                    rf = Some(value.to_string());
                } else {
                    findings.push(syntax(
                        format!(
                            "rf={} is not valid: the only failure-report format defined is \
                             afrf (and the tag can simply be left out).",
                            q(value)
                        ),
                        raw,
                    ));
                }
            }
            "t" => {
                if value.eq_ignore_ascii_case("y") {
                    t = Some(true);
                } else if value.eq_ignore_ascii_case("n") {
                    t = Some(false);
                } else {
                    findings.push(syntax(
                        format!("t={} is not valid: use y or n.", q(value)),
                        raw,
                    ));
                }
            }
            "psd" => {
                if !["y", "n", "u"]
                    .iter()
                    .any(|v| value.eq_ignore_ascii_case(v))
                {
                    findings.push(syntax(
                        format!(
                            "psd={} is not valid: use y, n or u (and only public suffix \
                             operators should set it).",
                            q(value)
                        ),
                        raw,
                    ));
                }
            }
            _ => findings.push(
                Finding::warning(
                    "dmarc.unknown_tag",
                    format!(
                        "{name}= is not a DMARC tag, so receivers ignore it. Check the spelling \
                         or remove it."
                    ),
                )
                .on(raw),
            ),
        }
    }

    if !version_first {
        let message = if version_elsewhere {
            "v=DMARC1 must be the first tag of the record; receivers ignore a record that \
             does not start with it. Move v=DMARC1 to the front."
        } else {
            "The record does not start with v=DMARC1, so receivers do not treat it as a \
             DMARC record. Start it with v=DMARC1;"
        };
        findings.push_always(Finding::error("dmarc.version_not_first", message).on(raw));
    }

    if !p_present {
        let message = if rua.is_empty() {
            "The record has no policy (p=) tag and no valid rua address, so receivers ignore \
             it: the domain has no DMARC protection. Add p=quarantine or p=reject (p=none \
             only while monitoring)."
        } else {
            "The record has no policy (p=) tag. Because it has a valid rua address, receivers \
             treat it as p=none (monitoring only). Add p=quarantine or p=reject."
        };
        findings.push_always(Finding::error("dmarc.policy_missing", message).on(raw));
    }

    // RFC 7489 §6.6.3: a missing or invalid p=, or an invalid sp=, means
    // "act as p=none" when rua has a valid URI, otherwise no DMARC at all.
    let policy = match policy {
        Some(p) if !sp_invalid => Some(p),
        _ if !rua.is_empty() => {
            sp = None;
            Some(Policy::None)
        }
        _ => None,
    };

    let record = match policy {
        Some(policy) if version_ok => Some(DmarcRecord {
            raw: raw.to_string(),
            policy,
            subdomain_policy: sp,
            np,
            adkim,
            aspf,
            pct,
            rua,
            ruf,
            fo,
            ri,
            rf,
            t,
        }),
        _ => None,
    };
    (record, findings.finish(raw))
}

/// Parses a `rua`/`ruf` value: comma-separated URIs, each optionally
/// followed by `!size[kmgt]`. Invalid URIs are reported and left out.
fn parse_uri_list(tag: &str, value: &str, raw: &str, findings: &mut Findings) -> Vec<ReportUri> {
    let mut uris = Vec::new();
    if value.is_empty() {
        findings.push(syntax(
            format!("{tag}= is empty: give at least one mailto: address or remove the tag."),
            raw,
        ));
        return uris;
    }
    for item in value.split(',') {
        let item = trim_wsp(item);
        if item.is_empty() {
            findings.push(syntax(
                format!("{tag}= has an empty entry between commas; remove the extra comma."),
                raw,
            ));
            continue;
        }
        match parse_uri(item) {
            Ok(uri) => uris.push(uri),
            Err(why) => findings.push(syntax(format!("{tag}= entry {}: {why}", q(item)), raw)),
        }
    }
    uris
}

fn parse_uri(item: &str) -> Result<ReportUri, String> {
    // '!' and ',' inside a URI must be percent-encoded, so the first '!'
    // starts the size limit.
    let (uri, size_limit) = match item.split_once('!') {
        Some((uri, size)) => {
            let digits = size.trim_end_matches(['k', 'm', 'g', 't', 'K', 'M', 'G', 'T']);
            let unit_len = size.len() - digits.len();
            if !is_digits(digits) || unit_len > 1 {
                return Err(format!(
                    "the size limit !{size} is not valid (a number optionally followed by k, \
                     m, g or t, for example !10m)"
                ));
            }
            (uri, Some(size.to_string()))
        }
        None => (item, None),
    };
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URI cannot contain spaces (separate URIs with commas)".to_string());
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(if uri.contains('@') {
            format!("is missing the mailto: prefix; write mailto:{uri}")
        } else {
            "is not a URI (expected mailto:address)".to_string()
        });
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(format!("{} is not a valid URI scheme", q(scheme)));
    }
    if rest.is_empty() {
        return Err("the URI is empty after the scheme".to_string());
    }
    let scheme = scheme.to_ascii_lowercase();
    let (address, domain) = if scheme == "mailto" {
        let mailbox = rest.split('?').next().unwrap_or_default();
        let Some((local, domain)) = mailbox.rsplit_once('@') else {
            return Err(format!("{} is not an e-mail address", q(mailbox)));
        };
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        let domain_ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            });
        if local.is_empty() || !domain_ok {
            return Err(format!("{} is not a valid e-mail address", q(mailbox)));
        }
        (mailbox.to_string(), Some(domain.to_ascii_lowercase()))
    } else {
        (uri.to_string(), None)
    };
    Ok(ReportUri {
        raw: item.to_string(),
        scheme,
        address,
        domain,
        size_limit,
    })
}

/// Picks the DMARC record among all TXT strings at `_dmarc.<name>`.
///
/// TXT records that do not start with `v=DMARC1` are ignored (they are not
/// DMARC records; matched case-insensitively, see the module notes). More
/// than one DMARC record is `dmarc.multiple_records` (receivers then apply
/// no DMARC at all). No record at all is `Ok(None)`: whether that is
/// `dmarc.missing` is the caller's decision after the organisational-domain
/// fallback.
pub fn select(txts: &[String]) -> Result<Option<String>, Finding> {
    let records: Vec<&String> = txts.iter().filter(|t| starts_with_version(t)).collect();
    match records.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).clone())),
        many => Err(Finding::error(
            "dmarc.multiple_records",
            format!(
                "There are {} DMARC records at this name; receivers then ignore all of them, \
                 so the domain has no DMARC protection. Publish exactly one v=DMARC1 record.",
                many.len()
            ),
        )
        .on(many
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" | "))),
    }
}

/// Findings about TXT strings at `_dmarc.<name>` that [`select`] passes
/// over but that were meant as DMARC records: they carry a `v=DMARC1` tag,
/// just not first (`p=reject; v=DMARC1`, `; v=DMARC1; p=reject`). Receivers
/// discard them (RFC 7489 §6.6.3), so the name has no record of its own;
/// this says why (`dmarc.version_not_first`, as [`parse`] words it), where
/// otherwise the record would look simply missing.
pub fn misplaced_version(txts: &[String]) -> Vec<Finding> {
    let is_version_tag = |element: &str| {
        element.split_once('=').is_some_and(|(name, value)| {
            trim_wsp(name).eq_ignore_ascii_case("v")
                && trim_wsp(value).eq_ignore_ascii_case("DMARC1")
        })
    };
    txts.iter()
        .filter(|t| !starts_with_version(t) && t.split(';').any(is_version_tag))
        .flat_map(|t| {
            parse(t)
                .1
                .into_iter()
                .filter(|f| f.code == "dmarc.version_not_first")
        })
        .collect()
}

fn is_ncsc_rua(uri: &ReportUri) -> bool {
    uri.scheme == "mailto"
        && (uri.address.eq_ignore_ascii_case(NCSC_RUA)
            || uri.domain.as_deref() == Some(NCSC_TOKEN_DOMAIN))
}

fn is_ncsc_domain(uri: &ReportUri) -> bool {
    matches!(
        uri.domain.as_deref(),
        Some(NCSC_RUA_DOMAIN | NCSC_TOKEN_DOMAIN)
    )
}

/// Record-level policy findings (no DNS).
pub fn check(rec: &DmarcRecord) -> Vec<Finding> {
    let raw = rec.raw.as_str();
    let mut f = Findings::new("dmarc.truncated", "this record");
    let mut push =
        |code, level, message: String| f.push(Finding::new(code, level, message).on(raw));

    if rec.policy == Policy::None {
        push(
            "dmarc.policy_none",
            Level::Warning,
            "The policy is p=none: receivers only monitor, and spoofed mail from this domain \
             is still delivered. p=none is acceptable only while you review reports; the UK \
             government standard treats it as an error once monitoring is over. Move to \
             p=quarantine and then p=reject."
                .to_string(),
        );
    }
    if rec.subdomain_policy == Some(Policy::None) {
        push(
            "dmarc.subdomain_policy_none",
            Level::Warning,
            "The subdomain policy is sp=none, so mail spoofing any subdomain is delivered. Set \
             sp=quarantine or sp=reject (or remove sp= so subdomains inherit p=)."
                .to_string(),
        );
    }
    if rec.t == Some(true) {
        push(
            "dmarc.testing",
            Level::Warning,
            "t=y (testing) asks receivers to apply a policy one step weaker than p= (reject \
             becomes quarantine, quarantine becomes none). Remove t=y once you are confident."
                .to_string(),
        );
    }
    if let Some(pct) = rec.pct {
        if pct < 100 {
            push(
                "dmarc.pct_partial",
                Level::Warning,
                format!(
                    "pct={pct}: the policy applies to only {pct}% of failing mail; the rest is \
                     treated as p=none. Raise pct to 100 (or remove it)."
                ),
            );
        }
        push(
            "dmarc.pct_obsolete",
            Level::Info,
            "pct= has been removed from DMARC (DMARCbis replaces it with t=y for testing); \
             newer receivers ignore it. Remove it once the policy applies to all mail."
                .to_string(),
        );
    }
    if rec.rua.is_empty() {
        push(
            "dmarc.rua_missing",
            Level::Warning,
            format!(
                "There is no valid rua= address, so nobody receives aggregate reports and you \
                 cannot see who sends mail as this domain. Add rua={NCSC_RUA_URI} (plus your \
                 own mailbox if you want the reports yourself)."
            ),
        );
    }
    for (tag, uris) in [("rua", &rec.rua), ("ruf", &rec.ruf)] {
        for uri in uris.iter().filter(|u| u.scheme != "mailto") {
            push(
                "dmarc.uri_not_mailto",
                Level::Warning,
                format!(
                    "{tag}= destination {} uses the {}: scheme; receivers are only required to \
                     support mailto:, so reports may never arrive. Use a mailto: address.",
                    q(&uri.raw),
                    uri.scheme
                ),
            );
        }
        if uris.len() > MAX_URIS {
            push(
                "dmarc.too_many_uris",
                Level::Warning,
                format!(
                    "{tag}= lists {} destinations; receivers only promise to send to the \
                     first {MAX_URIS}, so later ones may get nothing. Keep at most {MAX_URIS}.",
                    uris.len()
                ),
            );
        }
        let mut distinct = HashSet::new();
        for uri in uris {
            if !distinct.insert((uri.scheme.as_str(), uri.address.to_ascii_lowercase())) {
                push(
                    "dmarc.duplicate_uri",
                    Level::Warning,
                    format!(
                        "{tag}= lists {} more than once; remove the duplicate (it may also push \
                         another destination past the two receivers promise to use).",
                        q(&uri.address)
                    ),
                );
            }
        }
    }
    if !rec.rua.iter().any(is_ncsc_rua) {
        push(
            "dmarc.ncsc_rua_missing",
            Level::Warning,
            format!(
                "rua= does not include the NCSC Mail Check mailbox, so NCSC (and this service) \
                 cannot see your aggregate reports. Add {NCSC_RUA_URI} to rua=."
            ),
        );
    }
    for uri in rec
        .rua
        .iter()
        .filter(|u| u.domain.as_deref() == Some(NCSC_RUA_DOMAIN) && !is_ncsc_rua(u))
    {
        push(
            "dmarc.ncsc_rua_misconfigured",
            Level::Warning,
            format!(
                "rua= sends to {} but Mail Check only processes aggregate reports sent to \
                 {NCSC_RUA}. Change it to {NCSC_RUA_URI}.",
                q(&uri.address)
            ),
        );
    }
    if rec.ruf.iter().any(is_ncsc_domain) {
        push(
            "dmarc.ncsc_ruf",
            Level::Info,
            "ruf= includes an NCSC Mail Check address, but Mail Check does not collect failure \
             (forensic) reports; remove it from ruf= (keep it in rua=)."
                .to_string(),
        );
    }
    let len = raw.chars().count();
    if len > MAX_RECORD_LEN {
        push(
            "dmarc.too_long",
            Level::Warning,
            format!(
                "The record is {len} characters long; keep it to {MAX_RECORD_LEN} or fewer so \
                 the DNS answer stays small (drop unneeded tags or report destinations)."
            ),
        );
    }
    f.finish(raw)
}

/// Lower-case, without a trailing dot.
fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The organisational domain of a (normalised) name per the public suffix
/// list; the name itself when the list has no answer (e.g. a bare suffix).
fn organisational_domain(name: &str) -> String {
    psl::domain_str(name).map_or_else(|| name.to_string(), str::to_string)
}

/// The mailbox domains of `mailto:` rua/ruf URIs that are neither `domain`
/// itself nor within the same organisational domain. Each needs a
/// `<domain>._report._dmarc.<dest>` authorisation record (RFC 7489 §7.1),
/// which the caller looks up. Lower-case, without duplicates, in record
/// order.
pub fn external_destinations(rec: &DmarcRecord, domain: &str) -> Vec<String> {
    let domain = normalise(domain);
    let org = organisational_domain(&domain);
    let mut out: Vec<String> = Vec::new();
    for dest in rec
        .rua
        .iter()
        .chain(&rec.ruf)
        .filter_map(|u| u.domain.as_deref())
    {
        let dest = normalise(dest);
        if dest == domain || organisational_domain(&dest) == org || out.contains(&dest) {
            continue;
        }
        out.push(dest);
    }
    out
}

/// Whether the TXT strings at `<domain>._report._dmarc.<dest>` authorise
/// reports: at least one starts with `v=DMARC1`.
pub fn authorises(txts: &[String]) -> bool {
    txts.iter().any(|t| starts_with_version(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::MAX_FINDINGS;

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    fn parse_ok(txt: &str) -> (DmarcRecord, Vec<Finding>) {
        let (rec, findings) = parse(txt);
        (
            rec.unwrap_or_else(|| panic!("{txt}: {findings:?}")),
            findings,
        )
    }

    fn all(txt: &str) -> Vec<&'static str> {
        let (rec, mut findings) = parse(txt);
        if let Some(rec) = rec {
            findings.extend(check(&rec));
        }
        codes(&findings)
    }

    const GOV_UK: &str = "v=DMARC1;p=reject;sp=reject;rua=mailto:dmarc-rua@dmarc.service.gov.uk";

    #[test]
    fn gov_uk_record_is_clean() {
        let (rec, findings) = parse_ok(GOV_UK);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(rec.policy, Policy::Reject);
        assert_eq!(rec.subdomain_policy, Some(Policy::Reject));
        assert_eq!(rec.adkim, Alignment::Relaxed);
        assert_eq!(rec.aspf, Alignment::Relaxed);
        assert_eq!(rec.rua.len(), 1);
        let uri = &rec.rua[0];
        assert_eq!(uri.scheme, "mailto");
        assert_eq!(uri.address, NCSC_RUA);
        assert_eq!(uri.domain.as_deref(), Some("dmarc.service.gov.uk"));
        assert_eq!(uri.size_limit, None);
        assert!(check(&rec).is_empty(), "{:?}", check(&rec));
        assert_eq!(rec.raw, GOV_UK);
        assert_eq!(rec.policy.as_str(), "reject");
        assert_eq!(rec.adkim.as_str(), "r");
    }

    #[test]
    fn full_record_with_odd_spacing_and_case() {
        let txt = "v = DMARC1 ;  P = Quarantine;SP=REJECT ; adkim=S;ASPF = s; pct=100;\t\
                   rua = mailto:dmarc-rua@dmarc.service.gov.uk!10M , mailto:Reports@Council.GOV.UK ;\
                   ruf=mailto:forensic@council.gov.uk; fo=0:d : S; ri=3600; rf=AFRF; np=reject; \
                   t=n; psd=n ;";
        let (rec, findings) = parse_ok(txt);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(rec.policy, Policy::Quarantine);
        assert_eq!(rec.subdomain_policy, Some(Policy::Reject));
        assert_eq!(rec.np, Some(Policy::Reject));
        assert_eq!(rec.adkim, Alignment::Strict);
        assert_eq!(rec.aspf, Alignment::Strict);
        assert_eq!(rec.pct, Some(100));
        assert_eq!(rec.rua.len(), 2);
        assert_eq!(rec.rua[0].size_limit.as_deref(), Some("10M"));
        assert_eq!(rec.rua[0].raw, "mailto:dmarc-rua@dmarc.service.gov.uk!10M");
        assert_eq!(rec.rua[1].address, "Reports@Council.GOV.UK");
        assert_eq!(rec.rua[1].domain.as_deref(), Some("council.gov.uk"));
        assert_eq!(rec.ruf.len(), 1);
        assert_eq!(rec.fo.as_deref(), Some("0:d : S"));
        assert_eq!(rec.ri, Some(3600));
        assert_eq!(rec.rf.as_deref(), Some("AFRF"));
        assert_eq!(rec.t, Some(false));
        // Only pct=100's obsolescence remains to say.
        assert_eq!(codes(&check(&rec)), ["dmarc.pct_obsolete"]);
    }

    #[test]
    fn mailto_query_is_not_part_of_the_mailbox() {
        let (rec, _) = parse_ok("v=DMARC1; p=none; rua=mailto:a@example.com?subject=dmarc");
        assert_eq!(rec.rua[0].address, "a@example.com");
        assert_eq!(rec.rua[0].domain.as_deref(), Some("example.com"));
    }

    #[test]
    fn token_mailbox_counts_as_ncsc() {
        let (rec, _) = parse_ok(
            "v=DMARC1; p=reject; rua=mailto:abc123@dmarc-rua.mailcheck.service.ncsc.gov.uk",
        );
        assert!(check(&rec).is_empty());
    }

    #[test]
    fn syntax_errors_name_tag_and_value() {
        for (txt, needle) in [
            (
                "v=DMARC1; p=rejected; rua=mailto:a@b.example",
                "p=\"rejected\"",
            ),
            ("v=DMARC1; p=reject; adkim=x", "adkim=\"x\""),
            ("v=DMARC1; p=reject; aspf=relaxed", "aspf=\"relaxed\""),
            ("v=DMARC1; p=reject; pct=101", "pct=\"101\""),
            ("v=DMARC1; p=reject; pct=+50", "pct=\"+50\""),
            ("v=DMARC1; p=reject; fo=2", "fo=\"2\""),
            ("v=DMARC1; p=reject; ri=soon", "ri=\"soon\""),
            ("v=DMARC1; p=reject; ri=99999999999", "ri=\"99999999999\""),
            ("v=DMARC1; p=reject; rf=iodef", "rf=\"iodef\""),
            ("v=DMARC1; p=reject; t=yes", "t=\"yes\""),
            ("v=DMARC1; p=reject; np=block", "np=\"block\""),
            ("v=DMARC1; p=reject; psd=x", "psd=\"x\""),
            (
                "v=DMARC1; p=reject; rua=dmarc@example.com",
                "mailto:dmarc@example.com",
            ),
            (
                "v=DMARC1; p=reject; rua=mailto:dmarc",
                "not an e-mail address",
            ),
            (
                "v=DMARC1; p=reject; rua=mailto:@example.com",
                "not a valid e-mail",
            ),
            ("v=DMARC1; p=reject; rua=mailto:a@exa mple.com", "spaces"),
            (
                "v=DMARC1; p=reject; rua=mailto:a@b.example!10x",
                "size limit",
            ),
            ("v=DMARC1; p=reject; rua=mailto:a@b.example!", "size limit"),
            ("v=DMARC1; p=reject; rua=", "rua= is empty"),
            (
                "v=DMARC1; p=reject; rua=mailto:a@b.example,,",
                "empty entry",
            ),
            ("v=DMARC1; p=reject; ruf=1http:x", "scheme"),
            ("v=DMARC1; p=reject; reject", "tag=value"),
            ("v=DMARC1; p=reject; 1x=2", "tag name"),
            ("v=DMARC1p=reject", "';'"),
            ("v=DMARC2; p=reject", "not v=DMARC1"),
        ] {
            let (_, findings) = parse(txt);
            let f = findings
                .iter()
                .find(|f| f.code == "dmarc.syntax")
                .unwrap_or_else(|| panic!("{txt}: {findings:?}"));
            assert_eq!(f.severity, Level::Error);
            assert!(f.message.contains(needle), "{txt}: {}", f.message);
            assert_eq!(f.record.as_deref(), Some(txt));
        }
    }

    #[test]
    fn bad_version_makes_record_unusable() {
        for txt in [
            "v=DMARC2; p=reject",
            "v=DMARC1p=reject",
            "p=reject; v=DMARC1",
            "",
        ] {
            let (rec, _) = parse(txt);
            assert!(rec.is_none(), "{txt}");
        }
    }

    #[test]
    fn version_not_first() {
        let (rec, findings) = parse("p=reject; v=DMARC1");
        assert!(rec.is_none());
        let f = findings
            .iter()
            .find(|f| f.code == "dmarc.version_not_first")
            .unwrap();
        assert_eq!(f.severity, Level::Error);
        assert!(f.message.contains("first"));
        assert!(codes(&parse("p=reject").1).contains(&"dmarc.version_not_first"));
        assert!(codes(&parse("; v=DMARC1; p=reject").1).contains(&"dmarc.version_not_first"));
        assert!(codes(&parse("").1).contains(&"dmarc.version_not_first"));
    }

    #[test]
    fn misplaced_version_is_explained() {
        // select() passes over these (receivers discard them), so without
        // misplaced_version the domain would only look unprotected
        for txt in [
            "p=reject; v=DMARC1",
            "; v=DMARC1; p=reject",
            "p=reject;rua=mailto:a@example.com; V = dmarc1",
        ] {
            let txts = vec!["google-site-verification=abc".to_string(), txt.to_string()];
            assert_eq!(select(&txts).unwrap(), None, "{txt}");
            let f = misplaced_version(&txts);
            assert_eq!(codes(&f), ["dmarc.version_not_first"], "{txt}");
            assert_eq!(f[0].severity, Level::Error);
            assert!(f[0].message.contains("Move v=DMARC1 to the front"), "{txt}");
            assert_eq!(f[0].record.as_deref(), Some(txt));
        }
        // records select() takes, and TXT records that are not DMARC at all
        for txts in [
            vec!["v=DMARC1; p=reject".to_string()],
            vec!["google-site-verification=abc".to_string()],
            vec!["v=spf1 -all".to_string(), "p=reject".to_string()],
            vec!["note: v=DMARC1x".to_string()],
            vec![],
        ] {
            assert!(misplaced_version(&txts).is_empty(), "{txts:?}");
        }
    }

    #[test]
    fn version_case_is_accepted_with_warning() {
        let (rec, findings) =
            parse_ok("v=dmarc1; p=reject; rua=mailto:dmarc-rua@dmarc.service.gov.uk");
        assert_eq!(codes(&findings), ["dmarc.version_case"]);
        assert_eq!(findings[0].severity, Level::Warning);
        assert_eq!(rec.policy, Policy::Reject);
    }

    #[test]
    fn missing_policy_with_rua_falls_back_to_none() {
        let (rec, findings) = parse_ok("v=DMARC1; rua=mailto:dmarc-rua@dmarc.service.gov.uk");
        assert_eq!(codes(&findings), ["dmarc.policy_missing"]);
        assert_eq!(findings[0].severity, Level::Error);
        assert!(findings[0].message.contains("p=none"));
        assert_eq!(rec.policy, Policy::None);
        assert!(codes(&check(&rec)).contains(&"dmarc.policy_none"));
    }

    #[test]
    fn missing_policy_without_rua_is_unusable() {
        let (rec, findings) = parse("v=DMARC1; sp=reject");
        assert!(rec.is_none());
        assert_eq!(codes(&findings), ["dmarc.policy_missing"]);
        assert!(findings[0].message.contains("ignore"));
        // An invalid rua does not rescue it.
        let (rec, findings) = parse("v=DMARC1; rua=reports@example.com");
        assert!(rec.is_none());
        assert_eq!(codes(&findings), ["dmarc.syntax", "dmarc.policy_missing"]);
    }

    #[test]
    fn invalid_policy_or_sp_falls_back_to_none_with_rua() {
        let (rec, findings) = parse_ok("v=DMARC1; p=rejected; rua=mailto:a@example.com");
        assert_eq!(codes(&findings), ["dmarc.syntax"]);
        assert_eq!(rec.policy, Policy::None);
        let (rec, findings) = parse_ok("v=DMARC1; p=reject; sp=nope; rua=mailto:a@example.com");
        assert_eq!(codes(&findings), ["dmarc.syntax"]);
        assert_eq!(rec.policy, Policy::None);
        assert_eq!(rec.subdomain_policy, None);
        let (rec, _) = parse("v=DMARC1; p=reject; sp=nope");
        assert!(rec.is_none());
    }

    #[test]
    fn duplicate_and_unknown_tags() {
        let (rec, findings) = parse_ok("v=DMARC1; p=reject; p=none; foo=bar; v=DMARC1");
        assert_eq!(
            codes(&findings),
            [
                "dmarc.duplicate_tag",
                "dmarc.unknown_tag",
                "dmarc.duplicate_tag"
            ]
        );
        assert_eq!(findings[0].severity, Level::Error);
        assert_eq!(findings[1].severity, Level::Warning);
        assert!(findings[1].message.contains("foo="));
        assert_eq!(rec.policy, Policy::Reject, "the first p= wins");
        // Tag names are case-insensitive, so P= duplicates p=.
        assert!(codes(&parse("v=DMARC1; p=reject; P=reject").1).contains(&"dmarc.duplicate_tag"));
    }

    #[test]
    fn empty_elements() {
        let (_, findings) = parse_ok("v=DMARC1;; p=reject;");
        assert_eq!(codes(&findings), ["dmarc.empty_tag"]);
        assert_eq!(findings[0].severity, Level::Info);
        // A single trailing ';' (with spaces) is fine.
        let (_, findings) = parse_ok("v=DMARC1; p=reject ;  ");
        assert!(findings.is_empty());
    }

    #[test]
    fn select_ignores_other_txt_records() {
        let txts = vec![
            "google-site-verification=abc".to_string(),
            "  V = dmarc1; p=none".to_string(),
            "spf2.0/pra".to_string(),
        ];
        assert_eq!(
            select(&txts).unwrap().as_deref(),
            Some("  V = dmarc1; p=none")
        );
        assert_eq!(select(&[]).unwrap(), None);
        assert_eq!(select(&["v=spf1 -all".to_string()]).unwrap(), None);
        // A missing ';' after the version is still recognised as meant for DMARC,
        // so parse can explain it instead of the domain looking unprotected.
        assert!(select(&["v=DMARC1p=reject".to_string()]).unwrap().is_some());
    }

    #[test]
    fn select_multiple_records() {
        let txts = vec![
            "v=DMARC1; p=none".to_string(),
            "v=DMARC1; p=reject".to_string(),
        ];
        let f = select(&txts).unwrap_err();
        assert_eq!(f.code, "dmarc.multiple_records");
        assert_eq!(f.severity, Level::Error);
        assert!(f.record.unwrap().contains("p=reject"));
    }

    #[test]
    fn policy_findings() {
        let all_codes = all(
            "v=DMARC1; p=none; sp=none; pct=50; t=y; rua=https://reports.example/dmarc, \
             mailto:a@example.com, mailto:A@example.com!5m; \
             ruf=mailto:dmarc-rua@dmarc.service.gov.uk",
        );
        for code in [
            "dmarc.policy_none",
            "dmarc.subdomain_policy_none",
            "dmarc.testing",
            "dmarc.pct_partial",
            "dmarc.pct_obsolete",
            "dmarc.uri_not_mailto",
            "dmarc.too_many_uris",
            "dmarc.duplicate_uri",
            "dmarc.ncsc_rua_missing",
            "dmarc.ncsc_ruf",
        ] {
            assert!(all_codes.contains(&code), "{code} not in {all_codes:?}");
        }
        assert!(!all_codes.contains(&"dmarc.rua_missing"));
        assert_eq!(
            all_codes
                .iter()
                .filter(|c| **c == "dmarc.duplicate_uri")
                .count(),
            1
        );
    }

    #[test]
    fn severities_of_policy_findings() {
        let (rec, _) = parse_ok("v=DMARC1; p=none; sp=none; pct=10");
        let f = check(&rec);
        let level = |code| f.iter().find(|x| x.code == code).unwrap().severity;
        assert_eq!(level("dmarc.policy_none"), Level::Warning);
        assert_eq!(level("dmarc.subdomain_policy_none"), Level::Warning);
        assert_eq!(level("dmarc.pct_partial"), Level::Warning);
        assert_eq!(level("dmarc.pct_obsolete"), Level::Info);
        assert_eq!(level("dmarc.rua_missing"), Level::Warning);
        assert_eq!(level("dmarc.ncsc_rua_missing"), Level::Warning);
        assert!(
            f.iter()
                .all(|x| x.record.as_deref() == Some(rec.raw.as_str()))
        );
        assert!(
            f.iter()
                .find(|x| x.code == "dmarc.policy_none")
                .unwrap()
                .message
                .contains("UK government standard")
        );
    }

    #[test]
    fn pct_100_is_only_obsolete() {
        let (rec, _) = parse_ok(&format!("{GOV_UK}; pct=100"));
        assert_eq!(codes(&check(&rec)), ["dmarc.pct_obsolete"]);
    }

    #[test]
    fn ncsc_rua_misconfigured() {
        let (rec, _) = parse_ok("v=DMARC1; p=reject; rua=mailto:dmarc-ruf@dmarc.service.gov.uk");
        assert_eq!(
            codes(&check(&rec)),
            ["dmarc.ncsc_rua_missing", "dmarc.ncsc_rua_misconfigured"]
        );
    }

    #[test]
    fn ruf_not_mailto_and_too_many() {
        let (rec, _) = parse_ok(&format!(
            "{GOV_UK}; ruf=mailto:a@x.example,mailto:b@x.example,ftp://c.example"
        ));
        let c = codes(&check(&rec));
        assert_eq!(c, ["dmarc.uri_not_mailto", "dmarc.too_many_uris"]);
        assert!(check(&rec)[0].message.starts_with("ruf="));
    }

    #[test]
    fn too_long() {
        let pad = "x".repeat(400);
        let (rec, _) = parse_ok(&format!("{GOV_UK}; ruf=mailto:{pad}@example.com"));
        let f = check(&rec);
        assert_eq!(codes(&f), ["dmarc.too_long"]);
        assert_eq!(f[0].severity, Level::Warning);
    }

    #[test]
    fn external_destinations_use_the_organisational_domain() {
        let (rec, _) = parse_ok(
            "v=DMARC1; p=reject; rua=mailto:dmarc-rua@dmarc.service.gov.uk, \
             mailto:agg@reports.example.net; ruf=mailto:f@dmarc.bbc.co.uk, \
             mailto:x@Reports.Example.NET., mailto:y@bbc.co.uk",
        );
        assert_eq!(
            external_destinations(&rec, "bbc.co.uk"),
            ["dmarc.service.gov.uk", "reports.example.net"]
        );
        // The same record published on a subdomain: bbc.co.uk is still in-house.
        assert_eq!(
            external_destinations(&rec, "News.BBC.co.uk."),
            ["dmarc.service.gov.uk", "reports.example.net"]
        );
        let (rec, _) = parse_ok("v=DMARC1; p=reject; rua=mailto:d@dmarc.bbc.co.uk");
        assert!(external_destinations(&rec, "bbc.co.uk").is_empty());
        // gov.uk is a public suffix: two councils are different organisations.
        let (rec, _) = parse_ok("v=DMARC1; p=reject; rua=mailto:d@leeds.gov.uk");
        assert_eq!(external_destinations(&rec, "york.gov.uk"), ["leeds.gov.uk"]);
        // https URIs have no mailbox domain.
        let (rec, _) = parse_ok("v=DMARC1; p=reject; rua=https://reports.example.net/x");
        assert!(external_destinations(&rec, "bbc.co.uk").is_empty());
    }

    #[test]
    fn authorisation_records() {
        assert!(authorises(&["v=DMARC1".to_string()]));
        assert!(authorises(&[
            "other".to_string(),
            "v=DMARC1; rua=mailto:x@y.example".to_string()
        ]));
        assert!(authorises(&["v = dmarc1;".to_string()]));
        assert!(!authorises(&[]));
        assert!(!authorises(&[
            "v=spf1 -all".to_string(),
            "DMARC1".to_string()
        ]));
    }

    #[test]
    fn huge_broken_records_are_capped() {
        let txt = format!("v=DMARC1; p=reject; {}", "x=1; ".repeat(13_000));
        let (rec, findings) = parse(&txt);
        assert!(rec.is_some());
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert_eq!(findings.last().unwrap().code, "dmarc.truncated");
        // Missing version and policy are still reported past the cap.
        let (_, findings) = parse(&"x=1; ".repeat(100));
        let c = codes(&findings);
        assert!(c.contains(&"dmarc.version_not_first") && c.contains(&"dmarc.policy_missing"));
        let uris = vec!["https://a.example/x"; 5000].join(",");
        let (rec, _) = parse_ok(&format!("v=DMARC1; p=reject; rua={uris}"));
        let findings = check(&rec);
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert_eq!(findings.last().unwrap().code, "dmarc.truncated");
        assert_eq!(findings.last().unwrap().severity, Level::Info);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC*") {
                let (rec, _) = parse(&s);
                if let Some(rec) = rec {
                    let _ = check(&rec);
                    let _ = external_destinations(&rec, &s);
                }
                let _ = select(std::slice::from_ref(&s));
                let _ = authorises(&[s]);
            }

            #[test]
            fn parse_never_panics_on_dmarc_like(
                s in "(v=DMARC1;)?( ?[a-zA-Z]{1,5} ?= ?[a-zA-Z0-9:@.!,;= \t_-]{0,30};?){0,6}",
                bytes in proptest::collection::vec(any::<u8>(), 0..40),
            ) {
                let tail = String::from_utf8_lossy(&bytes);
                for txt in [s.clone(), format!("{s}{tail}"), format!("v=DMARC1; p=none; rua={tail}")] {
                    let (rec, findings) = parse(&txt);
                    prop_assert!(findings.iter().all(|f| f.record.as_deref() == Some(txt.as_str())));
                    if let Some(rec) = rec {
                        let _ = check(&rec);
                        let _ = external_destinations(&rec, "example.co.uk");
                    }
                }
            }
        }
    }
}
