//! Just enough of the DNS wire format for a forwarding resolver's hot path
//! (RFC 1035, RFC 6891 EDNS0, RFC 8914 extended errors).
//!
//! Queries are parsed only as far as the question and the OPT record;
//! answers from upstream are kept as bytes and patched in place (ID, RD
//! flag, question case, TTLs) rather than parsed and rebuilt. Answers the
//! resolver makes itself (blocks, local data, errors) are written directly
//! into the caller's buffer.

use std::net::IpAddr;

use parapet_core::name::{InlineName, MAX_KEY_LEN};
use parapet_core::policy::rtype;

pub const HEADER_LEN: usize = 12;
/// Largest UDP payload Parapet advertises and accepts by default (DNS flag
/// day 2020: fits an IPv6 minimum MTU without fragmentation).
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;
/// UDP limit for a client that sent no OPT record.
pub const CLASSIC_UDP_LIMIT: usize = 512;

pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended (OPT) rcode 16: upper 8 bits 1, header bits 0.
    pub const BADVERS: u16 = 16;
}

/// Header flag bits.
pub mod flag {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;
}

/// Extended DNS Error info codes (RFC 8914) Parapet sends.
pub mod ede {
    /// RFC 8767 serve-stale.
    pub const STALE_ANSWER: u16 = 3;
    pub const BLOCKED: u16 = 15;
    pub const FILTERED: u16 = 17;
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
}

/// The EDNS0 parameters of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub do_bit: bool,
}

/// A parsed query. Borrows the packet; the lower-cased name is inline.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub id: u16,
    /// Header flags as received.
    pub flags: u16,
    /// Question bytes exactly as received (name in the client's case, type, class).
    pub question: &'a [u8],
    /// The name, lower-cased, in key form.
    pub qname: InlineName,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

impl Query<'_> {
    pub fn rd(&self) -> bool {
        self.flags & flag::RD != 0
    }

    pub fn cd(&self) -> bool {
        self.flags & flag::CD != 0
    }

    /// Largest response this client can take over UDP.
    pub fn udp_limit(&self, our_max: u16) -> usize {
        match self.edns {
            Some(e) => (e.udp_size.min(our_max) as usize).max(CLASSIC_UDP_LIMIT),
            None => CLASSIC_UDP_LIMIT,
        }
    }
}

/// Longest question section [`parse_query`] accepts: a wire name of at
/// most 255 bytes (its key form and the root byte), type and class.
pub const MAX_QUESTION_LEN: usize = MAX_KEY_LEN + 1 + 4;

/// A parsed [`Query`] that owns its question bytes, for a query that waits
/// for upstream after its packet's buffer has gone back to the listener.
/// The bytes are inline, like the name's, so that keeping a query costs no
/// allocation of its own and reading it back no second parse.
#[derive(Debug, Clone)]
pub struct OwnedQuery {
    /// Every field but the question, which is left empty: see `question`.
    head: Query<'static>,
    question: [u8; MAX_QUESTION_LEN],
    question_len: u16,
}

impl OwnedQuery {
    /// Copies `q`, its question cut at [`MAX_QUESTION_LEN`] (never longer
    /// for a query that came out of [`parse_query`]).
    pub fn new(q: &Query<'_>) -> Self {
        let len = q.question.len().min(MAX_QUESTION_LEN);
        // filled where it lies, rather than built aside and moved in
        let mut owned = Self {
            head: Query {
                question: &[],
                ..q.clone()
            },
            question: [0; MAX_QUESTION_LEN],
            question_len: len as u16,
        };
        owned.question[..len].copy_from_slice(&q.question[..len]);
        owned
    }

    pub fn as_query(&self) -> Query<'_> {
        Query {
            question: &self.question[..self.question_len as usize],
            ..self.head.clone()
        }
    }
}

/// Why a packet is not a query Parapet resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not worth an answer: shorter than a header, or a response (answering
    /// responses invites loops and reflection).
    Drop,
    /// Answer with this rcode, echoing the question when `question_end` is
    /// set (the question section ends there) and an OPT when `edns` is.
    Error {
        rcode: u16,
        question_end: Option<usize>,
        edns: Option<Edns>,
    },
}

#[inline]
fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

#[inline]
fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(i)?,
        *b.get(i + 1)?,
        *b.get(i + 2)?,
        *b.get(i + 3)?,
    ]))
}

