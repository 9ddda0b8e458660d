//! Test harness: real peers (NSD, Unbound) and real `parapet serve`
//! processes on free loopback ports, and a DNS client built on hickory-proto
//! (an implementation independent of Parapet's own wire code).

use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// The zone NSD serves to every test.
pub const ZONE_TEST: &str = include_str!("../../../../testdata/dns/zone.test.zone");

/// A free port on 127.0.0.1 for both UDP and TCP (free when checked).
///
/// Ports come from below the kernel's ephemeral range (32768–60999 on
/// Linux), handed out once each by a counter: a port the OS picked itself
/// (`bind(0)`) could be taken by any outgoing socket — Parapet's upstream
/// queries, a client — between this check and the peer's bind.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // separate test binaries (and runs) start at different offsets
    let base = 10_000 + (std::process::id() % 200) as u16 * 100;
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 10_000 + (base - 10_000 + n) % 22_000;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port");
}

/// Waits until `server` answers a DNS query over UDP.
/// Polls `ok` until it holds, failing the test after 30 s.
pub fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_for_dns(server: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if Client::new(server)
            .timeout(Duration::from_millis(200))
            .query("ns.zone.test.", RecordType::A)
            .is_some()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not start answering on {server}");
}

/// A peer started through `sh` reading our stdin: when the test binary exits
/// (even by panic), its end of the pipe closes and the shell kills the peer.
pub struct Peer {
    child: Child,
    pub addr: SocketAddr,
    /// Kept so the peer's files live as long as it does.
    _dir: tempfile::TempDir,
}

