//! DKIM public-key records (RFC 6376 §3.6.1, RFC 8463 for Ed25519).
//!
//! [`parse`] reads the TXT record at `<selector>._domainkey.<domain>`
//! strictly (tag names are case-sensitive in DKIM, unlike DMARC) and, for
//! RSA, decodes the key far enough to learn the modulus size with a small
//! bounds-checked DER reader. [`check`] turns a parsed key into findings.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::finding::{Finding, Findings};

/// Below this RSA modulus size a key is an error.
pub const MIN_RSA_BITS: u32 = 1024;
/// RSA modulus size the UK standard and NCSC recommend.
pub const RECOMMENDED_RSA_BITS: u32 = 2048;
/// Raw Ed25519 public keys are 32 bytes (RFC 8463 §4.2).
pub const ED25519_KEY_LEN: usize = 32;

/// Public-key algorithm (`k=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    Rsa,
    Ed25519,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// A parsed DKIM key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub raw: String,
    pub key_type: KeyType,
    /// RSA modulus size in bits.
    pub bits: Option<u32>,
    /// Empty `p=`: the selector has been revoked.
    pub revoked: bool,
    /// `h=` as listed, lower-case (empty when absent: all algorithms).
    pub hash_algorithms: Vec<String>,
    /// `t=y`
    pub testing: bool,
    /// `s=` as listed, lower-case (empty when absent: `*`).
    pub services: Vec<String>,
}

/// Tags RFC 6376 defines for key records.
const KNOWN_TAGS: [&str; 7] = ["v", "h", "k", "n", "p", "s", "t"];

/// DER `AlgorithmIdentifier` OID bodies.
const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_NULL: u8 = 0x05;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;

/// Folding white space, which DKIM allows around tags and inside values.
fn is_fws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn trim_fws(s: &str) -> &str {
    s.trim_matches(is_fws)
}

