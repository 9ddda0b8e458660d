//! The wire form of zone-transfer messages: the AXFR/IXFR query Parapet
//! sends, and a lean reader of the primary's answers.
//!
//! The reader copies nothing but the record it is on: a million-name AXFR
//! streams through one reused [`Rr`]. Names come out in key form (lower
//! case, no root byte), and the names inside the rdata of the RFC 1035
//! types that may be compressed are decompressed, so that a record's rdata
//! means the same outside its message.

use std::fmt;

pub const HEADER_LEN: usize = 12;
pub const TYPE_SOA: u16 = 6;
pub const TYPE_TSIG: u16 = 250;
pub const TYPE_IXFR: u16 = 251;
pub const TYPE_AXFR: u16 = 252;
pub const CLASS_IN: u16 = 1;
pub const OPCODE_NOTIFY: u8 = 4;

/// Why a message was refused. Each says what was wrong where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgError(pub String);

impl fmt::Display for MsgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: impl Into<String>) -> MsgError {
    MsgError(what.into())
}

fn u16_at(b: &[u8], i: usize) -> Result<u16, MsgError> {
    match (b.get(i), b.get(i + 1)) {
        (Some(&x), Some(&y)) => Ok(u16::from_be_bytes([x, y])),
        _ => Err(bad(format!("message cut short at byte {i}"))),
    }
}

fn u32_at(b: &[u8], i: usize) -> Result<u32, MsgError> {
    Ok(((u16_at(b, i)? as u32) << 16) | u16_at(b, i + 2)? as u32)
}

/// Reads a possibly compressed name at `pos` into `out` (key form, lower
/// case); returns the position after it. Pointers must point backwards, so
/// a loop cannot be built.
pub fn read_name(msg: &[u8], mut pos: usize, out: &mut Vec<u8>) -> Result<usize, MsgError> {
    out.clear();
    let mut end = None;
    let mut limit = pos;
    loop {
        let Some(&len) = msg.get(pos) else {
            return Err(bad(format!("name cut short at byte {pos}")));
        };
        match len {
            0 => return Ok(end.unwrap_or(pos + 1)),
            1..=63 => {
                let label = msg
                    .get(pos + 1..pos + 1 + len as usize)
                    .ok_or_else(|| bad(format!("label cut short at byte {pos}")))?;
                if out.len() + 1 + label.len() > parapet_core::name::MAX_KEY_LEN {
                    return Err(bad(format!("name longer than 255 octets at byte {pos}")));
                }
                out.push(len);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += 1 + len as usize;
            }
            0xc0..=0xff => {
                let target = (u16_at(msg, pos)? & 0x3fff) as usize;
                if target >= limit {
                    return Err(bad(format!(
                        "compression pointer at byte {pos} does not point backwards"
                    )));
                }
                end.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => return Err(bad(format!("bad label type {len:#04x} at byte {pos}"))),
        }
    }
}

/// One resource record, owner and rdata decompressed. Reused from record
/// to record.
#[derive(Debug, Default, Clone)]
pub struct Rr {
    /// Key form.
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// Canonical rdata: names inside in uncompressed wire form (key form
    /// plus the root byte), lower case.
    pub rdata: Vec<u8>,
    name: Vec<u8>,
}

/// How many names lead a type's rdata, and the fixed bytes before them,
/// for the types whose names may be compressed (RFC 3597 §4).
fn compressed_names(rtype: u16) -> Option<(usize, usize)> {
    match rtype {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 => Some((0, 1)),
        // SOA, MINFO: two names (SOA's 20 bytes of numbers follow)
        6 | 14 => Some((0, 2)),
        // MX: preference, then a name
        15 => Some((2, 1)),
        _ => None,
    }
}

/// Appends a key-form name in wire form (with its root byte).
fn push_wire(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(key);
    out.push(0);
}

/// Reads the record at `pos` into `rr`; returns the position after it.
pub fn read_rr(msg: &[u8], pos: usize, rr: &mut Rr) -> Result<usize, MsgError> {
    let mut p = read_name(msg, pos, &mut rr.owner)?;
    rr.rtype = u16_at(msg, p)?;
    rr.class = u16_at(msg, p + 2)?;
    rr.ttl = u32_at(msg, p + 4)?;
    let rdlen = u16_at(msg, p + 8)? as usize;
    p += 10;
    let end = p + rdlen;
    let raw = msg
        .get(p..end)
        .ok_or_else(|| bad(format!("rdata cut short at byte {p}")))?;
    rr.rdata.clear();
    match compressed_names(rr.rtype) {
        Some((fixed, names)) => {
            let head = raw
                .get(..fixed)
                .ok_or_else(|| bad(format!("rdata too short at byte {p}")))?;
            rr.rdata.extend_from_slice(head);
            let mut q = p + fixed;
            for _ in 0..names {
                if q >= end {
                    return Err(bad(format!("rdata too short at byte {p}")));
                }
                q = read_name(msg, q, &mut rr.name)?;
                push_wire(&mut rr.rdata, &rr.name);
            }
            if q > end {
                return Err(bad(format!("a name overruns its rdata at byte {p}")));
            }
            let tail = &msg[q..end];
            if rr.rtype == TYPE_SOA && tail.len() != 20 {
                return Err(bad(format!("SOA rdata of the wrong length at byte {p}")));
            }
            rr.rdata.extend_from_slice(tail);
        }
        None => rr.rdata.extend_from_slice(raw),
    }
    Ok(end)
}

/// The numbers of an SOA record's canonical rdata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoaTimes {
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
}

