//! NOTIFY (RFC 1996) from the primaries of feeds taken by zone transfer.
//! Only packets whose opcode is not QUERY get here, so the query path pays
//! nothing for it. A NOTIFY for a configured zone from one of its
//! primaries' addresses is answered (opcode NOTIFY, QR, AA, the question
//! echoed) and wakes the feed; any other gets REFUSED.

use std::net::IpAddr;
use std::sync::Arc;

use crate::wire::{self, HEADER_LEN, flag, rcode};

/// The opcode of a NOTIFY.
pub const OPCODE_NOTIFY: u16 = 4;
const TYPE_SOA: u16 = 6;

/// What a NOTIFY for a zone calls: `(notify, answer)`.
pub type NotifyHook = Arc<dyn Fn(&[u8], &mut Vec<u8>) + Send + Sync>;

/// A zone whose primaries may NOTIFY, and what to do when one does.
#[derive(Clone)]
pub struct NotifyZone {
    /// The zone's name in key form.
    pub zone: Vec<u8>,
    /// The addresses NOTIFY is accepted from.
    pub primaries: Vec<IpAddr>,
    /// Called for each accepted NOTIFY with the NOTIFY and its answer
    /// (header and question, NOERROR), which it may extend (a TSIG record
    /// when the NOTIFY was signed); must not block.
    pub on_notify: NotifyHook,
}

impl std::fmt::Debug for NotifyZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyZone")
            .field("zone", &parapet_core::name::key_to_text(&self.zone))
            .field("primaries", &self.primaries)
            .finish_non_exhaustive()
    }
}

/// The opcode of a packet (0 when it is too short to have one).
pub fn opcode(packet: &[u8]) -> u16 {
    packet.get(2).map_or(0, |b| u16::from(b >> 3) & 0xf)
}

/// Answers the NOTIFY in `packet` into `out`; returns the rcode sent.
pub fn answer(zones: &[NotifyZone], packet: &[u8], client: IpAddr, out: &mut Vec<u8>) -> u8 {
    let qd = packet
        .get(4..6)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let mut name = Vec::new();
    let end = (qd == 1)
        .then(|| wire::read_name(packet, HEADER_LEN, &mut name))
        .flatten()
        .filter(|&e| e + 4 <= packet.len());
    let Some(end) = end else {
        write(out, packet, rcode::FORMERR, None);
        return rcode::FORMERR;
    };
    let qtype = u16::from_be_bytes([packet[end], packet[end + 1]]);
    // key form: lower case, without the root byte
    name.pop();
    name.make_ascii_lowercase();
    let zone = zones
        .iter()
        .find(|z| z.zone == name && z.primaries.contains(&client));
    let rc = match zone {
        Some(z) if qtype == TYPE_SOA => {
            write(out, packet, rcode::NOERROR, Some(end + 4));
            (z.on_notify)(packet, out);
            return rcode::NOERROR;
        }
        Some(_) => rcode::FORMERR,
        None => {
            tracing::warn!(
                %client,
                zone = %parapet_core::name::key_to_text(&name),
                "NOTIFY refused: not a configured primary of that zone"
            );
            rcode::REFUSED
        }
    };
    write(out, packet, rc, Some(end + 4));
    rc
}

fn write(out: &mut Vec<u8>, packet: &[u8], rc: u8, question_end: Option<usize>) {
    out.clear();
    let id = packet
        .get(0..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let flags = flag::QR | flag::AA | (OPCODE_NOTIFY << 11) | u16::from(rc);
    wire::push_header(out, id, flags, [question_end.is_some() as u16, 0, 0, 0]);
    if let Some(end) = question_end {
        out.extend_from_slice(&packet[HEADER_LEN..end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn notify(zone: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x12,
            0x34,
            (OPCODE_NOTIFY << 3) as u8 | 0x04,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
        ];
        p.extend_from_slice(zone);
        p.extend_from_slice(&[0, 0, 6, 0, 1]);
        p
    }

    #[test]
    fn accepts_primaries_only() {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let zones = vec![NotifyZone {
            zone: b"\x03rpz\x07example".to_vec(),
            primaries: vec!["192.0.2.1".parse().unwrap()],
            on_notify: Arc::new(move |_, _| {
                h.fetch_add(1, Ordering::Relaxed);
            }),
        }];
        let p = notify(b"\x03RPZ\x07example");
        assert_eq!(opcode(&p), OPCODE_NOTIFY);
        let mut out = Vec::new();
        let rc = answer(&zones, &p, "192.0.2.1".parse().unwrap(), &mut out);
        assert_eq!(rc, rcode::NOERROR);
        assert_eq!(hits.load(Ordering::Relaxed), 1);
        assert_eq!(&out[..4], &[0x12, 0x34, 0x80 | 0x20 | 0x04, 0]);
        assert_eq!(&out[12..], &p[12..]);
        let rc = answer(&zones, &p, "192.0.2.9".parse().unwrap(), &mut out);
        assert_eq!(rc, rcode::REFUSED);
        assert_eq!(out[3] & 0xf, rcode::REFUSED);
        assert_eq!(hits.load(Ordering::Relaxed), 1);
        let rc = answer(&zones, &p[..14], "192.0.2.1".parse().unwrap(), &mut out);
        assert_eq!(rc, rcode::FORMERR);
    }
}