/// A value quoted for a message, with control characters escaped.
fn q(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

/// `ALPHA *(ALPHA / DIGIT / "_")`
fn valid_tag_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `tag-value`: printable ASCII except `;`, with white space between.
fn valid_tag_value(s: &str) -> bool {
    s.chars()
        .all(|c| is_fws(c) || (('!'..='~').contains(&c) && c != ';'))
}

fn syntax(message: String, raw: &str) -> Finding {
    Finding::error("dkim.syntax", message).on(raw)
}

fn corrupt(message: String, raw: &str) -> Finding {
    Finding::error("dkim.key_corrupt", message).on(raw)
}

/// Colon-separated list, trimmed and lower-cased; `None` if an entry is
/// empty.
fn colon_list(value: &str) -> Option<Vec<String>> {
    value
        .split(':')
        .map(|item| {
            let item = trim_fws(item);
            (!item.is_empty()).then(|| item.to_ascii_lowercase())
        })
        .collect()
}

/// Parses the TXT record at `<selector>._domainkey.<domain>` (strings
/// already concatenated). Returns the key when a verifier could use it, and
/// every finding about its syntax. Never panics.
pub fn parse(txt: &str) -> (Option<DkimKey>, Vec<Finding>) {
    let raw = txt;
    let mut findings = Findings::new("dkim.truncated", "this key record");
    let mut usable = true;
    let mut seen: HashSet<&str> = HashSet::new();

    let mut key_type = KeyType::Rsa;
    let mut key_type_ok = true;
    let mut p: Option<&str> = None;
    let mut hash_algorithms = Vec::new();
    let mut testing = false;
    let mut services = Vec::new();

    let parts: Vec<&str> = txt.split(';').collect();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        let element = trim_fws(part);
        if element.is_empty() {
            if i == last {
                continue; // a trailing ';' is allowed (or the record is empty)
            }
            findings.push(
                Finding::info(
                    "dkim.empty_tag",
                    "The key record has an empty element (\";;\" or a leading ';'). Most \
                     verifiers skip it, but the DKIM grammar does not allow it: remove the \
                     extra semicolon.",
                )
                .on(raw),
            );
            continue;
        }
        let Some((name, value)) = element.split_once('=') else {
            findings.push(syntax(
                format!(
                    "{} is not a tag=value pair; each element of a DKIM key record must look \
                     like tag=value, separated by semicolons.",
                    q(element)
                ),
                raw,
            ));
            usable = false;
            continue;
        };
        let name = trim_fws(name);
        let value = trim_fws(value);
        if !valid_tag_name(name) {
            findings.push(syntax(
                format!(
                    "{} is not a valid tag name (letters, digits and '_', starting with a \
                     letter).",
                    q(name)
                ),
                raw,
            ));
            usable = false;
            continue;
        }
        if !seen.insert(name) {
            findings.push(syntax(
                format!(
                    "The {name}= tag appears more than once, which makes the whole key record \
                     invalid (RFC 6376 §3.2). Keep one {name}= tag."
                ),
                raw,
            ));
            usable = false;
            continue;
        }
        if !valid_tag_value(value) {
            findings.push(syntax(
                format!(
                    "The value of {name}= contains characters DKIM does not allow (only \
                     printable ASCII): {}.",
                    q(value)
                ),
                raw,
            ));
            usable = false;
            continue;
        }

        match name {
            "v" => {
                if value != "DKIM1" {
                    findings.push(syntax(
                        format!(
                            "v={} is not v=DKIM1; verifiers discard key records with any other \
                             version. Write v=DKIM1 (or leave v= out).",
                            q(value)
                        ),
                        raw,
                    ));
                    usable = false;
                } else if i != 0 {
                    findings.push(syntax(
                        "v=DKIM1 must be the first tag of the key record when present; move \
                         it to the front (or remove it)."
                            .to_string(),
                        raw,
                    ));
                }
            }
            "h" => match colon_list(value) {
                Some(list) => {
                    for alg in list
                        .iter()
                        .filter(|a| !matches!(a.as_str(), "sha1" | "sha256"))
                    {
                        findings.push(
                            Finding::warning(
                                "dkim.unknown_hash",
                                format!(
                                    "h= lists {}, which is not a DKIM hash algorithm (sha256 \
                                     or sha1); verifiers ignore it.",
                                    q(alg)
                                ),
                            )
                            .on(raw),
                        );
                    }
                    if !list.iter().any(|a| a == "sha1" || a == "sha256") {
                        findings.push(syntax(
                            "h= allows no hash algorithm verifiers support, so no signature \
                             made with this key can be verified. Use h=sha256 or remove h=."
                                .to_string(),
                            raw,
                        ));
                        usable = false;
                    }
                    hash_algorithms = list;
                }
                None => {
                    findings.push(syntax(
                        format!(
                            "h={} is not a colon-separated list of hash algorithms (for \
                             example h=sha256).",
                            q(value)
                        ),
                        raw,
                    ));
                    usable = false;
                }
            },
            "k" => {
                if value.eq_ignore_ascii_case("rsa") {
                    key_type = KeyType::Rsa;
                } else if value.eq_ignore_ascii_case("ed25519") {
                    key_type = KeyType::Ed25519;
                } else {
                    findings.push(syntax(
                        format!(
                            "k={} is not a DKIM key type verifiers support (rsa or ed25519); \
                             the key cannot be used.",
                            q(value)
                        ),
                        raw,
                    ));
                    key_type_ok = false;
                    usable = false;
                }
            }
            "n" => {}
            "p" => p = Some(value),
            "s" => match colon_list(value) {
                Some(list) => services = list,
                None => {
                    findings.push(syntax(
                        format!(
                            "s={} is not a colon-separated list of service types (for example \
                             s=email).",
                            q(value)
                        ),
                        raw,
                    ));
                    usable = false;
                }
            },
            "t" => match colon_list(value) {
                // Unknown flags must be ignored (RFC 6376 §3.6.1).
                Some(flags) => testing = flags.iter().any(|f| f == "y"),
                None => {
                    findings.push(syntax(
                        format!(
                            "t={} is not a colon-separated list of flags (y, s).",
                            q(value)
                        ),
                        raw,
                    ));
                    usable = false;
                }
            },
            _ => {
                let lower = name.to_ascii_lowercase();
                if KNOWN_TAGS.contains(&lower.as_str()) {
                    findings.push(syntax(
                        format!(
                            "DKIM tag names are case-sensitive: verifiers do not read {name}= \
                             as {lower}=. Write {lower}= in lower case."
                        ),
                        raw,
                    ));
                } else {
                    findings.push(
                        Finding::info(
                            "dkim.unknown_tag",
                            format!(
                                "{name}= is not a DKIM key tag; verifiers ignore it. Check the \
                                 spelling or remove it."
                            ),
                        )
                        .on(raw),
                    );
                }
            }
        }
    }

    let Some(p) = p else {
        findings.push_always(
            Finding::error(
                "dkim.key_missing",
                "The key record has no p= tag, so there is no public key and signatures using \
                 this selector cannot be verified. Publish the key as p=<base64> (or an empty \
                 p= to revoke the selector).",
            )
            .on(raw),
        );
        return (None, findings.finish(raw));
    };

    let compact: String = p.chars().filter(|c| !is_fws(*c)).collect();
    let mut bits = None;
    let revoked = compact.is_empty();
    if !revoked && key_type_ok {
        match STANDARD.decode(compact.as_bytes()) {
            Err(e) => {
                let hint = if compact.contains('"') {
                    " It contains '\"': the TXT string quotes seem to have been published as \
                     part of the key."
                } else {
                    ""
                };
                findings.push(corrupt(
                    format!(
                        "The public key (p=) is not valid base64 ({e}), so it could not be \
                         decoded. Republish the key exactly as your mail provider gives it.{hint}"
                    ),
                    raw,
                ));
                usable = false;
            }
            Ok(der) => match key_type {
                KeyType::Rsa => match rsa_modulus_bits(&der) {
                    Ok(n) => bits = Some(n),
                    Err(why) => {
                        let hint = if der.len() == ED25519_KEY_LEN {
                            " It is 32 bytes long, like an Ed25519 key: is k=ed25519 missing?"
                        } else {
                            ""
                        };
                        findings.push(corrupt(
                            format!(
                                "The RSA public key (p=) could not be decoded: {why}. \
                                 Republish the key exactly as your mail provider gives \
                                 it.{hint}"
                            ),
                            raw,
                        ));
                        usable = false;
                    }
                },
                KeyType::Ed25519 => {
                    if der.len() != ED25519_KEY_LEN {
                        let hint = if der.len() == 44 && der.starts_with(&[0x30, 0x2a]) {
                            " It looks like a DER SubjectPublicKeyInfo; RFC 8463 publishes \
                             the bare 32-byte key (the last 32 bytes)."
                        } else {
                            ""
                        };
                        findings.push(corrupt(
                            format!(
                                "The Ed25519 public key (p=) is {} bytes; it must be exactly \
                                 {ED25519_KEY_LEN}.{hint}",
                                der.len()
                            ),
                            raw,
                        ));
                        usable = false;
                    }
                }
            },
        }
    }

    let key = usable.then(|| DkimKey {
        raw: raw.to_string(),
        key_type,
        bits,
        revoked,
        hash_algorithms,
        testing,
        services,
    });
    (key, findings.finish(raw))
}

