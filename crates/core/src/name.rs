//! Domain names in the one form Parapet compares them: lower-case DNS wire
//! labels without the final root byte ("key form"), e.g. `\x04evil\x03com`.
//!
//! Key form makes a suffix of a name a suffix of its bytes at a label
//! boundary, so the policy can look up a name and each of its parents without
//! copying, and it avoids every ambiguity of dotted text (a label may contain
//! a dot). Text is only for people: feeds are converted on load, events on
//! display.

use std::fmt;

/// Longest name in key form: 255 wire octets minus the root byte.
pub const MAX_KEY_LEN: usize = 254;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 63;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in `{0}`")]
    EmptyLabel(String),
    #[error("label longer than 63 octets in `{0}`")]
    LabelTooLong(String),
    #[error("name longer than 255 octets: `{0}`")]
    NameTooLong(String),
    #[error("bad escape in `{0}`")]
    BadEscape(String),
}

/// Converts a presentation-format name (`www.Example.com` or
/// `www.example.com.`, RFC 1035 `\.` and `\DDD` escapes allowed) into key
/// form, lower-cased. `.` and the empty string are the root (empty key).
pub fn text_to_key(text: &str) -> Result<Vec<u8>, NameError> {
    let mut out = Vec::with_capacity(text.len() + 1);
    push_text_as_key(text, &mut out)?;
    Ok(out)
}

/// Appends the key form of `text` to `out` (see [`text_to_key`]).
pub fn push_text_as_key(text: &str, out: &mut Vec<u8>) -> Result<(), NameError> {
    let start = out.len();
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes == b"." {
        return Ok(());
    }
    let mut i = 0;
    let mut label_start = out.len();
    out.push(0);
    let err_text = || text.to_string();
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'.' => {
                let len = out.len() - label_start - 1;
                if len == 0 {
                    out.truncate(start);
                    return Err(NameError::EmptyLabel(err_text()));
                }
                finish_label(out, label_start, len, start, text)?;
                i += 1;
                if i == bytes.len() {
                    // trailing dot: fully qualified
                    return check_total(out, start, text);
                }
                label_start = out.len();
                out.push(0);
                continue;
            }
            b'\\' => {
                let rest = &bytes[i + 1..];
                if rest.len() >= 3 && rest[..3].iter().all(u8::is_ascii_digit) {
                    let v = (rest[0] - b'0') as u32 * 100
                        + (rest[1] - b'0') as u32 * 10
                        + (rest[2] - b'0') as u32;
                    if v > 255 {
                        out.truncate(start);
                        return Err(NameError::BadEscape(err_text()));
                    }
                    out.push((v as u8).to_ascii_lowercase());
                    i += 4;
                } else if let Some(&c) = rest.first() {
                    out.push(c.to_ascii_lowercase());
                    i += 2;
                } else {
                    out.truncate(start);
                    return Err(NameError::BadEscape(err_text()));
                }
            }
            _ => {
                out.push(b.to_ascii_lowercase());
                i += 1;
            }
        }
    }
    let len = out.len() - label_start - 1;
    if len == 0 {
        out.truncate(start);
        return Err(NameError::EmptyLabel(err_text()));
    }
    finish_label(out, label_start, len, start, text)?;
    check_total(out, start, text)
}

fn finish_label(
    out: &mut Vec<u8>,
    label_start: usize,
    len: usize,
    start: usize,
    text: &str,
) -> Result<(), NameError> {
    if len > MAX_LABEL_LEN {
        out.truncate(start);
        return Err(NameError::LabelTooLong(text.to_string()));
    }
    out[label_start] = len as u8;
    Ok(())
}

fn check_total(out: &mut Vec<u8>, start: usize, text: &str) -> Result<(), NameError> {
    if out.len() - start > MAX_KEY_LEN {
        out.truncate(start);
        return Err(NameError::NameTooLong(text.to_string()));
    }
    Ok(())
}

/// Writes a key-form name in presentation format, without the trailing dot,
/// escaping what RFC 1035 says must be escaped. The root is `.`.
pub fn write_key_as_text(key: &[u8], f: &mut impl fmt::Write) -> fmt::Result {
    if key.is_empty() {
        return f.write_char('.');
    }
    let mut i = 0;
    let mut first = true;
    while i < key.len() {
        let len = key[i] as usize;
        let end = (i + 1 + len).min(key.len());
        if !first {
            f.write_char('.')?;
        }
        first = false;
        for &b in &key[i + 1..end] {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(b as char)?;
                }
                0x21..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        i = end;
    }
    Ok(())
}

