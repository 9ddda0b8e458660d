//! STARTTLS on a mail server: is it offered, which TLS version is
//! negotiated, is the certificate chain valid for the host name, and how
//! many days until it expires.
//!
//! rustls refuses TLS 1.0/1.1 and SSL 3, so a server that cannot do
//! TLS 1.2 or later shows as a failed handshake (`tls.version_too_old`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::finding::Finding;

/// Days before expiry from which a certificate is reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// How to probe mail servers.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// SMTP port (25; tests use others).
    pub port: u16,
    /// Roots trusted besides the Mozilla set (e.g. a council's private CA).
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub timeout: Duration,
    /// The name Parapet gives in EHLO.
    pub ehlo: String,
}

impl Default for TlsOptions {
    fn default() -> Self {
        Self {
            port: 25,
            extra_roots: Vec::new(),
            timeout: Duration::from_secs(15),
            ehlo: "mailcheck.parapet.invalid".into(),
        }
    }
}

/// What the probe of one mail server saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsResult {
    pub host: String,
    pub starttls: bool,
    /// e.g. `TLSv1_3`.
    pub version: Option<String>,
    pub cipher: Option<String>,
    pub days_left: Option<i64>,
}

/// Probes `host` at `addr`; findings name the host.
pub async fn probe(host: &str, addr: IpAddr, opts: &TlsOptions) -> (TlsResult, Vec<Finding>) {
    let mut res = TlsResult {
        host: host.to_string(),
        ..TlsResult::default()
    };
    let mut f = Vec::new();
    let sock = SocketAddr::new(addr, opts.port);
    let stream = match timeout(opts.timeout, smtp_to_starttls(sock, &opts.ehlo)).await {
        Err(_) => {
            f.push(Finding::warning(
                "tls.connect_failed",
                format!(
                    "mail server {host} ({sock}) did not answer SMTP within {} s",
                    opts.timeout.as_secs()
                ),
            ));
            return (res, f);
        }
        Ok(Err(Smtp::Io(e))) => {
            f.push(Finding::warning(
                "tls.connect_failed",
                format!("could not talk SMTP to mail server {host} ({sock}): {e}"),
            ));
            return (res, f);
        }
        Ok(Err(Smtp::NoStarttls)) => {
            f.push(Finding::error(
                "tls.starttls_missing",
                format!("mail server {host} does not offer STARTTLS, so mail to this domain travels unencrypted; enable TLS on it"),
            ));
            return (res, f);
        }
        Ok(Err(Smtp::Refused(line))) => {
            f.push(Finding::error(
                "tls.starttls_failed",
                format!("mail server {host} offers STARTTLS but refused it: `{line}`"),
            ));
            return (res, f);
        }
        Ok(Ok(s)) => s,
    };
    res.starttls = true;
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in &opts.extra_roots {
        let _ = roots.add(c.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = match ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
    {
        Ok(c) => c,
        Err(e) => {
            f.push(Finding::warning(
                "tls.connect_failed",
                format!("TLS set-up failed: {e}"),
            ));
            return (res, f);
        }
    };
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        f.push(Finding::error(
            "tls.cert_name_mismatch",
            format!("`{host}` is not a valid server name"),
        ));
        return (res, f);
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    match timeout(opts.timeout, connector.connect(name, stream)).await {
        Err(_) => f.push(Finding::warning(
            "tls.connect_failed",
            format!("TLS handshake with {host} timed out"),
        )),
        Ok(Err(e)) => f.push(classify(host, &e)),
        Ok(Ok(tls)) => {
            let (_, conn) = tls.get_ref();
            res.version = conn.protocol_version().map(|v| format!("{v:?}"));
            res.cipher = conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite()));
            if let Some(leaf) = conn.peer_certificates().and_then(|c| c.first()) {
                res.days_left = days_left(leaf);
            }
            match res.days_left {
                Some(d) if d < EXPIRY_WARNING_DAYS => f.push(Finding::warning(
                    "tls.cert_expiring",
                    format!("the certificate of {host} expires in {d} days; renew it before senders start failing"),
                )),
                _ => {}
            }
            f.push(Finding::info(
                "tls.ok",
                format!(
                    "{host}: STARTTLS with {}, {}, certificate valid{}",
                    res.version.as_deref().unwrap_or("?"),
                    res.cipher.as_deref().unwrap_or("?"),
                    res.days_left
                        .map(|d| format!(" for {d} more days"))
                        .unwrap_or_default()
                ),
            ));
        }
    }
    (res, f)
}

