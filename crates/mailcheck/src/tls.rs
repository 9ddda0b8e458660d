//! STARTTLS on a mail server: is it offered, which TLS version is
//! negotiated, is the certificate chain valid for the host name, and how
//! many days until it expires.
//!
//! rustls refuses TLS 1.0/1.1 and SSL 3. When its handshake fails for any
//! reason but the certificate, the probe connects again and sends a
//! hand-built ClientHello (TLS 1.2 at most, with the CBC/RC4/3DES suites
//! and no TLS 1.3 extensions), and reads the version the server chooses
//! from its ServerHello: a server that picks TLS 1.1 or older is
//! `tls.version_too_old` naming that version; anything else stays
//! `tls.handshake_failed`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
        Ok(Err(e)) => match rustls_error(&e) {
            Some(rustls::Error::InvalidCertificate(c)) => f.push(cert_finding(host, c)),
            _ => {
                // a second connection, with a ClientHello rustls cannot send
                let legacy = timeout(opts.timeout, legacy_probe(sock, host, &opts.ehlo))
                    .await
                    .ok()
                    .flatten();
                f.push(handshake_finding(host, &e, legacy.as_ref(), &mut res));
            }
        },
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

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

fn cert_finding(host: &str, c: &CertificateError) -> Finding {
    match c {
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
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            Finding::error(
                "tls.cert_invalid",
                format!(
                    "the certificate of {host} is not valid yet (its start date is in the future); install a certificate that is valid now, and check the server's clock"
                ),
            )
        }
        other => Finding::error(
            "tls.cert_invalid",
            format!("the certificate of {host} is not valid: {other:?}"),
        ),
    }
}

/// The finding for a handshake that failed for a reason other than the
/// certificate, given what the legacy ClientHello got (if anything).
fn handshake_finding(
    host: &str,
    e: &std::io::Error,
    legacy: Option<&LegacyAnswer>,
    res: &mut TlsResult,
) -> Finding {
    match legacy {
        Some(&LegacyAnswer::Hello { version, cipher }) if version < TLS12 => {
            res.version = Some(rustls_version_name(version));
            res.cipher = Some(format!("{:?}", rustls::CipherSuite::from(cipher)));
            Finding::error(
                "tls.version_too_old",
                format!(
                    "mail server {host} cannot do TLS 1.2 or 1.3: it negotiated {} ({}). Up-to-date senders refuse that, and it is insecure; enable TLS 1.2 and 1.3 and turn the old versions off",
                    version_name(version),
                    res.cipher.as_deref().unwrap_or("?"),
                ),
            )
        }
        Some(&LegacyAnswer::Hello { version, cipher }) => Finding::error(
            "tls.handshake_failed",
            format!(
                "the TLS handshake with {host} failed: {e}. It does answer a plain {} ClientHello (choosing {:?}), so it probably accepts only cipher suites Parapet does not offer (CBC, DHE or RSA key exchange); enable ECDHE with AES-GCM or ChaCha20",
                version_name(version),
                rustls::CipherSuite::from(cipher)
            ),
        ),
        _ if version_refused(e) => Finding::error(
            "tls.version_too_old",
            format!(
                "mail server {host} refused TLS 1.2 and 1.3 ({e}); older versions are insecure: enable TLS 1.2 and 1.3"
            ),
        ),
        _ => Finding::error(
            "tls.handshake_failed",
            format!("the TLS handshake with {host} failed: {e}"),
        ),
    }
}

/// Whether rustls failed because the server would not do TLS 1.2 or 1.3.
fn version_refused(e: &std::io::Error) -> bool {
    matches!(
        rustls_error(e),
        Some(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::ServerDoesNotSupportTls12Or13
                | rustls::PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
        )) | Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::ProtocolVersion
        ))
    )
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

/// Longest SMTP reply line read (RFC 5321 allows 512 bytes).
const MAX_LINE: u64 = 4096;

