//! The dashboard in a real browser: Debian's chromium, headless, driven
//! through chromedriver (WebDriver) by fantoccini. Logs in with the account
//! `serve --demo` creates, sees the overview, changes an alert's status and
//! downloads the committee report; logs in and changes a status with the
//! keyboard alone, the focus visible at each step; and runs axe-core on
//! every page as a supplier admin and as a council. Screenshots go to
//! `target/screenshots/` as test artefacts.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
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

/// A WebDriver session with headless chromium, downloading into
/// `downloads`.
async fn session(port: u16, downloads: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-background-networking", "--disable-dev-shm-usage",
                     "--window-size=1280,2000"],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session with chromium")
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
        let c = session(port, downloads.path()).await;

        // log in
        c.goto(&format!("{base}/")).await.unwrap();
        assert_eq!(c.current_url().await.unwrap().path(), "/login");
        type_into(&c, "username", "admin").await;
        type_into(&c, "password", &password).await;
        shot(&c, "1-login").await;
        click(&c, Locator::Id("login-button")).await;

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
        assert_eq!(text(&c, "#status").await, "New");
        click(&c, Locator::Css("#new-status option[value=investigating]")).await;
        type_into(&c, "note", "looking into it").await;
        click(&c, Locator::Id("status-button")).await;
        // the form posts and redirects back to the alert
        let deadline = Instant::now() + Duration::from_secs(10);
        while text(&c, "#history").await.contains("No changes yet") {
            assert!(Instant::now() < deadline, "the status change did not land");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(c.current_url().await.unwrap().path(), href);
        assert_eq!(text(&c, "#status").await, "Investigating");
        assert!(text(&c, "#history").await.contains("looking into it"));
        shot(&c, "3-alert").await;

        // the workbench: guidance, the client behind the alert with its
        // timeline link, the reveal command, and the two actions
        assert!(text(&c, "#guidance").await.contains("Next:"));
        let timeline = c
            .find(Locator::Css("#pseudonyms a.timeline"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        let pseudonym = text(&c, "#pseudonyms code").await;
        assert!(
            timeline.starts_with("/queries?tenant=")
                && timeline.contains(&format!("pseudonym={pseudonym}"))
                && timeline.contains("since="),
            "{timeline}"
        );
        assert!(
            text(&c, "#reveal-command")
                .await
                .contains("investigate reveal --alert")
        );
        c.find(Locator::Id("allow-button")).await.unwrap();
        click(&c, Locator::Id("promote-button")).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !text(&c, "#history").await.contains("promoted to incident")
            && c.find(Locator::Id("incident")).await.is_err()
        {
            assert!(Instant::now() < deadline, "the promotion did not land");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(text(&c, "#incident").await.contains("ALERT-"));
        shot(&c, "3b-alert-workbench").await;

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
        let want = downloads.path().join(format!(
            "north-{}-public-report.html",
            crate::harness::demo_quarter()
        ));
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
        assert!(
            html.contains("<html") && html.contains(&crate::harness::demo_quarter()),
            "{html}"
        );
        assert!(
            html.contains("Northshire Council"),
            "the demo council's name"
        );
        c.close().await.unwrap();
    });
}

/// axe-core, vendored with its licence (see `axe/README.md`).
const AXE: &str = include_str!("axe/axe.min.js");

/// The WCAG 2.2 AA rule sets (axe tags) a page must pass.
const WCAG_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/// Runs axe on the page `c` shows and returns its serious and critical
/// violations, one line each (rule, impact, help, the first elements).
async fn axe_violations(c: &Client) -> Vec<String> {
    // not subject to the page's CSP (script-src 'none'): WebDriver runs it
    c.execute(AXE, vec![]).await.expect("inject axe");
    let r = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: arguments[0]}})
                .then(r => done({passes: r.passes.length, violations: r.violations.map(v => ({
                     id: v.id, impact: v.impact, help: v.help,
                     nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))}))
                .catch(e => done({passes: 0, violations: [{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]}));",
            vec![serde_json::json!(WCAG_TAGS)],
        )
        .await
        .expect("run axe");
    // a run that checked nothing would pass anything
    assert!(
        r["passes"].as_u64().unwrap_or(0) > 0,
        "axe checked nothing: {r}"
    );
    r["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .map(|v| {
            format!(
                "{} ({}): {} at {}",
                v["id"], v["impact"], v["help"], v["nodes"]
            )
        })
        .collect()
}

/// Visits `path`, saves a screenshot as `NAME.png` and returns axe's
/// serious and critical violations, each prefixed with who saw which page.
async fn audit_page(c: &Client, base: &str, path: &str, name: &str) -> Vec<String> {
    c.goto(&format!("{base}{path}")).await.unwrap();
    c.wait()
        .for_element(Locator::Css("main h1"))
        .await
        .unwrap_or_else(|e| panic!("{path}: no heading: {e}"));
    shot(c, name).await;
    axe_violations(c)
        .await
        .into_iter()
        .map(|v| format!("{name} {path}: {v}"))
        .collect()
}

/// Types `text` into the field with id `id`.
async fn type_into(c: &Client, id: &str, text: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .send_keys(text)
        .await
        .unwrap();
}

/// Clicks the element `at`.
async fn click(c: &Client, at: Locator<'_>) {
    c.find(at).await.unwrap().click().await.unwrap();
}

/// Presses one key (a character or a [`Key`]) on whatever has the focus.
async fn press(c: &Client, key: impl Into<char>) {
    let k = key.into();
    let a = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: k })
        .then(KeyAction::Up { value: k });
    c.perform_actions(a).await.unwrap();
}

