//! Forwarding to upstream resolvers: tried in configured order, an upstream
//! that keeps failing is skipped for a while, UDP first and TCP when the
//! answer is truncated, all inside one overall deadline after which the
//! client gets SERVFAIL.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout_at;

use crate::metrics::UpstreamMetrics;
use crate::wire;

/// Consecutive failures after which an upstream is set aside.
const FAILURES_TO_SUSPEND: u32 = 3;
/// How long a failing upstream is set aside before it is tried first again.
const SUSPEND_FOR: Duration = Duration::from_secs(5);

pub struct Upstream {
    pub addr: SocketAddr,
    failures: AtomicU32,
    suspended_until_ms: AtomicU64,
    pub metrics: UpstreamMetrics,
}

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream answered within {0:?}")]
    Timeout(Duration),
    #[error("no upstream resolver is configured")]
    NoneConfigured,
}

pub struct Upstreams {
    list: Vec<Upstream>,
    timeout: Duration,
    attempt_timeout: Duration,
    epoch: Instant,
}

/// What one exchange with one upstream gave.
enum Attempt {
    Answer(Vec<u8>),
    Failed,
}

impl Upstreams {
    pub fn new(addrs: &[SocketAddr], timeout: Duration, attempt_timeout: Duration) -> Self {
        Self {
            list: addrs
                .iter()
                .map(|&addr| Upstream {
                    addr,
                    failures: AtomicU32::new(0),
                    suspended_until_ms: AtomicU64::new(0),
                    metrics: UpstreamMetrics::default(),
                })
                .collect(),
            timeout,
            attempt_timeout: attempt_timeout.min(timeout),
            epoch: Instant::now(),
        }
    }

    pub fn list(&self) -> &[Upstream] {
        &self.list
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Upstream indexes in the order to try them: configured order, those
    /// set aside after repeated failures last.
    fn order(&self) -> Vec<usize> {
        let now = self.now_ms();
        let (mut up, down): (Vec<usize>, Vec<usize>) = (0..self.list.len())
            .partition(|&i| self.list[i].suspended_until_ms.load(Ordering::Relaxed) <= now);
        up.extend(down);
        up
    }

    fn record(&self, i: usize, ok: bool) {
        let u = &self.list[i];
        if ok {
            u.failures.store(0, Ordering::Relaxed);
            u.suspended_until_ms.store(0, Ordering::Relaxed);
        } else {
            let n = u.failures.fetch_add(1, Ordering::Relaxed) + 1;
            if n >= FAILURES_TO_SUSPEND {
                u.suspended_until_ms.store(
                    self.now_ms() + SUSPEND_FOR.as_millis() as u64,
                    Ordering::Relaxed,
                );
            }
        }
    }

    /// Sends `query` (ID `id`, for `key`/`qtype`/`qclass`) upstream and
    /// returns the first acceptable answer. SERVFAIL and REFUSED answers
    /// make Parapet try the next upstream, and are returned only if no
    /// upstream does better.
    pub async fn resolve(
        &self,
        query: &[u8],
        id: u16,
        key: &[u8],
        qtype: u16,
        qclass: u16,
    ) -> Result<Vec<u8>, UpstreamError> {
        if self.list.is_empty() {
            return Err(UpstreamError::NoneConfigured);
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut fallback = None;
        // two rounds: a lost UDP packet gets a second chance while time remains
        for _round in 0..2 {
            for i in self.order() {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    break;
                }
                let attempt_deadline = (now + self.attempt_timeout).min(deadline);
                let up = &self.list[i];
                let started = Instant::now();
                let res = self
                    .exchange(
                        up.addr,
                        query,
                        id,
                        key,
                        qtype,
                        qclass,
                        attempt_deadline,
                        deadline,
                    )
                    .await;
                match res {
                    Attempt::Answer(msg) => {
                        up.metrics.observe(started.elapsed());
                        self.record(i, true);
                        let rc = msg.get(3).map_or(0, |b| b & 0xf);
                        if rc == wire::rcode::SERVFAIL || rc == wire::rcode::REFUSED {
                            fallback.get_or_insert(msg);
                            continue;
                        }
                        return Ok(msg);
                    }
                    Attempt::Failed => {
                        up.metrics.failures.fetch_add(1, Ordering::Relaxed);
                        self.record(i, false);
                    }
                }
            }
            if fallback.is_some() {
                break;
            }
        }
        fallback.ok_or(UpstreamError::Timeout(self.timeout))
    }

    #[allow(clippy::too_many_arguments)]
    async fn exchange(
        &self,
        addr: SocketAddr,
        query: &[u8],
        id: u16,
        key: &[u8],
        qtype: u16,
        qclass: u16,
        attempt_deadline: tokio::time::Instant,
        deadline: tokio::time::Instant,
    ) -> Attempt {
        match timeout_at(
            attempt_deadline,
            udp_exchange(addr, query, id, key, qtype, qclass),
        )
        .await
        {
            Ok(Ok(msg)) => {
                if msg.get(2).is_some_and(|b| b & 0x02 != 0) {
                    // truncated: ask again over TCP, within the overall deadline
                    match timeout_at(deadline, tcp_exchange(addr, query, id, key, qtype, qclass))
                        .await
                    {
                        Ok(Ok(full)) => Attempt::Answer(full),
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "upstream TCP retry failed");
                            Attempt::Failed
                        }
                        Err(_) => Attempt::Failed,
                    }
                } else {
                    Attempt::Answer(msg)
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(%addr, error = %e, "upstream UDP exchange failed");
                Attempt::Failed
            }
            Err(_) => Attempt::Failed,
        }
    }
}

/// One UDP exchange on a fresh socket with a kernel-chosen (random) source
/// port; answers that do not match the query are ignored, not accepted.
async fn udp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    key: &[u8],
    qtype: u16,
    qclass: u16,
) -> io::Result<Vec<u8>> {
    let bind: SocketAddr = if addr.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    sock.connect(addr).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await?;
        if wire::matches_query(&buf[..n], id, key, qtype, qclass) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    query: &[u8],
    id: u16,
    key: &[u8],
    qtype: u16,
    qclass: u16,
) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut msg = Vec::with_capacity(query.len() + 2);
    msg.extend_from_slice(&(query.len() as u16).to_be_bytes());
    msg.extend_from_slice(query);
    s.write_all(&msg).await?;
    let len = s.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    if !wire::matches_query(&buf, id, key, qtype, qclass) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "TCP answer does not match the query",
        ));
    }
    Ok(buf)
}