/// Presentation form of a key-form name (see [`write_key_as_text`]).
pub fn key_to_text(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len() + 1);
    let _ = write_key_as_text(key, &mut s);
    s
}

/// Byte offsets at which each proper parent of `key` starts, nearest parent
/// first: for `a.b.c` these are the offsets of `b.c` and `c`.
pub fn parent_offsets(key: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= key.len() {
            return None;
        }
        pos += 1 + key[pos] as usize;
        (pos < key.len()).then_some(pos)
    })
}

/// DNSSEC canonical order of two key-form names (RFC 4034 §6.1): labels
/// compared from the root down as lower-case octet strings, a name sorting
/// before its descendants. Unbound's RPZ wildcard lookup depends on it.
pub fn canonical_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn starts(key: &[u8], out: &mut [u8; 128]) -> usize {
        let (mut n, mut pos) = (0, 0);
        while pos < key.len() && n < out.len() {
            out[n] = pos as u8;
            pos += 1 + key[pos] as usize;
            n += 1;
        }
        n
    }
    let (mut la, mut lb) = ([0u8; 128], [0u8; 128]);
    let (na, nb) = (starts(a, &mut la), starts(b, &mut lb));
    fn label(key: &[u8], at: u8) -> &[u8] {
        let at = at as usize;
        let end = (at + 1 + key[at] as usize).min(key.len());
        &key[at + 1..end]
    }
    for i in 1..=na.min(nb) {
        let ord = label(a, la[na - i]).cmp(label(b, lb[nb - i]));
        if ord.is_ne() {
            return ord;
        }
    }
    na.cmp(&nb)
}

/// Number of labels in a key-form name.
pub fn label_count(key: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while pos < key.len() {
        pos += 1 + key[pos] as usize;
        n += 1;
    }
    n
}

/// A key-form name stored inline, so that parsing a query allocates
/// nothing on the resolver's hot path. Query events carry the smaller
/// [`EventName`].
#[derive(Clone, Copy)]
pub struct InlineName {
    len: u8,
    buf: [u8; MAX_KEY_LEN],
}

impl InlineName {
    /// Copies `key`, cutting it at [`MAX_KEY_LEN`] (never longer for a name
    /// that came out of a parsed packet).
    pub fn new(key: &[u8]) -> Self {
        let len = key.len().min(MAX_KEY_LEN);
        let mut buf = [0u8; MAX_KEY_LEN];
        buf[..len].copy_from_slice(&key[..len]);
        Self {
            len: len as u8,
            buf,
        }
    }

    pub fn as_key(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

impl Default for InlineName {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl fmt::Display for InlineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_key_as_text(self.as_key(), f)
    }
}

impl fmt::Debug for InlineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InlineName({self})")
    }
}

impl PartialEq for InlineName {
    fn eq(&self, other: &Self) -> bool {
        self.as_key() == other.as_key()
    }
}
impl Eq for InlineName {}

/// Bytes of a key-form name an [`EventName`] holds without allocating:
/// almost every name a council's devices ask for.
pub const EVENT_NAME_INLINE: usize = 62;

/// A key-form name in a query event: inline up to [`EVENT_NAME_INLINE`]
/// bytes, on the heap beyond. Every byte of an event is written by the
/// resolver into the queue to storage and read back by the collector, a
/// few milliseconds later and out of cache; an [`InlineName`] would be 255
/// of an event's 330 bytes whatever the name's length, this one is 64.
#[derive(Clone)]
pub struct EventName(EventNameRepr);

#[derive(Clone)]
enum EventNameRepr {
    Inline {
        len: u8,
        buf: [u8; EVENT_NAME_INLINE],
    },
    Heap(Box<[u8]>),
}

impl EventName {
    /// Copies `key`, cutting it at [`MAX_KEY_LEN`] as [`InlineName`] does.
    pub fn new(key: &[u8]) -> Self {
        let key = &key[..key.len().min(MAX_KEY_LEN)];
        if key.len() <= EVENT_NAME_INLINE {
            let mut buf = [0u8; EVENT_NAME_INLINE];
            buf[..key.len()].copy_from_slice(key);
            Self(EventNameRepr::Inline {
                len: key.len() as u8,
                buf,
            })
        } else {
            Self(EventNameRepr::Heap(key.into()))
        }
    }

    pub fn as_key(&self) -> &[u8] {
        match &self.0 {
            EventNameRepr::Inline { len, buf } => &buf[..*len as usize],
            EventNameRepr::Heap(b) => b,
        }
    }
}

