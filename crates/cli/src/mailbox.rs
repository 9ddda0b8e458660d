//! DMARC aggregate and TLS-RPT reports fetched from IMAP mailboxes
//! (`[[dmarc.mailboxes]]`): `parapet dmarc fetch` does one pass, `parapet
//! serve` watches each mailbox with IDLE (polling where the server has no
//! IDLE), under the lease `dmarc-mailbox:NAME` on a shared database.
//!
//! A pass reads each message, imports every report in it and only then
//! moves it to the archive folder; a message with no report, or a corrupt
//! one, goes to the invalid folder with the reason logged. A crash between
//! the import and the move leaves the message in place: the next pass
//! imports it again, which the store's de-duplication (organisation and
//! report id) turns into a skipped duplicate.
//!
//! The IMAP client is `async-imap` over tokio-rustls (ring): it is
//! maintained, has IDLE and MOVE, and brings no OpenSSL; the sync `imap`
//! crate defaults to native-tls and its rustls feature pulls a second
//! rustls.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use async_imap::types::UnsolicitedResponse;
use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use parapet_mailcheck::report;
use parapet_store::{Db, Imported};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::Config;
use crate::config::mailbox::{MailboxConfig, TlsMode};

/// The longest an IDLE lasts before it is re-issued: servers may drop an
/// IDLE after 30 minutes (RFC 2177 asks clients to renew within 29).
const IDLE_RENEW: Duration = Duration::from_secs(25 * 60);
/// Connecting, TLS and login.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Any one command, a message fetch included.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// Backoff after a failed connection or pass: doubles up to the maximum.
const BACKOFF_START: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What one pass over a mailbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassStats {
    pub messages: u64,
    pub imported: u64,
    pub duplicates: u64,
    pub archived: u64,
    pub invalid: u64,
    /// Messages left for the next pass (over the per-pass limit).
    pub left: u64,
}

impl fmt::Display for PassStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} messages: {} reports imported, {} already stored; {} archived, {} invalid, {} left for the next pass",
            self.messages, self.imported, self.duplicates, self.archived, self.invalid, self.left
        )
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Io for T {}
type Conn = Session<Box<dyn Io>>;

async fn within<T, E: Into<anyhow::Error>>(
    what: &str,
    limit: Duration,
    f: impl Future<Output = Result<T, E>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r.map_err(|e| e.into().context(what.to_string())),
        Err(_) => bail!("{what}: no answer within {} s", limit.as_secs()),
    }
}

fn tls_connector(m: &MailboxConfig, config: &Config) -> anyhow::Result<tokio_rustls::TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &m.ca_file {
        use rustls::pki_types::pem::PemObject;
        let path = config.resolve(ca);
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
            .with_context(|| format!("ca_file {}", path.display()))?;
        for c in certs {
            roots
                .add(c.with_context(|| format!("ca_file {}", path.display()))?)
                .with_context(|| format!("ca_file {}", path.display()))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(tls)))
}

async fn tls_wrap(
    m: &MailboxConfig,
    config: &Config,
    tcp: TcpStream,
) -> anyhow::Result<Box<dyn Io>> {
    let host = m
        .host
        .get_ref()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| anyhow!("host `{host}`: {e}"))?;
    let tls = tls_connector(m, config)?.connect(server, tcp).await?;
    Ok(Box::new(tls))
}

