//! What a million-name policy zone costs on the zone-transfer path: the
//! zone's memory, a full load (render + parse), and a 1,000-name IXFR
//! (delta through the parser, applied to the feed's rules).
//! `cargo run --release -p parapet-feeds --example xfr_scale [NAMES]`

use std::time::Instant;

use parapet_core::name::text_to_key;
use parapet_feeds::xfr::delta;
use parapet_feeds::xfr::zone::{Soa, Zone, render_rrset, render_soa};

fn soa(serial: u32) -> Soa {
    let mut rdata = b"\x02ns\x00\x00".to_vec();
    for n in [serial, 3600, 600, 86400, 60] {
        rdata.extend_from_slice(&n.to_be_bytes());
    }
    Soa { ttl: 60, rdata }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let apex = text_to_key("rpz.vendor.example").unwrap();
    let name = |i: usize| {
        text_to_key(&format!(
            "host{i}.bad-domain-{}.example.rpz.vendor.example",
            i % 9973
        ))
        .unwrap()
    };
    let t = Instant::now();
    let mut zone = Zone::new(&apex, soa(1));
    for i in 0..n {
        zone.push(&name(i), 5, 300, b"\x00").unwrap();
    }
    zone.shrink_to_fit();
    println!(
        "zone of {n} names built in {} ms; {} bytes a name (arena + index)",
        t.elapsed().as_millis(),
        zone.heap_bytes() / n.max(1)
    );

    let t = Instant::now();
    let mut text = Vec::new();
    zone.render(&mut text);
    let (rules, _) = delta::rules_of(&text, "scale").unwrap();
    println!(
        "full load (render {} MB + parse): {} ms, {} rules",
        text.len() >> 20,
        t.elapsed().as_millis(),
        rules.len()
    );

    // an IXFR: 500 names out, 500 in
    let t = Instant::now();
    let owners: Vec<Vec<u8>> = (0..500).map(name).chain((n..n + 500).map(name)).collect();
    let mut before = Vec::new();
    render_soa(&mut before, &zone);
    for o in &owners {
        if let Some(r) = zone.rrset(o) {
            render_rrset(&mut before, o, r);
        }
    }
    for i in 0..500 {
        zone.remove(&name(i), 5, b"\x00").unwrap();
        zone.add(&name(n + i), 5, 300, b"\x00").unwrap();
    }
    zone.soa = soa(2);
    let mut after = Vec::new();
    render_soa(&mut after, &zone);
    for o in &owners {
        if let Some(r) = zone.rrset(o) {
            render_rrset(&mut after, o, r);
        }
    }
    let d = delta::diff(
        &delta::rules_of(&before, "b").unwrap().0,
        &delta::rules_of(&after, "a").unwrap().0,
    );
    let delta_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let new_rules = delta::apply(&rules, &d);
    println!(
        "1,000-name IXFR: delta ({} added, {} removed) in {delta_ms:.1} ms; applied to the feed's rules in {} ms ({} rules)",
        d.added.len(),
        d.removed.len(),
        t.elapsed().as_millis(),
        new_rules.len()
    );
}
