//! A small stub DNS client: asks one nameserver (the system's, or the one
//! given with `--nameserver`), over UDP with a TCP retry when the answer is
//! truncated. Mail Check needs TXT, MX and addresses, and must tell "no such
//! name" and "no records of that type" (both void lookups for SPF) from a
//! failure (a temporary error).
//!
//! Each client keeps a cache for its own lifetime, which is one Mail Check
//! run: the same (name, type) is asked once, answers and negative answers
//! alike, and concurrent askers of the same name wait for the one query
//! (council domains share a few large SPF includes). Make one client per
//! run; nothing in the cache expires.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// The outcome of a lookup that got an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    Found(Vec<T>),
    /// The name exists but has no records of the type asked for.
    NoData,
    /// The name does not exist.
    NxDomain,
}

impl<T> Lookup<T> {
    /// The records, empty for NODATA and NXDOMAIN.
    pub fn records(self) -> Vec<T> {
        match self {
            Self::Found(v) => v,
            _ => Vec::new(),
        }
    }

    /// RFC 7208 §4.6.4: a lookup that returned no records.
    pub fn is_void(&self) -> bool {
        match self {
            Self::Found(v) => v.is_empty(),
            _ => true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("`{0}` is not a valid domain name")]
    BadName(String),
    #[error("no answer from {server} for {name} {rtype} within {secs} s")]
    Timeout {
        server: SocketAddr,
        name: String,
        rtype: RecordType,
        secs: u64,
    },
    #[error("{server} answered {rcode} for {name} {rtype}")]
    Rcode {
        server: SocketAddr,
        name: String,
        rtype: RecordType,
        rcode: ResponseCode,
    },
    #[error("DNS exchange with {0} failed: {1}")]
    Io(SocketAddr, String),
}

/// Most answer bytes (wire form) one client's cache keeps; past this,
/// new answers are used once and not kept.
const MAX_CACHE_BYTES: usize = 64 << 20;

/// What a client did: lookups asked by the checks, and queries sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Lookups the checks asked for.
    pub lookups: u64,
    /// Of those, answered by the cache (or by a query another lookup had
    /// already sent).
    pub cached: u64,
    /// Queries sent to the nameserver: every UDP attempt and TCP retry.
    pub queries: u64,
}

/// Answers by (lower-case name, type), each filled once by the first
/// asker while the others wait on its cell.
type Cells = HashMap<(String, RecordType), Arc<tokio::sync::OnceCell<Arc<Message>>>>;

#[derive(Debug, Default)]
struct Shared {
    cells: Mutex<Cells>,
    cache_bytes: AtomicUsize,
    lookups: AtomicU64,
    cached: AtomicU64,
    queries: AtomicU64,
}

/// The client. Clones share one cache and one set of counters.
#[derive(Debug, Clone)]
pub struct Dns {
    server: SocketAddr,
    timeout: Duration,
    attempts: u32,
    cache: bool,
    shared: Arc<Shared>,
}

impl Dns {
    /// A client with an empty cache: make one per run.
    pub fn new(server: SocketAddr) -> Self {
        Self {
            server,
            timeout: Duration::from_secs(3),
            attempts: 2,
            cache: true,
            shared: Arc::default(),
        }
    }

    /// Asks every lookup anew (to compare with the cache).
    pub fn without_cache(mut self) -> Self {
        self.cache = false;
        self
    }

    /// The counters so far, across all clones.
    pub fn stats(&self) -> DnsStats {
        DnsStats {
            lookups: self.shared.lookups.load(Ordering::Relaxed),
            cached: self.shared.cached.load(Ordering::Relaxed),
            queries: self.shared.queries.load(Ordering::Relaxed),
        }
    }

