//! A real PostgreSQL server for tests: started once per test binary from
//! Debian's `postgresql` binaries (`/usr/lib/postgresql/*/bin`, installed by
//! scripts/test) in a temporary folder, on a free loopback port, and killed
//! when the test binary exits. Each test asks for its own fresh database, so
//! tests stay independent and run in parallel.
//!
//! Not used by Parapet itself; public so the CLI's integration tests share
//! one server with the same code.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A running server. The process is killed when the test binary exits:
/// it is started through `sh` reading our stdin, and the shell kills it as
/// soon as that pipe closes.
pub struct TestServer {
    pub port: u16,
    _child: Child,
    _dir: PathBuf,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestServer(127.0.0.1:{})", self.port)
    }
}

/// The folder holding `initdb` and `postgres`, the newest version first.
pub fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.pop()
}

/// A free TCP port on 127.0.0.1 for the server, from 2000–9999: below the
/// kernel's ephemeral range (an outgoing socket cannot take it between this
/// check and the server's bind) and below the ports the CLI test harness
/// hands out (10000 and up).
/// A port is handed out once per process, so a stopped [`OwnServer`]'s
/// port is not given to another server before it starts again.
fn free_port() -> u16 {
    static HANDED: AtomicU32 = AtomicU32::new(0);
    let start = 2000 + (std::process::id() % 8000) as u16;
    let skip = HANDED.load(Ordering::Relaxed) as u16;
    let port = (skip..8000u16)
        .map(|i| 2000 + (start - 2000 + i) % 8000)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        .expect("a free port below 10000");
    HANDED.store(
        u32::from((port + 8000 - start) % 8000) + 1,
        Ordering::Relaxed,
    );
    port
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// Runs `program args` as the `postgres` user when we are root (PostgreSQL
/// refuses to run as root), as ourselves otherwise.
fn command(program: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// A new cluster in a temporary folder: returns the binaries' folder, the
/// temporary folder, the data folder in it and whether we are root.
fn init() -> (PathBuf, PathBuf, PathBuf, bool) {
    let bin = bin_dir().expect(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/test, \
         or apt-get install postgresql",
    );
    let root = is_root();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("parapet-pg-{}-{nanos}", std::process::id()));
    let data = dir.join("data");
    std::fs::create_dir_all(&dir).expect("create the PostgreSQL temp folder");
    if root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown {} to postgres failed", dir.display());
    }
    let out = command(&bin.join("initdb"), root)
        .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        .arg("-D")
        .arg(&data)
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (bin, dir, data, root)
}

impl TestServer {
    fn start() -> Self {
        let (bin, dir, data, root) = init();
        let port = free_port();
        let postgres = bin.join("postgres");
        let runner = if root {
            "runuser -u postgres -- ".to_string()
        } else {
            String::new()
        };
        // tests need no durability; the benchmark asks for it (PARAPET_PG_DURABLE=1)
        let speed = if std::env::var_os("PARAPET_PG_DURABLE").is_some() {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let cmdline = format!(
            "{runner}'{}' -D '{}' -k '{}' -h 127.0.0.1 -p {port} {speed} \
             -c max_connections=200 & pid=$!; read _; kill $pid; wait $pid; rm -rf '{}'",
            postgres.display(),
            data.display(),
            dir.display(),
            dir.display(),
        );
        let log_path = dir.join("server.log");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new("sh")
            .arg("-c")
            .arg(cmdline)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && postgres::Client::connect(
                    &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
                    postgres::NoTls,
                )
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            _child: child,
            _dir: dir,
        }
    }

    /// The server of this test binary, started on first use.
    pub fn shared() -> &'static TestServer {
        static SERVER: OnceLock<TestServer> = OnceLock::new();
        SERVER.get_or_init(TestServer::start)
    }

    /// A new, empty database; returns its URL.
    pub fn fresh_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            postgres::NoTls,
        )
        .expect("connect to the test server");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self._child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self._child.wait();
    }
}

/// A fresh database on the shared test server.
pub fn fresh_database() -> String {
    TestServer::shared().fresh_database()
}

/// A server of one test's own that the test stops and starts again, its
/// data kept (an outage of the store). Started and stopped with `pg_ctl`;
/// a shell holding our stdin stops it and removes its folder when this is
/// dropped or the test binary exits.
pub struct OwnServer {
    pub port: u16,
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    root: bool,
    guard: Child,
}

impl std::fmt::Debug for OwnServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnServer(127.0.0.1:{})", self.port)
    }
}

impl OwnServer {
    /// Starts a new server with one database, `parapet`.
    pub fn start() -> Self {
        let (bin, dir, data, root) = init();
        let port = free_port();
        let pg_ctl = bin.join("pg_ctl");
        let runner = if root { "runuser -u postgres -- " } else { "" };
        let guard = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "read _; {runner}'{}' -D '{}' -m immediate -w stop; rm -rf '{}'",
                pg_ctl.display(),
                data.display(),
                dir.display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the server's guard");
        let mut server = Self {
            port,
            bin,
            dir,
            data,
            root,
            guard,
        };
        server.resume();
        let mut c = postgres::Client::connect(&server.admin_url(), postgres::NoTls)
            .expect("connect to the test server");
        c.batch_execute("CREATE DATABASE parapet")
            .expect("create the test database");
        server
    }

    fn admin_url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// The URL of its database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/parapet", self.port)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let status = command(&self.bin.join("pg_ctl"), self.root)
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl");
        assert!(
            status.success(),
            "pg_ctl {args:?} failed: {}",
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Starts the server again on the same port and data, and waits until
    /// it takes connections.
    pub fn resume(&mut self) {
        let options = format!(
            "-k '{}' -h 127.0.0.1 -p {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=50",
            self.dir.display(),
            self.port
        );
        let log = self.dir.join("server.log");
        self.pg_ctl(&[
            "-w",
            "-l",
            &log.display().to_string(),
            "-o",
            &options,
            "start",
        ]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&self.admin_url(), postgres::NoTls).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start again");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.guard.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.guard.wait();
    }
}
