//! UDP and TCP listeners. Each UDP socket has its own receive loop that
//! takes queries in batches (`recvmmsg` on Linux); answers that need no
//! upstream are built in that loop and sent in one batch (`sendmmsg`);
//! queries that need upstream become tasks.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::timeout;

use crate::Resolver;
use crate::conns::{Conn, ConnTable};
use crate::metrics::Transport;
use crate::resolver::Outcome;

/// Sockets bound for one listen address.
pub struct Bound {
    pub addr: SocketAddr,
    udp: Vec<std::net::UdpSocket>,
    tcp: std::net::TcpListener,
}

/// Binds UDP (`udp_sockets` sockets with SO_REUSEPORT) and TCP on every
/// address. Port 0 picks one free port for both protocols.
pub fn bind(listen: &[SocketAddr], udp_sockets: usize) -> io::Result<Vec<Bound>> {
    listen
        .iter()
        .map(|&a| bind_one(a, udp_sockets.max(1)))
        .collect()
}

fn bind_one(addr: SocketAddr, n: usize) -> io::Result<Bound> {
    let mut last_err = None;
    for _ in 0..20 {
        match try_bind(addr, n) {
            Ok(b) => return Ok(b),
            Err(e) if addr.port() == 0 && e.kind() == io::ErrorKind::AddrInUse => {
                last_err = Some(e)
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr}: {e}"),
                ));
            }
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free port")))
}

fn try_bind(addr: SocketAddr, n: usize) -> io::Result<Bound> {
    let domain = Domain::for_address(addr);
    let mut udp = Vec::with_capacity(n);
    let mut actual = addr;
    for _ in 0..n {
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            s.set_only_v6(true)?;
        }
        s.set_reuse_port(true)?;
        // room for bursts while a worker is busy
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&actual.into())?;
        if actual.port() == 0 {
            actual = s.local_addr()?.as_socket().expect("inet socket");
        }
        s.set_nonblocking(true)?;
        udp.push(s.into());
    }
    let t = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        t.set_only_v6(true)?;
    }
    t.set_reuse_address(true)?;
    t.bind(&actual.into())?;
    t.listen(1024)?;
    t.set_nonblocking(true)?;
    Ok(Bound {
        addr: actual,
        udp,
        tcp: t.into(),
    })
}

/// Starts every listener on the current runtime. Returns the tasks; they run
/// until the runtime stops.
pub fn spawn(resolver: Arc<Resolver>, bound: Vec<Bound>) -> io::Result<JoinSet<()>> {
    let mut set = JoinSet::new();
    let tcp_table = ConnTable::new(resolver.settings().tcp_max_connections);
    for b in bound {
        for s in b.udp {
            let sock = Arc::new(UdpSocket::from_std(s)?);
            set.spawn(udp_loop(resolver.clone(), sock));
        }
        let l = TcpListener::from_std(b.tcp)?;
        set.spawn(tcp_accept(resolver.clone(), l, tcp_table.clone()));
    }
    Ok(set)
}