/// Parses a query: header, the single question (no compression allowed),
/// and the OPT record if present.
pub fn parse_query(packet: &[u8]) -> Result<Query<'_>, Reject> {
    if packet.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16_at(packet, 0).unwrap_or(0);
    let flags = u16_at(packet, 2).unwrap_or(0);
    if flags & flag::QR != 0 {
        return Err(Reject::Drop);
    }
    let formerr = |question_end| Reject::Error {
        rcode: rcode::FORMERR as u16,
        question_end,
        edns: None,
    };
    let opcode = (flags >> 11) & 0xf;
    if opcode != 0 {
        return Err(Reject::Error {
            rcode: rcode::NOTIMP as u16,
            question_end: None,
            edns: None,
        });
    }
    let qdcount = u16_at(packet, 4).unwrap_or(0);
    let ancount = u16_at(packet, 6).unwrap_or(0);
    let nscount = u16_at(packet, 8).unwrap_or(0);
    let arcount = u16_at(packet, 10).unwrap_or(0);
    if qdcount != 1 {
        return Err(formerr(None));
    }
    // question name: plain labels only
    let mut key = [0u8; MAX_KEY_LEN];
    let mut klen = 0usize;
    let mut pos = HEADER_LEN;
    loop {
        let Some(&len) = packet.get(pos) else {
            return Err(formerr(None));
        };
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 {
            return Err(formerr(None));
        }
        let len = len as usize;
        let Some(label) = packet.get(pos + 1..pos + 1 + len) else {
            return Err(formerr(None));
        };
        if klen + 1 + len > MAX_KEY_LEN {
            return Err(formerr(None));
        }
        key[klen] = len as u8;
        for (d, s) in key[klen + 1..klen + 1 + len].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        klen += 1 + len;
        pos += 1 + len;
    }
    let (Some(qtype), Some(qclass)) = (u16_at(packet, pos), u16_at(packet, pos + 2)) else {
        return Err(formerr(None));
    };
    pos += 4;
    let question_end = pos;
    // skip answer and authority records, then find OPT among the additional
    for _ in 0..(ancount as u32 + nscount as u32) {
        pos = skip_record(packet, pos).ok_or(formerr(Some(question_end)))?;
    }
    let mut edns = None;
    for _ in 0..arcount {
        let name_end = skip_name(packet, pos).ok_or(formerr(Some(question_end)))?;
        let rtype = u16_at(packet, name_end).ok_or(formerr(Some(question_end)))?;
        if rtype == rtype::OPT {
            if edns.is_some() || name_end != pos + 1 || packet[pos] != 0 {
                return Err(formerr(Some(question_end)));
            }
            let udp_size = u16_at(packet, name_end + 2).ok_or(formerr(Some(question_end)))?;
            let ttl = u32_at(packet, name_end + 4).ok_or(formerr(Some(question_end)))?;
            let version = (ttl >> 16) as u8;
            let e = Edns {
                udp_size: udp_size.max(CLASSIC_UDP_LIMIT as u16),
                do_bit: ttl & 0x8000 != 0,
            };
            if version != 0 {
                return Err(Reject::Error {
                    rcode: rcode::BADVERS,
                    question_end: Some(question_end),
                    edns: Some(e),
                });
            }
            edns = Some(e);
        }
        pos = skip_record(packet, pos).ok_or(formerr(Some(question_end)))?;
    }
    Ok(Query {
        id,
        flags,
        question: &packet[HEADER_LEN..question_end],
        qname: InlineName::new(&key[..klen]),
        qtype,
        qclass,
        edns,
    })
}

/// EDNS option code of Client Subnet (RFC 7871).
const OPT_CLIENT_SUBNET: u16 = 8;