impl Peer {
    pub fn spawn(program: &str, args: &[&str], dir: tempfile::TempDir, addr: SocketAddr) -> Self {
        let cmdline = format!(
            "{program} {} & pid=$!; read _; kill $pid; wait $pid",
            args.iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(cmdline)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Self {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Peer {
    /// The peer's own folder.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

/// A real SMTP server (Python's aiosmtpd, installed by scripts/test) on a
/// free loopback port, delivering into a Maildir in its folder.
pub fn start_smtp() -> Peer {
    start_smtp_with(&[])
}

/// As [`start_smtp`], with extra aiosmtpd options (e.g. `--tlscert F
/// --tlskey K` to offer STARTTLS).
pub fn start_smtp_with(extra: &[&str]) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let maildir = dir.path().join("Maildir").to_str().unwrap().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["-m", "aiosmtpd", "-n", "-l", &listen];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-c", "aiosmtpd.handlers.Mailbox", &maildir]);
    spawn_tcp_peer(
        "python3",
        &args,
        dir,
        port,
        "aiosmtpd (pip install aiosmtpd)",
    )
}

/// aiosmtpd with a STARTTLS set-up its command line cannot give
/// (testdata/mail/smtp_server.py): `mode` is `old-tls` (TLS 1.0/1.1 only,
/// needs `cert`), `refuse-starttls` (454) or `garbage-tls` (220, then bytes
/// that are not TLS).
pub fn start_smtp_mode(mode: &str, cert: Option<(&str, &str)>) -> Peer {
    let port = free_port();
    let script = repo_root().join("testdata/mail/smtp_server.py");
    let port_s = port.to_string();
    let mut args = vec![script.to_str().unwrap(), &port_s, mode];
    if let Some((crt, key)) = cert {
        args.extend_from_slice(&[crt, key]);
    }
    let what = format!("smtp_server.py {mode}");
    spawn_tcp_peer("python3", &args, tempfile::tempdir().unwrap(), port, &what)
}

/// The HTTPS server for MTA-STS policies (testdata/mail/https_policy_server.py)
/// serving testdata/mail/policies with the certificate `cert`, `key`.
pub fn start_https_policy_server(cert: &str, key: &str) -> Peer {
    let port = free_port();
    let root = repo_root().join("testdata/mail/policies");
    let script = repo_root().join("testdata/mail/https_policy_server.py");
    spawn_tcp_peer(
        "python3",
        &[
            script.to_str().unwrap(),
            &port.to_string(),
            cert,
            key,
            root.to_str().unwrap(),
        ],
        tempfile::tempdir().unwrap(),
        port,
        "the HTTPS policy server",
    )
}

/// Starts a peer listening on TCP `port` of 127.0.0.1 and waits until it
/// accepts connections.
fn spawn_tcp_peer(
    program: &str,
    args: &[&str],
    dir: tempfile::TempDir,
    port: u16,
    what: &str,
) -> Peer {
    let peer = Peer::spawn(program, args, dir, ([127, 0, 0, 1], port).into());
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(peer.addr).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    peer
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.child.wait();
    }
}

/// Starts NSD authoritative for `zones` (name, zone file text).
pub fn start_nsd(zones: &[(&str, &str)]) -> Peer {
    start_nsd_on(free_port(), zones)
}

/// As [`start_nsd`], on a given port (an NSD restarted where the last one
/// was).
pub fn start_nsd_on(port: u16, zones: &[(&str, &str)]) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  server-count: 1\n  username: \"\"\n  \
         zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/nsd.zonelist\"\n  xfrdfile: \"{d}/nsd.xfrd\"\n  \
         pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  verbosity: 1\n  rrl-ratelimit: 0\n  \
         rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\n"
    );
    for (name, text) in zones {
        std::fs::write(dir.path().join(format!("{name}.zone")), text).unwrap();
        conf.push_str(&format!(
            "zone:\n  name: \"{name}\"\n  zonefile: \"{name}.zone\"\n"
        ));
    }
    let conf_path = dir.path().join("nsd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let peer = Peer::spawn("nsd", &["-d", "-c", conf_path.to_str().unwrap()], dir, addr);
    wait_for_dns(addr, "NSD");
    peer
}

/// One NSD for the whole test binary, serving `zone.test`.
pub fn shared_nsd() -> SocketAddr {
    static NSD: OnceLock<Peer> = OnceLock::new();
    NSD.get_or_init(|| start_nsd(&[("zone.test", ZONE_TEST)]))
        .addr
}

/// Starts Unbound 1.17 as a recursive resolver for `zone.test` (stub to
/// `nsd`) applying `rpz` as its response policy zone.
///
/// `allow_rpz`, when given, is a first policy zone (it wins over the second),
/// which is how Unbound expresses an allowlist.
pub fn start_unbound(nsd: SocketAddr, allow_rpz: Option<&str>, rpz: &str) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    std::fs::write(dir.path().join("policy.rpz"), rpz).unwrap();
    let allow = match allow_rpz {
        Some(text) => {
            std::fs::write(dir.path().join("allow.rpz"), text).unwrap();
            format!("rpz:\n  name: \"allow.local\"\n  zonefile: \"{d}/allow.rpz\"\n  rpz-log: no\n")
        }
        None => String::new(),
    };
    let conf = format!(
        "server:\n  interface: 127.0.0.1@{port}\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  \
         directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  \
         num-threads: 1\n  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  \
         module-config: \"respip validator iterator\"\n  domain-insecure: \"zone.test\"\n  local-zone: \"test.\" nodefault\n\
         remote-control:\n  control-enable: no\nstub-zone:\n  name: \"zone.test\"\n  stub-addr: {}@{}\n\
         {allow}rpz:\n  name: \"rpz.local\"\n  zonefile: \"{d}/policy.rpz\"\n  rpz-log: no\n",
        nsd.ip(),
        nsd.port()
    );
    let conf_path = dir.path().join("unbound.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let peer = Peer::spawn(
        "unbound",
        &["-d", "-c", conf_path.to_str().unwrap()],
        dir,
        addr,
    );
    wait_for_dns(addr, "Unbound");
    peer
}

/// A running `parapet serve`.
pub struct Parapet {
    child: Child,
    pub dns: SocketAddr,
    pub web: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Extra `serve` arguments (e.g. `--demo`).
    args: Vec<String>,
}

impl Parapet {
    /// `parapet serve --demo`: the bundled demo data and a first `admin` account.
    pub fn start_demo() -> Self {
        Self::start_with(&["--demo"], &[], "", "", &[])
    }

