//! Hostile packets: truncated, garbage, looping compression, lying length
//! prefixes. The server answers what it can (FORMERR), drops the rest, and
//! keeps serving.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, shared_nsd};

#[test]
fn garbage_and_truncated_packets_do_not_stop_the_server() {
    let nsd = shared_nsd();
    let mut p = Parapet::start(&format!("upstreams = [\"{nsd}\"]"), "", &[]);
    let good = p
        .client()
        .build("www.zone.test.", RecordType::A)
        .to_vec()
        .unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut packets: Vec<Vec<u8>> = Vec::new();
    // every truncation of a valid query
    for n in 0..good.len() {
        packets.push(good[..n].to_vec());
    }
    // random bytes (a fixed seed: reproducible)
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in [1usize, 12, 13, 40, 300, 1500, 4000] {
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x as u8);
        }
        packets.push(v);
    }
    let header = |flags: u16, qd: u16, an: u16, ar: u16| {
        let mut h = vec![0x12, 0x34];
        h.extend_from_slice(&flags.to_be_bytes());
        for c in [qd, an, 0, ar] {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    };
    // a compression loop in the question
    let mut looped = header(0x0100, 1, 0, 0);
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    packets.push(looped);
    // a label running past the end
    let mut past = header(0x0100, 1, 0, 0);
    past.extend_from_slice(&[63, b'a', b'b']);
    packets.push(past);
    // counts that lie: 65535 answers, 65535 additionals
    let mut liar = header(0x0100, 1, 0xffff, 0xffff);
    liar.extend_from_slice(&good[12..]);
    packets.push(liar);
    // a response (QR=1) must not be answered: no reflection loops
    let mut response = good.clone();
    response[2] |= 0x80;
    packets.push(response);
    // two questions
    let mut two = good.clone();
    two[5] = 2;
    packets.push(two);
    // two OPT records
    let mut two_opt = good.clone();
    let opt_start = two_opt.len() - 11;
    let opt = two_opt[opt_start..].to_vec();
    two_opt.extend_from_slice(&opt);
    two_opt[11] = 2;
    packets.push(two_opt);

    let mut formerr = 0;
    for pkt in &packets {
        sock.send_to(pkt, p.dns).unwrap();
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            assert!(n >= 12, "answer shorter than a header");
            if buf[3] & 0xf == 1 {
                formerr += 1;
            }
        }
    }
    assert!(
        formerr >= 5,
        "malformed queries with a readable header get FORMERR ({formerr})"
    );
    // TCP: a length prefix promising more than is sent, then a zero length
    for payload in [
        &[0x01, 0x00, 0xde, 0xad][..],
        &[0x00, 0x00][..],
        &[0xff][..],
    ] {
        let mut s = TcpStream::connect(p.dns).unwrap();
        let _ = s.write_all(payload);
        drop(s);
    }
    assert!(p.is_running());
    let a = p
        .client()
        .query("www.zone.test.", RecordType::A)
        .expect("still answering");
    assert_eq!(a.rcode, ResponseCode::NoError);
    let t = p
        .client()
        .tcp()
        .query("www.zone.test.", RecordType::A)
        .expect("still answering TCP");
    assert_eq!(t.records, a.records);
    assert!(p.metric("parapet_dns_malformed_total") >= 10.0);
}