/// The address of a query's EDNS Client Subnet option (RFC 7871), its
/// bits past the source prefix zero; `None` without one, or when the
/// option is malformed (a family other than 1 or 2, a prefix too long for
/// it, an address not exactly as long as the prefix needs). Called only
/// for queries from trusted forwarders, never on the common path.
pub fn ecs_address(packet: &[u8]) -> Option<IpAddr> {
    let counts = |i: usize| u16_at(packet, 4 + 2 * i);
    let mut pos = skip_name(packet, HEADER_LEN)? + 4;
    for _ in 0..(u32::from(counts(1)?) + u32::from(counts(2)?)) {
        pos = skip_record(packet, pos)?;
    }
    for _ in 0..counts(3)? {
        let name_end = skip_name(packet, pos)?;
        if u16_at(packet, name_end)? == rtype::OPT {
            let rdlen = usize::from(u16_at(packet, name_end + 8)?);
            let rdata = packet.get(name_end + 10..name_end + 10 + rdlen)?;
            return ecs_in_options(rdata);
        }
        pos = skip_record(packet, pos)?;
    }
    None
}

fn ecs_in_options(mut opts: &[u8]) -> Option<IpAddr> {
    while opts.len() >= 4 {
        let code = u16::from_be_bytes([opts[0], opts[1]]);
        let len = usize::from(u16::from_be_bytes([opts[2], opts[3]]));
        let data = opts.get(4..4 + len)?;
        if code == OPT_CLIENT_SUBNET {
            let (&[f0, f1, source, _scope], addr) = data.split_first_chunk::<4>()?;
            let family = u16::from_be_bytes([f0, f1]);
            let max = if family == 1 { 32 } else { 128 };
            if !(family == 1 || family == 2)
                || source > max
                || addr.len() != usize::from(source).div_ceil(8)
            {
                return None;
            }
            let mut b = [0u8; 16];
            b[..addr.len()].copy_from_slice(addr);
            return Some(if family == 1 {
                IpAddr::V4(std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            } else {
                IpAddr::V6(std::net::Ipv6Addr::from(b))
            });
        }
        opts = &opts[4 + len..];
    }
    None
}

/// Offset just past a (possibly compressed) name starting at `pos`.
pub fn skip_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => {
                pos += 1 + len as usize;
                if pos > msg.len() {
                    return None;
                }
            }
            0xc0 => {
                msg.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// Offset just past the resource record starting at `pos`.
pub fn skip_record(msg: &[u8], pos: usize) -> Option<usize> {
    let p = skip_name(msg, pos)?;
    let rdlen = u16_at(msg, p + 8)? as usize;
    let end = p + 10 + rdlen;
    (end <= msg.len()).then_some(end)
}

/// Appends the uncompressed wire form of the (possibly compressed) name at
/// `pos` in `msg` to `out`. Returns the offset just past the name in `msg`.
pub fn read_name(msg: &[u8], mut pos: usize, out: &mut Vec<u8>) -> Option<usize> {
    let mut end = None;
    let mut jumps = 0;
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                out.push(0);
                return Some(end.unwrap_or(pos + 1));
            }
            0x00 => {
                let l = len as usize;
                total += 1 + l;
                if total > 255 {
                    return None;
                }
                out.extend_from_slice(msg.get(pos..pos + 1 + l)?);
                pos += 1 + l;
            }
            0xc0 => {
                let ptr = ((len as usize & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
                end.get_or_insert(pos + 2);
                jumps += 1;
                // pointers must go backwards; a bound on jumps stops loops anyway
                if ptr >= pos || jumps > 64 {
                    return None;
                }
                pos = ptr;
            }
            _ => return None,
        }
    }
}

/// Compares the name at `pos` in `msg` (possibly compressed) with a
/// key-form name, ignoring ASCII case.
pub fn name_eq_key(msg: &[u8], pos: usize, key: &[u8]) -> bool {
    let mut buf = Vec::with_capacity(key.len() + 1);
    if read_name(msg, pos, &mut buf).is_none() {
        return false;
    }
    buf.len() == key.len() + 1
        && buf[..key.len()]
            .iter()
            .zip(key)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
}

/// Writes a response header.
#[inline]
pub fn push_header(out: &mut Vec<u8>, id: u16, flags: u16, counts: [u16; 4]) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

/// Response flags for a query: QR, RA, the query's RD and CD, and `rcode`.
#[inline]
pub fn response_flags(query_flags: u16, rcode: u8) -> u16 {
    flag::QR | flag::RA | (query_flags & (flag::RD | flag::CD)) | (rcode as u16 & 0xf)
}

/// Starts a response to `q` with an empty answer: header and question.
/// Counts are patched by [`set_count`] as records are added.
pub fn begin_response(out: &mut Vec<u8>, q: &Query<'_>, rcode: u8, extra_flags: u16) {
    out.clear();
    push_header(
        out,
        q.id,
        response_flags(q.flags, rcode) | extra_flags,
        [1, 0, 0, 0],
    );
    out.extend_from_slice(q.question);
}

/// Section count indexes for [`set_count`] and [`count`].
pub const AN: usize = 1;
pub const NS: usize = 2;
pub const AR: usize = 3;

pub fn set_count(out: &mut [u8], section: usize, n: u16) {
    out[4 + section * 2..6 + section * 2].copy_from_slice(&n.to_be_bytes());
}

pub fn count(msg: &[u8], section: usize) -> u16 {
    u16_at(msg, 4 + section * 2).unwrap_or(0)
}

/// Appends a record whose owner is the question name (a pointer to offset
/// 12) to the answer section.
pub fn push_answer(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&[0xc0, 0x0c]);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    let n = count(out, AN) + 1;
    set_count(out, AN, n);
}

