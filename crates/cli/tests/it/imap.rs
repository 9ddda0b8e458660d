//! DMARC and TLS-RPT reports fetched from a real IMAP server: Debian's
//! Dovecot on loopback with a passwd-file user, a Maildir, STARTTLS on the
//! plain port and implicit TLS on another, certificates from a test CA
//! made with the `openssl` command. Messages are delivered by writing
//! Maildir files, and the folders are read back from the Maildir.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::harness::{Peer, free_port, repo_root, wait_for};

const USER: &str = "dmarc";
const PASSWORD: &str = "mailbox-secret-7731";
const PASSWORD_ENV: &str = "PARAPET_TEST_IMAP_PASSWORD";

fn run(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1, by the openssl CLI.
fn make_certs(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509", "-days", "2", "-subj", "/CN=Parapet Test CA"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.pem"]));
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-subj", "/CN=127.0.0.1"])
        .args(ec)
        .args(["-keyout", "server.key", "-out", "server.csr"]));
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
    ]));
}

/// A running Dovecot with one user, and where its mail lives.
struct Dovecot {
    peer: Peer,
    /// STARTTLS port (the implicit-TLS one is `peer.addr`).
    plain_port: u16,
    maildir: PathBuf,
}

fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
}

fn start_dovecot() -> Dovecot {
    start_dovecot_with("")
}