/// Key findings.
pub fn check(key: &DkimKey) -> Vec<Finding> {
    let raw = key.raw.as_str();
    let mut f = Vec::new();
    if key.revoked {
        f.push(
            Finding::info(
                "dkim.revoked",
                "This selector has been revoked (empty p=): mail signed with it will fail \
                 DKIM. That is expected for a retired selector or a domain that sends no \
                 mail.",
            )
            .on(raw),
        );
        return f;
    }
    if let (KeyType::Rsa, Some(bits)) = (key.key_type, key.bits) {
        if bits < MIN_RSA_BITS {
            f.push(
                Finding::error(
                    "dkim.key_too_short",
                    format!(
                        "The RSA key is only {bits} bits: it can be broken and many verifiers \
                         reject it. Generate a {RECOMMENDED_RSA_BITS}-bit key, publish it under \
                         a new selector and switch signing to it."
                    ),
                )
                .on(raw),
            );
        } else if bits < RECOMMENDED_RSA_BITS {
            f.push(
                Finding::warning(
                    "dkim.key_short",
                    format!(
                        "The RSA key is {bits} bits; {RECOMMENDED_RSA_BITS} bits is \
                         recommended. Rotate to a {RECOMMENDED_RSA_BITS}-bit key under a new \
                         selector."
                    ),
                )
                .on(raw),
            );
        }
    }
    if key.testing {
        f.push(
            Finding::info(
                "dkim.testing",
                "t=y marks this key as in testing: verifiers may treat signatures as if \
                 unsigned. Remove t=y once signing works.",
            )
            .on(raw),
        );
    }
    let has = |alg: &str| key.hash_algorithms.iter().any(|a| a == alg);
    if has("sha1") && !has("sha256") {
        f.push(
            Finding::warning(
                "dkim.sha1_only",
                "h= allows only sha1, which is weak and which verifiers increasingly treat as \
                 failing. Sign with rsa-sha256 and set h=sha256 (or remove h=).",
            )
            .on(raw),
        );
    }
    if !key.services.is_empty() && !key.services.iter().any(|s| s == "email" || s == "*") {
        f.push(
            Finding::error(
                "dkim.service_not_email",
                format!(
                    "s={} does not include email (or *), so verifiers must not use this key for \
                     mail. Set s=email or remove s=.",
                    key.services.join(":")
                ),
            )
            .on(raw),
        );
    }
    f
}

