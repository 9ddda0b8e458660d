//! The dashboard in a real browser: Debian's chromium, headless, driven
//! through chromedriver (WebDriver) by fantoccini. Logs in with the account
//! `serve --demo` creates, sees the overview, changes an alert's status and
//! downloads the committee report. Screenshots go to
//! `target/browser-screenshots/` as test artefacts.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::{Parapet, free_port};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_chromedriver() -> (Driver, u16) {
    assert!(
        Path::new(CHROMEDRIVER).exists(),
        "{CHROMEDRIVER} missing: apt-get install chromium chromium-driver (./scripts/test does)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (driver, port)
}

fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// The password `serve` printed for the first account.
fn admin_password(p: &Parapet) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = p.log();
        if let Some(rest) = log.split("user `admin`, password `").nth(1) {
            return rest.split('`').next().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no admin password in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The text of the element `css` selects, retried while the page is still
/// loading or being replaced (a stale element after a form post).
async fn text(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match attempt {
            Ok(t) => return t,
            Err(e) if Instant::now() >= deadline => panic!("{css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[test]
fn log_in_see_the_overview_change_an_alert_and_download_the_report() {
    let parapet = Parapet::start_demo();
    let password = admin_password(&parapet);
    let (_driver, port) = start_chromedriver();
    let downloads = tempfile::tempdir().unwrap();
    let base = format!("http://{}", parapet.web);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-dev-shm-usage",
                         "--window-size=1280,1024"],
                "prefs": {
                    "download.default_directory": downloads.path(),
                    "download.prompt_for_download": false,
                },
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session with chromium");

        // log in
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(c.current_url().await.unwrap().path(), "/login");
        c.find(Locator::Id("username"))
            .await
            .unwrap()
            .send_keys("admin")
            .await
            .unwrap();
        c.find(Locator::Id("password"))
            .await
            .unwrap()
            .send_keys(&password)
            .await
            .unwrap();
        shot(&c, "1-login").await;
        c.find(Locator::Id("login-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // the overview shows the demo's traffic
        let queries: u64 = text(&c, "#queries").await.parse().unwrap();
        let blocked: u64 = text(&c, "#blocked").await.parse().unwrap();
        assert!(
            queries > blocked && blocked > 0,
            "queries {queries}, blocked {blocked}"
        );
        assert!(
            text(&c, "#top-blocked")
                .await
                .contains("malware.testing.google.test")
        );
        assert!(
            c.find(Locator::Css("svg.chart polyline")).await.is_ok(),
            "traffic chart"
        );
        shot(&c, "2-overview").await;

        // an alert: new → investigating with a note
        c.goto(&format!("{base}/alerts?status=new")).await.unwrap();
        let link = c.find(Locator::Css("#alerts td a")).await.unwrap();
        let href = link.attr("href").await.unwrap().unwrap();
        link.click().await.unwrap();
        assert_eq!(text(&c, "#status").await, "new");
        c.find(Locator::Css("#new-status option[value=investigating]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Id("note"))
            .await
            .unwrap()
            .send_keys("looking into it")
            .await
            .unwrap();
        c.find(Locator::Id("status-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // the form posts and redirects back to the alert
        let deadline = Instant::now() + Duration::from_secs(10);
        while text(&c, "#history").await.contains("No changes yet") {
            assert!(Instant::now() < deadline, "the status change did not land");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(c.current_url().await.unwrap().path(), href);
        assert_eq!(text(&c, "#status").await, "investigating");
        assert!(text(&c, "#history").await.contains("looking into it"));
        shot(&c, "3-alert").await;

        // mail posture and KPIs
        c.goto(&format!("{base}/mail")).await.unwrap();
        assert!(text(&c, "#mail").await.contains("northshire.test"));
        shot(&c, "4-mail").await;
        c.goto(&format!("{base}/assurance")).await.unwrap();
        assert_eq!(
            c.find_all(Locator::Css(
                "#kpis tr.rag-red, #kpis tr.rag-amber, #kpis tr.rag-green, #kpis tr.rag-no_data"
            ))
            .await
            .unwrap()
            .len(),
            5
        );
        shot(&c, "5-assurance").await;

        // download the public report
        c.find(Locator::LinkText("public-report.html"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let want = downloads.path().join("north-2021-22-Q2-public-report.html");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !want.exists() {
            assert!(
                Instant::now() < deadline,
                "no download; folder has {:?}",
                std::fs::read_dir(downloads.path())
                    .unwrap()
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let html = std::fs::read_to_string(&want).unwrap();
        assert!(html.contains("<html") && html.contains("2021-22"), "{html}");
        assert!(
            html.contains("Northshire Council"),
            "the demo council's name"
        );
        c.close().await.unwrap();
    });
}
