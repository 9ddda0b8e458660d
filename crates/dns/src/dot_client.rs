//! DNS over TLS to an upstream: one persistent connection per upstream,
//! queries pipelined on it and answers matched by message ID, a new
//! connection when the old one fails or the upstream closes it. The
//! certificate is verified against the roots and the configured name;
//! anything else fails the exchange (the resolver then answers SERVFAIL).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;

/// Queries waiting on one connection at most; more fail at once (the
/// resolver tries the next upstream) rather than queue without bound.
const MAX_PENDING: usize = 4096;

pub struct DotUpstream {
    addr: SocketAddr,
    name: ServerName<'static>,
    connector: TlsConnector,
    conn: tokio::sync::Mutex<Option<Arc<Link>>>,
}

/// One open connection: a writer task fed by `tx`, a reader task that
/// hands each answer to whoever waits on its ID.
struct Link {
    tx: mpsc::Sender<Vec<u8>>,
    waiting: Mutex<Waiting>,
    alive: AtomicBool,
}

#[derive(Default)]
struct Waiting {
    next_id: u16,
    by_id: HashMap<u16, oneshot::Sender<Vec<u8>>>,
}

impl DotUpstream {
    pub fn new(
        addr: SocketAddr,
        name: ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            addr,
            name,
            connector: TlsConnector::from(config),
            conn: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends `query` and returns its answer, with the query's own ID. The
    /// caller bounds the time.
    pub async fn exchange(&self, query: &[u8]) -> io::Result<Vec<u8>> {
        if query.len() < 12 || query.len() > u16::MAX as usize {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad query"));
        }
        let link = self.link().await?;
        let (id, rx) = link.wait()?;
        // a query given up on (timed out) frees its ID
        let _ticket = Ticket(&link, id);
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        // the connection's own ID, unique among those in flight on it
        framed[2..4].copy_from_slice(&id.to_be_bytes());
        if link.tx.send(framed).await.is_err() {
            link.alive.store(false, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection closed",
            ));
        }
        let mut answer = rx
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::ConnectionAborted, "connection closed"))?;
        answer[..2].copy_from_slice(&query[..2]);
        Ok(answer)
    }

    /// The open connection, or a new one. The async lock is held while a
    /// connection is set up (a network wait) so that queries arriving
    /// meanwhile share it rather than each opening one.
    async fn link(&self) -> io::Result<Arc<Link>> {
        let mut slot = self.conn.lock().await;
        if let Some(l) = &*slot
            && l.alive.load(Ordering::Relaxed)
        {
            return Ok(l.clone());
        }
        *slot = None;
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = self.connector.connect(self.name.clone(), tcp).await?;
        let (rd, wr) = tokio::io::split(tls);
        let (tx, rx) = mpsc::channel(256);
        let link = Arc::new(Link {
            tx,
            waiting: Mutex::new(Waiting::default()),
            alive: AtomicBool::new(true),
        });
        let addr = self.addr;
        // the writer holds the link weakly: once the link is dropped its
        // queue closes and the writer ends
        tokio::spawn(write_loop(wr, rx, Arc::downgrade(&link), addr));
        tokio::spawn(read_loop(rd, link.clone(), addr));
        *slot = Some(link.clone());
        Ok(link)
    }
}

struct Ticket<'a>(&'a Link, u16);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .remove(&self.1);
    }
}

impl Link {
    /// A free ID on this connection and where its answer will arrive.
    fn wait(&self) -> io::Result<(u16, oneshot::Receiver<Vec<u8>>)> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if w.by_id.len() >= MAX_PENDING {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "too many queries waiting on the connection",
            ));
        }
        let mut id = w.next_id;
        while w.by_id.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        w.next_id = id.wrapping_add(1);
        let (tx, rx) = oneshot::channel();
        w.by_id.insert(id, tx);
        Ok((id, rx))
    }

    /// The connection is gone: every query waiting on it fails now.
    fn close(&self) {
        self.alive.store(false, Ordering::Relaxed);
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .clear();
    }
}

async fn write_loop<W: AsyncWriteExt + Unpin>(
    mut wr: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    link: std::sync::Weak<Link>,
    addr: SocketAddr,
) {
    let res: io::Result<()> = async {
        while let Some(msg) = rx.recv().await {
            wr.write_all(&msg).await?;
            while let Ok(more) = rx.try_recv() {
                wr.write_all(&more).await?;
            }
            wr.flush().await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = res {
        tracing::debug!(%addr, error = %e, "DoT upstream write failed");
    }
    if let Some(link) = link.upgrade() {
        link.close();
    }
}

async fn read_loop<R: AsyncReadExt + Unpin>(mut rd: R, link: Arc<Link>, addr: SocketAddr) {
    let res: io::Result<()> = async {
        loop {
            let len = rd.read_u16().await? as usize;
            let mut msg = vec![0u8; len];
            rd.read_exact(&mut msg).await?;
            if len < 12 {
                continue;
            }
            let id = u16::from_be_bytes([msg[0], msg[1]]);
            let waiter = link
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .by_id
                .remove(&id);
            if let Some(w) = waiter {
                let _ = w.send(msg);
            }
        }
    }
    .await;
    if let Err(e) = res {
        tracing::debug!(%addr, error = %e, "DoT upstream connection closed");
    }
    link.close();
}