/// A tiny bounds-checked DER reader: enough for `SubjectPublicKeyInfo` and
/// `RSAPublicKey`.
struct Der<'a> {
    buf: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next element's tag and contents.
    fn read(&mut self) -> Result<(u8, &'a [u8]), &'static str> {
        let (&tag, rest) = self.buf.split_first().ok_or("the DER data ends early")?;
        if tag & 0x1f == 0x1f {
            return Err("unexpected multi-byte DER tag");
        }
        let (&first, mut rest) = rest.split_first().ok_or("the DER data ends early")?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 {
                return Err("indefinite DER length");
            }
            if n > 4 {
                return Err("DER length too large");
            }
            let (bytes, after) = rest.split_at_checked(n).ok_or("the DER data ends early")?;
            rest = after;
            bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
        };
        let (body, after) = rest
            .split_at_checked(len)
            .ok_or("a DER element is longer than the data")?;
        self.buf = after;
        Ok((tag, body))
    }

    /// The next element, which must have tag `want`.
    fn expect(&mut self, want: u8, what: &'static str) -> Result<&'a [u8], &'static str> {
        match self.read()? {
            (tag, body) if tag == want => Ok(body),
            _ => Err(what),
        }
    }
}

/// Size in bits of a positive DER INTEGER.
fn positive_integer_bits(int: &[u8]) -> Result<u32, &'static str> {
    let (&first, _) = int.split_first().ok_or("empty INTEGER")?;
    if first & 0x80 != 0 {
        return Err("negative RSA modulus or exponent");
    }
    let start = int
        .iter()
        .position(|&b| b != 0)
        .ok_or("zero RSA modulus or exponent")?;
    let significant = &int[start..];
    let len = u32::try_from(significant.len()).map_err(|_| "INTEGER too large")?;
    let top = 8 - significant[0].leading_zeros();
    len.checked_sub(1)
        .and_then(|l| l.checked_mul(8))
        .and_then(|b| b.checked_add(top))
        .ok_or("INTEGER too large")
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
fn rsa_public_key_bits(der: &[u8]) -> Result<u32, &'static str> {
    let mut outer = Der::new(der);
    let body = outer.expect(TAG_SEQUENCE, "the RSA key is not a DER SEQUENCE")?;
    if !outer.is_empty() {
        return Err("there is data after the RSA key");
    }
    let mut seq = Der::new(body);
    let modulus = seq.expect(TAG_INTEGER, "the RSA modulus is not an INTEGER")?;
    let exponent = seq.expect(TAG_INTEGER, "the RSA exponent is not an INTEGER")?;
    if !seq.is_empty() {
        return Err("the RSA key has extra fields");
    }
    positive_integer_bits(exponent)?;
    positive_integer_bits(modulus)
}