/// Appends our OPT record (answering a query that had one), optionally
/// with an Extended DNS Error, and bumps ARCOUNT. `ext_rcode` is the upper
/// 8 bits of a 12-bit rcode.
pub fn push_opt(out: &mut Vec<u8>, udp_payload: u16, ext_rcode: u8, ede: Option<(u16, &str)>) {
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&udp_payload.to_be_bytes());
    out.extend_from_slice(&[ext_rcode, 0, 0, 0]);
    match ede {
        Some((code, text)) => {
            let text = &text.as_bytes()[..text.len().min(200)];
            let optlen = 2 + text.len() as u16;
            out.extend_from_slice(&(4 + optlen).to_be_bytes());
            out.extend_from_slice(&15u16.to_be_bytes());
            out.extend_from_slice(&optlen.to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text);
        }
        None => out.extend_from_slice(&0u16.to_be_bytes()),
    }
    let n = count(out, AR) + 1;
    set_count(out, AR, n);
}

/// Writes a complete error response (FORMERR, NOTIMP, REFUSED, SERVFAIL,
/// BADVERS) to a packet that may not have parsed.
pub fn error_response(
    out: &mut Vec<u8>,
    packet: &[u8],
    rcode: u16,
    question_end: Option<usize>,
    edns: Option<Edns>,
    udp_payload: u16,
    ede: Option<(u16, &str)>,
) {
    out.clear();
    let id = u16_at(packet, 0).unwrap_or(0);
    let qflags = u16_at(packet, 2).unwrap_or(0);
    // keep the opcode, as RFC 1035 asks of a response
    let flags = response_flags(qflags, (rcode & 0xf) as u8) | (qflags & 0x7800);
    let qd = question_end.is_some() as u16;
    push_header(out, id, flags, [qd, 0, 0, 0]);
    if let Some(end) = question_end {
        out.extend_from_slice(&packet[HEADER_LEN..end]);
    }
    if edns.is_some() {
        push_opt(out, udp_payload, (rcode >> 4) as u8, ede);
    }
}

/// Replaces `out` by a truncated (TC=1) version of the response to `q`:
/// header and question, plus OPT when the query had one.
pub fn truncate_response(out: &mut Vec<u8>, q: &Query<'_>, udp_payload: u16) {
    let flags = u16_at(out, 2).unwrap_or(0);
    let rc = (flags & 0xf) as u8;
    begin_response(out, q, rc, flag::TC | (flags & flag::AA));
    if q.edns.is_some() {
        push_opt(out, udp_payload, 0, None);
    }
}

/// Builds the query Parapet sends upstream for `q`: a fresh ID, RD set, the
/// client's CD, the lower-cased name, and an OPT (with the client's DO bit)
/// only when the client sent one, so that one cached answer fits every
/// client of the same cache variant.
pub fn upstream_query(out: &mut Vec<u8>, id: u16, q: &Query<'_>, udp_payload: u16) {
    out.clear();
    let flags = flag::RD | (q.flags & flag::CD);
    push_header(out, id, flags, [1, 0, 0, q.edns.is_some() as u16]);
    push_key_as_wire(out, q.qname.as_key());
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    if let Some(e) = q.edns {
        out.push(0);
        out.extend_from_slice(&rtype::OPT.to_be_bytes());
        out.extend_from_slice(&udp_payload.to_be_bytes());
        out.extend_from_slice(&[0, 0, if e.do_bit { 0x80 } else { 0 }, 0]);
        out.extend_from_slice(&0u16.to_be_bytes());
    }
}