/// Connects, protects the connection as configured and logs in. The
/// password comes from the environment and goes nowhere but the LOGIN.
async fn connect(m: &MailboxConfig, config: &Config) -> anyhow::Result<Conn> {
    let password = std::env::var(m.password_env.get_ref()).map_err(|_| {
        anyhow!(
            "mailbox {}: the environment variable {} (password_env) is not set",
            m.name(),
            m.password_env.get_ref()
        )
    })?;
    let addr = (m.host.get_ref().as_str(), m.port());
    let tcp = within("connect", CONNECT_TIMEOUT, TcpStream::connect(addr)).await?;
    let stream: Box<dyn Io> = match m.tls.get_ref() {
        TlsMode::Implicit => within("TLS", CONNECT_TIMEOUT, tls_wrap(m, config, tcp)).await?,
        TlsMode::None => Box::new(tcp),
        TlsMode::Starttls => {
            let mut plain = Client::new(tcp);
            within("greeting", CONNECT_TIMEOUT, plain.read_response()).await?;
            within(
                "STARTTLS",
                CONNECT_TIMEOUT,
                plain.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            within(
                "TLS",
                CONNECT_TIMEOUT,
                tls_wrap(m, config, plain.into_inner()),
            )
            .await?
        }
    };
    let mut client = Client::new(stream);
    // after STARTTLS the server sends no second greeting
    if *m.tls.get_ref() != TlsMode::Starttls {
        within("greeting", CONNECT_TIMEOUT, client.read_response()).await?;
    }
    let login = tokio::time::timeout(CONNECT_TIMEOUT, client.login(&m.user, &password)).await;
    match login {
        Ok(Ok(s)) => Ok(s),
        Ok(Err((e, _))) => bail!("login as {}: {e}", m.user),
        Err(_) => bail!("login as {}: no answer", m.user),
    }
}

/// What the server offers that a pass uses.
struct Caps {
    mv: bool,
    uidplus: bool,
    idle: bool,
}

async fn prepare(s: &mut Conn, m: &MailboxConfig) -> anyhow::Result<Caps> {
    let caps = within("CAPABILITY", COMMAND_TIMEOUT, s.capabilities()).await?;
    let caps = Caps {
        mv: caps.has_str("MOVE"),
        uidplus: caps.has_str("UIDPLUS"),
        idle: caps.has_str("IDLE"),
    };
    if !caps.mv {
        tracing::info!(
            mailbox = %m.name(),
            "the server has no MOVE: messages are moved by COPY and EXPUNGE"
        );
    }
    for f in [m.archive_folder.get_ref(), m.invalid_folder.get_ref()] {
        let pattern = format!("\"{f}\"");
        let found: Vec<_> = within("LIST", COMMAND_TIMEOUT, async {
            s.list(Some(""), Some(&pattern)).await?.try_collect().await
        })
        .await?;
        if found.is_empty() {
            within(&format!("CREATE {f}"), COMMAND_TIMEOUT, s.create(f)).await?;
            tracing::info!(mailbox = %m.name(), "created folder {f}");
        }
    }
    Ok(caps)
}

/// Moves one message: UID MOVE where offered, else COPY, flag \Deleted
/// and expunge (UID EXPUNGE with UIDPLUS, so only this message goes).
async fn move_to(s: &mut Conn, caps: &Caps, uid: u32, folder: &str) -> anyhow::Result<()> {
    let set = uid.to_string();
    if caps.mv {
        return within("UID MOVE", COMMAND_TIMEOUT, s.uid_mv(&set, folder)).await;
    }
    within("UID COPY", COMMAND_TIMEOUT, s.uid_copy(&set, folder)).await?;
    within("UID STORE", COMMAND_TIMEOUT, async {
        s.uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    if caps.uidplus {
        within("UID EXPUNGE", COMMAND_TIMEOUT, async {
            s.uid_expunge(&set).await?.try_collect::<Vec<_>>().await
        })
        .await?;
    } else {
        within("EXPUNGE", COMMAND_TIMEOUT, async {
            s.expunge().await?.try_collect::<Vec<_>>().await
        })
        .await?;
    }
    Ok(())
}

/// The store, used off the async thread: the PostgreSQL client blocks on a
/// runtime of its own, which may not run inside another. Opened on first
/// use, and afresh after a failure.
pub struct Store {
    db: Option<Box<dyn Db>>,
    config: Arc<Config>,
}

impl Store {
    async fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn Db) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (db, config) = (self.db.take(), self.config.clone());
        let (db, r) = tokio::task::spawn_blocking(move || {
            let mut db = match db {
                Some(db) => db,
                None => match config.open_store() {
                    Ok(db) => db,
                    Err(e) => return (None, Err(e.context("cannot open the store"))),
                },
            };
            let r = f(db.as_mut());
            (r.is_ok().then_some(db), r)
        })
        .await
        .map_err(|e| anyhow!("store task: {e}"))?;
        self.db = db;
        r
    }
}

/// Where a pass stores what it reads.
pub struct Sink {
    pub store: Store,
    /// The tenant's mail domains, when the mailbox names a tenant.
    pub domains: Option<Vec<String>>,
}

/// One pass: every message in `folder`, up to the per-pass limit, imported
/// and moved. A store error ends the pass with the message left in place;
/// a bad message never does.
async fn pass(
    s: &mut Conn,
    caps: &Caps,
    m: &MailboxConfig,
    sink: &mut Sink,
) -> anyhow::Result<PassStats> {
    let mut st = PassStats::default();
    within("SELECT", COMMAND_TIMEOUT, s.select(m.folder.get_ref())).await?;
    let mut uids: Vec<u32> = within("UID SEARCH", COMMAND_TIMEOUT, s.uid_search("ALL"))
        .await?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let total = uids.len();
    uids.truncate(m.max_messages_per_pass);
    st.left = (total - uids.len()) as u64;
    if uids.is_empty() {
        return Ok(st);
    }
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let sizes: HashMap<u32, u64> = within("UID FETCH size", COMMAND_TIMEOUT, async {
        s.uid_fetch(&set, "(UID RFC822.SIZE)")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?
    .iter()
    .filter_map(|f| Some((f.uid?, u64::from(f.size?))))
    .collect();
    for uid in uids {
        // expunged by someone else since the search
        let Some(&size) = sizes.get(&uid) else {
            continue;
        };
        st.messages += 1;
        let source = format!("imap:{}/{}/{uid}", m.name(), m.folder.get_ref());
        let verdict = if size > m.max_message_bytes() {
            Err(format!(
                "{size} bytes, more than the {} MB a message may be",
                m.max_message_mb
            ))
        } else {
            let body = fetch_body(s, uid).await?;
            import_message(&source, &body, m, sink, &mut st).await?
        };
        match verdict {
            Ok(()) => {
                move_to(s, caps, uid, m.archive_folder.get_ref()).await?;
                st.archived += 1;
            }
            Err(reason) => {
                tracing::warn!(
                    mailbox = %m.name(),
                    uid,
                    "not a report, or a corrupt one: moved to {}: {reason}",
                    m.invalid_folder.get_ref()
                );
                move_to(s, caps, uid, m.invalid_folder.get_ref()).await?;
                st.invalid += 1;
            }
        }
    }
    Ok(st)
}

async fn fetch_body(s: &mut Conn, uid: u32) -> anyhow::Result<Vec<u8>> {
    let fetched = within("UID FETCH body", COMMAND_TIMEOUT, async {
        s.uid_fetch(uid.to_string(), "BODY.PEEK[]")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    Ok(fetched
        .iter()
        .find(|f| f.uid == Some(uid))
        .and_then(|f| f.body())
        .unwrap_or_default()
        .to_vec())
}

/// Imports the reports in one message. The outer error is the store's
/// (the pass stops); the inner one says why the message is not a report.
async fn import_message(
    source: &str,
    body: &[u8],
    m: &MailboxConfig,
    sink: &mut Sink,
    st: &mut PassStats,
) -> anyhow::Result<Result<(), String>> {
    // the parsers are fuzzed, but one message must never stop the watcher
    let parsed =
        std::panic::catch_unwind(|| report::parse_bytes(source, body)).unwrap_or_else(|_| {
            Err(report::ReportError {
                file: source.into(),
                reason: "the report parser failed on this message".into(),
            })
        });
    let reports = match parsed {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.reason)),
    };
    for r in &reports {
        let domain = match r {
            report::Parsed::Dmarc(d) => vec![d.policy.domain.to_ascii_lowercase()],
            report::Parsed::TlsRpt(t) => t
                .policies
                .iter()
                .map(|p| p.policy_domain.to_ascii_lowercase())
                .collect(),
        };
        if let Some(own) = &sink.domains
            && let Some(d) = domain.iter().find(|d| !own.contains(d))
        {
            tracing::warn!(
                mailbox = %m.name(),
                "{source}: a report for {d}, which is not one of tenant {}'s mail domains",
                m.tenant.as_ref().map_or("", |t| t.get_ref().as_str())
            );
        }
    }
    for r in &reports {
        if let report::Parsed::Dmarc(d) = r {
            for w in &d.warnings {
                tracing::warn!(mailbox = %m.name(), "{source}: {w} (recovered)");
            }
        }
    }
    let source = source.to_string();
    let config = sink.store.config.clone();
    let (new, dup) = sink
        .store
        .run(move |db| {
            let now = SystemTime::now();
            let (mut new, mut dup) = (0, 0);
            let mut fresh = BTreeMap::new();
            for r in reports {
                match crate::dmarc_cmd::store_report(db, r, &source, now, &mut fresh)? {
                    Imported::New => new += 1,
                    Imported::Duplicate => dup += 1,
                }
            }
            // the reports are committed: naming their senders may fail
            // (DNS down) without the message being imported again
            let ips: BTreeSet<String> = fresh.values().flatten().cloned().collect();
            let named = crate::dmarc_senders::identify(&config, db, &ips)
                .and_then(|()| crate::dmarc_senders::alert_unknown(&config, db, &fresh));
            if let Err(e) = named {
                tracing::warn!("{source}: senders not identified: {e:#}");
            }
            Ok((new, dup))
        })
        .await?;
    st.imported += new;
    st.duplicates += dup;
    Ok(Ok(()))
}

fn tenant_domains(m: &MailboxConfig, config: &Config) -> Option<Vec<String>> {
    let t = m.tenant.as_ref()?;
    let t = config
        .tenants
        .iter()
        .find(|x| x.name.get_ref() == t.get_ref())?;
    Some(
        t.mail_domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
    )
}

/// One connection and one pass over a mailbox (`parapet dmarc fetch`).
pub async fn fetch_once(
    m: &MailboxConfig,
    config: &Config,
    store: Store,
) -> (Store, anyhow::Result<PassStats>) {
    let mut sink = Sink {
        store,
        domains: tenant_domains(m, config),
    };
    let r = fetch_with(m, config, &mut sink).await;
    (sink.store, r)
}

async fn fetch_with(
    m: &MailboxConfig,
    config: &Config,
    sink: &mut Sink,
) -> anyhow::Result<PassStats> {
    let mut s = connect(m, config).await?;
    let caps = prepare(&mut s, m).await?;
    let st = pass(&mut s, &caps, m, sink).await?;
    let _ = tokio::time::timeout(CONNECT_TIMEOUT, s.logout()).await;
    Ok(st)
}

/// Starts a watcher thread for every configured mailbox (`parapet serve`).
pub fn start_watchers(config: &Config) -> anyhow::Result<()> {
    for m in &config.dmarc.mailboxes {
        let (m, config) = (m.clone(), config.clone());
        std::thread::Builder::new()
            .name(format!("parapet-imap-{}", m.name()))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(mailbox = %m.name(), "cannot start the IMAP watcher: {e}");
                        return;
                    }
                };
                rt.block_on(watch(&m, &config));
            })?;
    }
    Ok(())
}