/// Reads one (possibly multi-line) SMTP reply.
async fn reply(r: &mut BufReader<TcpStream>) -> std::io::Result<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = (&mut *r).take(MAX_LINE).read_line(&mut line).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if n as u64 >= MAX_LINE && !line.ends_with('\n') {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("an SMTP reply line longer than {MAX_LINE} bytes"),
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

// ---- the legacy probe: a hand-built ClientHello for servers rustls cannot talk to

const TLS12: u16 = 0x0303;
/// Most bytes read while waiting for the ServerHello.
const MAX_LEGACY_READ: usize = 32 * 1024;
/// Largest TLS record (2^14 plus the most expansion TLS 1.2 allows).
const MAX_RECORD: usize = 16_384 + 2_048;

/// Cipher suites offered by the legacy ClientHello: what TLS 1.0-1.2
/// servers commonly accept, weak ones included (the point is to see what
/// the server chooses, not to use the connection).
const LEGACY_SUITES: &[u16] = &[
    0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, // ECDHE with AES-GCM, ChaCha20
    0xc023, 0xc027, 0xc024, 0xc028, // ECDHE, AES-CBC, SHA-2
    0xc009, 0xc013, 0xc00a, 0xc014, // ECDHE, AES-CBC, SHA-1
    0x009e, 0x009f, 0x0067, 0x006b, 0x0033, 0x0039, // DHE
    0x009c, 0x009d, 0x003c, 0x003d, 0x002f, 0x0035, // RSA key exchange
    0xc012, 0x0016, 0x000a, // 3DES
    0xc011, 0x0005, 0x0004, // RC4
    0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
];

/// What a server answered to the legacy ClientHello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyAnswer {
    /// A ServerHello: the version (e.g. 0x0302 for TLS 1.1) and cipher
    /// suite the server chose.
    Hello { version: u16, cipher: u16 },
    /// A TLS alert, by its description code.
    Alert(u8),
    /// Not TLS, or a malformed ServerHello.
    Garbage(&'static str),
}

/// `TLS 1.1`, `SSL 3.0`...
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        _ => format!("version 0x{v:04x}"),
    }
}

/// The name rustls gives a version (`TLSv1_1`), as in [`TlsResult::version`].
fn rustls_version_name(v: u16) -> String {
    format!("{:?}", rustls::ProtocolVersion::from(v))
}

/// A ClientHello offering at most TLS 1.2 in a TLS 1.0 record (as old
/// clients send it), with SNI for `host` when it is a DNS name.
pub fn legacy_client_hello(host: &str) -> Vec<u8> {
    fn u16be(v: usize) -> [u8; 2] {
        (v as u16).to_be_bytes()
    }
    fn ext(out: &mut Vec<u8>, typ: u16, data: &[u8]) {
        out.extend_from_slice(&typ.to_be_bytes());
        out.extend_from_slice(&u16be(data.len()));
        out.extend_from_slice(data);
    }
    let mut exts = Vec::new();
    let name = host.trim_end_matches('.').as_bytes();
    if !name.is_empty() && name.len() <= 253 && host.parse::<IpAddr>().is_err() {
        let mut sni = Vec::new();
        sni.extend_from_slice(&u16be(name.len() + 3));
        sni.push(0); // host_name
        sni.extend_from_slice(&u16be(name.len()));
        sni.extend_from_slice(name);
        ext(&mut exts, 0x0000, &sni);
    }
    // supported_groups: x25519, secp256r1, secp384r1
    ext(
        &mut exts,
        0x000a,
        &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
    );
    // ec_point_formats: uncompressed
    ext(&mut exts, 0x000b, &[1, 0]);
    // signature_algorithms (read by TLS 1.2 servers only)
    let sigs: [u16; 9] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0601, 0x0203, 0x0201,
    ];
    let mut s = u16be(sigs.len() * 2).to_vec();
    sigs.iter()
        .for_each(|v| s.extend_from_slice(&v.to_be_bytes()));
    ext(&mut exts, 0x000d, &s);

    let mut body = Vec::new();
    body.extend_from_slice(&TLS12.to_be_bytes());
    body.extend_from_slice(&rand::random::<[u8; 32]>());
    body.push(0); // no session id
    body.extend_from_slice(&u16be(LEGACY_SUITES.len() * 2));
    LEGACY_SUITES
        .iter()
        .for_each(|c| body.extend_from_slice(&c.to_be_bytes()));
    body.extend_from_slice(&[1, 0]); // compression: null only
    body.extend_from_slice(&u16be(exts.len()));
    body.extend_from_slice(&exts);

    let mut hs = vec![1]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&u16be(hs.len()));
    rec.extend_from_slice(&hs);
    rec
}

/// Reads the server's first flight up to its ServerHello. `buf` is
/// everything the server has sent so far (untrusted); `None` means more
/// bytes are needed.
pub fn parse_server_hello(buf: &[u8]) -> Option<LegacyAnswer> {
    let mut handshake = Vec::new();
    let mut rest = buf;
    loop {
        let header = rest.get(..5)?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if header[1] != 3 {
            return Some(LegacyAnswer::Garbage("the answer is not a TLS record"));
        }
        if len == 0 || len > MAX_RECORD {
            return Some(LegacyAnswer::Garbage("a TLS record of impossible length"));
        }
        let body = rest.get(5..5 + len)?;
        rest = &rest[5 + len..];
        match header[0] {
            21 => {
                return Some(match body {
                    [_, desc] => LegacyAnswer::Alert(*desc),
                    _ => LegacyAnswer::Garbage("a malformed TLS alert"),
                });
            }
            22 => {
                handshake.extend_from_slice(body);
                if let Some(answer) = server_hello(&handshake) {
                    return Some(answer);
                }
            }
            _ => return Some(LegacyAnswer::Garbage("the answer is not a TLS handshake")),
        }
    }
}