/// Appends a key-form name as an uncompressed wire name (with the root byte).
pub fn push_key_as_wire(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(key);
    out.push(0);
}

/// What Parapet needs to know of an upstream response to cache and serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    pub rcode: u8,
    pub truncated: bool,
    pub answers: u16,
    /// Offsets of every TTL field except the OPT record's.
    pub ttl_offsets: Vec<u16>,
    /// Smallest TTL of any record (OPT excluded), if there are records.
    pub min_ttl: Option<u32>,
    /// For a negative answer: min(SOA TTL, SOA MINIMUM) of the authority SOA.
    pub negative_ttl: Option<u32>,
}

/// Walks every record of a response. Fails on a malformed message.
pub fn scan_response(msg: &[u8]) -> Option<ResponseInfo> {
    if msg.len() < HEADER_LEN || msg.len() > u16::MAX as usize {
        return None;
    }
    let flags = u16_at(msg, 2)?;
    let mut info = ResponseInfo {
        rcode: (flags & 0xf) as u8,
        truncated: flags & flag::TC != 0,
        answers: count(msg, AN),
        ..Default::default()
    };
    let mut pos = HEADER_LEN;
    for _ in 0..count(msg, 0) {
        pos = skip_name(msg, pos)? + 4;
    }
    let sections = [count(msg, AN), count(msg, NS), count(msg, AR)];
    for (section, &n) in sections.iter().enumerate() {
        for _ in 0..n {
            let name_end = skip_name(msg, pos)?;
            let rtype = u16_at(msg, name_end)?;
            let ttl = u32_at(msg, name_end + 4)?;
            let rdlen = u16_at(msg, name_end + 8)? as usize;
            let rdata = name_end + 10;
            let end = rdata + rdlen;
            if end > msg.len() {
                return None;
            }
            if rtype != rtype::OPT {
                info.ttl_offsets.push((name_end + 4) as u16);
                info.min_ttl = Some(info.min_ttl.map_or(ttl, |m: u32| m.min(ttl)));
                if section == 1 && rtype == rtype::SOA {
                    let p = skip_name(msg, rdata)?;
                    let p = skip_name(msg, p)?;
                    let minimum = u32_at(msg, p + 16)?;
                    if p + 20 > end {
                        return None;
                    }
                    info.negative_ttl = Some(ttl.min(minimum));
                }
            }
            pos = end;
        }
    }
    Some(info)
}

/// Checks that `msg` is the response to a query with `id` for
/// `key`/`qtype`/`qclass`.
pub fn matches_query(msg: &[u8], id: u16, key: &[u8], qtype: u16, qclass: u16) -> bool {
    if msg.len() < HEADER_LEN
        || u16_at(msg, 0) != Some(id)
        || u16_at(msg, 2).is_none_or(|f| f & flag::QR == 0)
        || count(msg, 0) != 1
    {
        return false;
    }
    let Some(end) = skip_name(msg, HEADER_LEN) else {
        return false;
    };
    name_eq_key(msg, HEADER_LEN, key)
        && u16_at(msg, end) == Some(qtype)
        && u16_at(msg, end + 2) == Some(qclass)
}

/// Turns a stored or upstream response into the answer for client query
/// `q`: the client's ID, RD and question bytes (their case), TTLs less
/// `age` seconds.
pub fn adapt_response(out: &mut [u8], q: &Query<'_>, ttl_offsets: &[u16], age: u32) {
    out[0..2].copy_from_slice(&q.id.to_be_bytes());
    // a forwarder offers recursion and is not authoritative for what it relays
    let flags = u16_at(out, 2).unwrap_or(0);
    let flags = (flags & !(flag::RD | flag::AA)) | (q.flags & flag::RD) | flag::RA;
    out[2..4].copy_from_slice(&flags.to_be_bytes());
    let qlen = q.question.len();
    if out.len() >= HEADER_LEN + qlen {
        out[HEADER_LEN..HEADER_LEN + qlen].copy_from_slice(q.question);
    }
    if age > 0 {
        for &off in ttl_offsets {
            let off = off as usize;
            if let Some(t) = u32_at(out, off) {
                out[off..off + 4].copy_from_slice(&t.saturating_sub(age).to_be_bytes());
            }
        }
    }
}

