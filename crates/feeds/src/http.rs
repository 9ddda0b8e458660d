//! Threat feeds fetched from `http://` and `https://` URLs.
//!
//! One fetch is a conditional GET (the validators of the last good copy),
//! followed by redirects by hand so that each hop is checked: at most
//! [`MAX_REDIRECTS`], never from https down to http. Bodies are capped
//! before and after gzip is undone (a gzip bomb stops at the same limit),
//! and every failure names the feed and the URL. Certificates are checked
//! against the webpki roots plus the feed's own `ca_file` anchors.
//!
//! What is fetched is kept by [`copy`]: the last good body and its
//! validators, on disk, written atomically.

pub mod copy;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default cap on a feed's body, compressed or not: 200 MB.
pub const DEFAULT_MAX_BYTES: u64 = 200_000_000;
/// Redirects followed before a fetch gives up.
pub const MAX_REDIRECTS: usize = 5;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a whole fetch may take, however the server drips its bytes.
pub const MAX_FETCH_TIME: Duration = Duration::from_secs(15 * 60);
/// Response headers are small; a server sending more is refused.
const MAX_HEADER_BYTES: usize = 64 * 1024;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A feed to fetch, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlSource {
    /// The feed's name, for errors.
    pub name: String,
    pub url: String,
    /// PEM certificates trusted in addition to the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Cap on the body as received and once decompressed.
    pub max_bytes: u64,
    pub connect_timeout: Duration,
    /// The longest wait for any one read (headers or body).
    pub read_timeout: Duration,
}

impl UrlSource {
    /// A source with the default limits.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_string(),
            url: url.to_string(),
            ca_file: None,
            max_bytes: DEFAULT_MAX_BYTES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

/// What a server said identifies the version it sent, to ask next time
/// whether it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The result of a successful fetch.
#[derive(Debug)]
pub enum Fetched {
    /// 304: the copy held is current.
    NotModified,
    /// A body, decompressed, with its validators and the URL it came from
    /// after redirects.
    Body {
        bytes: Vec<u8>,
        validators: Validators,
        url: String,
    },
}

/// A failed fetch: the feed, the URL that failed (after redirects) and why.
#[derive(Debug, thiserror::Error)]
#[error("feed `{feed}`: {url}: {kind}")]
pub struct FetchError {
    pub feed: String,
    pub url: String,
    pub kind: FetchErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchErrorKind {
    #[error("not an http:// or https:// URL")]
    BadUrl,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("redirect without a usable Location header")]
    BadRedirect,
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("refused a redirect from https to {0}: a feed fetched over https stays on https")]
    HttpsToHttp(String),
    #[error("304 Not Modified to a request that had no validators")]
    UnexpectedNotModified,
    #[error("the body is over the {limit} byte limit{what}")]
    TooLarge { limit: u64, what: &'static str },
    #[error("timed out ({0})")]
    Timeout(String),
    #[error("gzip: {0}")]
    Gzip(String),
    #[error("ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("{0}")]
    Transport(String),
}

impl FetchError {
    fn new(src: &UrlSource, url: &str, kind: FetchErrorKind) -> Self {
        Self {
            feed: src.name.clone(),
            url: url.to_string(),
            kind,
        }
    }
}

fn transport_error(e: ureq::Error) -> FetchErrorKind {
    match e {
        ureq::Error::Timeout(t) => FetchErrorKind::Timeout(t.to_string()),
        ureq::Error::Io(io) if is_timeout(&io) => FetchErrorKind::Timeout(io.to_string()),
        ureq::Error::BodyExceedsLimit(limit) => FetchErrorKind::TooLarge { limit, what: "" },
        other => FetchErrorKind::Transport(other.to_string()),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    )
}

/// The trust anchors for `src`: the webpki roots, plus the certificates of
/// its `ca_file` when it has one (the default roots alone otherwise).
fn root_certs(src: &UrlSource) -> Result<ureq::tls::RootCerts, FetchErrorKind> {
    let Some(path) = &src.ca_file else {
        return Ok(ureq::tls::RootCerts::WebPki);
    };
    let ca_error = |message: String| FetchErrorKind::CaFile {
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let mut extra = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item.map_err(|e| ca_error(e.to_string()))? {
            ureq::tls::PemItem::Certificate(c) => extra.push(c),
            _ => continue,
        }
    }
    if extra.is_empty() {
        return Err(ca_error("no PEM certificate in it".into()));
    }
    let mut all: Vec<ureq::tls::Certificate<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()))
        .collect();
    all.extend(extra);
    Ok(ureq::tls::RootCerts::Specific(Arc::new(all)))
}