impl SoaTimes {
    /// Reads the last 20 bytes of canonical SOA rdata.
    pub fn of(rdata: &[u8]) -> Option<Self> {
        let t = rdata.len().checked_sub(20)?;
        let n = |i: usize| u32_at(rdata, t + i * 4).ok();
        Some(Self {
            serial: n(0)?,
            refresh: n(1)?,
            retry: n(2)?,
            expire: n(3)?,
            minimum: n(4)?,
        })
    }
}

/// RFC 1982 serial number arithmetic: whether `a` comes after `b`.
pub fn serial_gt(a: u32, b: u32) -> bool {
    a != b && (a.wrapping_sub(b) as i32) > 0
}

/// Writes the query for a zone transfer: AXFR, or IXFR from `serial` (the
/// SOA of the version held goes in the authority section, RFC 1995 §3).
pub fn transfer_query(id: u16, zone: &[u8], serial: Option<u32>) -> Vec<u8> {
    let mut q = Vec::with_capacity(64 + 2 * zone.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0u16.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&0u16.to_be_bytes());
    q.extend_from_slice(&(serial.is_some() as u16).to_be_bytes());
    q.extend_from_slice(&0u16.to_be_bytes());
    push_wire(&mut q, zone);
    let qtype = if serial.is_some() {
        TYPE_IXFR
    } else {
        TYPE_AXFR
    };
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(s) = serial {
        // owner: a pointer to the question's name; mname and rname: root
        q.extend_from_slice(&[0xc0, 12]);
        q.extend_from_slice(&TYPE_SOA.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q.extend_from_slice(&0u32.to_be_bytes());
        q.extend_from_slice(&22u16.to_be_bytes());
        q.extend_from_slice(&[0, 0]);
        q.extend_from_slice(&s.to_be_bytes());
        q.extend_from_slice(&[0; 16]);
    }
    q
}

/// A transfer response's header, checked against the query, and where its
/// answer records start.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    pub rcode: u8,
    pub answers: u16,
    pub answers_at: usize,
}