/// Watches one mailbox for ever: connects, passes, waits (IDLE or the
/// poll interval), reconnects with backoff after any failure.
async fn watch(m: &MailboxConfig, config: &Config) {
    let shared = crate::url_feeds::shared(config);
    let mut sink = Sink {
        store: Store {
            db: None,
            config: Arc::new(config.clone()),
        },
        domains: tenant_domains(m, config),
    };
    let mut backoff = BACKOFF_START;
    let mut aside = false;
    loop {
        match session(m, config, shared, &mut sink, &mut backoff).await {
            Ok(()) => {
                // said once each time this node stands aside, not every poll
                if !aside {
                    tracing::info!(mailbox = %m.name(), "another node holds the mailbox lease");
                }
                aside = true;
                tokio::time::sleep(m.poll()).await;
            }
            Err(e) => {
                tracing::error!(
                    mailbox = %m.name(),
                    "IMAP watcher: {e:#}; retrying in {} s",
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// On a shared database: whether this node holds (and so renews) the
/// mailbox's lease. A lease lasts two waits and a bit.
async fn lease(
    m: &MailboxConfig,
    shared: bool,
    store: &mut Store,
    wait: Duration,
) -> anyhow::Result<bool> {
    if !shared {
        return Ok(true);
    }
    let job = format!("dmarc-mailbox:{}", m.name());
    store
        .run(move |db| {
            Ok(db.try_lease(&job, SystemTime::now(), wait * 2 + Duration::from_secs(60))?)
        })
        .await
}

/// One connection's life: returns Ok when the lease is (or goes) to
/// another node, Err on any failure.
async fn session(
    m: &MailboxConfig,
    config: &Config,
    shared: bool,
    sink: &mut Sink,
    backoff: &mut Duration,
) -> anyhow::Result<()> {
    let wait = m.poll().min(IDLE_RENEW);
    if !lease(m, shared, &mut sink.store, wait).await? {
        return Ok(());
    }
    let mut s = connect(m, config).await?;
    let caps = prepare(&mut s, m).await?;
    // EXISTS responses the server sends during our commands: new mail that
    // arrived after the pass's search, which IDLE alone would not announce
    let news = s.unsolicited_responses.clone();
    let mut first = true;
    loop {
        if !lease(m, shared, &mut sink.store, wait).await? {
            let _ = tokio::time::timeout(CONNECT_TIMEOUT, s.logout()).await;
            return Ok(());
        }
        while news.try_recv().is_ok() {}
        let st = pass(&mut s, &caps, m, sink).await?;
        *backoff = BACKOFF_START;
        if st.messages > 0 {
            tracing::info!(mailbox = %m.name(), "{st}");
        }
        if first {
            tracing::info!(
                mailbox = %m.name(),
                "watching {} ({})",
                m.folder.get_ref(),
                if caps.idle { "IDLE" } else { "polling" }
            );
            first = false;
        }
        if st.left > 0 || arrived(&news) {
            continue;
        }
        if caps.idle {
            s = idle(s, wait, &news).await?;
        } else {
            tokio::time::sleep(wait).await;
            within("NOOP", COMMAND_TIMEOUT, s.noop()).await?;
        }
    }
}

/// Whether the server said a message arrived (EXISTS, RECENT).
fn arrived(news: &async_channel::Receiver<UnsolicitedResponse>) -> bool {
    let mut any = false;
    while let Ok(r) = news.try_recv() {
        any |= matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        );
    }
    any
}

/// Waits in IDLE until the server reports a change or `wait` passes,
/// then ends the IDLE and gives the session back.
async fn idle(
    s: Conn,
    wait: Duration,
    news: &async_channel::Receiver<UnsolicitedResponse>,
) -> anyhow::Result<Conn> {
    let mut h = s.idle();
    within("IDLE", COMMAND_TIMEOUT, h.init()).await?;
    // what the server announced while IDLE began is not waited for again
    if !arrived(news) {
        let (fut, _stop) = h.wait_with_timeout(wait);
        // the crate's timeout restarts on every server keepalive, so the
        // renewal deadline is kept here
        if let Ok(r) = tokio::time::timeout(wait, fut).await {
            r.context("IDLE")?;
        }
    }
    within("DONE", COMMAND_TIMEOUT, h.done()).await
}

/// `parapet dmarc fetch`: one pass over each mailbox (or the one named).
#[derive(clap::Args)]
pub struct FetchArgs {
    /// The TOML configuration file (with `[[dmarc.mailboxes]]`).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// Only this mailbox (its `name`).
    #[arg(long)]
    mailbox: Option<String>,
}

pub fn fetch(args: FetchArgs) -> anyhow::Result<std::process::ExitCode> {
    let config = Config::load_or_embedded(args.config.as_deref())?;
    let chosen: Vec<&MailboxConfig> = config
        .dmarc
        .mailboxes
        .iter()
        .filter(|m| args.mailbox.as_deref().is_none_or(|n| n == m.name()))
        .collect();
    if chosen.is_empty() {
        let what = match &args.mailbox {
            Some(n) => format!("no mailbox is named `{n}` in [[dmarc.mailboxes]]"),
            None => "no [[dmarc.mailboxes]] in the configuration".to_string(),
        };
        return Err(crate::BadInput(what).into());
    }
    // opened here so that a store that cannot be opened is one error
    let mut store = Store {
        db: Some(config.open_store()?),
        config: Arc::new(config.clone()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut failed = false;
    for m in chosen {
        let (back, r) = rt.block_on(fetch_once(m, &config, store));
        store = back;
        match r {
            Ok(st) => println!("{}: {st}", m.name()),
            Err(e) => {
                eprintln!("{}: {e:#}", m.name());
                failed = true;
            }
        }
    }
    Ok(if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BOX: &str = "[[dmarc.mailboxes]]\nname = \"rua\"\nhost = \"imap.example\"\n\
                       user = \"dmarc@example\"\npassword_env = \"PARAPET_IMAP_PASSWORD\"\n";

    fn err(text: &str) -> String {
        Config::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_implicit_tls_and_the_usual_folders() {
        let c = Config::parse(BOX, Path::new("c.toml")).unwrap();
        let m = &c.dmarc.mailboxes[0];
        assert_eq!((*m.tls.get_ref(), m.port()), (TlsMode::Implicit, 993));
        assert_eq!(m.folder.get_ref(), "INBOX");
        assert_eq!(m.archive_folder.get_ref(), "Archive");
        assert_eq!(m.invalid_folder.get_ref(), "Invalid");
        assert_eq!(m.max_message_bytes(), 25 << 20);
        assert_eq!(m.poll(), Duration::from_secs(300));
    }

    #[test]
    fn plaintext_only_to_loopback() {
        let e = err(&format!("{BOX}tls = \"none\"\n"));
        assert!(e.starts_with("c.toml:6: [[dmarc.mailboxes]] tls:"), "{e}");
        assert!(e.contains("only for a loopback host"), "{e}");
        let text = BOX.replace("imap.example", "127.0.0.1") + "tls = \"none\"\n";
        let c = Config::parse(&text, Path::new("c.toml")).unwrap();
        assert_eq!(c.dmarc.mailboxes[0].port(), 143);
        let e = err(&format!("{BOX}tls = \"ssl\"\n"));
        assert!(e.contains("c.toml:6"), "{e}");
    }

    #[test]
    fn bad_entries_name_key_and_line() {
        let e = err(&format!("{BOX}{BOX}"));
        assert!(e.starts_with("c.toml:7: [[dmarc.mailboxes]] name:"), "{e}");
        let e = err(&format!("{BOX}tenant = \"north\"\n"));
        assert!(e.contains("no tenant is named `north`"), "{e}");
        let e = err(&format!("{BOX}archive_folder = \"INBOX\"\n"));
        assert!(e.contains("archive_folder"), "{e}");
        let e = err(&format!("{BOX}invalid_folder = \"Bad\\\"name\"\n"));
        assert!(
            e.contains("c.toml:6: [[dmarc.mailboxes]] invalid_folder"),
            "{e}"
        );
        let e = err(&format!("{BOX}password = \"x\"\n"));
        assert!(e.contains("password"), "{e}");
    }
}
