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
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::timeout;

use crate::Resolver;
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
    let tcp_slots = Arc::new(TcpSlots::new(resolver.settings().tcp_max_connections));
    for b in bound {
        for s in b.udp {
            let sock = Arc::new(UdpSocket::from_std(s)?);
            set.spawn(udp_loop(resolver.clone(), sock));
        }
        let l = TcpListener::from_std(b.tcp)?;
        set.spawn(tcp_accept(resolver.clone(), l, tcp_slots.clone()));
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

/// The open TCP connections, so that a new one can take the place of the
/// one idle longest when `tcp_max_connections` are open: idle or slow
/// clients then cannot lock new ones out until their idle timeout. A
/// connection counts as busy only while one of its queries is answered;
/// one waiting for (or trickling in) its next query can be evicted.
struct TcpSlots {
    max: usize,
    open: std::sync::Mutex<Open>,
    start: std::time::Instant,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    conns: std::collections::HashMap<u64, (Arc<ConnState>, AbortHandle)>,
}

/// What a connection shares with [`TcpSlots`]: written by the connection
/// alone, read only when a slot is wanted.
#[derive(Default)]
struct ConnState {
    busy: std::sync::atomic::AtomicBool,
    /// Milliseconds since [`TcpSlots::start`] of its last answer (or of its
    /// accept).
    last: std::sync::atomic::AtomicU64,
}

impl TcpSlots {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            open: Default::default(),
            start: std::time::Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Room for one more connection: the idle one least recently active is
    /// removed when all slots are taken and returned for the caller to
    /// abort. `Err` when every connection is busy.
    fn make_room(&self, open: &mut Open) -> Result<Option<AbortHandle>, ()> {
        use std::sync::atomic::Ordering::Relaxed;
        if open.conns.len() < self.max {
            return Ok(None);
        }
        let victim = open
            .conns
            .iter()
            .filter(|(_, (st, _))| !st.busy.load(Relaxed))
            .min_by_key(|(_, (st, _))| st.last.load(Relaxed))
            .map(|(&id, _)| id)
            .ok_or(())?;
        Ok(open.conns.remove(&victim).map(|(_, h)| h))
    }
}

/// Frees a connection's slot when its task ends or is aborted.
struct SlotGuard {
    slots: Arc<TcpSlots>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.lock().conns.remove(&self.id);
    }
}

async fn tcp_accept(resolver: Arc<Resolver>, listener: TcpListener, slots: Arc<TcpSlots>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let mut open = slots.lock();
        let victim = match slots.make_room(&mut open) {
            Ok(v) => v,
            Err(()) => {
                drop(open);
                tracing::debug!(%peer, "every TCP connection is busy; closing the new one");
                continue;
            }
        };
        let id = open.next_id;
        open.next_id += 1;
        let state = Arc::new(ConnState::default());
        state
            .last
            .store(slots.now(), std::sync::atomic::Ordering::Relaxed);
        let guard = SlotGuard {
            slots: slots.clone(),
            id,
        };
        let (r, st) = (resolver.clone(), state.clone());
        let task = tokio::spawn(async move {
            let guard = guard;
            if let Err(e) = tcp_conn(&r, stream, peer, &st, &guard.slots).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
        });
        // the task's guard takes the lock to leave, so it cannot remove
        // its entry before it is in
        open.conns.insert(id, (state, task.abort_handle()));
        drop(open);
        if let Some(v) = victim {
            v.abort();
            resolver
                .metrics()
                .tcp_evicted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Serves length-prefixed queries on one connection, in order, until the
/// client closes it, stays idle too long, or is evicted for a new one.
async fn tcp_conn(
    resolver: &Resolver,
    mut stream: TcpStream,
    peer: SocketAddr,
    state: &ConnState,
    slots: &TcpSlots,
) -> io::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
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
        state.busy.store(true, Relaxed);
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
        state.last.store(slots.now(), Relaxed);
        state.busy.store(false, Relaxed);
    }
}
