//! What an IXFR delta costs against a full compile: a million-trigger
//! RPZ-like feed (`name` and `*.name` pairs, or names alone), then
//! successive deltas, each removing some names and adding as many new ones:
//! drafted (`PolicySet::draft`, the copy, done while a transfer runs),
//! applied (`PolicyDraft::apply`) and put in force with
//! `Snapshot::with_policy` and `Resolver::swap`. Prints one line of `key=value` figures; run it
//! through `bench/dns/delta`, which fixes glibc's mmap threshold as
//! `parapet serve` does (without it freed tables stay in the heap).
//!
//! Usage: `feed_delta [pairs|names] [NAMES [DELTAS [NAMES_PER_DELTA]]]`:
//! a feed of `name` + `*.name` pairs (default: 500,000 of them, 100 deltas
//! of 250 pairs out and 250 in, so 1,000,000 triggers and 1,000 per delta),
//! or of names alone (`names 1000000 100 500`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parapet_core::name::text_to_key;
use parapet_core::policy::{
    Action, Decision, FeedDelta, FeedMode, FeedRules, FeedSpec, NameSet, PolicySet, Rule, Trigger,
};
use parapet_core::tenant::TenantMap;
use parapet_dns::{BlockMode, BlockResponse, Metrics, Resolver, Settings, Snapshot};

const TLDS: [&str; 8] = ["com", "net", "org", "xyz", "top", "info", "ru", "uk"];

/// A random-looking number for `id` (splitmix64).
fn mix(id: u64) -> u64 {
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The name of pair `id`: a label of 6 to 21 random-looking letters and
/// digits under one of a few TLDs, as in threat feeds.
fn name(id: u32) -> Vec<u8> {
    let z = mix(u64::from(id));
    let label: String = (0..6 + (z % 16) as u32)
        .map(|i| {
            let c = (mix(z ^ u64::from(i)) % 36) as u8;
            char::from(if c < 26 { b'a' + c } else { b'0' + c - 26 })
        })
        .collect();
    text_to_key(&format!("{label}{id}.{}", TLDS[id as usize % 8])).unwrap()
}

/// The triggers of name `id`: `name` and, in a feed of pairs, `*.name`.
fn push_pair(rules: &mut FeedRules, id: u32, pairs: bool) {
    let key = name(id);
    rules.push(&key, Trigger::Exact, Action::Block);
    if pairs {
        rules.push(&key, Trigger::Wildcard, Action::Block);
    }
}

fn feed(ids: &[u32], pairs: bool) -> FeedRules {
    let mut rules = FeedRules::new();
    for &id in ids {
        push_pair(&mut rules, id, pairs);
    }
    rules.shrink_to_fit();
    rules
}

fn compile(rules: &FeedRules) -> PolicySet {
    let spec = FeedSpec {
        id: 0,
        rules,
        mode: FeedMode::Block,
        tenants: None,
    };
    PolicySet::compile(NameSet::default(), &[spec], 1)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let arg = |i: usize, default: u32| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let pairs = std::env::args().nth(1).is_none_or(|a| a != "names");
    let (names, deltas, per_delta) = (arg(2, 500_000), arg(3, 100), arg(4, 250));
    let metrics = Arc::new(Metrics::default());
    let mut alive: Vec<u32> = (0..names).collect();
    let started = Instant::now();
    let policy = {
        let rules = feed(&alive, pairs);
        compile(&rules)
    };
    let compile_ms = ms(started.elapsed());
    // after a full compile, off the query path, where deltas are expected
    let started = Instant::now();
    policy.prepare_deltas();
    let prepare_ms = ms(started.elapsed());
    let snapshot = Snapshot::new(
        policy,
        TenantMap::default(),
        &["default".into()],
        &["feed".into()],
        BlockResponse {
            mode: BlockMode::Nxdomain,
            ttl: 60,
        },
        &metrics,
    );
    let resolver = Resolver::new(Settings::new(vec![], vec![]), snapshot, metrics, None);
    let heap_before = resolver.snapshot().policy.heap_bytes();
    let rss_before = rss_kib();

    // each delta: `per_delta` pairs picked at random leave, as many new
    // ones come
    let mut next = names;
    let (mut drafting, mut in_force, mut whole) = (Vec::new(), Vec::new(), Vec::new());
    let mut recompiles = 0;
    for d in 0..deltas {
        let mut delta = FeedDelta::default();
        for i in 0..per_delta {
            let at = mix(u64::from(d) << 32 | u64::from(i)) as usize % alive.len();
            push_pair(&mut delta.removed, alive.swap_remove(at), pairs);
        }
        for id in next..next + per_delta {
            push_pair(&mut delta.added, id, pairs);
            alive.push(id);
        }
        next += per_delta;
        // the transfer client drafts when the transfer starts, and applies
        // the delta when it ends
        let t0 = Instant::now();
        let old = resolver.snapshot();
        let draft = old.policy.draft(0, delta.added.len());
        let t1 = Instant::now();
        let Some(policy) = draft.apply(&delta) else {
            recompiles += 1;
            resolver.swap(old.with_policy(compile(&feed(&alive, pairs))));
            continue;
        };
        resolver.swap(old.with_policy(policy));
        let t2 = Instant::now();
        drafting.push(ms(t1 - t0));
        in_force.push(ms(t2 - t1));
        whole.push(ms(t2 - t0));
        // the replaced policy is freed by whoever holds it last, after it
        // left force: here, now
        drop(old);
    }
    let rss_after = rss_kib();
    let heap_after = resolver.snapshot().policy.heap_bytes();

    // the same feed compiled afresh decides every pair as the patched one
    let started = Instant::now();
    let fresh = compile(&feed(&alive, pairs));
    let recompile_ms = ms(started.elapsed());
    let patched = resolver.snapshot();
    let block = Decision::Enforce(Rule {
        feed: 0,
        action: Action::Block,
    });
    let mut live = vec![false; next as usize];
    for &id in &alive {
        live[id as usize] = true;
    }
    for id in (0..next).step_by(97) {
        let mut sub = text_to_key("www").unwrap();
        sub.extend_from_slice(&name(id));
        for (q, blocked) in [(name(id), true), (sub, pairs)] {
            let want = fresh.decide(0, &q);
            assert_eq!(patched.policy.decide(0, &q), want, "name {id}");
            assert_eq!(want == block, blocked && live[id as usize], "name {id}");
        }
    }

    let stat = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
        format!(
            "median={} p95={} max={}",
            f(at(0.5)),
            f(at(0.95)),
            f(at(1.0))
        )
    };
    println!(
        "feed={} triggers={} deltas={} triggers_per_delta={} recompiles={} compile_ms={compile_ms:.0} \
         recompile_ms={recompile_ms:.0} prepare_ms={prepare_ms:.0} draft_ms[{}] in_force_ms[{}] apply_delta_ms[{}] rss_before_mb={:.1} \
         rss_after_mb={:.1} rss_change_pct={:+.1} heap_before_mb={:.1} heap_after_mb={:.1}",
        if pairs { "pairs" } else { "names" },
        names * (1 + u32::from(pairs)),
        deltas,
        2 * per_delta * (1 + u32::from(pairs)),
        recompiles,
        stat(&mut drafting),
        stat(&mut in_force),
        stat(&mut whole),
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        (rss_after as f64 / rss_before as f64 - 1.0) * 100.0,
        heap_before as f64 / 1e6,
        heap_after as f64 / 1e6,
    );
}