    /// The first nameserver of `/etc/resolv.conf`.
    pub fn system() -> Option<Self> {
        let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|r| r.trim().split('%').next()?.parse::<IpAddr>().ok())
            .map(|ip| Self::new(SocketAddr::new(ip, 53)))
            .next()
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// TXT records, each record's strings joined (RFC 7208 §3.3).
    pub async fn txt(&self, name: &str) -> Result<Lookup<String>, DnsError> {
        self.lookup(name, RecordType::TXT, |d| match d {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .await
    }

    /// MX records as (preference, exchange without the final dot).
    pub async fn mx(&self, name: &str) -> Result<Lookup<(u16, String)>, DnsError> {
        self.lookup(name, RecordType::MX, |d| match d {
            RData::MX(m) => Some((m.preference, text_of(&m.exchange))),
            _ => None,
        })
        .await
    }

    /// A (or AAAA with `v6`) records.
    pub async fn addrs(&self, name: &str, v6: bool) -> Result<Lookup<IpAddr>, DnsError> {
        let rtype = if v6 { RecordType::AAAA } else { RecordType::A };
        self.lookup(name, rtype, |d| match d {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .await
    }

    async fn lookup<T>(
        &self,
        name: &str,
        rtype: RecordType,
        pick: impl Fn(&RData) -> Option<T>,
    ) -> Result<Lookup<T>, DnsError> {
        let fqdn = if name.ends_with('.') {
            name.to_string()
        } else {
            format!("{name}.")
        };
        let qname = Name::from_ascii(&fqdn).map_err(|_| DnsError::BadName(name.to_string()))?;
        let m = self.answer(&qname, rtype).await?;
        match m.metadata.response_code {
            ResponseCode::NoError => {
                let found: Vec<T> = m
                    .answers
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .filter_map(|r| pick(&r.data))
                    .collect();
                Ok(if found.is_empty() {
                    Lookup::NoData
                } else {
                    Lookup::Found(found)
                })
            }
            ResponseCode::NXDomain => Ok(Lookup::NxDomain),
            rcode => Err(DnsError::Rcode {
                server: self.server,
                name: name.to_string(),
                rtype,
                rcode,
            }),
        }
    }

    /// The server's answer, from the cache when this run already has it.
    /// Any answer is kept (NXDOMAIN and SERVFAIL too); a query that got no
    /// answer is not, so a later lookup asks again.
    async fn answer(&self, qname: &Name, rtype: RecordType) -> Result<Arc<Message>, DnsError> {
        self.shared.lookups.fetch_add(1, Ordering::Relaxed);
        if !self.cache {
            return Ok(Arc::new(self.ask(qname, rtype).await?.0));
        }
        let key = (qname.to_ascii().to_ascii_lowercase(), rtype);
        let cell = {
            let mut cells = self.shared.cells.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(key.clone()).or_default().clone()
        };
        let mut size = None;
        let m = cell
            .get_or_try_init(|| async {
                let (m, len) = self.ask(qname, rtype).await?;
                size = Some(len);
                Ok::<_, DnsError>(Arc::new(m))
            })
            .await?
            .clone();
        match size {
            None => {
                self.shared.cached.fetch_add(1, Ordering::Relaxed);
            }
            Some(len) => {
                let total = self.shared.cache_bytes.fetch_add(len, Ordering::Relaxed) + len;
                if total > MAX_CACHE_BYTES {
                    // full: this answer served its askers; later ones ask again
                    self.shared.cache_bytes.fetch_sub(len, Ordering::Relaxed);
                    let mut cells = self.shared.cells.lock().unwrap_or_else(|p| p.into_inner());
                    cells.remove(&key);
                }
            }
        }
        Ok(m)
    }

    /// Asks the server, with retries; the answer and its size on the wire.
    async fn ask(&self, qname: &Name, rtype: RecordType) -> Result<(Message, usize), DnsError> {
        let mut last = None;
        for _ in 0..self.attempts {
            match self.exchange(qname, rtype).await {
                Ok(m) => return Ok(m),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| DnsError::Io(self.server, "no attempt made".into())))
    }

    async fn exchange(
        &self,
        qname: &Name,
        rtype: RecordType,
    ) -> Result<(Message, usize), DnsError> {
        let id: u16 = rand::random();
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(qname.clone(), rtype));
        let mut e = Edns::new();
        e.set_max_payload(1232);
        m.set_edns(e);
        let bytes = m
            .to_vec()
            .map_err(|e| DnsError::Io(self.server, e.to_string()))?;
        let timed_out = || DnsError::Timeout {
            server: self.server,
            name: qname.to_ascii(),
            rtype,
            secs: self.timeout.as_secs(),
        };
        let io = |e: std::io::Error| DnsError::Io(self.server, e.to_string());
        let bind: SocketAddr = if self.server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).await.map_err(io)?;
        sock.connect(self.server).await.map_err(io)?;
        self.shared.queries.fetch_add(1, Ordering::Relaxed);
        sock.send(&bytes).await.map_err(io)?;
        let mut buf = vec![0u8; 4096];
        let answer = timeout(self.timeout, async {
            loop {
                let n = sock.recv(&mut buf).await?;
                if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
                    return Ok::<_, std::io::Error>(buf[..n].to_vec());
                }
            }
        })
        .await
        .map_err(|_| timed_out())?
        .map_err(io)?;
        let msg =
            Message::from_vec(&answer).map_err(|e| DnsError::Io(self.server, e.to_string()))?;
        if !msg.metadata.truncation {
            return Ok((msg, answer.len()));
        }
        // truncated: ask again over TCP
        self.shared.queries.fetch_add(1, Ordering::Relaxed);
        timeout(self.timeout, async {
            let mut s = TcpStream::connect(self.server).await?;
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            framed.extend_from_slice(&bytes);
            s.write_all(&framed).await?;
            let len = s.read_u16().await? as usize;
            let mut body = vec![0u8; len];
            s.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(body)
        })
        .await
        .map_err(|_| timed_out())?
        .map_err(io)
        .and_then(|b| {
            Message::from_vec(&b)
                .map(|m| (m, b.len()))
                .map_err(|e| DnsError::Io(self.server, e.to_string()))
        })
    }
}

/// A name in presentation form, lower-case, without the final dot.
pub fn text_of(n: &Name) -> String {
    let mut s = n.to_ascii().to_ascii_lowercase();
    if s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    s
}