fn classify(host: &str, e: &std::io::Error) -> Finding {
    let rustls_err = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_err {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => Finding::error(
                "tls.cert_expired",
                format!(
                    "the certificate of {host} has expired: senders that check certificates (MTA-STS, DANE) will not deliver; renew it"
                ),
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Finding::error(
                    "tls.cert_name_mismatch",
                    format!(
                        "the certificate of {host} is not issued for `{host}` (its subject alternative names do not match); use a certificate that names the MX host"
                    ),
                )
            }
            CertificateError::UnknownIssuer => Finding::error(
                "tls.cert_untrusted",
                format!(
                    "the certificate of {host} does not chain to a trusted root (self-signed, private CA or missing intermediate); send the full chain from a public CA"
                ),
            ),
            other => Finding::error(
                "tls.cert_invalid",
                format!("the certificate of {host} is not valid: {other:?}"),
            ),
        },
        Some(rustls::Error::PeerIncompatible(_))
        | Some(rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion)) => {
            Finding::error(
                "tls.version_too_old",
                format!(
                    "{host} could not negotiate TLS 1.2 or 1.3; older versions are insecure: enable TLS 1.2 and 1.3"
                ),
            )
        }
        _ => Finding::error(
            "tls.handshake_failed",
            format!("the TLS handshake with {host} failed: {e}"),
        ),
    }
}

/// Days from now until the certificate's notAfter (negative once past).
fn days_left(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let not_after = c.validity().not_after.timestamp();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    Some((not_after - now).div_euclid(86_400))
}

enum Smtp {
    Io(std::io::Error),
    NoStarttls,
    Refused(String),
}

impl From<std::io::Error> for Smtp {
    fn from(e: std::io::Error) -> Self {
        Smtp::Io(e)
    }
}

/// Greets the server, asks for STARTTLS and returns the stream ready for
/// the TLS handshake.
async fn smtp_to_starttls(addr: SocketAddr, ehlo: &str) -> Result<TcpStream, Smtp> {
    let stream = TcpStream::connect(addr).await?;
    let mut r = BufReader::new(stream);
    let banner = reply(&mut r).await?;
    if !banner.first().is_some_and(|l| l.starts_with("220")) {
        return Err(Smtp::Refused(banner.join(" ")));
    }
    r.get_mut()
        .write_all(format!("EHLO {ehlo}\r\n").as_bytes())
        .await?;
    let caps = reply(&mut r).await?;
    if !caps.first().is_some_and(|l| l.starts_with("250")) {
        return Err(Smtp::Refused(caps.join(" ")));
    }
    let offers = caps.iter().any(|l| {
        l.get(4..)
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("STARTTLS"))
    });
    if !offers {
        let _ = r.get_mut().write_all(b"QUIT\r\n").await;
        return Err(Smtp::NoStarttls);
    }
    r.get_mut().write_all(b"STARTTLS\r\n").await?;
    let go = reply(&mut r).await?;
    if !go.first().is_some_and(|l| l.starts_with("220")) {
        return Err(Smtp::Refused(go.join(" ")));
    }
    if !r.buffer().is_empty() {
        // bytes after the 220 would be a plaintext injection (CVE-2011-0411 style)
        return Err(Smtp::Refused("data after the STARTTLS reply".into()));
    }
    Ok(r.into_inner())
}

/// Reads one (possibly multi-line) SMTP reply.
async fn reply(r: &mut BufReader<TcpStream>) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        let line = line.trim_end().to_string();
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line);
        if last || lines.len() > 100 {
            return Ok(lines);
        }
    }
}