    /// Starts `parapet serve` with `[dns]` listen/web set to free ports and
    /// `body` appended (which must not set them). Files in `files` (relative
    /// name, content) are written next to the config first.
    pub fn start(dns_extra: &str, body: &str, files: &[(&str, &str)]) -> Self {
        Self::start_on(&[], dns_extra, body, files)
    }

    /// As [`Parapet::start`], also listening on `extra_listen` (e.g.
    /// `"[::1]:0"`-style addresses with fixed ports).
    pub fn start_on(
        extra_listen: &[String],
        dns_extra: &str,
        body: &str,
        files: &[(&str, &str)],
    ) -> Self {
        Self::start_with(&[], extra_listen, dns_extra, body, files)
    }

    fn start_with(
        args: &[&str],
        extra_listen: &[String],
        dns_extra: &str,
        body: &str,
        files: &[(&str, &str)],
    ) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let port = free_port();
        let web_port = free_port();
        let config = dir.path().join("parapet.toml");
        // every test client shares 127.0.0.0/24, and several tests load the
        // server from it: response rate limiting is off unless the test
        // configures it
        let rate_limit = if dns_extra.contains("[dns.rate_limit]") {
            ""
        } else {
            "[dns.rate_limit]\nresponses_per_second = 0\n"
        };
        std::fs::write(
            &config,
            format!(
                "[dns]\nlisten = [\"127.0.0.1:{port}\"{}]\nthreads = 2\nwatch_interval_ms = 200\n{dns_extra}\n{rate_limit}\
                 [web]\nlisten = \"127.0.0.1:{web_port}\"\n\n{body}\n",
                extra_listen.iter().map(|a| format!(", \"{a}\"")).collect::<String>()
            ),
        )
        .unwrap();
        let child = spawn_parapet(&config, dir.path(), &args);
        let p = Self {
            child,
            dns: ([127, 0, 0, 1], port).into(),
            web: ([127, 0, 0, 1], web_port).into(),
            dir,
            config,
            args,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // both listeners are bound before either is announced; the TCP
            // one answers connects, the web one too
            if TcpStream::connect(self.web).is_ok() && TcpStream::connect(self.dns).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("parapet did not start; log:\n{}", self.log());
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("parapet.log")).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        Client::new(self.dns)
    }

    /// The /metrics text.
    pub fn metrics(&self) -> String {
        http_get(self.web, "/metrics")
    }

    /// Sum of the metric samples whose line starts with `prefix`.
    pub fn metric(&self, prefix: &str) -> f64 {
        metric_sum(&self.metrics(), prefix)
    }

    pub fn sighup(&self) {
        self.signal("-HUP");
    }

    fn signal(&self, which: &str) {
        let ok = Command::new("kill")
            .args([which, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {which} failed");
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

fn spawn_parapet(config: &Path, dir: &Path, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("parapet.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["serve", "--config"])
        .arg(config)
        .args(args)
        .env("PARAPET_LOG", "info")
        .env("PARAPET_PSEUDONYM_KEY", "test-key-0123456789")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start parapet")
}

impl Parapet {
    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (up to 10 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "no exit 10 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the same configuration again (after [`Parapet::kill9`]).
    pub fn restart(&mut self) {
        self.child = spawn_parapet(&self.config, self.dir.path(), &self.args);
        self.wait_ready();
    }
}

impl Drop for Parapet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- parapet log ---\n{}", self.log());
        }
    }
}

pub fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A minimal HTTP/1.1 GET.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    match http_get_with(addr, path, "", Duration::from_secs(5)) {
        (200, body) => body,
        (status, body) => panic!("GET {path}: {status} {body}"),
    }
}

/// `(status, body)` of a GET carrying `headers` (each line ending in CRLF).
pub fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    timeout: Duration,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: {text}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// `(status, body)` of a GET with a bearer token.
pub fn http_get_bearer(addr: SocketAddr, path: &str, token: &str) -> (u16, String) {
    http_get_with(
        addr,
        path,
        &format!("Authorization: Bearer {token}\r\n"),
        Duration::from_secs(10),
    )
}

/// A DNS client: builds queries with hickory-proto, sends them over UDP or
/// TCP from a chosen source address.
#[derive(Clone)]
pub struct Client {
    server: SocketAddr,
    source: IpAddr,
    timeout: Duration,
    edns: Option<u16>,
    tcp: bool,
}

/// What the tests compare of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: ResponseCode,
    pub truncated: bool,
    /// Answer records as "name type rdata" (TTL left out), sorted.
    pub records: Vec<String>,
    pub ttls: Vec<u32>,
    pub edns: bool,
    pub message: Message,
}

impl Client {
    pub fn new(server: SocketAddr) -> Self {
        let source = if server.is_ipv4() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        };
        Self {
            server,
            source,
            timeout: Duration::from_secs(3),
            edns: Some(1232),
            tcp: false,
        }
    }