/// Types `s` into whatever has the focus, key by key.
async fn type_keys(c: &Client, s: &str) {
    for ch in s.chars() {
        press(c, ch).await;
    }
}

/// Presses Tab until the element `id` has the focus (at most 25 times),
/// then checks that the focus is visible: an outline that is drawn, or a
/// box shadow (the GOV.UK focus state).
async fn tab_to(c: &Client, id: &str) {
    for _ in 0..25 {
        press(c, Key::Tab).await;
        let focus = c
            .execute(
                "const e = document.activeElement; const s = getComputedStyle(e);
                 const outline = s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0
                     && s.outlineColor !== 'transparent' && s.outlineColor !== 'rgba(0, 0, 0, 0)';
                 return {id: e.id, outline: outline, shadow: s.boxShadow};",
                vec![],
            )
            .await
            .unwrap();
        if focus["id"] == id {
            assert!(
                focus["outline"] == true || focus["shadow"] != "none",
                "#{id} has the focus but it is not visible: {focus}"
            );
            return;
        }
    }
    panic!("#{id} never got the focus by Tab");
}

#[test]
fn every_page_passes_axe_and_works_by_keyboard_for_admin_and_council() {
    let parapet = Parapet::start_demo();
    let password = admin_password(&parapet);
    // a council account, added as an operator would, beside the server
    let add = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args([
            "users", "add", "clare", "--role", "council", "--tenant", "north",
        ])
        .env("PARAPET_CONFIG", &parapet.config)
        .env("PARAPET_PASSWORD", "clare-long-password")
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let (_driver, port) = start_chromedriver();
    let downloads = tempfile::tempdir().unwrap();
    let base = format!("http://{}", parapet.web);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = session(port, downloads.path()).await;
        let mut violations = Vec::new();

        // a wrong password first: the error summary must pass too
        c.goto(&format!("{base}/login")).await.unwrap();
        tab_to(&c, "username").await;
        type_keys(&c, "admin").await;
        tab_to(&c, "password").await;
        type_keys(&c, "not-the-password").await;
        press(&c, Key::Enter).await;
        c.wait()
            .for_element(Locator::Id("login-error"))
            .await
            .unwrap();
        shot(&c, "anon-login-error").await;
        violations.extend(
            axe_violations(&c)
                .await
                .into_iter()
                .map(|v| format!("login error: {v}")),
        );

        // keyboard only: log in, then change an alert's status
        c.goto(&format!("{base}/login")).await.unwrap();
        tab_to(&c, "username").await;
        type_keys(&c, "admin").await;
        tab_to(&c, "password").await;
        type_keys(&c, &password).await;
        tab_to(&c, "login-button").await;
        press(&c, Key::Enter).await;
        c.wait()
            .for_element(Locator::Id("attention"))
            .await
            .unwrap();
        c.goto(&format!("{base}/alerts?status=new&tenant=north"))
            .await
            .unwrap();
        let href = c
            .find(Locator::Css("#alerts tbody td a"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        c.goto(&format!("{base}{href}")).await.unwrap();
        tab_to(&c, "new-status").await;
        // typing selects the option that starts with it
        press(&c, 'r').await;
        tab_to(&c, "note").await;
        type_keys(&c, "fixed by keyboard").await;
        tab_to(&c, "status-button").await;
        shot(&c, "admin-keyboard-focus").await;
        press(&c, Key::Enter).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !text(&c, "#history").await.contains("fixed by keyboard") {
            assert!(
                Instant::now() < deadline,
                "the keyboard status change did not land"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(text(&c, "#status").await, "Resolved");

        let pages = [
            ("/", "overview"),
            ("/alerts", "alerts"),
            (href.as_str(), "alert"),
            ("/mail", "mail"),
            ("/mail/northshire.test", "mail-domain"),
            ("/assurance", "assurance"),
            ("/tenants", "tenants"),
            ("/privacy", "privacy"),
            ("/audit", "audit"),
            ("/no-such-page", "not-found"),
        ];
        for (path, name) in pages {
            violations.extend(audit_page(&c, &base, path, &format!("admin-{name}")).await);
        }
        violations.extend(audit_page(&c, &base, "/accounts", "admin-accounts").await);
        // the create form sent empty: the GOV.UK error summary, checked too
        click(&c, Locator::Id("create-button")).await;
        let summary = c
            .wait()
            .for_element(Locator::Id("error-summary"))
            .await
            .expect("error summary");
        assert!(
            summary.text().await.unwrap().contains("Enter a name"),
            "the summary names the problem"
        );
        shot(&c, "admin-accounts-error").await;
        violations.extend(
            axe_violations(&c)
                .await
                .into_iter()
                .map(|v| format!("admin-accounts-error: {v}")),
        );
        click(&c, Locator::Css(".parapet-logout button")).await;
        c.wait().for_element(Locator::Id("login")).await.unwrap();

        // the council sees its own pages, and a 403 for the accounts page
        type_into(&c, "username", "clare").await;
        type_into(&c, "password", "clare-long-password").await;
        click(&c, Locator::Id("login-button")).await;
        c.wait()
            .for_element(Locator::Id("attention"))
            .await
            .unwrap();
        for (path, name) in pages {
            violations.extend(audit_page(&c, &base, path, &format!("council-{name}")).await);
        }
        violations.extend(audit_page(&c, &base, "/accounts", "council-forbidden").await);
        assert!(text(&c, "main").await.contains("You cannot see this page"));
        c.close().await.unwrap();
        assert!(
            violations.is_empty(),
            "axe found:\n{}",
            violations.join("\n")
        );
    });
}
