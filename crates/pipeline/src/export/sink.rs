//! Where records go: syslog (UDP, TCP with octet counting, TLS), HTTP
//! (JSON lines or Splunk HEC batches) and a rotated file. Each `send`
//! returns `Ok` only once the destination has accepted the whole batch, so
//! the caller can advance its cursor.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::format::{Record, cef, hec_event, rfc5424};
use super::{ExportConfig, ExportFormat, SyslogProtocol};

/// A destination that takes batches of records.
pub(crate) trait Sink: Send {
    fn send(&mut self, records: &[Record]) -> Result<(), String>;
}

/// The largest UDP datagram sent: rsyslog's default message limit (8 KiB);
/// a longer message is cut there (UDP has no framing to carry more).
const UDP_MAX: usize = 8192;
/// The largest HTTP request body: a batch is split into requests of at
/// most this many bytes.
const HTTP_MAX_BODY: usize = 1 << 20;

/// The message text of a record in `format` (JSON or CEF).
fn text(r: &Record, format: ExportFormat) -> String {
    match format {
        ExportFormat::Cef => cef(r),
        _ => r.to_json().to_string(),
    }
}

pub(crate) fn open(cfg: &ExportConfig, host: &str, base: &Path) -> Result<Box<dyn Sink>, String> {
    let timeout = Duration::from_secs(cfg.timeout_seconds.max(1));
    let ca = cfg.ca_file.as_ref().map(|p| base.join(p));
    match cfg.kind {
        super::ExportKind::Syslog => {
            let address = cfg.address.clone().unwrap_or_default();
            let tls = match cfg.protocol {
                SyslogProtocol::Tls => Some(tls_config(ca.as_deref())?),
                _ => None,
            };
            Ok(Box::new(Syslog {
                address,
                protocol: cfg.protocol,
                format: cfg.format,
                host: host.to_string(),
                tls,
                timeout,
            }))
        }
        super::ExportKind::Http => {
            let roots = match &ca {
                Some(p) => ureq_roots(p)?,
                None => ureq::tls::RootCerts::WebPki,
            };
            let agent = ureq::Agent::config_builder()
                .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(concat!("parapet/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent();
            Ok(Box::new(Http {
                url: cfg.address.clone().unwrap_or_default(),
                agent,
                headers: cfg
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                format: cfg.format,
                host: host.to_string(),
            }))
        }
        super::ExportKind::File => Ok(Box::new(File {
            path: base.join(cfg.path.clone().unwrap_or_default()),
            rotate_bytes: cfg.rotate_mb.max(1).saturating_mul(1 << 20),
            keep: cfg.keep,
            format: cfg.format,
        })),
    }
}

/// The certificates of a PEM file.
fn pem_certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "ca_file {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn ureq_roots(path: &Path) -> Result<ureq::tls::RootCerts, String> {
    let certs = pem_certs(path)?
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    Ok(ureq::tls::RootCerts::Specific(Arc::new(certs)))
}

/// rustls with ring, trusting `ca_file`'s certificates, or the webpki
/// roots when there is none.
fn tls_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(p) => {
            for c in pem_certs(p)? {
                roots
                    .add(c)
                    .map_err(|e| format!("ca_file {}: {e}", p.display()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

struct Syslog {
    address: String,
    protocol: SyslogProtocol,
    format: ExportFormat,
    host: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    timeout: Duration,
}

impl Syslog {
    fn connect(&self) -> Result<TcpStream, String> {
        let mut last = format!("{}: no address", self.address);
        let addrs = self
            .address
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", self.address))?;
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    s.set_read_timeout(Some(self.timeout))
                        .and_then(|()| s.set_write_timeout(Some(self.timeout)))
                        .map_err(|e| e.to_string())?;
                    return Ok(s);
                }
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        Err(last)
    }
}

/// Reads until the peer closes: a receiver closes its side only after it
/// has read everything before our end of stream, which is the only
/// acknowledgement syslog over TCP has. A batch whose close is not seen
/// is sent again (at least once).
fn await_close(r: &mut impl Read) -> Result<(), String> {
    let mut buf = [0u8; 512];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("waiting for the receiver to confirm: {e}")),
        }
    }
}

impl Sink for Syslog {
    fn send(&mut self, records: &[Record]) -> Result<(), String> {
        let msgs: Vec<Vec<u8>> = records
            .iter()
            .map(|r| rfc5424(r, &self.host, &text(r, self.format)))
            .collect();
        match self.protocol {
            SyslogProtocol::Udp => {
                let to = self
                    .address
                    .to_socket_addrs()
                    .map_err(|e| format!("{}: {e}", self.address))?
                    .next()
                    .ok_or_else(|| format!("{}: no address", self.address))?;
                let local: std::net::SocketAddr = if to.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let sock = UdpSocket::bind(local).map_err(|e| e.to_string())?;
                sock.connect(to).map_err(|e| format!("{to}: {e}"))?;
                for m in &msgs {
                    sock.send(&m[..m.len().min(UDP_MAX)])
                        .map_err(|e| format!("{to}: {e}"))?;
                }
                Ok(())
            }
            SyslogProtocol::Tcp => {
                let mut s = self.connect()?;
                // RFC 6587 octet counting: `LEN SP MSG`, one write
                let mut framed = Vec::new();
                for m in &msgs {
                    framed.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    framed.extend_from_slice(m);
                }
                s.write_all(&framed).map_err(|e| e.to_string())?;
                s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
                await_close(&mut s)
            }
            SyslogProtocol::Tls => {
                let s = self.connect()?;
                let host = self.address.rsplit_once(':').map_or("", |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| format!("{host}: {e}"))?;
                let cfg = self.tls.clone().ok_or("no TLS configuration")?;
                let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
                let mut tls = rustls::StreamOwned::new(conn, s);
                // RFC 5425: the same octet counting inside TLS
                let mut framed = Vec::new();
                for m in &msgs {
                    framed.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    framed.extend_from_slice(m);
                }
                tls.write_all(&framed).map_err(|e| e.to_string())?;
                tls.conn.send_close_notify();
                tls.flush().map_err(|e| e.to_string())?;
                let _ = tls.sock.shutdown(Shutdown::Write);
                await_close(&mut tls)
            }
        }
    }
}

struct Http {
    url: String,
    agent: ureq::Agent,
    headers: Vec<(String, String)>,
    format: ExportFormat,
    host: String,
}

impl Sink for Http {
    fn send(&mut self, records: &[Record]) -> Result<(), String> {
        let (content_type, lines): (&str, Vec<String>) = match self.format {
            ExportFormat::SplunkHec => (
                "application/json",
                records
                    .iter()
                    .map(|r| hec_event(r, &self.host).to_string())
                    .collect(),
            ),
            _ => (
                "application/x-ndjson",
                records.iter().map(|r| r.to_json().to_string()).collect(),
            ),
        };
        let mut body = String::new();
        for (i, line) in lines.iter().enumerate() {
            body.push_str(line);
            body.push('\n');
            let last = i + 1 == lines.len();
            if last || body.len() + lines[i + 1].len() + 1 > HTTP_MAX_BODY {
                self.post(content_type, &body)?;
                body.clear();
            }
        }
        Ok(())
    }
}

impl Http {
    fn post(&self, content_type: &str, body: &str) -> Result<(), String> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", content_type);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send(body.as_bytes()).map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    }
}

struct File {
    path: PathBuf,
    rotate_bytes: u64,
    keep: u32,
    format: ExportFormat,
}

impl File {
    /// `path.N` for the Nth newest rotated file.
    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    }

    /// `path` becomes `path.1`, `path.1` becomes `path.2`…; the file past
    /// `keep` is deleted.
    fn rotate(&self) -> std::io::Result<()> {
        let gone = self.rotated(self.keep.max(1));
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(&gone);
        for n in (1..self.keep).rev() {
            let from = self.rotated(n);
            if from.exists() {
                std::fs::rename(&from, self.rotated(n + 1))?;
            }
        }
        std::fs::rename(&self.path, self.rotated(1))
    }
}

impl Sink for File {
    fn send(&mut self, records: &[Record]) -> Result<(), String> {
        let err = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let mut out = String::new();
        for r in records {
            out.push_str(&text(r, self.format));
            out.push('\n');
        }
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if size > 0 && size + out.len() as u64 > self.rotate_bytes {
            self.rotate().map_err(err)?;
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(err)?;
        f.write_all(out.as_bytes()).map_err(err)?;
        f.sync_data().map_err(err)
    }
}
