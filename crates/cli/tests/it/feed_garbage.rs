//! Feeds of garbage: a file that is one enormous line, or binary noise,
//! fails fast with a short error, in bounded memory, and what is logged or
//! stored in an alert quotes at most a short, escaped piece of it.

use std::process::Command;

use crate::harness::{Parapet, shared_nsd, wait_for};

#[test]
fn a_100_mb_single_line_feed_fails_with_a_short_error() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    // sparse: 100 MB of NUL bytes and no line end, as `truncate -s 100M`
    std::fs::File::create(&big)
        .unwrap()
        .set_len(100 << 20)
        .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["feeds", "check", "--format", "domains"])
        .arg(&big)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let out = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
    assert!(out.len() < 1000, "{} bytes of output", out.len());
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("big.txt:1: line: longer than 4096 bytes"),
        "{text}"
    );
}

#[test]
fn binary_noise_in_a_feed_is_reported_escaped_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let noise = dir.path().join("noise.rpz");
    let mut data = Vec::new();
    for i in 0..300_000u32 {
        data.push((i.wrapping_mul(2_654_435_761) >> 13) as u8);
    }
    std::fs::write(&noise, &data).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["feeds", "check", "--format", "rpz"])
        .arg(&noise)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let text = String::from_utf8(o.stderr).expect("errors are valid UTF-8");
    assert!(text.contains("noise.rpz:"), "{text}");
    for line in text.lines() {
        assert!(line.len() < 300, "a long line: {line}");
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    }
}

#[test]
fn a_watched_feed_that_becomes_one_huge_line_alerts_with_short_evidence() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"live\"\npath = \"live.txt\"\nformat = \"domains\"\n",
        &[("live.txt", "listed.zone.test\n")],
    );
    let mut huge = b"x".repeat(8 << 20);
    huge.extend_from_slice(b"\x1b[2J\n");
    std::fs::write(p.path("live.txt"), &huge).unwrap();
    let db = rusqlite::Connection::open(p.path("parapet-data/parapet.sqlite")).unwrap();
    let mut evidence = String::new();
    wait_for("the feed.load_failed alert", || {
        db.query_row(
            "SELECT evidence FROM alerts WHERE rule = 'feed.load_failed' AND domain = 'live'",
            [],
            |r| r.get::<_, String>(0),
        )
        .map(|e| evidence = e)
        .is_ok()
    });
    assert!(evidence.len() < 400, "{} bytes of evidence", evidence.len());
    assert!(evidence.contains("live.txt:1"), "{evidence}");
    let log = p.log();
    assert!(log.len() < 100_000, "{} bytes of log", log.len());
}
