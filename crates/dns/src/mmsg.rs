//! Batched UDP I/O on Linux: `recvmmsg(2)` takes up to [`BATCH`] queries in
//! one system call and `sendmmsg(2)` sends their answers in one, so that at
//! saturation the per-packet cost is the kernel's delivery and not the
//! syscall and readiness round trips around it.
//!
//! This is the DNS crate's only module with `unsafe` code (ARCHITECTURE.md
//! names the workspace's others): two FFI calls and the reads of the
//! socket addresses they fill in. The pointers built for
//! each call live on the stack of that call and never escape it.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;
/// Receive buffer per datagram: larger queries are cut and marked truncated
/// (no real query comes near it).
pub const BUF: usize = 4096;

/// Receive buffers and the addresses of the datagrams in them.
pub struct RecvBatch {
    bufs: Box<[[u8; BUF]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    addr_lens: [libc::socklen_t; BATCH],
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
}

impl Default for RecvBatch {
    fn default() -> Self {
        Self {
            bufs: vec![[0u8; BUF]; BATCH].into_boxed_slice(),
            // SAFETY: all-zero is a valid sockaddr_storage (family AF_UNSPEC)
            addrs: (0..BATCH).map(|_| unsafe { zeroed() }).collect(),
            addr_lens: [0; BATCH],
            lens: [0; BATCH],
            truncated: [false; BATCH],
        }
    }
}

impl RecvBatch {
    /// Datagram `i` of the last receive, or `None` if it did not fit.
    pub fn packet(&self, i: usize) -> Option<&[u8]> {
        (!self.truncated[i]).then(|| &self.bufs[i][..self.lens[i]])
    }

    /// What was kept of datagram `i` when it did not fit: its first
    /// [`BUF`] bytes.
    pub fn head(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// Sender of datagram `i`.
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        to_socket_addr(&self.addrs[i], self.addr_lens[i])
    }

    /// Receives up to [`BATCH`] datagrams without blocking; `WouldBlock`
    /// when none is waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        // SAFETY: all-zero is valid for iovec and mmsghdr (null pointers, zero lengths)
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF,
            };
            let h = &mut hdrs[i].msg_hdr;
            h.msg_name = (&raw mut self.addrs[i]).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &raw mut iov[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: every header points at a live buffer of the stated length
        // and a sockaddr_storage, all borrowed mutably for this call only
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, h) in hdrs.iter().enumerate().take(n) {
            self.lens[i] = (h.msg_len as usize).min(BUF);
            self.addr_lens[i] = h.msg_hdr.msg_namelen;
            self.truncated[i] = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(n)
    }

    /// Sends `replies[k]` to the sender of datagram `to[k]`, as many as the
    /// socket takes without blocking. Returns how many were sent.
    pub fn send(&self, fd: RawFd, replies: &[Vec<u8>], to: &[usize]) -> io::Result<usize> {
        let n = replies.len().min(to.len()).min(BATCH);
        // SAFETY: as in `recv`
        let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for k in 0..n {
            iov[k] = libc::iovec {
                iov_base: replies[k].as_ptr() as *mut libc::c_void,
                iov_len: replies[k].len(),
            };
            let h = &mut hdrs[k].msg_hdr;
            h.msg_name = (&raw const self.addrs[to[k]]) as *mut libc::c_void;
            h.msg_namelen = self.addr_lens[to[k]];
            h.msg_iov = &raw mut iov[k];
            h.msg_iovlen = 1;
        }
        // SAFETY: the headers point at live reply buffers and addresses that
        // the kernel only reads (sendmmsg does not write through msg_iov)
        let sent =
            unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

/// The socket address the kernel wrote into `s`.
fn to_socket_addr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match s.ss_family as libc::c_int {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it
            let a = unsafe { &*(std::ptr::from_ref(s).cast::<libc::sockaddr_in>()) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6
            let a = unsafe { &*(std::ptr::from_ref(s).cast::<libc::sockaddr_in6>()) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                u32::from_be(a.sin6_flowinfo),
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn receives_and_answers_a_batch_over_v4_and_v6() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let server = UdpSocket::bind(bind).unwrap();
            let client = UdpSocket::bind(bind).unwrap();
            let addr = server.local_addr().unwrap();
            for i in 0..5u8 {
                client.send_to(&[i; 20], addr).unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            let mut b = RecvBatch::default();
            let n = b.recv(server.as_raw_fd()).unwrap();
            assert_eq!(n, 5);
            assert_eq!(b.peer(3), Some(client.local_addr().unwrap()));
            assert_eq!(b.packet(4), Some(&[4u8; 20][..]));
            let replies: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8 + 100; 3]).collect();
            let to: Vec<usize> = (0..n).collect();
            assert_eq!(b.send(server.as_raw_fd(), &replies, &to).unwrap(), 5);
            let mut buf = [0u8; 16];
            for i in 0..5u8 {
                let (len, from) = client.recv_from(&mut buf).unwrap();
                assert_eq!((len, from), (3, addr));
                assert_eq!(buf[0], i + 100);
            }
            assert_eq!(
                b.recv(server.as_raw_fd()).unwrap_err().kind(),
                io::ErrorKind::WouldBlock
            );
        }
    }

    #[test]
    fn oversized_datagrams_are_marked() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(&vec![1u8; BUF + 10], server.local_addr().unwrap())
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut b = RecvBatch::default();
        assert_eq!(b.recv(server.as_raw_fd()).unwrap(), 1);
        assert_eq!(b.packet(0), None);
        assert_eq!(b.head(0).len(), BUF);
    }
}