fn agent(src: &UrlSource) -> Result<ureq::Agent, FetchErrorKind> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(root_certs(src)?)
        .build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        // redirects are followed by hand, to check every hop
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(src.connect_timeout))
        .timeout_resolve(Some(src.connect_timeout))
        .timeout_per_read(Some(src.read_timeout))
        .timeout_recv_response(Some(src.read_timeout))
        .timeout_global(Some(MAX_FETCH_TIME))
        .max_response_header_size(MAX_HEADER_BYTES)
        .user_agent(concat!("parapet/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent())
}

/// `location` resolved against `base` (RFC 3986 for the forms servers
/// send: absolute, scheme-relative, absolute-path and relative-path).
fn join(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Some(location.to_string());
    }
    if location.contains("://") {
        return None;
    }
    let (scheme, rest) = base.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some(net) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{net}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    let path = &rest[authority_end..];
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    let dir = if dir.is_empty() { "/" } else { dir };
    Some(format!("{scheme}://{authority}{dir}{location}"))
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

fn is_http(url: &str) -> bool {
    url.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
}

/// Whether `url` names a gzip file (`….gz`, before any query).
fn names_gzip(url: &str) -> bool {
    let path = &url[..url.find(['?', '#']).unwrap_or(url.len())];
    path.to_ascii_lowercase().ends_with(".gz")
}

/// Fetches `src`, asking with `prior` whether the copy held is current.
pub fn fetch(src: &UrlSource, prior: &Validators) -> Result<Fetched, FetchError> {
    let mut url = src.url.clone();
    if !is_http(&url) && !is_https(&url) {
        return Err(FetchError::new(src, &url, FetchErrorKind::BadUrl));
    }
    let agent = agent(src).map_err(|k| FetchError::new(src, &url, k))?;
    let mut redirects = 0;
    loop {
        let mut req = agent.get(&url).header("Accept-Encoding", "gzip");
        if let Some(etag) = &prior.etag {
            req = req.header("If-None-Match", etag);
        }
        if let Some(date) = &prior.last_modified {
            req = req.header("If-Modified-Since", date);
        }
        let resp = req
            .call()
            .map_err(|e| FetchError::new(src, &url, transport_error(e)))?;
        let status = resp.status().as_u16();
        match status {
            301 | 302 | 303 | 307 | 308 => {
                let next = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|loc| join(&url, loc))
                    .filter(|next| is_http(next) || is_https(next))
                    .ok_or_else(|| FetchError::new(src, &url, FetchErrorKind::BadRedirect))?;
                if redirects == MAX_REDIRECTS {
                    return Err(FetchError::new(src, &url, FetchErrorKind::TooManyRedirects));
                }
                if is_https(&url) && !is_https(&next) {
                    return Err(FetchError::new(
                        src,
                        &url,
                        FetchErrorKind::HttpsToHttp(next),
                    ));
                }
                redirects += 1;
                tracing::debug!(feed = %src.name, "{url} redirects to {next}");
                url = next;
            }
            304 if prior.is_empty() => {
                return Err(FetchError::new(
                    src,
                    &url,
                    FetchErrorKind::UnexpectedNotModified,
                ));
            }
            304 => return Ok(Fetched::NotModified),
            200 => {
                return read_body(src, &url, resp)
                    .map_err(|k| FetchError::new(src, &url, k))
                    .map(|(bytes, validators)| Fetched::Body {
                        bytes,
                        validators,
                        url,
                    });
            }
            s => return Err(FetchError::new(src, &url, FetchErrorKind::Status(s))),
        }
    }
}

fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Reads a 200's body within the limit and undoes gzip: the transfer's
/// (`Content-Encoding: gzip`), then the file's (gzip magic bytes, or a
/// `.gz` name).
fn read_body(
    src: &UrlSource,
    url: &str,
    resp: ureq::http::Response<ureq::Body>,
) -> Result<(Vec<u8>, Validators), FetchErrorKind> {
    let too_large = |what| FetchErrorKind::TooLarge {
        limit: src.max_bytes,
        what,
    };
    if let Some(len) = header(&resp, "content-length").and_then(|l| l.trim().parse::<u64>().ok())
        && len > src.max_bytes
    {
        return Err(too_large(" (Content-Length)"));
    }
    let validators = Validators {
        etag: header(&resp, "etag"),
        last_modified: header(&resp, "last-modified"),
    };
    let encoded =
        header(&resp, "content-encoding").is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"));
    let mut bytes = Vec::new();
    resp.into_body()
        .into_reader()
        .take(src.max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            if is_timeout(&e) {
                FetchErrorKind::Timeout(format!("reading the body: {e}"))
            } else {
                FetchErrorKind::Transport(format!("reading the body: {e}"))
            }
        })?;
    if bytes.len() as u64 > src.max_bytes {
        return Err(too_large(""));
    }
    if encoded {
        bytes = gunzip(&bytes, src.max_bytes)?;
    }
    if bytes.starts_with(&GZIP_MAGIC) || (names_gzip(url) && !encoded) {
        bytes = gunzip(&bytes, src.max_bytes)?;
    }
    Ok((bytes, validators))
}

/// `data` decompressed, refused once it passes `limit` bytes.
pub fn gunzip(data: &[u8], limit: u64) -> Result<Vec<u8>, FetchErrorKind> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| FetchErrorKind::Gzip(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(FetchErrorKind::TooLarge {
            limit,
            what: " once decompressed",
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_against_the_url() {
        let base = "https://h.test:8443/a/b/list.txt?x=1";
        assert_eq!(
            join(base, "http://o.test/x").as_deref(),
            Some("http://o.test/x")
        );
        assert_eq!(
            join(base, "//o.test/x").as_deref(),
            Some("https://o.test/x")
        );
        assert_eq!(
            join(base, "/c/d.txt").as_deref(),
            Some("https://h.test:8443/c/d.txt")
        );
        assert_eq!(
            join(base, "e.txt").as_deref(),
            Some("https://h.test:8443/a/b/e.txt")
        );
        assert_eq!(
            join("http://h.test", "e.txt").as_deref(),
            Some("http://h.test/e.txt")
        );
        assert_eq!(join(base, "ftp://o.test/x"), None);
    }

    #[test]
    fn gzip_is_capped_once_decompressed() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'a'; 1_000_000]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 10_000);
        assert_eq!(gunzip(&bomb, 1_000_000).unwrap().len(), 1_000_000);
        let err = gunzip(&bomb, 999_999).unwrap_err().to_string();
        assert!(err.contains("999999 byte limit once decompressed"), "{err}");
        let err = gunzip(b"not gzip", 100).unwrap_err().to_string();
        assert!(err.starts_with("gzip: "), "{err}");
    }

    #[test]
    fn gz_names_and_schemes() {
        assert!(names_gzip("https://h.test/hosts.txt.gz?k=1"));
        assert!(!names_gzip("https://h.test/hosts.txt?f=.gz"));
        assert!(is_https("HTTPS://h.test/"));
        assert!(!is_https("http://h.test/"));
    }

    #[test]
    fn a_bad_ca_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut src = UrlSource::new("f", "https://h.test/");
        src.ca_file = Some(path.clone());
        let err = fetch(&src, &Validators::default()).unwrap_err().to_string();
        assert!(
            err.starts_with("feed `f`: https://h.test/: ca_file ")
                && err.contains("ca.pem")
                && err.contains("no PEM certificate"),
            "{err}"
        );
        let src = UrlSource::new("f", "file:///etc/passwd");
        let err = fetch(&src, &Validators::default()).unwrap_err().to_string();
        assert!(err.contains("not an http:// or https:// URL"), "{err}");
    }
}