impl Default for EventName {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl From<&InlineName> for EventName {
    fn from(n: &InlineName) -> Self {
        Self::new(n.as_key())
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_key_as_text(self.as_key(), f)
    }
}

impl fmt::Debug for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventName({self})")
    }
}

impl PartialEq for EventName {
    fn eq(&self, other: &Self) -> bool {
        self.as_key() == other.as_key()
    }
}
impl Eq for EventName {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_round_trip() {
        assert_eq!(
            text_to_key("Www.Example.COM.").unwrap(),
            b"\x03www\x07example\x03com"
        );
        assert_eq!(
            text_to_key("www.example.com").unwrap(),
            b"\x03www\x07example\x03com"
        );
        assert_eq!(text_to_key(".").unwrap(), b"");
        assert_eq!(key_to_text(b"\x03www\x07example\x03com"), "www.example.com");
        assert_eq!(key_to_text(b""), ".");
        assert_eq!(text_to_key(r"a\.b.c").unwrap(), b"\x03a.b\x01c");
        assert_eq!(key_to_text(b"\x03a.b\x01c"), r"a\.b.c");
        assert_eq!(text_to_key(r"\065.c").unwrap(), b"\x01a\x01c");
    }

    #[test]
    fn rejects_bad_names() {
        assert!(matches!(text_to_key("a..b"), Err(NameError::EmptyLabel(_))));
        assert!(matches!(text_to_key(".a"), Err(NameError::EmptyLabel(_))));
        let long = "a".repeat(64);
        assert!(matches!(
            text_to_key(&long),
            Err(NameError::LabelTooLong(_))
        ));
        let total = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(
            text_to_key(&total),
            Err(NameError::NameTooLong(_))
        ));
        assert!(matches!(text_to_key(r"a\"), Err(NameError::BadEscape(_))));
        assert!(matches!(
            text_to_key(r"a\999"),
            Err(NameError::BadEscape(_))
        ));
    }

    #[test]
    fn parents() {
        let k = text_to_key("a.bb.ccc").unwrap();
        let parents: Vec<_> = parent_offsets(&k).map(|o| key_to_text(&k[o..])).collect();
        assert_eq!(parents, ["bb.ccc", "ccc"]);
        assert_eq!(label_count(&k), 3);
        assert_eq!(parent_offsets(b"").count(), 0);
    }

    #[test]
    fn canonical_order_is_rfc_4034s() {
        let names = [
            "example",
            "a.example",
            "yljkjljk.a.example",
            "Z.a.example",
            "zABC.a.EXAMPLE",
            "z.example",
            "\\001.z.example",
            "*.z.example",
            "\\200.z.example",
        ];
        let keys: Vec<Vec<u8>> = names.iter().map(|n| text_to_key(n).unwrap()).collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(
                    canonical_cmp(a, b),
                    i.cmp(&j),
                    "{} vs {}",
                    names[i],
                    names[j]
                );
            }
        }
    }

    proptest! {
        #[test]
        fn key_text_key_is_identity(labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..20), 1..8)) {
            let mut key = Vec::new();
            for l in &labels {
                key.push(l.len() as u8);
                key.extend(l.iter().map(u8::to_ascii_lowercase));
            }
            let text = key_to_text(&key);
            prop_assert_eq!(text_to_key(&text).unwrap(), key);
        }

        #[test]
        fn never_panics_on_text(s in ".{0,300}") {
            let _ = text_to_key(&s);
        }
    }

    #[test]
    fn event_names_hold_short_names_inline_and_long_ones_whole() {
        assert_eq!(std::mem::size_of::<EventName>(), 64);
        let short = text_to_key("www.example.com").unwrap();
        let at_limit = [b'a'; EVENT_NAME_INLINE];
        let long = text_to_key(&vec!["abcdefghi"; 25].join(".")).unwrap();
        assert!(long.len() > EVENT_NAME_INLINE);
        for key in [&short[..], &at_limit[..], &long[..], &[][..]] {
            let n = EventName::new(key);
            assert_eq!(n.as_key(), key);
            assert_eq!(n, EventName::from(&InlineName::new(key)));
            assert_eq!(n.to_string(), InlineName::new(key).to_string());
        }
        assert!(matches!(
            EventName::new(&short).0,
            EventNameRepr::Inline { .. }
        ));
        assert!(matches!(EventName::new(&long).0, EventNameRepr::Heap(_)));
        // cut where InlineName cuts
        let over = vec![b'b'; MAX_KEY_LEN + 3];
        assert_eq!(EventName::new(&over).as_key().len(), MAX_KEY_LEN);
    }
}
