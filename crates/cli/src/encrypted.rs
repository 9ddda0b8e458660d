//! Wiring of the encrypted DNS listeners (`[dns.tls]`, `[dns.https]`) and
//! of the CA file for `tls://` upstreams: certificates loaded and listeners
//! bound before the runtime starts (a bad file or busy port fails the
//! start), served once it runs, certificates reloaded on SIGHUP and when
//! their files change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parapet_dns::Resolver;
use parapet_dns::dot::DotLimits;
use parapet_dns::tls::ServerCert;

use crate::BadInput;
use crate::config::{Config, EncryptedListen};

/// Queries in progress on one DoT connection.
const DOT_MAX_IN_FLIGHT: usize = 64;

enum Kind {
    Dot(DotLimits),
    Doh(parapet_doh::DohSettings),
}

struct Listener {
    kind: Kind,
    socket: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
}

/// The encrypted listeners, bound, and their certificates.
pub struct Encrypted {
    listeners: Vec<Listener>,
    certs: Vec<Arc<ServerCert>>,
}

impl Encrypted {
    /// Loads the certificates and binds every `[dns.tls]` and
    /// `[dns.https]` address.
    pub fn bind(config: &Config) -> anyhow::Result<Self> {
        let mut e = Encrypted {
            listeners: Vec::new(),
            certs: Vec::new(),
        };
        if let Some(t) = &config.dns.tls {
            let limits = DotLimits {
                max_connections: t.max_connections,
                idle_timeout: Duration::from_millis(t.idle_timeout_ms),
                max_in_flight: DOT_MAX_IN_FLIGHT,
            };
            e.add(config, t, "[dns.tls]", &[], || Kind::Dot(limits.clone()))?;
        }
        if let Some(h) = &config.dns.https {
            let settings = parapet_doh::DohSettings {
                path: h.path.clone(),
                max_connections: h.max_connections,
                idle_timeout: Duration::from_millis(h.idle_timeout_ms),
            };
            e.add(config, h, "[dns.https]", &parapet_doh::ALPN, || {
                Kind::Doh(settings.clone())
            })?;
        }
        Ok(e)
    }

    fn add(
        &mut self,
        config: &Config,
        l: &EncryptedListen,
        section: &str,
        alpn: &[&[u8]],
        kind: impl Fn() -> Kind,
    ) -> anyhow::Result<()> {
        let cert = ServerCert::load(&config.resolve(&l.cert), &config.resolve(&l.key))
            .map_err(|e| BadInput(format!("{section}: {e}")))?;
        let tls = cert.server_config(alpn);
        self.certs.push(cert);
        for &addr in &l.listen {
            let socket = parapet_dns::dot::bind(addr)?;
            let actual = socket.local_addr()?;
            let what = if alpn.is_empty() { "DoT" } else { "DoH" };
            tracing::info!("DNS listening on {actual} ({what})");
            self.listeners.push(Listener {
                kind: kind(),
                socket,
                tls: tls.clone(),
            });
        }
        Ok(())
    }

    /// Serves every listener on the current runtime, and polls the
    /// certificate files every `watch` (zero: only SIGHUP reloads them).
    pub fn spawn(self, resolver: &Arc<Resolver>, watch: Duration) -> anyhow::Result<Reloader> {
        for l in self.listeners {
            let socket = tokio::net::TcpListener::from_std(l.socket)?;
            let r = resolver.clone();
            match l.kind {
                Kind::Dot(limits) => {
                    tokio::spawn(parapet_dns::dot::serve(r, socket, l.tls, limits));
                }
                Kind::Doh(settings) => {
                    tokio::spawn(parapet_doh::serve(r, socket, l.tls, settings));
                }
            }
        }
        if !watch.is_zero() && !self.certs.is_empty() {
            tokio::spawn(parapet_dns::tls::watch(self.certs.clone(), watch));
        }
        Ok(Reloader(self.certs))
    }
}

/// Reloads the certificates (SIGHUP).
pub struct Reloader(Vec<Arc<ServerCert>>);

impl Reloader {
    pub fn reload(&self) {
        for c in &self.0 {
            c.reload();
        }
    }
}

/// The client configuration for `tls://` upstreams: the webpki roots plus
/// `[dns] upstream_ca_file`; `None` when no upstream uses TLS.
pub fn upstream_tls(config: &Config) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    if !config.dns.upstreams.iter().any(|u| u.tls_name.is_some()) {
        return Ok(None);
    }
    let extra = match &config.dns.upstream_ca_file {
        Some(p) => parapet_dns::tls::read_certs(&config.resolve(p))
            .map_err(|e| BadInput(format!("[dns] upstream_ca_file: {e}")))?,
        None => Vec::new(),
    };
    let c = parapet_dns::tls::client_config(&extra).context("[dns] upstream_ca_file")?;
    Ok(Some(c))
}
