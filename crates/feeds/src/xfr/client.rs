//! One zone transfer over TCP: the query, then the primary's messages read
//! one by one, each checked (TSIG, header, limits) and its records fed to
//! [`Reader`], which follows RFC 1995's layout of AXFR and IXFR answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::msg::{self, Rr, SoaTimes, TYPE_AXFR, TYPE_IXFR, TYPE_SOA, serial_gt};
use super::tsig::TsigKey;
use super::zone::{Soa, Zone};

/// Bounds on what a primary may send in one transfer.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of all messages.
    pub max_bytes: u64,
    pub max_messages: u32,
    /// Longest wait for the connection, or for any read.
    pub io_timeout: Duration,
    /// Longest a whole transfer may take.
    pub total_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 512 << 20,
            max_messages: 200_000,
            io_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a transfer failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XfrError {
    /// Could not connect or the connection broke.
    Network(String),
    /// The primary answered with this rcode.
    Rcode(u8, String),
    /// TSIG failed: wrong key, or a message not signed.
    Tsig(String),
    /// The primary's serial is older than the one held.
    SerialBackwards { have: u32, got: u32 },
    /// A message or record that does not follow the protocol, or a limit.
    Malformed(String),
}

impl std::fmt::Display for XfrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Network(e) => write!(f, "network: {e}"),
            Self::Rcode(_, e) => f.write_str(e),
            Self::Tsig(e) => write!(f, "TSIG: {e}"),
            Self::SerialBackwards { have, got } => write!(
                f,
                "the primary's serial {got} is older than ours ({have}): refused, the last good copy stays"
            ),
            Self::Malformed(e) => write!(f, "malformed transfer: {e}"),
        }
    }
}

fn rcode_error(rcode: u8) -> XfrError {
    let what = match rcode {
        1 => "FORMERR: the primary could not read our query".to_string(),
        2 => "SERVFAIL: the primary cannot serve the zone".to_string(),
        3 => "NXDOMAIN: the primary does not know the zone".to_string(),
        4 => "NOTIMP: the primary does not implement this transfer".to_string(),
        5 => "REFUSED: the primary does not allow us to transfer the zone (ask for our address to be allowed)".to_string(),
        9 => "NOTAUTH: the primary does not accept our TSIG key (wrong name, secret or algorithm)".to_string(),
        n => format!("rcode {n}"),
    };
    XfrError::Rcode(rcode, what)
}

/// A change to one owner's records, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub add: bool,
    pub owner: Vec<u8>,
    pub rtype: u16,
    pub ttl: u32,
    pub rdata: Vec<u8>,
}

/// What a transfer brought.
#[derive(Debug)]
pub enum Transfer {
    /// The primary has nothing newer.
    UpToDate(u32),
    /// The whole zone (AXFR, or an IXFR answered in full).
    Full(Zone),
    /// Changes from the version held to `soa`.
    Incremental { soa: Soa, changes: Vec<Change> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    First,
    /// IXFR: after the first SOA, before knowing the answer's form.
    Second,
    Full,
    Deleting,
    Adding,
    Done,
}

/// Follows the records of an answer (RFC 1995 §4): AXFR is SOA, records,
/// SOA; IXFR is SOA(new), then per version SOA(old), deletions, SOA(newer),
/// additions, and SOA(new) again; a single SOA means nothing changed.
pub struct Reader {
    apex: Vec<u8>,
    have: Option<u32>,
    state: State,
    first: Option<Soa>,
    /// Serial the additions being read lead to.
    adding_to: u32,
    zone: Option<Zone>,
    changes: Vec<Change>,
    change_bytes: usize,
    max_bytes: usize,
}

impl Reader {
    /// `have`: the serial held (an IXFR), or none (an AXFR).
    pub fn new(apex: &[u8], have: Option<u32>, max_bytes: usize) -> Self {
        Self {
            apex: apex.to_vec(),
            have,
            state: State::First,
            first: None,
            adding_to: 0,
            zone: None,
            changes: Vec::new(),
            change_bytes: 0,
            max_bytes,
        }
    }

    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    fn soa_serial(rr: &Rr) -> Result<u32, XfrError> {
        SoaTimes::of(&rr.rdata)
            .map(|t| t.serial)
            .ok_or_else(|| XfrError::Malformed("an SOA record without its numbers".into()))
    }