/// Receives queries in batches, answers what needs no upstream at once and
/// sends those answers in one batch; queries that need upstream become
/// tasks that answer on their own.
#[cfg(target_os = "linux")]
async fn udp_loop(resolver: Arc<Resolver>, sock: Arc<UdpSocket>) {
    use crate::mmsg::{BATCH, RecvBatch};
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    let fd = sock.as_raw_fd();
    let mut batch = RecvBatch::default();
    let mut replies: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut to = [0usize; BATCH];
    loop {
        let n = match sock.async_io(Interest::READABLE, || batch.recv(fd)).await {
            Ok(n) => n,
            Err(e) => {
                // e.g. ICMP errors surfacing on the socket: keep serving
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        // a busy socket is always readable: give the worker back to other
        // tasks (signals, the web endpoint, upstream completions) regularly
        tokio::task::consume_budget().await;
        // the queries of one receive share the snapshot and the time
        let at = resolver.arrival();
        let mut ready = 0;
        for i in 0..n {
            let Some(peer) = batch.peer(i) else {
                resolver
                    .metrics()
                    .malformed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            };
            let outcome = match batch.packet(i) {
                Some(packet) => {
                    resolver.handle(&at, packet, peer, true, Transport::Udp, &mut replies[ready])
                }
                None => resolver.oversize(&at, batch.head(i), peer, &mut replies[ready]),
            };
            match outcome {
                Outcome::Reply => {
                    to[ready] = i;
                    ready += 1;
                }
                Outcome::Drop => {}
                Outcome::Forward(p) => forward(&resolver, &sock, p, peer),
            }
        }
        drop(at);
        let mut sent = 0;
        while sent < ready {
            match batch.send(fd, &replies[sent..ready], &to[sent..ready]) {
                Ok(k) if k > 0 => sent += k,
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // the send buffer is full: wait for room, one by one
                    for k in sent..ready {
                        if let Some(peer) = batch.peer(to[k])
                            && let Err(e) = sock.send_to(&replies[k], peer).await
                        {
                            tracing::debug!(%peer, error = %e, "UDP send failed");
                        }
                    }
                    break;
                }
                Err(e) => {
                    // one bad destination must not lose the rest
                    tracing::debug!(error = %e, "UDP send failed");
                    sent += 1;
                }
            }
        }
    }
}

/// One datagram per system call where `recvmmsg` is not available.
#[cfg(not(target_os = "linux"))]
async fn udp_loop(resolver: Arc<Resolver>, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        // as the batched receive does: longer datagrams are cut to their head
        let at = resolver.arrival();
        let outcome = if n > 4096 {
            resolver.oversize(&at, &buf[..4096], peer, &mut out)
        } else {
            resolver.handle(&at, &buf[..n], peer, true, Transport::Udp, &mut out)
        };
        match outcome {
            Outcome::Reply => {
                if let Err(e) = sock.send_to(&out, peer).await {
                    tracing::debug!(%peer, error = %e, "UDP send failed");
                }
            }
            Outcome::Drop => {}
            Outcome::Forward(p) => forward(&resolver, &sock, p, peer),
        }
    }
}

/// Completes a query upstream in its own task and answers it from there.
fn forward(
    resolver: &Arc<Resolver>,
    sock: &Arc<UdpSocket>,
    p: Box<crate::resolver::Pending>,
    peer: SocketAddr,
) {
    let resolver = resolver.clone();
    let sock = sock.clone();
    tokio::spawn(async move {
        let mut out = Vec::new();
        if resolver.complete(p, true, &mut out).await
            && let Err(e) = sock.send_to(&out, peer).await
        {
            tracing::debug!(%peer, error = %e, "UDP send failed");
        }
    });
}

/// Accepts TCP connections within `tcp_max_connections`: at the limit a new
/// one takes the place of the one idle longest ([`ConnTable`], as the
/// encrypted listeners do), so idle or slow clients cannot lock new ones out
/// until their idle timeout. A connection counts as busy only while one of
/// its queries is answered; one waiting for (or trickling in) its next query
/// can be evicted.
async fn tcp_accept(resolver: Arc<Resolver>, listener: TcpListener, table: Arc<ConnTable>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(conn) = table.admit() else {
            tracing::debug!(%peer, "every TCP connection is busy; closing the new one");
            continue;
        };
        let r = resolver.clone();
        tokio::spawn(async move {
            let res = tokio::select! {
                res = tcp_conn(&r, stream, peer, &conn) => res,
                () = conn.evicted() => {
                    r.metrics()
                        .tcp_evicted
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                }
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
        });
    }
}

/// Serves length-prefixed queries on one connection, in order, until the
/// client closes it, stays idle too long, or is evicted for a new one.
async fn tcp_conn(
    resolver: &Resolver,
    mut stream: TcpStream,
    peer: SocketAddr,
    conn: &Conn,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let idle = resolver.settings().tcp_idle_timeout;
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(4096);
    loop {
        let len = match timeout(idle, stream.read_u16()).await {
            Ok(Ok(l)) => l as usize,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        buf.resize(len, 0);
        match timeout(idle, stream.read_exact(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        let _busy = conn.busy();
        let outcome = resolver.handle(
            &resolver.arrival(),
            &buf,
            peer,
            false,
            Transport::Tcp,
            &mut out,
        );
        let send = match outcome {
            Outcome::Reply => true,
            Outcome::Drop => false,
            Outcome::Forward(p) => resolver.complete(p, false, &mut out).await,
        };
        if send {
            let mut msg = Vec::with_capacity(out.len() + 2);
            msg.extend_from_slice(&(out.len() as u16).to_be_bytes());
            msg.extend_from_slice(&out);
            stream.write_all(&msg).await?;
        }
    }
}