/// Sets every TTL at `ttl_offsets` to `ttl`.
pub fn set_ttls(out: &mut [u8], ttl_offsets: &[u16], ttl: u32) {
    for &off in ttl_offsets {
        if let Some(field) = out.get_mut(off as usize..off as usize + 4) {
            field.copy_from_slice(&ttl.to_be_bytes());
        }
    }
}

/// Adds an Extended DNS Error option to the OPT record of the response in
/// `out`, or appends an OPT carrying it (our payload size) when the
/// response has none. False when the message does not walk.
pub fn add_ede(out: &mut Vec<u8>, udp_payload: u16, code: u16, text: &str) -> bool {
    let Some(opt) = find_opt(out) else {
        return false;
    };
    let Some(rdlen_at) = opt else {
        push_opt(out, udp_payload, 0, Some((code, text)));
        return true;
    };
    let text = &text.as_bytes()[..text.len().min(200)];
    let Some(rdlen) = u16_at(out, rdlen_at) else {
        return false;
    };
    let optlen = 2 + text.len() as u16;
    let end = rdlen_at + 2 + rdlen as usize;
    let mut option = Vec::with_capacity(4 + optlen as usize);
    option.extend_from_slice(&15u16.to_be_bytes());
    option.extend_from_slice(&optlen.to_be_bytes());
    option.extend_from_slice(&code.to_be_bytes());
    option.extend_from_slice(text);
    let Some(new_len) = rdlen.checked_add(option.len() as u16) else {
        return false;
    };
    out.splice(end..end, option);
    out[rdlen_at..rdlen_at + 2].copy_from_slice(&new_len.to_be_bytes());
    true
}

/// Where the OPT record of a response keeps its RDLENGTH: `Some(None)`
/// when it has no OPT, `None` when the message does not walk.
fn find_opt(msg: &[u8]) -> Option<Option<usize>> {
    let mut pos = HEADER_LEN;
    for _ in 0..count(msg, 0) {
        pos = skip_name(msg, pos)? + 4;
    }
    let records = count(msg, AN) as usize + count(msg, NS) as usize + count(msg, AR) as usize;
    let additional_from = records - count(msg, AR) as usize;
    for i in 0..records {
        let name_end = skip_name(msg, pos)?;
        let rdlen = u16_at(msg, name_end + 8)? as usize;
        if i >= additional_from && u16_at(msg, name_end)? == rtype::OPT {
            return Some(Some(name_end + 8));
        }
        pos = name_end + 10 + rdlen;
        if pos > msg.len() {
            return None;
        }
    }
    Some(None)
}

