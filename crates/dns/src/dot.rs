//! The DNS-over-TLS listener (RFC 7858): length-prefixed queries as on
//! TCP, inside TLS. Queries on one connection are worked on together and
//! answered in the order they complete (RFC 7766 §6.2.1.1), through the
//! same [`Resolver::handle`]/[`Resolver::complete`] as UDP and TCP.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

use crate::Resolver;
use crate::conns::{Conn, ConnTable};
use crate::metrics::Transport;
use crate::resolver::Outcome;

/// Limits of one DoT listener.
#[derive(Debug, Clone)]
pub struct DotLimits {
    /// Open connections; when full the longest idle one is closed for a new one.
    pub max_connections: usize,
    /// A connection with no query in progress closes after this long
    /// without one; also bounds the TLS handshake.
    pub idle_timeout: Duration,
    /// Queries in progress on one connection; more wait to be read.
    pub max_in_flight: usize,
}

/// Binds a TCP listener for DoT (port 0 picks a free one).
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accepts DoT connections until the runtime stops.
pub async fn serve(
    resolver: Arc<Resolver>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    limits: DotLimits,
) {
    let acceptor = TlsAcceptor::from(tls);
    let table = ConnTable::new(limits.max_connections);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "DoT accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(conn) = table.admit() else {
            tracing::warn!(%peer, "every DoT connection is busy; closing the new one");
            continue;
        };
        let (resolver, acceptor, limits) = (resolver.clone(), acceptor.clone(), limits.clone());
        tokio::spawn(async move {
            let res = tokio::select! {
                r = connection(resolver, acceptor, stream, peer, &conn, &limits) => r,
                () = conn.evicted() => Ok(()),
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "DoT connection ended");
            }
        });
    }
}

async fn connection(
    resolver: Arc<Resolver>,
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    conn: &Conn,
    limits: &DotLimits,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let idle = limits.idle_timeout;
    let tls = {
        let _handshaking = conn.busy();
        timeout(idle, acceptor.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??
    };
    let (mut rd, wr) = tokio::io::split(tls);
    // answers that queue up leave in one TLS record, not one each
    let mut wr = tokio::io::BufWriter::with_capacity(16 * 1024, wr);
    let slots = Arc::new(Semaphore::new(limits.max_in_flight.max(1)));
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(limits.max_in_flight.max(1));
    // answers go out as they come, several per flush when they queue up
    let writer = async move {
        while let Some(msg) = rx.recv().await {
            wr.write_all(&msg).await?;
            while let Ok(more) = rx.try_recv() {
                wr.write_all(&more).await?;
            }
            wr.flush().await?;
        }
        wr.shutdown().await
    };
    let reader = async move {
        let mut buf = Vec::new();
        loop {
            let len = loop {
                match timeout(idle, rd.read_u16()).await {
                    Ok(Ok(l)) => break l as usize,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                    Ok(Err(e)) => return Err(e),
                    // idle only when nothing is in progress
                    Err(_) if slots.available_permits() == limits.max_in_flight.max(1) => {
                        return Ok(());
                    }
                    Err(_) => continue,
                }
            };
            let busy = conn.busy();
            buf.resize(len, 0);
            match timeout(idle, rd.read_exact(&mut buf)).await {
                Ok(r) => r?,
                Err(_) => return Ok(()),
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return Ok(());
            };
            let mut out = Vec::with_capacity(512);
            let at = resolver.arrival();
            match resolver.handle(&at, &buf, peer, false, Transport::Dot, &mut out) {
                Outcome::Reply => {
                    let _ = tx.send(framed(&out)).await;
                    drop((permit, busy));
                }
                Outcome::Drop => drop((permit, busy)),
                Outcome::Forward(p) => {
                    let (resolver, tx) = (resolver.clone(), tx.clone());
                    tokio::spawn(async move {
                        if resolver.complete(p, false, &mut out).await {
                            let _ = tx.send(framed(&out)).await;
                        }
                        drop((permit, busy));
                    });
                }
            }
        }
    };
    // the reader's end closes the queue once the answers in progress are
    // sent, and with it the writer
    let (r, w) = tokio::join!(reader, writer);
    r.and(w)
}

/// A DNS message with its two-byte length, as TCP and TLS carry it.
fn framed(msg: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(msg.len() + 2);
    f.extend_from_slice(&(msg.len().min(u16::MAX as usize) as u16).to_be_bytes());
    f.extend_from_slice(msg);
    f
}