/// Dovecot with `extra` lines in its config.
fn start_dovecot_with(extra: &str) -> Dovecot {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Dovecot reads the Maildir as nobody: the folder must be traversable
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    make_certs(d);
    std::fs::write(d.join("passwd"), format!("{USER}:{{PLAIN}}{PASSWORD}\n")).unwrap();
    let maildir = d.join("home").join(USER).join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for p in [d.join("home"), d.join("home").join(USER), maildir.clone()] {
        chown_nobody(&p);
    }
    for sub in ["cur", "new", "tmp"] {
        chown_nobody(&maildir.join(sub));
    }
    let (plain_port, tls_port) = (free_port(), free_port());
    let pd = d.display();
    let conf = format!(
        "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {pd}/run\nstate_dir = {pd}/state\n\
         log_path = {pd}/dovecot.log\n\
         ssl = required\nssl_cert = <{pd}/server.pem\nssl_key = <{pd}/server.key\n\
         ssl_dh = </usr/share/dovecot/dh.pem\n\
         auth_mechanisms = plain login\n\
         default_internal_user = dovecot\ndefault_login_user = dovenull\n\
         passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {pd}/passwd\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={pd}/home/%u\n}}\n\
         mail_location = maildir:~/Maildir\n\
         namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n\
         service imap-login {{\n  inet_listener imap {{\n    port = {plain_port}\n  }}\n\
           inet_listener imaps {{\n    port = {tls_port}\n    ssl = yes\n  }}\n}}\n\
         service stats {{\n  unix_listener stats-reader {{\n    mode = 0666\n  }}\n\
           unix_listener stats-writer {{\n    mode = 0666\n  }}\n}}\n{extra}\n"
    );
    let conf_path = d.join("dovecot.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let conf_arg = conf_path.display().to_string();
    let peer = Peer::spawn(
        "/usr/sbin/dovecot",
        &["-F", "-c", &conf_arg],
        dir,
        ([127, 0, 0, 1], tls_port).into(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(peer.addr).is_err()
        || TcpStream::connect(("127.0.0.1", plain_port)).is_err()
    {
        let log = std::fs::read_to_string(peer.dir().join("dovecot.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "dovecot did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Dovecot {
        peer,
        plain_port,
        maildir,
    }
}

impl Dovecot {
    /// Delivers a raw message (LF or CRLF line ends) into INBOX.
    fn deliver(&self, n: usize, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
        let crlf = if std::str::from_utf8(raw).is_ok() {
            text.replace('\n', "\r\n").into_bytes()
        } else {
            raw.to_vec()
        };
        let name = format!("1764600000.M{n}P{}.parapet-test:2,", std::process::id());
        let tmp = self.maildir.join("tmp").join(&name);
        std::fs::write(&tmp, crlf).unwrap();
        chown_nobody(&tmp);
        std::fs::rename(&tmp, self.maildir.join("new").join(&name)).unwrap();
    }

    /// Messages in a folder (`INBOX` or a Maildir++ name like `Archive/DMARC`).
    fn count(&self, folder: &str) -> usize {
        let base = if folder == "INBOX" {
            self.maildir.clone()
        } else {
            self.maildir.join(format!(".{}", folder.replace('/', ".")))
        };
        ["cur", "new"]
            .iter()
            .map(|s| std::fs::read_dir(base.join(s)).map_or(0, |r| r.count()))
            .sum()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.peer.dir().join("dovecot.log")).unwrap_or_default()
    }

    /// A config for Parapet with this server as mailbox `rua`.
    fn config(&self, dir: &Path, tls: &str, extra: &str) -> PathBuf {
        let port = if tls == "implicit" {
            self.peer.addr.port()
        } else {
            self.plain_port
        };
        let path = dir.join("p.toml");
        std::fs::write(
            &path,
            format!(
                "[store]\npath = \"data\"\n\n[[dmarc.mailboxes]]\nname = \"rua\"\nhost = \"127.0.0.1\"\n\
                 port = {port}\ntls = \"{tls}\"\nuser = \"{USER}\"\npassword_env = \"{PASSWORD_ENV}\"\n\
                 folder = \"INBOX\"\narchive_folder = \"Archive/DMARC\"\ninvalid_folder = \"Invalid\"\n\
                 ca_file = \"{}\"\n{extra}\n",
                self.peer.dir().join("ca.pem").display()
            ),
        )
        .unwrap();
        path
    }
}

fn parapet(config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parapet"));
    c.args(args)
        .arg("--config")
        .arg(config)
        .env(PASSWORD_ENV, PASSWORD)
        .env("PARAPET_LOG", "info");
    c
}

fn fetch(config: &Path) -> (String, String) {
    let o: Output = parapet(config, &["dmarc", "fetch"]).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{out}{err}");
    (out, err)
}

/// Rows in a table of the SQLite store.
fn rows(dir: &Path, table: &str) -> i64 {
    let db = rusqlite::Connection::open(dir.join("data/parapet.sqlite")).unwrap();
    db.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn sample(rel: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("testdata/dmarc").join(rel)).unwrap()
}

/// A report mail with `data` attached as `name` (base64).
fn with_attachment(subject: &str, ctype: &str, name: &str, data: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: noreply-dmarc@reporter.test\nTo: {USER}@example.test\nSubject: {subject}\n\
         Message-ID: <{subject}@reporter.test>\nMIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\n\n--b1\nContent-Type: text/plain\n\n\
         A report is attached.\n--b1\nContent-Type: {ctype}; name=\"{name}\"\n\
         Content-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"{name}\"\n\n\
         {}\n--b1--\n",
        lines.join("\n")
    )
    .into_bytes()
}

/// An aggregate report with its own report id, for bulk deliveries.
fn numbered_report(n: usize) -> Vec<u8> {
    let xml = String::from_utf8(sample(
        "aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml",
    ))
    .unwrap();
    let id = "3ceb5548498640beaeb47327e202b0b9";
    assert!(xml.contains(id));
    let xml = xml.replace(id, &format!("bulk-{n:05}"));
    with_attachment(
        &format!("bulk {n}"),
        "text/xml",
        "report.xml",
        xml.as_bytes(),
    )
}

/// Every kind of report message is imported and archived; a mail with no
/// report, a corrupt attachment and a failure report go to Invalid; the
/// folders are created; a second pass finds nothing, and a report sent
/// again is a skipped duplicate.
#[test]
fn fetch_imports_reports_and_moves_messages() {
    let dovecot = start_dovecot();
    let reports: Vec<Vec<u8>> = vec![
        with_attachment(
            "xml",
            "text/xml",
            "addisonfoods.xml",
            &sample("aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml"),
        ),
        with_attachment(
            "gz",
            "application/gzip",
            "fastmail.xml.gz",
            &sample("aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz"),
        ),
        with_attachment(
            "zip",
            "application/zip",
            "infonacot.xml.zip",
            &sample(
                "aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip",
            ),
        ),
        sample("aggregate/twilight.eml"),
        sample("aggregate/mimecast-weird-gzip.eml"),
        sample("smtp_tls/google.com_smtp_tls_report.eml"),
        with_attachment(
            "tlsrpt",
            "application/tlsrpt+json",
            "rfc8460.json",
            &sample("smtp_tls/rfc8460.json"),
        ),
    ];
    let mut corrupt =
        sample("aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz");
    corrupt.truncate(corrupt.len() / 2);
    let invalid: Vec<Vec<u8>> = vec![
        b"From: a@b.test\nTo: dmarc@example.test\nSubject: lunch\n\nSandwiches at one?\n".to_vec(),
        with_attachment("corrupt", "application/gzip", "broken.xml.gz", &corrupt),
        sample("failure/dmarc_ruf_report_linkedin.eml"),
    ];
    for (i, m) in reports.iter().chain(&invalid).enumerate() {
        dovecot.deliver(i, m);
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dovecot.config(dir.path(), "starttls", "");
    let (out, err) = fetch(&config);
    assert!(
        out.contains(
            "rua: 10 messages: 7 reports imported, 0 already stored; 7 archived, 3 invalid, 0 left"
        ),
        "{out}{err}\n{}",
        dovecot.log()
    );
    // each invalid message is logged with its reason, and the password never
    assert!(
        err.contains("no DMARC aggregate or TLS-RPT report found"),
        "{err}"
    );
    assert!(err.contains("gzip"), "{err}");
    assert!(err.contains("failure (forensic) report"), "{err}");
    assert!(!err.contains(PASSWORD) && !out.contains(PASSWORD));
    assert_eq!(rows(dir.path(), "dmarc_reports"), 5);
    assert_eq!(rows(dir.path(), "tls_reports"), 2);
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Archive/DMARC"), 7);
    assert_eq!(dovecot.count("Invalid"), 3);

    let (out, _) = fetch(&config);
    assert!(out.contains("rua: 0 messages: 0 reports imported"), "{out}");
    assert_eq!(dovecot.count("Archive/DMARC"), 7);

    // the same report mailed twice: archived, not stored twice
    dovecot.deliver(100, &reports[0]);
    let (out, _) = fetch(&config);
    assert!(
        out.contains("1 messages: 0 reports imported, 1 already stored; 1 archived"),
        "{out}"
    );
    assert_eq!(rows(dir.path(), "dmarc_reports"), 5);
    assert_eq!(dovecot.count("Archive/DMARC"), 8);
}

/// Messages, reports imported, already stored, archived: from the line
/// `parapet dmarc fetch` prints for a mailbox.
fn pass_figures(out: &str) -> [usize; 4] {
    let n: Vec<usize> = out
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    assert!(n.len() >= 4, "{out}");
    [n[0], n[1], n[2], n[3]]
}

/// A pass killed with SIGKILL part-way leaves every message either
/// imported and archived, or in INBOX; the next pass imports the rest,
/// with at most the one message in flight seen again as a duplicate.
#[test]
fn fetch_killed_mid_pass_loses_and_doubles_nothing() {
    const N: usize = 300;
    let dovecot = start_dovecot();
    for n in 0..N {
        dovecot.deliver(n, &numbered_report(n));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dovecot.config(dir.path(), "implicit", "max_messages_per_pass = 1000");
    let mut child: Child = parapet(&config, &["dmarc", "fetch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first archived messages", || {
        dovecot.count("Archive/DMARC") >= 20
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        dovecot.count("INBOX") > 0,
        "the pass ended before the kill: make it longer"
    );
    // a message is moved only once committed: read the archive first,
    // then the store, and the store is never behind
    let archived = dovecot.count("Archive/DMARC");
    let stored = rows(dir.path(), "dmarc_reports") as usize;
    assert!(stored >= archived, "{stored} stored, {archived} archived");

    let (out, err) = fetch(&config);
    let [messages, imported, duplicates, moved] = pass_figures(&out);
    // at most the one message in flight at the kill is seen again
    assert!(duplicates <= 1, "{out}{err}");
    assert_eq!(stored + imported, N, "{out}{err}");
    assert_eq!(moved, messages, "{out}{err}");
    assert_eq!(rows(dir.path(), "dmarc_reports") as usize, N);
    assert_eq!(dovecot.count("Archive/DMARC"), N);
    assert_eq!(dovecot.count("INBOX"), 0);
}

/// A server without MOVE, UIDPLUS or IDLE: messages are moved by COPY,
/// a \\Deleted flag and EXPUNGE.
#[test]
fn fetch_moves_without_the_move_extension() {
    let dovecot = start_dovecot_with("imap_capability = IMAP4rev1 LITERAL+ NAMESPACE");
    dovecot.deliver(0, &numbered_report(0));
    dovecot.deliver(1, b"From: a@b.test\nSubject: hello\n\nNot a report.\n");
    dovecot.deliver(2, &numbered_report(2));
    let dir = tempfile::tempdir().unwrap();
    let config = dovecot.config(dir.path(), "starttls", "");
    let (out, err) = fetch(&config);
    assert!(
        out.contains("3 messages: 2 reports imported, 0 already stored; 2 archived, 1 invalid"),
        "{out}{err}"
    );
    assert!(
        err.contains("no MOVE: messages are moved by COPY and EXPUNGE"),
        "{err}"
    );
    assert_eq!(rows(dir.path(), "dmarc_reports"), 2);
    assert_eq!(dovecot.count("INBOX"), 0);
    assert_eq!(dovecot.count("Archive/DMARC"), 2);
    assert_eq!(dovecot.count("Invalid"), 1);
}

/// `parapet serve` waits in IDLE and imports a report delivered while it
/// watches, long before its hour-long poll interval.
#[test]
fn serve_picks_up_a_report_through_idle() {
    let dovecot = start_dovecot();
    let dir = tempfile::tempdir().unwrap();
    let config = dovecot.config(dir.path(), "implicit", "poll_interval_secs = 3600");
    let serve = start_serve(dir.path(), &config);
    wait_for("the watcher to enter IDLE", || {
        serve.log().contains("watching INBOX (IDLE)")
    });
    // IDLE is entered just after that line: a message delivered now is
    // either seen by the pass or announced by the server in IDLE
    std::thread::sleep(Duration::from_millis(300));
    dovecot.deliver(1, &numbered_report(1));
    wait_for("the report to be archived", || {
        dovecot.count("Archive/DMARC") == 1
    });
    assert_eq!(rows(dir.path(), "dmarc_reports"), 1);
    assert!(!serve.log().contains(PASSWORD));
    let _ = std::io::stderr().flush();
}

/// Without IDLE, `parapet serve` polls: a report delivered while it
/// watches is imported on the next poll, and a message over
/// `max_message_mb` goes to Invalid unread, the watcher carrying on.
#[test]
fn serve_polls_without_idle_and_skips_oversize_messages() {
    let dovecot = start_dovecot_with("imap_capability = IMAP4rev1 LITERAL+ UIDPLUS MOVE");
    let dir = tempfile::tempdir().unwrap();
    let config = dovecot.config(
        dir.path(),
        "starttls",
        "poll_interval_secs = 1\nmax_message_mb = 1",
    );
    let serve = start_serve(dir.path(), &config);
    wait_for("the watcher to poll", || {
        serve.log().contains("watching INBOX (polling)")
    });
    let mut big = b"From: a@b.test\nSubject: big\n\n".to_vec();
    for _ in 0..30_000 {
        big.extend_from_slice(
            b"0123456789012345678901234567890123456789012345678901234567890123\n",
        );
    }
    dovecot.deliver(1, &big);
    dovecot.deliver(2, &numbered_report(2));
    wait_for("the report to be archived", || {
        dovecot.count("Archive/DMARC") == 1
    });
    wait_for("the big message to be set aside", || {
        dovecot.count("Invalid") == 1
    });
    assert_eq!(rows(dir.path(), "dmarc_reports"), 1);
    assert!(
        serve.log().contains("more than the 1 MB a message may be"),
        "{}",
        serve.log()
    );
}

/// `parapet serve` on `config` (its `[dns]` and `[web]` on free ports),
/// logging to `serve.log` in `dir`.
fn start_serve(dir: &Path, config: &Path) -> Serve {
    let (dns, web) = (free_port(), free_port());
    let text = std::fs::read_to_string(config).unwrap();
    let path = dir.join("serve.toml");
    std::fs::write(
        &path,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:{dns}\"]\nupstreams = [\"127.0.0.1:9\"]\n\
             [web]\nlisten = \"127.0.0.1:{web}\"\n{text}"
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    Serve(
        parapet(&path, &["serve"])
            .env("PARAPET_PSEUDONYM_KEY", "test-key-0123456789")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    )
}

/// Two `parapet serve` nodes on one PostgreSQL watch the same mailbox:
/// the node holding the lease `dmarc-mailbox:rua` fetches, the other
/// stands aside, and each report is stored once.
#[test]
fn one_node_watches_under_a_lease() {
    let url = parapet_store::pgtest::fresh_database();
    let dovecot = start_dovecot();
    for n in 0..10 {
        dovecot.deliver(n, &numbered_report(n));
    }
    let nodes: Vec<(tempfile::TempDir, Serve)> = ["node-a", "node-b"]
        .iter()
        .map(|name| {
            let dir = tempfile::tempdir().unwrap();
            let config = dovecot.config(dir.path(), "implicit", "");
            let text = std::fs::read_to_string(&config).unwrap().replace(
                "[store]\npath = \"data\"\n",
                &format!("[node]\nname = \"{name}\"\n[store]\npath = \"data\"\nurl = \"{url}\"\n"),
            );
            std::fs::write(&config, text).unwrap();
            let serve = start_serve(dir.path(), &config);
            (dir, serve)
        })
        .collect();
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    wait_for("the reports to be archived", || {
        dovecot.count("Archive/DMARC") == 10
    });
    let holder: String = db
        .query_one(
            "SELECT holder FROM leases WHERE job = 'dmarc-mailbox:rua'",
            &[],
        )
        .unwrap()
        .get(0);
    let (watcher, other) = if holder == "node-a" {
        (&nodes[0].1, &nodes[1].1)
    } else {
        (&nodes[1].1, &nodes[0].1)
    };
    wait_for("the other node to stand aside", || {
        other.log().contains("another node holds the mailbox lease")
    });
    // logged once the first pass has returned, which can be just after
    // its last message was archived
    wait_for("the lease holder to watch with IDLE", || {
        watcher.log().contains("watching INBOX (IDLE)")
    });
    assert!(!other.log().contains("watching INBOX"), "{}", other.log());
    let stored: i64 = db
        .query_one("SELECT COUNT(*) FROM dmarc_reports", &[])
        .unwrap()
        .get(0);
    assert_eq!(stored, 10);
}

/// `parapet serve`, killed when the test ends (its log shown on failure).
struct Serve(Child, PathBuf);

impl Serve {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!("--- parapet log ---\n{}", self.log());
        }
    }
}