    fn start_full(&mut self) -> Result<(), XfrError> {
        let soa = self
            .first
            .clone()
            .ok_or_else(|| XfrError::Malformed("no SOA".into()))?;
        self.zone = Some(Zone::new(&self.apex, soa));
        self.state = State::Full;
        Ok(())
    }

    fn record_change(&mut self, add: bool, rr: &Rr) -> Result<(), XfrError> {
        self.change_bytes += rr.owner.len() + rr.rdata.len() + 64;
        if self.change_bytes > self.max_bytes {
            return Err(XfrError::Malformed(
                "the IXFR is larger than the size limit".into(),
            ));
        }
        self.changes.push(Change {
            add,
            owner: rr.owner.clone(),
            rtype: rr.rtype,
            ttl: rr.ttl,
            rdata: rr.rdata.clone(),
        });
        Ok(())
    }

    /// Takes the next record of the answer.
    pub fn record(&mut self, rr: &Rr) -> Result<(), XfrError> {
        let soa_at_apex = rr.rtype == TYPE_SOA && rr.owner == self.apex;
        if rr.class != msg::CLASS_IN {
            return Err(XfrError::Malformed(format!(
                "a record of class {}",
                rr.class
            )));
        }
        if !is_under(&rr.owner, &self.apex) {
            return Err(XfrError::Malformed(format!(
                "`{}` is outside the zone",
                parapet_core::name::key_to_text(&rr.owner)
            )));
        }
        if rr.rtype == TYPE_SOA && !soa_at_apex {
            return Err(XfrError::Malformed("an SOA record below the apex".into()));
        }
        match self.state {
            State::First => {
                if !soa_at_apex {
                    return Err(XfrError::Malformed(
                        "the answer does not start with the zone's SOA".into(),
                    ));
                }
                let got = Self::soa_serial(rr)?;
                if let Some(have) = self.have
                    && serial_gt(have, got)
                {
                    return Err(XfrError::SerialBackwards { have, got });
                }
                self.first = Some(Soa {
                    ttl: rr.ttl,
                    rdata: rr.rdata.clone(),
                });
                if self.have.is_some() {
                    self.state = State::Second;
                } else {
                    self.start_full()?;
                }
            }
            State::Second => {
                let new = self.first.as_ref().map_or(0, |s| s.times().serial);
                if soa_at_apex && Some(Self::soa_serial(rr)?) == self.have && self.have != Some(new)
                {
                    self.state = State::Deleting;
                } else if soa_at_apex {
                    // SOA, SOA: a full answer of an empty zone
                    self.start_full()?;
                    self.state = State::Done;
                } else {
                    self.start_full()?;
                    self.add_full(rr)?;
                }
            }
            State::Full => {
                if soa_at_apex {
                    self.state = State::Done;
                } else {
                    self.add_full(rr)?;
                }
            }
            State::Deleting => {
                if soa_at_apex {
                    self.adding_to = Self::soa_serial(rr)?;
                    self.state = State::Adding;
                } else {
                    self.record_change(false, rr)?;
                }
            }
            State::Adding => {
                if soa_at_apex {
                    let serial = Self::soa_serial(rr)?;
                    let new = self.first.as_ref().map_or(0, |s| s.times().serial);
                    if self.adding_to == new {
                        self.state = State::Done;
                    } else if serial == self.adding_to {
                        self.state = State::Deleting;
                    } else {
                        return Err(XfrError::Malformed(format!(
                            "IXFR versions do not follow on: {} after {}",
                            serial, self.adding_to
                        )));
                    }
                } else {
                    self.record_change(true, rr)?;
                }
            }
            State::Done => {
                return Err(XfrError::Malformed(
                    "records after the transfer's last SOA".into(),
                ));
            }
        }
        Ok(())
    }

    fn add_full(&mut self, rr: &Rr) -> Result<(), XfrError> {
        if let Some(z) = &mut self.zone {
            z.push(&rr.owner, rr.rtype, rr.ttl, &rr.rdata)
                .map_err(XfrError::Malformed)?;
        }
        Ok(())
    }