/// The first handshake message, which must be a ServerHello; `None`: it is
/// not complete yet.
fn server_hello(hs: &[u8]) -> Option<LegacyAnswer> {
    const BAD: LegacyAnswer = LegacyAnswer::Garbage("a malformed ServerHello");
    let head = hs.get(..4)?;
    if head[0] != 2 {
        return Some(LegacyAnswer::Garbage(
            "the first handshake message is not a ServerHello",
        ));
    }
    let len = u32::from_be_bytes([0, head[1], head[2], head[3]]) as usize;
    if len > MAX_LEGACY_READ {
        return Some(BAD);
    }
    let m = hs.get(4..4 + len)?;
    let u16_at = |i: usize| m.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let Some(mut version) = u16_at(0) else {
        return Some(BAD);
    };
    // 2 bytes version, 32 random, then the session id
    let Some(&sid_len) = m.get(34) else {
        return Some(BAD);
    };
    if sid_len > 32 {
        return Some(BAD);
    }
    let at = 35 + usize::from(sid_len);
    let (Some(cipher), Some(_compression)) = (u16_at(at), m.get(at + 2)) else {
        return Some(BAD);
    };
    let mut exts = &m[at + 3..];
    if !exts.is_empty() {
        let Some(total) = u16_at(at + 3) else {
            return Some(BAD);
        };
        exts = &exts[2..];
        if usize::from(total) != exts.len() {
            return Some(BAD);
        }
        while !exts.is_empty() {
            let Some(h) = exts.get(..4) else {
                return Some(BAD);
            };
            let typ = u16::from_be_bytes([h[0], h[1]]);
            let n = usize::from(u16::from_be_bytes([h[2], h[3]]));
            let Some(data) = exts.get(4..4 + n) else {
                return Some(BAD);
            };
            // supported_versions: the real version (TLS 1.3), never expected
            // here since the hello does not offer it
            if typ == 0x002b {
                match data {
                    [a, b] => version = u16::from_be_bytes([*a, *b]),
                    _ => return Some(BAD),
                }
            }
            exts = &exts[4 + n..];
        }
    }
    Some(LegacyAnswer::Hello { version, cipher })
}

