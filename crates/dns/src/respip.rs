//! RPZ response-IP triggers on answers: finding the addresses in an answer
//! section and building the answer an action gives (see
//! `parapet_core::ippolicy` for the semantics, Unbound 1.17's).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use parapet_core::policy::{LocalRecord, rtype};

use crate::wire::{self, AN, HEADER_LEN, Query};

/// The A and AAAA records of an answer section, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AnswerAddrs {
    pub addrs: Vec<IpAddr>,
    /// For each address, the index of the first answer record of its RRset
    /// (the records before it are the CNAMEs leading to it).
    pub set_start: Vec<u16>,
    /// For each address, the offset of its record's owner name.
    pub owner: Vec<usize>,
}

/// The addresses in `msg`'s answer section; `None` for a malformed
/// message. An RRset is a run of records of one type and owner.
pub fn answer_addrs(msg: &[u8]) -> Option<AnswerAddrs> {
    let mut pos = HEADER_LEN;
    for _ in 0..wire::count(msg, 0) {
        pos = wire::skip_name(msg, pos)? + 4;
    }
    let mut found = AnswerAddrs::default();
    let (mut set_start, mut last_type, mut last_owner) = (0u16, 0u16, Vec::new());
    let mut owner = Vec::with_capacity(256);
    for i in 0..wire::count(msg, AN) {
        owner.clear();
        let name_end = wire::read_name(msg, pos, &mut owner)?;
        owner.make_ascii_lowercase();
        let fixed = msg.get(name_end..name_end + 10)?;
        let rr_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata = msg.get(name_end + 10..name_end + 10 + rdlen)?;
        if rr_type != last_type || owner != last_owner {
            set_start = i;
            last_type = rr_type;
            std::mem::swap(&mut owner, &mut last_owner);
        }
        let addr = match (rr_type, rdata.len()) {
            (rtype::A, 4) => Some(IpAddr::from(Ipv4Addr::from(
                <[u8; 4]>::try_from(rdata).ok()?,
            ))),
            (rtype::AAAA, 16) => Some(IpAddr::from(Ipv6Addr::from(
                <[u8; 16]>::try_from(rdata).ok()?,
            ))),
            _ => None,
        };
        if let Some(addr) = addr {
            found.addrs.push(addr);
            found.set_start.push(set_start);
            found.owner.push(pos);
        }
        pos = name_end + 10 + rdlen;
    }
    Some(found)
}

/// Starts the answer to `q` that a response-IP action gives from the
/// response `msg`: its first `keep` answer records (the CNAMEs before the
/// matched RRset), decompressed, under `rcode`. The caller adds records
/// and the OPT record.
pub fn begin_rewrite(out: &mut Vec<u8>, msg: &[u8], q: &Query<'_>, keep: u16, rcode: u8) {
    wire::begin_response(out, q, rcode, 0);
    if keep > 0 {
        // a copy of the message cut to `keep` answers, for copy_answers
        let mut head = msg.to_vec();
        wire::set_count(&mut head, AN, keep);
        if let Some(n) = wire::copy_answers(&head, out) {
            wire::set_count(out, AN, n);
        }
    }
}

/// Appends local data in place of the matched RRset: the records, owned by
/// the name at `owner` in `msg`.
pub fn push_local(out: &mut Vec<u8>, msg: &[u8], owner: usize, records: &[LocalRecord]) {
    let mut name = Vec::with_capacity(256);
    if wire::read_name(msg, owner, &mut name).is_none() {
        return;
    }
    for r in records {
        out.extend_from_slice(&name);
        out.extend_from_slice(&r.rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&r.ttl.to_be_bytes());
        out.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&r.rdata);
        let n = wire::count(out, AN) + 1;
        wire::set_count(out, AN, n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::parse_query;

    /// A response for `www.example. A` with a CNAME and two A records.
    fn response() -> Vec<u8> {
        let mut m = Vec::new();
        wire::push_header(&mut m, 7, 0x8180, [1, 4, 0, 0]);
        m.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        // www CNAME t.example (owner a pointer to the question)
        m.extend_from_slice(b"\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x04\x01t\xc0\x10");
        let t = 12 + 17 + 12; // offset of "t" label
        for a in [[192, 0, 2, 1], [192, 0, 2, 2]] {
            m.extend_from_slice(&[0xc0, t as u8]);
            m.extend_from_slice(b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04");
            m.extend_from_slice(&a);
        }
        m.extend_from_slice(&[0xc0, t as u8]);
        m.extend_from_slice(b"\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10");
        m.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        m
    }

    #[test]
    fn addresses_with_their_rrsets() {
        let m = response();
        let a = answer_addrs(&m).unwrap();
        let want: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2", "2001:db8::1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(a.addrs, want);
        assert_eq!(a.set_start, [1, 1, 3]);
        assert!(answer_addrs(&m[..m.len() - 3]).is_none());
    }

    #[test]
    fn a_rewrite_keeps_the_cnames_and_renames_local_data() {
        let m = response();
        let found = answer_addrs(&m).unwrap();
        let query = b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01";
        let q = parse_query(query).unwrap();
        let mut out = Vec::new();
        begin_rewrite(&mut out, &m, &q, found.set_start[1], wire::rcode::NOERROR);
        push_local(
            &mut out,
            &m,
            found.owner[1],
            &[LocalRecord {
                rtype: rtype::A,
                ttl: 5,
                rdata: Box::new([10, 0, 0, 1]),
            }],
        );
        assert_eq!(wire::count(&out, AN), 2);
        let info = wire::scan_response(&out).unwrap();
        assert_eq!(info.answers, 2);
        let got = answer_addrs(&out).unwrap();
        assert_eq!(got.addrs, [IpAddr::from([10, 0, 0, 1])]);
        let mut owner = Vec::new();
        wire::read_name(&out, got.owner[0], &mut owner).unwrap();
        assert_eq!(owner, b"\x01t\x07example\x00");
    }
}