    /// The answer once its records ended; `None` when more are expected.
    pub fn finish(self, ended: bool) -> Result<Transfer, XfrError> {
        let first = self.first.clone();
        match (self.state, first) {
            (State::Done, Some(soa)) => Ok(match self.zone {
                Some(mut z) => {
                    z.shrink_to_fit();
                    Transfer::Full(z)
                }
                None => Transfer::Incremental {
                    soa,
                    changes: self.changes,
                },
            }),
            (State::Second, Some(soa)) if ended => Ok(Transfer::UpToDate(soa.times().serial)),
            _ => Err(XfrError::Malformed(
                "the transfer ended before its last SOA".into(),
            )),
        }
    }
}

fn is_under(name: &[u8], apex: &[u8]) -> bool {
    if !name.ends_with(apex) {
        return false;
    }
    let target = name.len() - apex.len();
    let mut i = 0;
    while i < target {
        i += 1 + name[i] as usize;
    }
    i == target
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The answer to one transfer query, taken a message at a time.
pub struct Session {
    id: u16,
    zone: Vec<u8>,
    qtype: u16,
    have: Option<u32>,
    chain: Option<super::tsig::Chain>,
    reader: Reader,
    rr: Rr,
    messages: u32,
    bytes: u64,
    limits: Limits,
}

/// What a session needs after a message.
#[derive(Debug)]
pub enum Step {
    More,
    Done(Transfer),
}

impl Session {
    /// A session for the query `id` for `zone` (IXFR from `have`, or AXFR),
    /// its messages checked by `chain` when the query was signed.
    pub fn new(
        id: u16,
        zone: &[u8],
        have: Option<u32>,
        chain: Option<super::tsig::Chain>,
        limits: Limits,
    ) -> Self {
        Self {
            id,
            zone: zone.to_vec(),
            qtype: if have.is_some() { TYPE_IXFR } else { TYPE_AXFR },
            have,
            chain,
            reader: Reader::new(zone, have, limits.max_bytes as usize),
            rr: Rr::default(),
            messages: 0,
            bytes: 0,
            limits,
        }
    }

    pub fn messages(&self) -> u32 {
        self.messages
    }

    /// Takes the next message; `now` (Unix seconds) checks TSIG times.
    pub fn message(&mut self, buf: &[u8], now: u64) -> Result<Step, XfrError> {
        self.messages += 1;
        self.bytes += buf.len() as u64 + 2;
        let n = self.messages;
        if n > self.limits.max_messages || self.bytes > self.limits.max_bytes {
            return Err(XfrError::Malformed(format!(
                "more than the limit of {} messages or {} bytes",
                self.limits.max_messages, self.limits.max_bytes
            )));
        }
        let head = msg::read_response(buf, self.id, &self.zone, self.qtype)
            .map_err(|e| XfrError::Malformed(format!("message {n}: {e}")))?;
        if head.rcode != 0 {
            return Err(rcode_error(head.rcode));
        }
        if let Some(c) = &mut self.chain {
            c.verify(buf, now)
                .map_err(|e| XfrError::Tsig(format!("message {n}: {e}")))?;
        }
        let mut pos = head.answers_at;
        for _ in 0..head.answers {
            pos = msg::read_rr(buf, pos, &mut self.rr)
                .map_err(|e| XfrError::Malformed(format!("message {n}: {e}")))?;
            self.reader.record(&self.rr)?;
        }
        if self.reader.done() {
            return self.take(false).map(Step::Done);
        }
        if n == 1 && head.answers == 1 && self.have.is_some() {
            // an IXFR answered with the SOA alone: nothing newer
            return self.take(true).map(Step::Done);
        }
        Ok(Step::More)
    }

    /// The transfer when the primary closed the stream here.
    pub fn end(self) -> Result<Transfer, XfrError> {
        if self.messages == 0 {
            return Err(XfrError::Network(
                "the primary closed the connection without an answer".into(),
            ));
        }
        self.reader.finish(true)
    }

    fn take(&mut self, ended: bool) -> Result<Transfer, XfrError> {
        let reader = std::mem::replace(&mut self.reader, Reader::new(&self.zone, None, 0));
        reader.finish(ended)
    }
}

/// Transfers `zone` from `primary`: IXFR from `have`, or AXFR without.
pub fn transfer(
    primary: SocketAddr,
    zone: &[u8],
    tsig: Option<&TsigKey>,
    have: Option<u32>,
    limits: &Limits,
) -> Result<Transfer, XfrError> {
    let started = Instant::now();
    let net = |e: std::io::Error| XfrError::Network(e.to_string());
    let mut stream = TcpStream::connect_timeout(&primary, limits.io_timeout).map_err(net)?;
    stream
        .set_read_timeout(Some(limits.io_timeout))
        .map_err(net)?;
    stream
        .set_write_timeout(Some(limits.io_timeout))
        .map_err(net)?;
    let id = query_id();
    let mut query = msg::transfer_query(id, zone, have);
    let chain = match tsig {
        Some(k) => Some(k.sign(&mut query, now_unix()).map_err(XfrError::Tsig)?),
        None => None,
    };
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).map_err(net)?;
    let mut session = Session::new(id, zone, have, chain, *limits);
    let mut buf = Vec::with_capacity(65535);
    loop {
        if started.elapsed() > limits.total_timeout {
            return Err(XfrError::Network(format!(
                "the transfer took longer than {} s",
                limits.total_timeout.as_secs()
            )));
        }
        let mut len = [0u8; 2];
        if let Err(e) = stream.read_exact(&mut len) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                return session.end();
            }
            return Err(net(e));
        }
        buf.resize(u16::from_be_bytes(len) as usize, 0);
        stream.read_exact(&mut buf).map_err(net)?;
        if let Step::Done(t) = session.message(&buf, now_unix())? {
            return Ok(t);
        }
    }
}

