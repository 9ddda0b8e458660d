//! TLS for encrypted DNS: the server certificate the DoT and DoH listeners
//! present, reloaded in place (SIGHUP, or its files changing) without
//! dropping connections, and the client configuration for DoT upstreams.
//!
//! One crypto provider, ring, as everywhere in Parapet.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate or key file that could not be used; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TlsFileError {
    pub path: PathBuf,
    pub reason: String,
}

fn file_error(path: &Path, reason: impl ToString) -> TlsFileError {
    TlsFileError {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

/// The certificate chain and key of `cert` and `key`, checked to belong
/// together.
fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsFileError> {
    let chain = read_certs(cert)?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_error(key, format!("no usable PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, der, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            file_error(cert, format!("does not match the key in {}", key.display()))
        }
        e => file_error(key, e),
    })
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A server certificate and key, swapped in place when reloaded; handshakes
/// in progress keep the one they started with.
#[derive(Debug)]
pub struct ServerCert {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// Modification times of the files when last loaded (or last tried).
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ServerCert {
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsFileError> {
        let seen = (mtime(cert), mtime(key));
        let pair = load_pair(cert, key)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::from_pointee(pair),
            seen: Mutex::new(seen),
        }))
    }

    /// Loads the files again. A bad pair leaves the one in force and is
    /// logged, naming the file.
    pub fn reload(&self) -> bool {
        let seen = (mtime(&self.cert), mtime(&self.key));
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = seen;
        match load_pair(&self.cert, &self.key) {
            Ok(pair) => {
                self.current.store(Arc::new(pair));
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!("TLS certificate not reloaded, the previous one stays: {e}");
                false
            }
        }
    }

    /// Reloads when either file's modification time changed since the last
    /// load; a half-written pair that fails is tried again at its next change.
    pub fn reload_if_changed(&self) -> bool {
        let now = (mtime(&self.cert), mtime(&self.key));
        let changed = *self.seen.lock().unwrap_or_else(|e| e.into_inner()) != now;
        changed && self.reload()
    }

    /// A server configuration presenting this certificate (as reloaded),
    /// offering `alpn` protocols.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<rustls::ServerConfig> {
        let mut c = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolves(self.clone())));
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }
}

#[derive(Debug)]
struct Resolves(Arc<ServerCert>);

impl ResolvesServerCert for Resolves {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

/// Polls the certificates' files every `every` and reloads those that
/// changed; runs until the runtime stops. Polling (a `stat` of two files
/// each time) needs no file-watching crate and sees replaced files too.
pub async fn watch(certs: Vec<Arc<ServerCert>>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for c in &certs {
            c.reload_if_changed();
        }
    }
}

/// The client configuration for DoT upstreams: the webpki roots plus the
/// certificates of `extra_roots` (a private CA), with name verification.
pub fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for c in extra_roots {
        roots.add(c.clone())?;
    }
    let c = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let k = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let (c, key) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, k.cert.pem()).unwrap();
        std::fs::write(&key, k.signing_key.serialize_pem()).unwrap();
        (c, key)
    }

    #[test]
    fn a_bad_reload_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = pair(dir.path(), "a.test");
        let sc = ServerCert::load(&c, &k).unwrap();
        let before = sc.current.load_full();
        std::fs::write(&c, "garbage").unwrap();
        assert!(!sc.reload());
        assert!(Arc::ptr_eq(&before, &sc.current.load_full()));
        // a key of another certificate is refused, naming the cert file
        let (c2, _) = pair(dir.path(), "b.test");
        let e = load_pair(&c2, &k).unwrap_err();
        assert_eq!(e.path, c2);
        assert!(e.reason.contains("does not match"), "{e}");
        std::fs::copy(&c2, &c).unwrap();
        std::fs::copy(dir.path().join("b.test.key"), &k).unwrap();
        assert!(sc.reload());
        assert!(!Arc::ptr_eq(&before, &sc.current.load_full()));
    }

    #[test]
    fn missing_files_are_named() {
        let e = ServerCert::load(Path::new("/nonexistent/s.pem"), Path::new("k")).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/s.pem: "), "{e}");
    }
}
