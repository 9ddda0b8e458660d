//! The physical limit of a UDP DNS server on this machine: receive a
//! datagram, set the QR bit, send it back. Used by `bench/dns/run` as the
//! denominator of the Parapet/echo ratio.
//!
//! Usage: `udp_echo 127.0.0.1:PORT`

use std::net::UdpSocket;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5399".into());
    let sock = UdpSocket::bind(&addr)?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, peer) = sock.recv_from(&mut buf)?;
        if n >= 12 {
            buf[2] |= 0x80;
            let _ = sock.send_to(&buf[..n], peer);
        }
    }
}