/// Runs a session over a recorded stream of length-prefixed messages, as
/// they come over TCP (the fuzz target's entry, and the tests').
pub fn read_stream(
    id: u16,
    zone: &[u8],
    have: Option<u32>,
    mut data: &[u8],
    limits: Limits,
) -> Result<Transfer, XfrError> {
    let mut session = Session::new(id, zone, have, None, limits);
    while data.len() >= 2 {
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        let Some(buf) = data.get(2..2 + len) else {
            break;
        };
        data = &data[2 + len..];
        if let Step::Done(t) = session.message(buf, now_unix())? {
            return Ok(t);
        }
    }
    session.end()
}

fn query_id() -> u16 {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (n ^ (n >> 16)) as u16 ^ std::process::id() as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::name::text_to_key;

    fn key(s: &str) -> Vec<u8> {
        text_to_key(s).unwrap()
    }

    fn rr(owner: &str, rtype: u16, rdata: Vec<u8>) -> Rr {
        let mut r = Rr::default();
        r.owner = key(owner);
        r.rtype = rtype;
        r.class = 1;
        r.ttl = 60;
        r.rdata = rdata;
        r
    }

    fn soa_rr(serial: u32) -> Rr {
        let mut rdata = b"\x00\x00".to_vec();
        for n in [serial, 3600, 600, 86400, 60] {
            rdata.extend_from_slice(&n.to_be_bytes());
        }
        rr("rpz.test", TYPE_SOA, rdata)
    }

    fn cname(name: &str) -> Rr {
        rr(name, 5, vec![0])
    }

    /// A response message to query `id` for rpz.test carrying `rrs`.
    fn message(id: u16, qtype: u16, rrs: &[Rr]) -> Vec<u8> {
        let mut m = msg::transfer_query(id, &key("rpz.test"), None);
        m[2] = 0x84;
        m[6..8].copy_from_slice(&(rrs.len() as u16).to_be_bytes());
        let t = m.len() - 4;
        m[t..t + 2].copy_from_slice(&qtype.to_be_bytes());
        for r in rrs {
            m.extend_from_slice(&r.owner);
            m.push(0);
            m.extend_from_slice(&r.rtype.to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            m.extend_from_slice(&r.ttl.to_be_bytes());
            m.extend_from_slice(&(r.rdata.len() as u16).to_be_bytes());
            m.extend_from_slice(&r.rdata);
        }
        m
    }

    fn stream(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut s = Vec::new();
        for m in msgs {
            s.extend_from_slice(&(m.len() as u16).to_be_bytes());
            s.extend_from_slice(m);
        }
        s
    }

    #[test]
    fn sessions_read_wire_messages_within_limits() {
        let apex = key("rpz.test");
        let axfr = stream(&[
            message(5, TYPE_AXFR, &[soa_rr(2), cname("a.rpz.test")]),
            message(5, TYPE_AXFR, &[cname("b.rpz.test"), soa_rr(2)]),
        ]);
        let t = read_stream(5, &apex, None, &axfr, Limits::default()).unwrap();
        assert!(matches!(t, Transfer::Full(ref z) if z.records() == 2));
        // another ID, a cut stream, too many messages
        let err = read_stream(6, &apex, None, &axfr, Limits::default()).unwrap_err();
        assert!(err.to_string().contains("message ID"), "{err}");
        let err = read_stream(5, &apex, None, &axfr[..axfr.len() - 3], Limits::default());
        assert!(err.unwrap_err().to_string().contains("ended before"));
        let small = Limits {
            max_messages: 1,
            ..Limits::default()
        };
        let err = read_stream(5, &apex, None, &axfr, small).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        // an IXFR with nothing newer: the SOA alone
        let same = stream(&[message(5, TYPE_IXFR, &[soa_rr(2)])]);
        let t = read_stream(5, &apex, Some(2), &same, Limits::default()).unwrap();
        assert!(matches!(t, Transfer::UpToDate(2)));
        // a refusal names itself
        let mut refused = message(5, TYPE_AXFR, &[]);
        refused[3] = 5;
        let err = read_stream(5, &apex, None, &stream(&[refused]), Limits::default()).unwrap_err();
        assert!(err.to_string().starts_with("REFUSED"), "{err}");
    }

    #[test]
    fn reads_an_axfr() {
        let mut r = Reader::new(&key("rpz.test"), None, 1 << 20);
        for rr in [
            soa_rr(3),
            cname("a.rpz.test"),
            cname("b.rpz.test"),
            soa_rr(3),
        ] {
            r.record(&rr).unwrap();
        }
        assert!(r.done());
        let Transfer::Full(z) = r.finish(false).unwrap() else {
            panic!()
        };
        assert_eq!((z.serial(), z.records()), (3, 2));
    }

    #[test]
    fn reads_an_ixfr_of_two_versions() {
        let mut r = Reader::new(&key("rpz.test"), Some(1), 1 << 20);
        let rrs = [
            soa_rr(3),
            soa_rr(1),
            cname("a.rpz.test"),
            soa_rr(2),
            cname("b.rpz.test"),
            soa_rr(2),
            soa_rr(3),
            cname("c.rpz.test"),
            soa_rr(3),
        ];
        for rr in &rrs {
            r.record(rr).unwrap();
        }
        let Transfer::Incremental { soa, changes } = r.finish(false).unwrap() else {
            panic!()
        };
        assert_eq!(soa.times().serial, 3);
        let got: Vec<(bool, String)> = changes
            .iter()
            .map(|c| (c.add, parapet_core::name::key_to_text(&c.owner)))
            .collect();
        assert_eq!(
            got,
            vec![
                (false, "a.rpz.test".into()),
                (true, "b.rpz.test".into()),
                (true, "c.rpz.test".into())
            ]
        );
    }

    #[test]
    fn an_ixfr_answered_in_full_is_a_full_zone() {
        let mut r = Reader::new(&key("rpz.test"), Some(1), 1 << 20);
        for rr in [soa_rr(3), cname("a.rpz.test"), soa_rr(3)] {
            r.record(&rr).unwrap();
        }
        assert!(matches!(r.finish(false).unwrap(), Transfer::Full(_)));
    }

    #[test]
    fn refuses_backwards_serials_strays_and_early_ends() {
        let mut r = Reader::new(&key("rpz.test"), Some(10), 1 << 20);
        assert_eq!(
            r.record(&soa_rr(9)).unwrap_err(),
            XfrError::SerialBackwards { have: 10, got: 9 }
        );
        let mut r = Reader::new(&key("rpz.test"), None, 1 << 20);
        r.record(&soa_rr(3)).unwrap();
        assert!(r.record(&cname("elsewhere.test")).is_err());
        let mut r = Reader::new(&key("rpz.test"), None, 1 << 20);
        r.record(&soa_rr(3)).unwrap();
        r.record(&cname("a.rpz.test")).unwrap();
        assert!(r.finish(true).is_err());
        let mut r = Reader::new(&key("rpz.test"), Some(1), 1 << 20);
        r.record(&soa_rr(1)).unwrap();
        assert!(matches!(r.finish(true).unwrap(), Transfer::UpToDate(1)));
    }
}
