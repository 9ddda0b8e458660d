//! DNS over HTTPS (RFC 8484): HTTP/2 and HTTP/1.1 over TLS (ALPN `h2`,
//! `http/1.1`), GET with `?dns=` (base64url) and POST of
//! `application/dns-message`, on one path. Every query goes through the
//! resolver's own [`Resolver::handle`]/[`Resolver::complete`], so DoH
//! clients get the policy, tenant attribution, events and metrics of every
//! other transport.
//!
//! Its own crate so that the DNS hot path (`parapet-dns`) stays free of
//! HTTP; it depends on `parapet-dns` and nothing of storage, the web
//! dashboard or the pipeline.

mod records;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parapet_dns::conns::ConnTable;
use parapet_dns::resolver::Outcome;
use parapet_dns::{Resolver, Transport, wire};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::records::AnswerRecords;

/// The media type of DNS messages over HTTP (RFC 8484 §6).
pub const DNS_MESSAGE: &str = "application/dns-message";
/// Longest request target accepted (path and query); a `?dns=` of the
/// largest useful query fits many times over.
pub const MAX_URL: usize = 4096;
/// Largest POST body: a DNS message is at most 65,535 bytes.
pub const MAX_BODY: usize = 65_535;
/// The ALPN protocols offered, HTTP/2 first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Settings of one DoH listener.
#[derive(Debug, Clone)]
pub struct DohSettings {
    /// The one path queries are taken on, e.g. `/dns-query`.
    pub path: String,
    /// Open connections; when full the longest idle one is closed for a new one.
    pub max_connections: usize,
    /// Closes a connection without requests for this long; bounds the TLS
    /// handshake and the reading of a request's headers too.
    pub idle_timeout: Duration,
}

/// Accepts DoH connections until the runtime stops. `tls` must offer
/// [`ALPN`].
pub async fn serve(
    resolver: Arc<Resolver>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    settings: DohSettings,
) {
    let acceptor = TlsAcceptor::from(tls);
    let table = ConnTable::new(settings.max_connections);
    let settings = Arc::new(settings);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "DoH accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(conn) = table.admit() else {
            tracing::warn!(%peer, "every DoH connection is busy; closing the new one");
            continue;
        };
        let (resolver, acceptor, settings) = (resolver.clone(), acceptor.clone(), settings.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let idle = settings.idle_timeout;
            let tls = {
                let _handshaking = conn.busy();
                match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "DoH TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                }
            };
            let conn = Arc::new(conn);
            let svc = {
                let conn = conn.clone();
                hyper::service::service_fn(move |req| {
                    let busy = conn.busy();
                    let (resolver, settings) = (resolver.clone(), settings.clone());
                    async move {
                        let r = answer(&resolver, &settings.path, peer, req).await;
                        drop(busy);
                        Ok::<_, Infallible>(r)
                    }
                })
            };
            let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            http.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(idle)
                .max_buf_size(64 * 1024);
            http.http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(100)
                .max_header_list_size(16 * 1024)
                .keep_alive_interval(Some(idle))
                .keep_alive_timeout(idle);
            // one TLS record per answer on HTTP/2: see records.rs
            let io = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                AnswerRecords::h2(tls)
            } else {
                AnswerRecords::http1(tls)
            };
            let served = http.serve_connection(TokioIo::new(io), svc);
            tokio::select! {
                r = served => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "DoH connection ended");
                    }
                }
                () = conn.evicted() => {}
            }
        });
    }
}

/// One HTTP request: a DNS query in, its answer out, or an HTTP error.
async fn answer(
    resolver: &Resolver,
    path: &str,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > MAX_URL {
        return status(StatusCode::URI_TOO_LONG);
    }
    if req.uri().path() != path {
        return status(StatusCode::NOT_FOUND);
    }
    let query = match *req.method() {
        Method::GET => match req.uri().query().and_then(dns_param) {
            Some(q) => q,
            None => return status(StatusCode::BAD_REQUEST),
        },
        Method::POST => {
            let ct = req.headers().get(CONTENT_TYPE).map(HeaderValue::as_bytes);
            if ct != Some(DNS_MESSAGE.as_bytes()) {
                return status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            }
            match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes().to_vec(),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    return status(StatusCode::PAYLOAD_TOO_LARGE);
                }
                Err(_) => return status(StatusCode::BAD_REQUEST),
            }
        }
        _ => {
            let mut r = status(StatusCode::METHOD_NOT_ALLOWED);
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, POST"));
            return r;
        }
    };
    if query.len() < wire::HEADER_LEN {
        return status(StatusCode::BAD_REQUEST);
    }
    let mut out = Vec::with_capacity(512);
    let outcome = resolver.handle(
        &resolver.arrival(),
        &query,
        peer,
        false,
        Transport::Doh,
        &mut out,
    );
    let send = match outcome {
        Outcome::Reply => true,
        Outcome::Drop => false,
        Outcome::Forward(p) => resolver.complete(p, false, &mut out).await,
    };
    if !send {
        // the policy said to send no DNS answer (RPZ DROP, or a packet
        // that was no query): HTTP must say something, and 502 is what a
        // proxy says when the server behind gave no valid response
        return status(StatusCode::BAD_GATEWAY);
    }
    let max_age = max_age(&out);
    let mut r = Response::new(Full::new(Bytes::from(out)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(DNS_MESSAGE));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_str(&format!("max-age={max_age}")).expect("ASCII"),
    );
    r
}

/// The `dns` parameter of a query string, base64url-decoded (RFC 8484
/// §4.1: no padding; padding is tolerated).
fn dns_param(query: &str) -> Option<Vec<u8>> {
    let value = query.split('&').find_map(|kv| kv.strip_prefix("dns="))?;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    // percent-encoded padding ("%3D") is the one escape a client may use
    engine.decode(value.replace("%3D", "=")).ok()
}

/// The HTTP freshness of an answer (RFC 8484 §5.1): at most its smallest
/// TTL, the negative-caching TTL for a negative answer, 0 if it has none.
fn max_age(answer: &[u8]) -> u32 {
    wire::scan_response(answer)
        .and_then(|i| match (i.negative_ttl, i.min_ttl) {
            (Some(n), Some(m)) => Some(n.min(m)),
            (n, m) => n.or(m),
        })
        .unwrap_or(0)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = code;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_parameter_is_base64url_without_padding() {
        // RFC 8484 §4.1.1's example: www.example.com A, ID 0
        let q = dns_param("dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB").unwrap();
        assert_eq!(q.len(), 33);
        assert_eq!(&q[13..16], b"www");
        assert_eq!(dns_param("ct=x&dns=AAAB"), Some(vec![0, 0, 1]));
        assert_eq!(dns_param("other=1"), None);
        assert_eq!(dns_param("dns=!!!"), None);
    }

    #[test]
    fn max_age_is_the_smallest_ttl() {
        let mut m = Vec::new();
        wire::push_header(&mut m, 0, 0x8180, [1, 2, 0, 0]);
        m.extend_from_slice(b"\x01a\x00\x00\x01\x00\x01");
        for ttl in [300u32, 60] {
            m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
            m.extend_from_slice(&ttl.to_be_bytes());
            m.extend_from_slice(b"\x00\x04\xc0\x00\x02\x01");
        }
        assert_eq!(max_age(&m), 60);
        assert_eq!(max_age(b"short"), 0);
    }
}