/// SMTP to STARTTLS again, then the legacy ClientHello; `None` when the
/// server could not be reached or closed without a word.
async fn legacy_probe(sock: SocketAddr, host: &str, ehlo: &str) -> Option<LegacyAnswer> {
    let mut stream = smtp_to_starttls(sock, ehlo).await.ok()?;
    stream.write_all(&legacy_client_hello(host)).await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return if buf.is_empty() {
                None
            } else {
                Some(LegacyAnswer::Garbage("the server closed mid-message"))
            };
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(answer) = parse_server_hello(&buf) {
            return Some(answer);
        }
        if buf.len() > MAX_LEGACY_READ {
            return Some(LegacyAnswer::Garbage("no ServerHello in the first 32 KiB"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A ServerHello record for `version` and `cipher`, with `exts` as
    /// the extensions block (without its length) when given.
    fn hello(version: u16, cipher: u16, sid: &[u8], exts: Option<&[u8]>) -> Vec<u8> {
        let mut m = version.to_be_bytes().to_vec();
        m.extend_from_slice(&[7; 32]);
        m.push(sid.len() as u8);
        m.extend_from_slice(sid);
        m.extend_from_slice(&cipher.to_be_bytes());
        m.push(0);
        if let Some(e) = exts {
            m.extend_from_slice(&(e.len() as u16).to_be_bytes());
            m.extend_from_slice(e);
        }
        let mut hs = vec![2];
        hs.extend_from_slice(&(m.len() as u32).to_be_bytes()[1..]);
        hs.extend_from_slice(&m);
        let mut rec = vec![22, 3, 2];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn server_hellos() {
        let h = hello(0x0302, 0xc014, &[1; 32], None);
        let want = LegacyAnswer::Hello {
            version: 0x0302,
            cipher: 0xc014,
        };
        assert_eq!(parse_server_hello(&h), Some(want.clone()));
        // a certificate record after it changes nothing
        let mut more = h.clone();
        more.extend_from_slice(&[22, 3, 2, 0, 4, 11, 0, 0, 0]);
        assert_eq!(parse_server_hello(&more), Some(want.clone()));
        // every strict prefix needs more bytes
        for n in 0..h.len() {
            assert_eq!(parse_server_hello(&h[..n]), None, "prefix {n}");
        }
        // the hello split over two records
        let hs = &h[5..];
        let mut split = vec![22, 3, 2, 0, 10];
        split.extend_from_slice(&hs[..10]);
        split.extend_from_slice(&[22, 3, 2, 0, (hs.len() - 10) as u8]);
        split.extend_from_slice(&hs[10..]);
        assert_eq!(parse_server_hello(&split), Some(want));
        // with extensions: renegotiation_info, and supported_versions
        let h = hello(
            0x0303,
            0x1301,
            &[],
            Some(&[0xff, 1, 0, 1, 0, 0, 0x2b, 0, 2, 3, 4]),
        );
        assert_eq!(
            parse_server_hello(&h),
            Some(LegacyAnswer::Hello {
                version: 0x0304,
                cipher: 0x1301
            })
        );
        // an extension running past the block
        let h = hello(0x0303, 0xc02f, &[], Some(&[0xff, 1, 0, 9, 0]));
        assert!(matches!(
            parse_server_hello(&h),
            Some(LegacyAnswer::Garbage(_))
        ));
        // a protocol_version alert
        assert_eq!(
            parse_server_hello(&[21, 3, 1, 0, 2, 2, 70]),
            Some(LegacyAnswer::Alert(70))
        );
        assert!(matches!(
            parse_server_hello(b"220 not TLS at all\r\n"),
            Some(LegacyAnswer::Garbage(_))
        ));
        assert!(matches!(
            parse_server_hello(&[22, 3, 1, 0, 4, 11, 0, 0, 0]),
            Some(LegacyAnswer::Garbage(_))
        ));
    }

    #[test]
    fn client_hello_is_well_formed() {
        let h = legacy_client_hello("mx.example.test");
        assert_eq!(&h[..3], &[22, 3, 1]);
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
        assert_eq!(h[5], 1);
        assert_eq!(&h[9..11], &TLS12.to_be_bytes());
        assert!(h.windows(15).any(|w| w == b"mx.example.test"));
        // no SNI for an address
        assert!(
            !legacy_client_hello("192.0.2.1")
                .windows(9)
                .any(|w| w == b"192.0.2.1")
        );
    }

    #[test]
    fn handshake_failures_told_apart() {
        let err = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let alert = |a| err(rustls::Error::AlertReceived(a));
        let hello = |version| LegacyAnswer::Hello {
            version,
            cipher: 0xc014,
        };
        let mut res = TlsResult::default();
        let failure = alert(rustls::AlertDescription::HandshakeFailure);
        let f = handshake_finding("mx.test", &failure, Some(&hello(0x0301)), &mut res);
        assert_eq!(f.code, "tls.version_too_old");
        assert!(f.message.contains("negotiated TLS 1.0"), "{}", f.message);
        assert_eq!(res.version.as_deref(), Some("TLSv1_0"));
        assert_eq!(
            res.cipher.as_deref(),
            Some("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA")
        );
        // answers TLS 1.2 when not offered TLS 1.3: not a version problem,
        // even if rustls was told "protocol version"
        let mut res = TlsResult::default();
        let refused = alert(rustls::AlertDescription::ProtocolVersion);
        let f = handshake_finding("mx.test", &refused, Some(&hello(0x0303)), &mut res);
        assert_eq!(f.code, "tls.handshake_failed");
        assert_eq!(res.version, None);
        // no ServerHello to either: only rustls's reason counts
        let garbage = LegacyAnswer::Garbage("x");
        let f = handshake_finding("mx.test", &refused, Some(&garbage), &mut res);
        assert_eq!(f.code, "tls.version_too_old");
        let f = handshake_finding(
            "mx.test",
            &failure,
            Some(&LegacyAnswer::Alert(40)),
            &mut res,
        );
        assert_eq!(f.code, "tls.handshake_failed");
        let f = handshake_finding("mx.test", &failure, None, &mut res);
        assert_eq!(f.code, "tls.handshake_failed");
    }

    #[test]
    fn names() {
        assert_eq!(version_name(0x0302), "TLS 1.1");
        assert_eq!(rustls_version_name(0x0301), "TLSv1_0");
        assert_eq!(version_name(0x7f1c), "version 0x7f1c");
    }

    proptest! {
        /// Hostile bytes never panic, and an answer once given stays the
        /// same however many bytes follow.
        #[test]
        fn garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..600),
                                extra in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(a) = parse_server_hello(&buf) {
                let mut longer = buf.clone();
                longer.extend_from_slice(&extra);
                prop_assert_eq!(parse_server_hello(&longer), Some(a));
            }
        }

        /// Garbage behind a plausible record header reaches the ServerHello
        /// parser proper.
        #[test]
        fn garbage_hello_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300),
                                      typ in prop_oneof![Just(2u8), any::<u8>()]) {
            let mut hs = vec![typ];
            hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            hs.extend_from_slice(&body);
            let mut rec = vec![22, 3, 1];
            rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
            rec.extend_from_slice(&hs);
            prop_assert!(parse_server_hello(&rec).is_some());
        }
    }
}