    pub fn from(mut self, source: &str) -> Self {
        self.source = source.parse().unwrap();
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    pub fn edns(mut self, payload: Option<u16>) -> Self {
        self.edns = payload;
        self
    }

    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    pub fn build(&self, name: &str, rtype: RecordType) -> Message {
        let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if let Some(p) = self.edns {
            let mut e = Edns::new();
            e.set_max_payload(p);
            m.set_edns(e);
        }
        m
    }

    /// Sends a query; `None` when no answer came within the timeout.
    pub fn query(&self, name: &str, rtype: RecordType) -> Option<Answer> {
        let msg = self.build(name, rtype);
        let bytes = self.exchange(&msg.to_vec().unwrap(), msg.metadata.id)?;
        let m = Message::from_vec(&bytes).expect("answer parses with hickory-proto");
        Some(Answer::of(m))
    }

    /// Sends raw bytes and returns the raw answer for message `id`.
    pub fn exchange(&self, bytes: &[u8], id: u16) -> Option<Vec<u8>> {
        if self.tcp {
            let mut s = TcpStream::connect_timeout(&self.server, self.timeout).ok()?;
            s.set_read_timeout(Some(self.timeout)).unwrap();
            let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(bytes);
            s.write_all(&out).ok()?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).ok()?;
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).ok()?;
            return Some(buf);
        }
        let sock = UdpSocket::bind((self.source, 0)).unwrap();
        sock.set_read_timeout(Some(self.timeout)).unwrap();
        sock.send_to(bytes, self.server).unwrap();
        let deadline = Instant::now() + self.timeout;
        let mut buf = vec![0u8; 65535];
        while Instant::now() < deadline {
            match sock.recv_from(&mut buf) {
                Ok((n, _)) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                    return Some(buf[..n].to_vec());
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

impl Answer {
    pub fn of(m: Message) -> Self {
        let mut records: Vec<String> = m
            .answers
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.name.to_ascii().to_ascii_lowercase(),
                    r.record_type(),
                    r.data
                )
            })
            .collect();
        records.sort();
        Self {
            rcode: m.metadata.response_code,
            truncated: m.metadata.truncation,
            ttls: m.answers.iter().map(|r| r.ttl).collect(),
            edns: m.edns.is_some(),
            records,
            message: m,
        }
    }
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The quarter `serve --demo` loads its data in: the current one.
pub fn demo_quarter() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    parapet_assurance::quarter::Quarter::containing(
        now,
        parapet_assurance::quarter::QuarterStyle::Financial,
    )
    .to_string()
}

/// A configuration naming only the store, `dir/parapet-data`, written once
/// (`dir/store.toml`): what a command run in `dir` gets as
/// `PARAPET_CONFIG`, so an import there creates that store (imports create
/// one only where a configuration says).
pub fn store_config(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("store.toml");
    if !p.exists() {
        std::fs::write(&p, "[store]\npath = \"parapet-data\"\n").unwrap();
    }
    p
}

/// One HTTP request: its request line, headers (names lower-cased), body.
pub type HttpRequest = (String, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 request from `reader`, with a body of
/// `content-length` bytes. `None` when the peer sent nothing.
pub fn read_http_request(reader: &mut impl BufRead) -> Option<HttpRequest> {
    let mut request = String::new();
    if reader.read_line(&mut request).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    Some((request, headers, body))
}

/// A command's stdout then stderr, as text.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
