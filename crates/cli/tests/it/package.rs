//! The Debian package (scripts/deb) and its systemd unit: built from the
//! binary these tests run, listed, extracted and run from the extracted
//! tree, its control files read, the unit checked by systemd-analyze.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::repo_root;

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `scripts/deb` on the test build (debug: CI builds no release binary).
fn build_package(out: &Path) -> PathBuf {
    let built = run(Command::new(repo_root().join("scripts/deb"))
        .arg(env!("CARGO_BIN_EXE_parapet"))
        .arg(out)
        .env("PARAPET_DEB_COMPRESSION", "none"));
    let deb = PathBuf::from(String::from_utf8(built.stdout).unwrap().trim());
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        deb.file_name().unwrap().to_str().unwrap(),
        format!("parapet_{version}_amd64.deb")
    );
    deb
}

/// `dpkg-deb -c`: each path (without the leading `.`) and its mode string.
fn listing(deb: &Path) -> BTreeMap<String, String> {
    let out = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let path = fields.last().unwrap().trim_start_matches('.');
            assert_eq!(fields[1], "root/root", "{l}: not owned by root");
            (
                path.trim_end_matches('/').to_string(),
                fields[0].to_string(),
            )
        })
        .collect()
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn the_debian_package_installs_a_working_service() {
    let dir = tempfile::tempdir().unwrap();
    let deb = build_package(dir.path());

    let files = listing(&deb);
    for (path, mode) in [
        ("/usr/bin/parapet", "-rwxr-xr-x"),
        ("/etc/parapet/parapet.toml", "-rw-r--r--"),
        ("/etc/parapet/feeds/example.rpz", "-rw-r--r--"),
        ("/usr/lib/systemd/system/parapet.service", "-rw-r--r--"),
        ("/usr/share/man/man1/parapet.1.gz", "-rw-r--r--"),
        ("/usr/share/man/man1/parapet-serve.1.gz", "-rw-r--r--"),
        (
            "/usr/share/bash-completion/completions/parapet",
            "-rw-r--r--",
        ),
        ("/usr/share/zsh/vendor-completions/_parapet", "-rw-r--r--"),
        (
            "/usr/share/fish/vendor_completions.d/parapet.fish",
            "-rw-r--r--",
        ),
        ("/usr/share/doc/parapet/copyright", "-rw-r--r--"),
    ] {
        assert_eq!(
            files.get(path).map(String::as_str),
            Some(mode),
            "{path} in {files:#?}"
        );
    }
    // the hidden packaging command has no page of its own
    assert!(!files.contains_key("/usr/share/man/man1/parapet-generate.1.gz"));

    // the extracted tree: the binary runs and accepts the packaged config
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
    let bin = root.join("usr/bin/parapet");
    let version = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("parapet {}", env!("CARGO_PKG_VERSION"))
    );
    let config = root.join("etc/parapet/parapet.toml");
    run(Command::new(&bin).arg("config").arg("check").arg(&config));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("path = \"/var/lib/parapet\"")),
        "the packaged store path:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("upstreams")),
        "the packaged config forwards to /etc/resolv.conf's nameservers:\n{text}"
    );

    // man pages and completions, generated from the binary's own clap
    let man = gunzip(&root.join("usr/share/man/man1/parapet.1.gz"));
    assert!(
        man.lines()
            .any(|l| l.starts_with(".TH parapet 1") && l.contains(env!("CARGO_PKG_VERSION"))),
        "{man}"
    );
    assert!(man.contains("serve"), "{man}");
    let serve = gunzip(&root.join("usr/share/man/man1/parapet-serve.1.gz"));
    assert!(serve.contains("\\-\\-config"), "{serve}");
    for (file, needle) in [
        (
            "usr/share/bash-completion/completions/parapet",
            "complete -F",
        ),
        (
            "usr/share/zsh/vendor-completions/_parapet",
            "#compdef parapet",
        ),
        (
            "usr/share/fish/vendor_completions.d/parapet.fish",
            "complete -c parapet",
        ),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(text.contains(needle), "{file}: no {needle:?}");
        assert!(text.contains("mailcheck"), "{file} completes no commands");
    }

    // control files: conffiles, the user and the data folder
    let control = dir.path().join("control");
    run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control));
    let read = |name: &str| std::fs::read_to_string(control.join(name)).unwrap();
    let conffiles = read("conffiles");
    assert!(
        conffiles.lines().any(|l| l == "/etc/parapet/parapet.toml"),
        "{conffiles}"
    );
    let fields = read("control");
    assert!(
        fields.contains(&format!("Version: {}\n", env!("CARGO_PKG_VERSION"))),
        "{fields}"
    );
    assert!(fields.contains("Depends: libc6 (>= 2."), "{fields}");
    let postinst = read("postinst");
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        postinst.contains("install -d -m 0700 -o parapet -g parapet /var/lib/parapet"),
        "{postinst}"
    );
    assert!(read("prerm").contains("systemctl stop parapet.service"));
    let postrm = read("postrm");
    let purge = postrm.split("purge)").nth(1).expect("a purge branch");
    assert!(purge.contains("rm -rf /var/lib/parapet"), "{postrm}");
    let remove = postrm.split("remove)").nth(1).unwrap();
    assert!(
        !remove
            .split(";;")
            .next()
            .unwrap()
            .contains("/var/lib/parapet"),
        "remove keeps the data: {postrm}"
    );
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control.join(script)));
    }

    // the unit as installed, but started from the extracted binary:
    // verify checks that ExecStart exists, and `--root` would also move
    // the targets the unit names (and `kill`) out of its sight
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/parapet.service")).unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/bin/parapet serve --config /etc/parapet/parapet.toml\n")
    );
    let unit = unit.replace(
        "\nExecStart=/usr/bin/parapet ",
        &format!("\nExecStart={} ", bin.display()),
    );
    let checked = dir.path().join("verify/parapet.service");
    std::fs::create_dir_all(checked.parent().unwrap()).unwrap();
    std::fs::write(&checked, unit).unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&checked)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr).to_string()
        + &String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

/// `systemd-analyze security --offline=yes`: the unit's exposure, on
/// systemd's 0-10 scale, is below 3 ("OK").
#[test]
fn the_unit_is_hardened() {
    let unit = repo_root().join("packaging/parapet.service");
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit));
    let text = String::from_utf8_lossy(&out.stdout);
    let figure = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for parapet.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("no overall exposure in:\n{text}"));
    let exposure: f64 = figure.split_whitespace().next().unwrap().parse().unwrap();
    assert!(exposure < 3.0, "exposure {exposure}:\n{text}");

    let unit = std::fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "WatchdogSec=30",
        "Restart=on-failure",
        "ExecReload=kill -HUP $MAINPID",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "ReadWritePaths=/var/lib/parapet",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.lines().any(|l| l == line), "no {line}");
    }
}