/// Reads a response's header and question. `zone` and `qtype` are the
/// query's; a response may leave the question out after its first
/// message.
pub fn read_response(msg: &[u8], id: u16, zone: &[u8], qtype: u16) -> Result<Response, MsgError> {
    if msg.len() < HEADER_LEN {
        return Err(bad(format!(
            "message of {} bytes, shorter than a header",
            msg.len()
        )));
    }
    if u16_at(msg, 0)? != id {
        return Err(bad("message ID does not match the query"));
    }
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        return Err(bad("not a response (QR is clear)"));
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(bad("response opcode is not QUERY"));
    }
    if flags & 0x0200 != 0 {
        return Err(bad("response is truncated (TC) over TCP"));
    }
    let qd = u16_at(msg, 4)?;
    let answers = u16_at(msg, 6)?;
    let mut pos = HEADER_LEN;
    if qd > 1 {
        return Err(bad(format!("{qd} questions in a response")));
    }
    if qd == 1 {
        let mut name = Vec::new();
        pos = read_name(msg, pos, &mut name)?;
        let t = u16_at(msg, pos)?;
        pos += 4;
        if name != zone || t != qtype {
            return Err(bad("the response's question is not the query's"));
        }
    }
    Ok(Response {
        rcode: (flags & 0xf) as u8,
        answers,
        answers_at: pos,
    })
}

/// A NOTIFY's zone, when `msg` is a well-formed NOTIFY for an SOA.
pub fn notify_zone(msg: &[u8]) -> Option<Vec<u8>> {
    let flags = u16_at(msg, 2).ok()?;
    if flags & 0x8000 != 0 || ((flags >> 11) & 0xf) as u8 != OPCODE_NOTIFY {
        return None;
    }
    if u16_at(msg, 4).ok()? != 1 {
        return None;
    }
    let mut name = Vec::new();
    let pos = read_name(msg, HEADER_LEN, &mut name).ok()?;
    (u16_at(msg, pos).ok()? == TYPE_SOA).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Vec<u8> {
        parapet_core::name::text_to_key(s).unwrap()
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial_gt(2, 1));
        assert!(!serial_gt(1, 2));
        assert!(!serial_gt(5, 5));
        assert!(serial_gt(1, u32::MAX));
        assert!(!serial_gt(u32::MAX, 1));
    }

    #[test]
    fn ixfr_query_carries_the_serial() {
        let q = transfer_query(7, &key("rpz.example"), Some(42));
        let r = read_response(
            &{
                let mut r = q.clone();
                r[2] |= 0x80;
                r
            },
            7,
            &key("rpz.example"),
            TYPE_IXFR,
        )
        .unwrap();
        assert_eq!(r.rcode, 0);
        // the authority SOA, read as any record
        let mut rr = Rr::default();
        let end = read_rr(&q, r.answers_at, &mut rr).unwrap();
        assert_eq!(end, q.len());
        assert_eq!(rr.owner, key("rpz.example"));
        assert_eq!(SoaTimes::of(&rr.rdata).unwrap().serial, 42);
    }

    #[test]
    fn names_decompress_and_lower_case() {
        // header, then "A.Ex" at 12, then a CNAME whose owner points at 12
        // and whose target is "x" + pointer to 14 ("Ex")
        let mut m = vec![0u8; 12];
        m.extend_from_slice(b"\x01A\x02Ex\x00");
        let rr_at = m.len();
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1, b'x', 0xc0, 14]);
        let mut rr = Rr::default();
        assert_eq!(read_rr(&m, rr_at, &mut rr).unwrap(), m.len());
        assert_eq!(rr.owner, key("a.ex"));
        assert_eq!(rr.rdata, b"\x01x\x02ex\x00");
    }

    #[test]
    fn pointer_loops_and_forward_pointers_fail() {
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0xc0, 12]);
        assert!(read_name(&m, 12, &mut Vec::new()).is_err());
        let mut m = vec![0u8; 12];
        m.extend_from_slice(&[0xc0, 14, 0]);
        assert!(read_name(&m, 12, &mut Vec::new()).is_err());
    }

    #[test]
    fn notify_zone_is_read() {
        let mut m = transfer_query(1, &key("rpz.example"), None);
        m[2] = OPCODE_NOTIFY << 3;
        m[HEADER_LEN + 14] = TYPE_SOA as u8;
        assert_eq!(notify_zone(&m), Some(key("rpz.example")));
        m[2] |= 0x80;
        assert_eq!(notify_zone(&m), None);
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut rr = Rr::default();
            let _ = read_rr(&bytes, HEADER_LEN.min(bytes.len()), &mut rr);
            let _ = read_response(&bytes, 0, b"", TYPE_AXFR);
            let _ = notify_zone(&bytes);
        }
    }
}
