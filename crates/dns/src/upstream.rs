//! Forwarding to upstream resolvers: tried in configured order, an upstream
//! that keeps failing is skipped for a while, UDP first and TCP when the
//! answer is truncated (or DNS over TLS for a `tls://` upstream), all
//! inside one overall deadline after which the client gets SERVFAIL.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout_at;

use rustls::pki_types::ServerName;

use crate::dot_client::DotUpstream;
use crate::metrics::UpstreamMetrics;
use crate::wire;

/// An upstream as configured: `IP:PORT` (plain DNS), or
/// `tls://IP:PORT#name` (DNS over TLS, the certificate verified for
/// `name`; the port defaults to 853).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamAddr {
    pub addr: SocketAddr,
    pub tls_name: Option<ServerName<'static>>,
}

impl UpstreamAddr {
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            tls_name: None,
        }
    }
}

impl FromStr for UpstreamAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix("tls://") else {
            return s
                .parse()
                .map(Self::plain)
                .map_err(|_| format!("{s:?}: expected IP:PORT or tls://IP:PORT#name"));
        };
        let (hostport, name) = rest.split_once('#').ok_or_else(|| {
            format!(
                "{s:?}: a tls:// upstream needs #name, the name its certificate is verified for"
            )
        })?;
        let addr = hostport
            .parse::<SocketAddr>()
            .or_else(|_| {
                hostport
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .map(|ip| SocketAddr::new(ip, 853))
            })
            .map_err(|_| format!("{s:?}: {hostport:?} is not IP:PORT"))?;
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("{s:?}: {name:?} is not a valid TLS name: {e}"))?;
        Ok(Self {
            addr,
            tls_name: Some(name),
        })
    }
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls_name {
            None => write!(f, "{}", self.addr),
            Some(ServerName::DnsName(n)) => write!(f, "tls://{}#{}", self.addr, n.as_ref()),
            Some(ServerName::IpAddress(ip)) => {
                write!(f, "tls://{}#{}", self.addr, std::net::IpAddr::from(*ip))
            }
            Some(_) => write!(f, "tls://{}", self.addr),
        }
    }
}

/// Consecutive failures after which an upstream is set aside.
const FAILURES_TO_SUSPEND: u32 = 3;
/// How long a failing upstream is set aside before it is tried first again.
const SUSPEND_FOR: Duration = Duration::from_secs(5);

pub struct Upstream {
    pub addr: SocketAddr,
    /// DNS over TLS to this upstream instead of UDP/TCP.
    tls: Option<DotUpstream>,
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
    /// `tls` verifies `tls://` upstreams; `None`: the webpki roots.
    pub fn new(
        addrs: &[UpstreamAddr],
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
        attempt_timeout: Duration,
    ) -> Self {
        let tls = tls
            .unwrap_or_else(|| crate::tls::client_config(&[]).expect("the webpki roots are valid"));
        Self {
            list: addrs
                .iter()
                .map(|u| Upstream {
                    addr: u.addr,
                    tls: u
                        .tls_name
                        .clone()
                        .map(|n| DotUpstream::new(u.addr, n, tls.clone())),
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
                        up,
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
        up: &Upstream,
        query: &[u8],
        id: u16,
        key: &[u8],
        qtype: u16,
        qclass: u16,
        attempt_deadline: tokio::time::Instant,
        deadline: tokio::time::Instant,
    ) -> Attempt {
        let addr = up.addr;
        if let Some(dot) = &up.tls {
            return match timeout_at(attempt_deadline, dot.exchange(query)).await {
                Ok(Ok(msg)) if wire::matches_query(&msg, id, key, qtype, qclass) => {
                    Attempt::Answer(msg)
                }
                Ok(Ok(_)) => {
                    tracing::debug!(%addr, "DoT answer does not match the query");
                    Attempt::Failed
                }
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "upstream DoT exchange failed");
                    Attempt::Failed
                }
                Err(_) => Attempt::Failed,
            };
        }
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

#[cfg(test)]
mod tests {
    use super::UpstreamAddr;

    #[test]
    fn upstream_addresses_parse_plain_and_tls() {
        let u: UpstreamAddr = "192.0.2.1:53".parse().unwrap();
        assert!(u.tls_name.is_none());
        let u: UpstreamAddr = "tls://192.0.2.1:8853#dns.example".parse().unwrap();
        assert_eq!(u.to_string(), "tls://192.0.2.1:8853#dns.example");
        let u: UpstreamAddr = "tls://[2001:db8::1]#dns.example".parse().unwrap();
        assert_eq!(u.addr.port(), 853);
        let e = "tls://192.0.2.1:853".parse::<UpstreamAddr>().unwrap_err();
        assert!(e.contains("needs #name"), "{e}");
        assert!("tls://x:853#a".parse::<UpstreamAddr>().is_err());
        assert!("nonsense".parse::<UpstreamAddr>().is_err());
    }
}