/// Appends the answer-section records of `msg` to `out` with every name
/// decompressed (owner and, for types whose rdata holds names, the rdata),
/// so they can follow other records in a message Parapet builds. Returns
/// how many records were copied.
pub fn copy_answers(msg: &[u8], out: &mut Vec<u8>) -> Option<u16> {
    let mut pos = HEADER_LEN;
    for _ in 0..count(msg, 0) {
        pos = skip_name(msg, pos)? + 4;
    }
    let n = count(msg, AN);
    for _ in 0..n {
        pos = read_name(msg, pos, out)?;
        let fixed = msg.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = pos + 10;
        let end = rdata + rdlen;
        if end > msg.len() {
            return None;
        }
        out.extend_from_slice(&fixed[..8]);
        let len_at = out.len();
        out.extend_from_slice(&[0, 0]);
        let start = out.len();
        match rtype {
            rtype::CNAME | rtype::NS | rtype::PTR => {
                read_name(msg, rdata, out)?;
            }
            rtype::MX => {
                out.extend_from_slice(msg.get(rdata..rdata + 2)?);
                read_name(msg, rdata + 2, out)?;
            }
            rtype::SOA => {
                let p = read_name(msg, rdata, out)?;
                let p = read_name(msg, p, out)?;
                out.extend_from_slice(msg.get(p..p + 20)?);
            }
            _ => out.extend_from_slice(&msg[rdata..end]),
        }
        let written = (out.len() - start) as u16;
        out[len_at..len_at + 2].copy_from_slice(&written.to_be_bytes());
        pos = end;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::name::key_to_text;
    use proptest::prelude::*;

    fn query(name: &[u8], qtype: u16, edns: Option<(u16, bool)>) -> Vec<u8> {
        let mut q = Vec::new();
        push_header(&mut q, 0x1234, flag::RD, [1, 0, 0, edns.is_some() as u16]);
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        if let Some((size, d)) = edns {
            q.push(0);
            q.extend_from_slice(&41u16.to_be_bytes());
            q.extend_from_slice(&size.to_be_bytes());
            q.extend_from_slice(&[0, 0, if d { 0x80 } else { 0 }, 0, 0, 0]);
        }
        q
    }

    #[test]
    fn parses_question_and_edns() {
        let p = query(b"\x03WwW\x07Example\x03com\x00", 28, Some((4096, true)));
        let q = parse_query(&p).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(q.rd());
        assert_eq!(key_to_text(q.qname.as_key()), "www.example.com");
        assert_eq!(q.qtype, 28);
        assert_eq!(q.question, &p[12..12 + 17 + 4]);
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 4096,
                do_bit: true
            })
        );
        assert_eq!(q.udp_limit(1232), 1232);
        let p = query(b"\x01a\x00", 1, None);
        assert_eq!(parse_query(&p).unwrap().udp_limit(1232), 512);
    }

    /// A query with an OPT record holding `options` (code, data).
    fn query_with_options(options: &[(u16, &[u8])]) -> Vec<u8> {
        let mut q = query(b"\x01a\x00", 1, None);
        q[11] = 1;
        let rdata: Vec<u8> = options
            .iter()
            .flat_map(|(code, data)| {
                let mut o = code.to_be_bytes().to_vec();
                o.extend_from_slice(&(data.len() as u16).to_be_bytes());
                o.extend_from_slice(data);
                o
            })
            .collect();
        q.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0]);
        q.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        q.extend_from_slice(&rdata);
        q
    }

    #[test]
    fn the_client_subnet_option_names_an_address_or_nothing() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // kdig +subnet=127.0.0.9/32, behind a cookie option
        let p = query_with_options(&[(10, &[1; 8]), (8, &[0, 1, 32, 0, 127, 0, 0, 9])]);
        assert!(parse_query(&p).is_ok());
        assert_eq!(ecs_address(&p), ip("127.0.0.9"));
        // a /24 names its network; IPv6 /56
        let p = query_with_options(&[(8, &[0, 1, 24, 0, 10, 1, 2])]);
        assert_eq!(ecs_address(&p), ip("10.1.2.0"));
        let p = query_with_options(&[(8, &[0, 2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 0, 7])]);
        assert_eq!(ecs_address(&p), ip("2001:db8:0:700::"));
        // malformed: family, prefix, address length; none at all
        for bad in [
            &[0u8, 3, 32, 0, 1, 2, 3, 4][..],
            &[0, 1, 33, 0, 1, 2, 3, 4, 5],
            &[0, 1, 32, 0, 1, 2, 3],
            &[0, 1],
        ] {
            assert_eq!(
                ecs_address(&query_with_options(&[(8, bad)])),
                None,
                "{bad:?}"
            );
        }
        assert_eq!(ecs_address(&query_with_options(&[])), None);
        assert_eq!(ecs_address(&query(b"\x01a\x00", 1, None)), None);
        let mut cut = query_with_options(&[(8, &[0, 1, 32, 0, 127, 0, 0, 9])]);
        cut.truncate(cut.len() - 2);
        assert_eq!(ecs_address(&cut), None);
    }

    #[test]
    fn an_owned_query_reads_back_as_parsed() {
        let p = query(b"\x03WwW\x07Example\x03com\x00", 28, Some((4096, true)));
        // the packet's buffer is gone by the time the owned query is read
        let owned = OwnedQuery::new(&parse_query(&p.clone()).unwrap());
        let q = parse_query(&p).unwrap();
        let back = owned.as_query();
        assert_eq!(back.question, q.question);
        assert_eq!(
            (
                back.id,
                back.flags,
                back.qname,
                back.qtype,
                back.qclass,
                back.edns
            ),
            (q.id, q.flags, q.qname, q.qtype, q.qclass, q.edns)
        );
        // the longest question a packet may carry fits
        let mut name = Vec::new();
        for _ in 0..4 {
            name.push(62);
            name.extend_from_slice(&[b'A'; 62]);
        }
        name.extend_from_slice(b"\x01a\x00");
        let p = query(&name, 1, None);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.question.len(), MAX_QUESTION_LEN);
        assert_eq!(OwnedQuery::new(&q).as_query().question, q.question);
    }

    #[test]
    fn rejects() {
        assert_eq!(parse_query(&[0; 11]).err(), Some(Reject::Drop));
        let mut p = query(b"\x01a\x00", 1, None);
        p[2] |= 0x80;
        assert_eq!(parse_query(&p).err(), Some(Reject::Drop));
        let mut p = query(b"\x01a\x00", 1, None);
        p[2] |= 0x10; // opcode 2
        assert!(matches!(
            parse_query(&p),
            Err(Reject::Error { rcode: 4, .. })
        ));
        let p = query(b"\xc0\x0c", 1, None);
        assert!(matches!(
            parse_query(&p),
            Err(Reject::Error { rcode: 1, .. })
        ));
        let p = query(b"\x05ab\x00", 1, None);
        assert!(matches!(
            parse_query(&p),
            Err(Reject::Error { rcode: 1, .. })
        ));
        let mut p = query(b"\x01a\x00", 1, Some((1232, false)));
        let n = p.len();
        p[n - 5] = 1; // EDNS version 1
        assert!(matches!(
            parse_query(&p),
            Err(Reject::Error {
                rcode: rcode::BADVERS,
                question_end: Some(19),
                ..
            })
        ));
    }

    #[test]
    fn builds_answers_and_truncation() {
        let p = query(b"\x03www\x04test\x00", 1, Some((1232, false)));
        let q = parse_query(&p).unwrap();
        let mut out = Vec::new();
        begin_response(&mut out, &q, rcode::NOERROR, 0);
        push_answer(&mut out, 1, 60, &[192, 0, 2, 1]);
        push_opt(&mut out, 1232, 0, Some((ede::BLOCKED, "feed")));
        let info = scan_response(&out).unwrap();
        assert_eq!(info.answers, 1);
        assert_eq!(info.min_ttl, Some(60));
        assert_eq!(info.ttl_offsets.len(), 1);
        truncate_response(&mut out, &q, 1232);
        assert_eq!(u16_at(&out, 2).unwrap() & flag::TC, flag::TC);
        assert_eq!(count(&out, AN), 0);
        assert_eq!(count(&out, AR), 1);
    }

    #[test]
    fn negative_ttl_from_soa() {
        let p = query(b"\x01x\x04test\x00", 1, None);
        let q = parse_query(&p).unwrap();
        let mut out = Vec::new();
        begin_response(&mut out, &q, rcode::NXDOMAIN, 0);
        // authority SOA: owner ptr to "test" at 14, mname/rname root, ttl 300, minimum 60
        out.extend_from_slice(&[0xc0, 14, 0, 6, 0, 1, 0, 0, 1, 44, 0, 22, 0, 0]);
        out.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 60]);
        set_count(&mut out, NS, 1);
        let info = scan_response(&out).unwrap();
        assert_eq!(info.negative_ttl, Some(60));
        assert_eq!(info.rcode, rcode::NXDOMAIN);
        assert!(matches_query(&out, 0x1234, q.qname.as_key(), 1, 1));
        assert!(!matches_query(&out, 0x1235, q.qname.as_key(), 1, 1));
    }

    #[test]
    fn read_name_refuses_forward_pointers_and_loops() {
        let msg = [0xc0, 0x00];
        assert!(read_name(&msg, 0, &mut Vec::new()).is_none());
        let msg = [1, b'a', 0xc0, 0x00];
        assert!(read_name(&msg, 0, &mut Vec::new()).is_none());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_query(&bytes);
            let _ = scan_response(&bytes);
            let _ = copy_answers(&bytes, &mut Vec::new());
            if let Ok(q) = parse_query(&bytes) {
                let mut out = Vec::new();
                begin_response(&mut out, &q, 0, 0);
                truncate_response(&mut out, &q, 1232);
                prop_assert!(parse_query(&bytes).is_ok());
                let owned = OwnedQuery::new(&q);
                prop_assert_eq!(owned.as_query().question, q.question);
            }
        }
    }
}