/// The RSA modulus size of a DER `SubjectPublicKeyInfo` (what DKIM
/// publishes) or a bare PKCS#1 `RSAPublicKey` (which some records carry).
fn rsa_modulus_bits(der: &[u8]) -> Result<u32, &'static str> {
    let mut outer = Der::new(der);
    let body = outer.expect(TAG_SEQUENCE, "the key is not a DER SEQUENCE")?;
    if !outer.is_empty() {
        return Err("there is data after the key");
    }
    let mut spki = Der::new(body);
    let (tag, algorithm) = spki.read()?;
    match tag {
        TAG_INTEGER => rsa_public_key_bits(der),
        TAG_SEQUENCE => {
            let mut alg = Der::new(algorithm);
            let oid = alg.expect(TAG_OID, "the key algorithm is not an OID")?;
            if oid == OID_ED25519 {
                return Err(
                    "it is an Ed25519 key, not RSA (set k=ed25519 and publish the bare \
                            32-byte key)",
                );
            }
            if oid == OID_EC_PUBLIC_KEY {
                return Err("it is an elliptic-curve key, which DKIM does not support");
            }
            if oid != OID_RSA_ENCRYPTION {
                return Err("it is not an RSA key");
            }
            if !alg.is_empty() {
                let params = alg.expect(TAG_NULL, "unexpected RSA algorithm parameters")?;
                if !params.is_empty() || !alg.is_empty() {
                    return Err("unexpected RSA algorithm parameters");
                }
            }
            let bits = spki.expect(TAG_BIT_STRING, "the key data is not a BIT STRING")?;
            if !spki.is_empty() {
                return Err("the key has extra fields");
            }
            match bits.split_first() {
                Some((0, key)) => rsa_public_key_bits(key),
                _ => Err("malformed BIT STRING"),
            }
        }
        _ => Err("the key is neither a SubjectPublicKeyInfo nor an RSAPublicKey"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Level;
    use crate::finding::MAX_FINDINGS;

    fn codes(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.code).collect()
    }

    fn parse_ok(txt: &str) -> (DkimKey, Vec<Finding>) {
        let (key, findings) = parse(txt);
        (
            key.unwrap_or_else(|| panic!("{txt}: {findings:?}")),
            findings,
        )
    }

    // Test keys generated with `openssl genrsa N | openssl rsa -pubout
    // -outform DER | base64 -w0`.
    const RSA_512: &str = "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBALfDZD4O+yNh9pKLkdNYhxM36FOcQUA6lnSPvqxCKqa7p7pYIcETYWmwNKv/W+6OIkZ699lrLMnIpvIUPjNtjy0CAwEAAQ==";
    const RSA_1024: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDbxBYm+Rr/xHOsMyV9kHZHhRxbAj1tH3a70uAOvHoyeaAG0tvwNf92dy6CpobhDinPjtHWN/S8QR/E1gOEq0engnBT9iyTnuf8VZnyiCpqSSBBUGU2R9H2tqwKKUK+Dxpur+inAghrmxzcjVXMuWPmzX817/AeVTFT2d1BtqMGXQIDAQAB";
    const RSA_2048: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAn2rdd1fPyB8Q1FEVngsULRECaydZxWAjdbtpjpZ00oVjP2o7y9W+cGAZFaEq5JFBh0uGJbGmbqW5BZGSe78Usibh3LRK0MldoUaBUpKtdIkTOe5WzNU98sv5KDU/g7/cYZgfWstp5Sc/KdKNI4Hx2bgUMH2p2+C+jYNQm9yznBkj1vvDLhz1FhPV9GJjjSjEHJwmM5Fl0/ISMLEUHskMVQccRSW6oaPMdf6Z9H3BvlVy24se6N9oSaZuH9BJwQ6kWg73xM7M6aGMrqKDQS2h7bp90hEcbaN0mbDt1/pbxo3QPwNauQ3QPoIcAfoWBHbgdW5xCYGmU7s/lIA3SkNhhwIDAQAB";
    const RSA_4096: &str = "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEA1D8dA7c6ytH/0CHLn95/Bwznc6v1+CW7MKUbj3mVkEsxwvtkgfUP2RP7fu+H55l6ku3w12OSvdrU5gMmhxoRY0DmS0n330PPu0U5rNZM8FxSIuaB/K3LWE+UU+qJxXnvun+QAlKlcgRo2jNWGWU4nmnIDxw32F4ZRBQMhF14Z2FGhVESPMp7XwUQTI4bOEqqgHS0BhTiiDoACnqt3ciyQsKduDQSfDkyojQ8+R235LqM0heYMVei8a0/XLVxOv35wE6Atf8RK3Fjdi7vcQ1vDV0wG50Jr3vRKPR90XTcwWBWBhkLXeTxt5gswpnyb7LLN5ceH/DcQG0XUwcfAEG0hRGio76gFZTMPkoFVVdYsWmBB9/MCZWVtSjK4DU6EbX42fYD+O1Q3yJP+yg+Xedmk1j/7DU6SrmXh7dKfkudl4TxA0ffMElSvaXVAWvftb6sa5oiN0tHQjaNx18UACKWyJ9/QB7KmLGdhRdh51RB/OAwWAJpBkXxMzMswcZin3+1YMGeC9uv+a5dKeAxRcD3A2Q2m8I0nzebU0zYItnxaMGSMwgfEUS6RlJWxn2l8ep/x0207fTOnci5e13nwy0E+ufEyBQ0cjD5Epd6dD6Qbx6YmQ0FO9M1kuT/FUu7ZTVOYbHLgJGEKyriiniuw7YQAgJ6JMsgdwwtvPfqhkkVq8UCAwEAAQ==";
    /// The 2048-bit key as PKCS#1 (`openssl rsa -RSAPublicKey_out`).
    const RSA_2048_PKCS1: &str = "MIIBCgKCAQEAn2rdd1fPyB8Q1FEVngsULRECaydZxWAjdbtpjpZ00oVjP2o7y9W+cGAZFaEq5JFBh0uGJbGmbqW5BZGSe78Usibh3LRK0MldoUaBUpKtdIkTOe5WzNU98sv5KDU/g7/cYZgfWstp5Sc/KdKNI4Hx2bgUMH2p2+C+jYNQm9yznBkj1vvDLhz1FhPV9GJjjSjEHJwmM5Fl0/ISMLEUHskMVQccRSW6oaPMdf6Z9H3BvlVy24se6N9oSaZuH9BJwQ6kWg73xM7M6aGMrqKDQS2h7bp90hEcbaN0mbDt1/pbxo3QPwNauQ3QPoIcAfoWBHbgdW5xCYGmU7s/lIA3SkNhhwIDAQAB";
    /// RFC 8463 appendix A.2 (brisbane._domainkey.football.example.com).
    const RFC8463_ED25519: &str =
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

    #[test]
    fn rsa_key_sizes() {
        for (p, bits) in [
            (RSA_512, 512),
            (RSA_1024, 1024),
            (RSA_2048, 2048),
            (RSA_4096, 4096),
        ] {
            let (key, findings) = parse_ok(&format!("v=DKIM1; k=rsa; p={p}"));
            assert!(findings.is_empty(), "{findings:?}");
            assert_eq!(key.key_type, KeyType::Rsa);
            assert_eq!(key.bits, Some(bits));
            assert!(!key.revoked);
        }
    }

    #[test]
    fn google_style_record_is_clean() {
        // Google Workspace publishes "v=DKIM1; k=rsa; p=..." split over
        // several TXT strings; concatenated, with space left in by some DNS
        // consoles.
        let (head, tail) = RSA_2048.split_at(200);
        let txt = format!("v=DKIM1; k=rsa; p={head} {tail}");
        let (key, findings) = parse_ok(&txt);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(key.bits, Some(2048));
        assert!(check(&key).is_empty());
        assert_eq!(key.raw, txt);
    }

    #[test]
    fn pkcs1_key_is_accepted() {
        let (key, findings) = parse_ok(&format!("p={RSA_2048_PKCS1}"));
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(key.bits, Some(2048));
    }

    #[test]
    fn ed25519_rfc8463() {
        let (key, findings) = parse_ok(RFC8463_ED25519);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(key.key_type, KeyType::Ed25519);
        assert_eq!(key.bits, None);
        assert!(check(&key).is_empty());
        assert_eq!(key.key_type.as_str(), "ed25519");
    }

    #[test]
    fn ed25519_wrong_length() {
        // A DER SubjectPublicKeyInfo wrapping of an Ed25519 key.
        let spki = "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        let (key, findings) = parse(&format!("v=DKIM1; k=ed25519; p={spki}"));
        assert!(key.is_none());
        assert_eq!(codes(&findings), ["dkim.key_corrupt"]);
        assert!(
            findings[0].message.contains("32-byte"),
            "{}",
            findings[0].message
        );
        // ...and the same published as k=rsa.
        let (_, findings) = parse(&format!("v=DKIM1; p={spki}"));
        assert!(
            findings[0].message.contains("Ed25519"),
            "{}",
            findings[0].message
        );
        // A bare Ed25519 key without k=ed25519.
        let (_, findings) = parse("v=DKIM1; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
        assert_eq!(codes(&findings), ["dkim.key_corrupt"]);
        assert!(findings[0].message.contains("k=ed25519"));
    }

    #[test]
    fn revoked() {
        for txt in ["v=DKIM1; p=", "v=DKIM1; k=rsa; p= ;", "p="] {
            let (key, findings) = parse_ok(txt);
            assert!(findings.is_empty(), "{findings:?}");
            assert!(key.revoked);
            let f = check(&key);
            assert_eq!(codes(&f), ["dkim.revoked"]);
            assert_eq!(f[0].severity, Level::Info);
            assert!(f[0].message.contains("revoked"));
        }
    }

    #[test]
    fn key_findings() {
        let check_of = |txt: &str| {
            let (key, _) = parse_ok(txt);
            check(&key)
        };
        let f = check_of(&format!("v=DKIM1; p={RSA_512}"));
        assert_eq!(codes(&f), ["dkim.key_too_short"]);
        assert_eq!(f[0].severity, Level::Error);
        assert!(f[0].message.contains("512"));
        let f = check_of(&format!("v=DKIM1; p={RSA_1024}"));
        assert_eq!(codes(&f), ["dkim.key_short"]);
        assert_eq!(f[0].severity, Level::Warning);
        assert!(f[0].message.contains("2048"));
        let f = check_of(&format!("v=DKIM1; t=y:s; p={RSA_2048}"));
        assert_eq!(codes(&f), ["dkim.testing"]);
        assert_eq!(f[0].severity, Level::Info);
        let f = check_of(&format!("v=DKIM1; h=sha1; p={RSA_2048}"));
        assert_eq!(codes(&f), ["dkim.sha1_only"]);
        assert_eq!(f[0].severity, Level::Warning);
        assert!(check_of(&format!("v=DKIM1; h=sha1:sha256; p={RSA_2048}")).is_empty());
        let f = check_of(&format!("v=DKIM1; s=tlsrpt; p={RSA_2048}"));
        assert_eq!(codes(&f), ["dkim.service_not_email"]);
        assert_eq!(f[0].severity, Level::Error);
        assert!(check_of(&format!("s=email:tlsrpt; p={RSA_2048}")).is_empty());
        assert!(check_of(&format!("s=*; p={RSA_2048}")).is_empty());
        let f = check_of(&format!("t=s; p={RSA_2048}"));
        assert!(f.is_empty());
        assert!(
            check_of(&format!("p={RSA_2048}"))
                .iter()
                .all(|f| f.record.is_some())
        );
    }

    #[test]
    fn odd_spacing_and_case() {
        let txt = format!(
            " v = DKIM1 ;\tk = RSA ;\r\n h = SHA256 : sha1 ; s = Email ; t = y ; n = see notes ; p = {RSA_1024} ;"
        );
        let (key, findings) = parse_ok(&txt);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(key.hash_algorithms, ["sha256", "sha1"]);
        assert_eq!(key.services, ["email"]);
        assert!(key.testing);
        assert_eq!(key.bits, Some(1024));
    }

    #[test]
    fn key_missing() {
        let (key, findings) = parse("v=DKIM1; k=rsa");
        assert!(key.is_none());
        assert_eq!(codes(&findings), ["dkim.key_missing"]);
        assert_eq!(findings[0].severity, Level::Error);
        assert_eq!(codes(&parse("").1), ["dkim.key_missing"]);
    }

    #[test]
    fn key_corrupt() {
        for (txt, needle) in [
            ("v=DKIM1; p=MIIB!!notbase64", "base64"),
            (
                "v=DKIM1; p=\"MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQ\"",
                "quotes",
            ),
            ("v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQ", "base64"), // no padding
            ("v=DKIM1; p=AAAA", "SEQUENCE"),
            ("v=DKIM1; p=MAA=", "ends early"), // empty SEQUENCE
            (
                "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQ==",
                "longer than",
            ), // truncated
            ("v=DKIM1; p=MAYCAQACAQM=", "zero"), // modulus 0
            ("v=DKIM1; p=MAYCAYACAQM=", "negative"), // modulus -128
            ("v=DKIM1; p=MAUCAQcCAA==", "empty INTEGER"), // exponent empty
            ("v=DKIM1; p=MIA=", "indefinite"),
            ("v=DKIM1; p=MIUAAAAAAA==", "too large"),
            ("v=DKIM1; p=MBMwCQYHKoZIzj0CAQMGADADAgEC", "elliptic"),
        ] {
            let (key, findings) = parse(txt);
            assert!(key.is_none(), "{txt}");
            let f = findings
                .iter()
                .find(|f| f.code == "dkim.key_corrupt")
                .unwrap_or_else(|| panic!("{txt}: {findings:?}"));
            assert_eq!(f.severity, Level::Error);
            assert!(f.message.contains(needle), "{txt}: {}", f.message);
        }
    }

    #[test]
    fn trailing_garbage_after_key_is_corrupt() {
        let mut der = STANDARD.decode(RSA_1024).unwrap();
        der.push(0);
        let (key, findings) = parse(&format!("p={}", STANDARD.encode(&der)));
        assert!(key.is_none());
        assert_eq!(codes(&findings), ["dkim.key_corrupt"]);
        // The modulus with a leading 0x00 is 1024 bits, not 1032.
        let der = STANDARD.decode(RSA_1024).unwrap();
        assert_eq!(rsa_modulus_bits(&der), Ok(1024));
    }

    #[test]
    fn syntax_errors() {
        for (txt, needle, usable) in [
            ("v=DKIM2; p=", "v=\"DKIM2\"", false),
            ("p=; v=DKIM1", "first", true),
            ("v=DKIM1; k=dsa; p=", "k=\"dsa\"", false),
            ("v=DKIM1; p=; p=", "more than once", false),
            ("v=DKIM1; garbage; p=", "tag=value", false),
            ("v=DKIM1; 9x=1; p=", "tag name", false),
            ("v=DKIM1; h=sha1::sha256; p=", "h=", false),
            ("v=DKIM1; h=md5; p=", "no hash algorithm", false),
            ("v=DKIM1; s=:; p=", "s=", false),
            ("v=DKIM1; t=y::; p=", "t=", false),
            ("v=DKIM1; n=caf\u{e9}; p=", "printable ASCII", false),
            ("v=DKIM1; P=", "case-sensitive", false), // so p= is missing too
            ("V=DKIM1; p=", "case-sensitive", true),
        ] {
            let (key, findings) = parse(txt);
            assert_eq!(key.is_some(), usable, "{txt}: {findings:?}");
            let f = findings
                .iter()
                .find(|f| f.code == "dkim.syntax")
                .unwrap_or_else(|| panic!("{txt}: {findings:?}"));
            assert_eq!(f.severity, Level::Error);
            assert!(f.message.contains(needle), "{txt}: {}", f.message);
            assert_eq!(f.record.as_deref(), Some(txt));
        }
    }

    #[test]
    fn unknown_tags_hashes_and_empty_elements() {
        let (key, findings) = parse_ok("v=DKIM1;; h=sha256:sha512; x=1; p=");
        assert_eq!(
            codes(&findings),
            ["dkim.empty_tag", "dkim.unknown_hash", "dkim.unknown_tag"]
        );
        let levels: Vec<Level> = findings.iter().map(|f| f.severity).collect();
        assert_eq!(levels, [Level::Info, Level::Warning, Level::Info]);
        assert_eq!(key.hash_algorithms, ["sha256", "sha512"]);
    }

    #[test]
    fn der_reader_bounds() {
        let mut d = Der::new(&[0x30, 0x82, 0xff]);
        assert!(d.read().is_err());
        let mut d = Der::new(&[0x1f, 0x00]);
        assert!(d.read().is_err());
        let mut d = Der::new(&[0x02, 0x01, 0x05, 0x05, 0x00]);
        assert_eq!(d.read(), Ok((0x02, &[0x05][..])));
        assert_eq!(d.read(), Ok((0x05, &[][..])));
        assert!(d.is_empty());
        assert!(d.read().is_err());
        assert_eq!(positive_integer_bits(&[0x00, 0x80]), Ok(8));
        assert_eq!(positive_integer_bits(&[0x01, 0x00]), Ok(9));
    }

    #[test]
    fn huge_broken_records_are_capped() {
        let txt = format!("v=DKIM1; {} p=", "x=1; ".repeat(13_000));
        let (key, findings) = parse(&txt);
        assert!(key.is_none());
        assert_eq!(findings.len(), MAX_FINDINGS + 1);
        assert_eq!(findings.last().unwrap().code, "dkim.truncated");
        assert_eq!(findings.last().unwrap().severity, Level::Info);
        let (_, findings) = parse(&"x=1; ".repeat(100));
        assert!(codes(&findings).contains(&"dkim.key_missing"));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC*") {
                if let (Some(key), _) = parse(&s) {
                    let _ = check(&key);
                }
            }

            #[test]
            fn parse_never_panics_on_arbitrary_keys(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
                k in prop_oneof![Just("rsa"), Just("ed25519")],
                mutate in any::<(usize, u8)>(),
            ) {
                let txt = format!("v=DKIM1; k={k}; p={}", STANDARD.encode(&bytes));
                let (key, findings) = parse(&txt);
                prop_assert!(key.is_some() || !findings.is_empty());
                // A real key with one byte changed.
                let mut der = STANDARD.decode(RSA_1024).unwrap();
                let i = mutate.0 % der.len();
                der[i] = mutate.1;
                let (key, _) = parse(&format!("p={}", STANDARD.encode(&der)));
                if let Some(key) = key {
                    let _ = check(&key);
                }
                // ...and truncated there.
                der.truncate(i);
                let _ = parse(&format!("p={}", STANDARD.encode(&der)));
            }
        }
    }
}
