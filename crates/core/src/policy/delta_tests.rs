//! `PolicySet::apply_delta` against a compile of the feeds after the change.

use super::testkit::{k, rules, shared};
use super::*;
use proptest::prelude::*;

fn enforce(feed: FeedId, action: Action) -> Decision {
    Decision::Enforce(Rule { feed, action })
}

/// A decision with its local data read out, so that two sets that number
/// their local data differently compare equal.
fn resolved(p: &PolicySet, d: Decision) -> (Decision, Vec<LocalRecord>) {
    match d {
        Decision::Enforce(Rule {
            feed,
            action: Action::Local(i),
        }) => (enforce(feed, Action::Local(0)), p.local_data(i).to_vec()),
        d => (d, Vec::new()),
    }
}

/// The feed `before` with `delta` applied as the zone transfer means it:
/// removals, then additions replacing the rule at the same (name, trigger).
fn apply_to_rules(before: &FeedRules, delta: &FeedDelta) -> FeedRules {
    // name, trigger, local data, action
    type Kept = (Vec<u8>, Trigger, Option<Vec<LocalRecord>>, Action);
    let mut kept: Vec<Kept> = Vec::new();
    let local_of = |f: &FeedRules, a: Action| match a {
        Action::Local(i) => Some(f.local[i as usize].clone()),
        _ => None,
    };
    for (n, t, a) in before.iter() {
        if !delta.removed.iter().any(|(rn, rt, _)| rn == n && rt == t) {
            kept.push((n.to_vec(), t, local_of(before, a), a));
        }
    }
    for (n, t, a) in delta.added.iter() {
        let new = (n.to_vec(), t, local_of(&delta.added, a), a);
        match kept.iter_mut().find(|(kn, kt, _, _)| kn == n && *kt == t) {
            Some(old) => *old = new,
            None => kept.push(new),
        }
    }
    let mut after = FeedRules::new();
    for (n, t, local, a) in kept {
        let a = match local {
            Some(records) => after.push_local(records),
            None => a,
        };
        after.push(&n, t, a);
    }
    after
}

fn record(tag: u8, i: u8) -> Vec<LocalRecord> {
    vec![LocalRecord {
        rtype: rtype::A,
        ttl: 60,
        rdata: Box::new([10, tag, i, 1]),
    }]
}

#[test]
fn removing_the_winner_promotes_the_next_feed() {
    let f0 = rules(&[
        ("a.test", Trigger::Exact, Action::Nodata),
        ("w.test", Trigger::Wildcard, Action::Drop),
    ]);
    let f1 = rules(&[
        ("a.test", Trigger::Exact, Action::Block),
        ("w.test", Trigger::Wildcard, Action::Block),
    ]);
    let f2 = rules(&[("a.test", Trigger::Subtree, Action::Passthru)]);
    let p = PolicySet::compile(
        NameSet::default(),
        &[shared(0, &f0), shared(1, &f1), shared(2, &f2)],
        1,
    );
    let delta = FeedDelta {
        removed: rules(&[
            ("a.test", Trigger::Exact, Action::Block),
            ("w.test", Trigger::Wildcard, Action::Block),
        ]),
        added: FeedRules::new(),
    };
    let q = p.apply_delta(0, &delta).expect("patched");
    assert_eq!(q.decide(0, &k("a.test")), enforce(1, Action::Block));
    assert_eq!(q.decide(0, &k("x.w.test")), enforce(1, Action::Block));
    let q = q.apply_delta(1, &delta).expect("patched");
    assert_eq!(q.decide(0, &k("a.test")), Decision::Passthru(2));
    assert_eq!(q.decide(0, &k("x.w.test")), Decision::Resolve);
    assert_eq!(q.shared_len(), 1);
    // the old set is untouched
    assert_eq!(p.decide(0, &k("a.test")), enforce(0, Action::Nodata));
    // the subtree feed cannot take a delta
    assert!(p.apply_delta(2, &delta).is_none());
}

#[test]
fn wildcard_shadows_follow_the_delta() {
    let f = rules(&[("over.test", Trigger::Wildcard, Action::Block)]);
    let p = PolicySet::compile(NameSet::default(), &[shared(0, &f)], 1);
    let block = enforce(0, Action::Block);
    assert_eq!(p.decide(0, &k("deep.a.b.over.test")), block);
    let shadow = rules(&[("a.b.over.test", Trigger::Exact, Action::Passthru)]);
    let add = FeedDelta {
        removed: FeedRules::new(),
        added: shadow.clone(),
    };
    let q = p.apply_delta(0, &add).expect("patched");
    assert_eq!(q.decide(0, &k("deep.a.b.over.test")), Decision::Resolve);
    assert_eq!(q.decide(0, &k("0.b.over.test")), block);
    let remove = FeedDelta {
        removed: shadow,
        added: FeedRules::new(),
    };
    let r = q.apply_delta(0, &remove).expect("patched");
    assert_eq!(r.decide(0, &k("deep.a.b.over.test")), block);
    // the wildcard goes and comes back; its shadows are as the feed says
    let wild = rules(&[("over.test", Trigger::Wildcard, Action::Nodata)]);
    let gone = q
        .apply_delta(
            0,
            &FeedDelta {
                removed: wild.clone(),
                added: FeedRules::new(),
            },
        )
        .expect("patched");
    assert_eq!(gone.decide(0, &k("x.over.test")), Decision::Resolve);
    let back = FeedDelta {
        removed: FeedRules::new(),
        added: wild,
    };
    // the feed still has a.b.over.test below the new wildcard: compile
    assert!(gone.apply_delta(0, &back).is_none());
    let back_alone = r
        .apply_delta(0, &remove_all(&f))
        .and_then(|s| s.apply_delta(0, &back))
        .expect("patched");
    assert_eq!(
        back_alone.decide(0, &k("deep.a.b.over.test")),
        enforce(0, Action::Nodata)
    );
}

fn remove_all(f: &FeedRules) -> FeedDelta {
    FeedDelta {
        removed: f.clone(),
        added: FeedRules::new(),
    }
}

#[test]
fn a_pair_of_name_and_wildcard_comes_and_goes_without_a_compile() {
    let f = rules(&[
        ("old.test", Trigger::Exact, Action::Block),
        ("old.test", Trigger::Wildcard, Action::Block),
    ]);
    let p = PolicySet::compile(NameSet::default(), &[shared(0, &f)], 1);
    let delta = FeedDelta {
        removed: f.clone(),
        added: rules(&[
            ("new.test", Trigger::Exact, Action::Block),
            ("new.test", Trigger::Wildcard, Action::Block),
        ]),
    };
    let q = p.apply_delta(0, &delta).expect("patched");
    assert_eq!(q.decide(0, &k("old.test")), Decision::Resolve);
    assert_eq!(q.decide(0, &k("a.old.test")), Decision::Resolve);
    assert_eq!(q.decide(0, &k("new.test")), enforce(0, Action::Block));
    assert_eq!(q.decide(0, &k("a.new.test")), enforce(0, Action::Block));
    assert_eq!(q.shared_len(), 1);
}

#[test]
fn local_data_of_a_delta_is_added_to_the_set() {
    let mut f = FeedRules::new();
    let a = f.push_local(record(1, 0));
    f.push(&k("one.test"), Trigger::Exact, a);
    let t1 = [1];
    let p = PolicySet::compile(
        NameSet::default(),
        &[FeedSpec {
            id: 0,
            rules: &f,
            mode: FeedMode::Block,
            tenants: Some(&t1),
        }],
        2,
    );
    let mut added = FeedRules::new();
    let b = added.push_local(record(2, 0));
    added.push(&k("two.test"), Trigger::Exact, b);
    let c = added.push_local(record(2, 1));
    added.push(&k("one.test"), Trigger::Exact, c);
    let q = p
        .apply_delta(
            0,
            &FeedDelta {
                removed: FeedRules::new(),
                added,
            },
        )
        .expect("patched");
    let local = |s: &PolicySet, n: &str| match s.decide(1, &k(n)) {
        Decision::Enforce(Rule {
            action: Action::Local(i),
            ..
        }) => s.local_data(i).to_vec(),
        d => panic!("{n}: {d:?}"),
    };
    assert_eq!(local(&q, "two.test"), record(2, 0));
    assert_eq!(local(&q, "one.test"), record(2, 1));
    assert_eq!(local(&p, "one.test"), record(1, 0));
    assert_eq!(q.decide(0, &k("two.test")), Decision::Resolve);
    // a local index past the delta's local data is refused
    let mut bad = FeedRules::new();
    bad.push(&k("bad.test"), Trigger::Exact, Action::Local(3));
    let bad = FeedDelta {
        removed: FeedRules::new(),
        added: bad,
    };
    assert!(p.apply_delta(0, &bad).is_none());
}

/// Names of the property test: up to three labels from a few, under `t`,
/// so that feeds collide, nest and shadow each other.
fn universe() -> Vec<Vec<u8>> {
    let labels = ["a", "b", "m", "z"];
    let mut names = vec![k("t")];
    for x in labels {
        names.push(k(&format!("{x}.t")));
        for y in labels {
            names.push(k(&format!("{y}.{x}.t")));
            for z in labels {
                names.push(k(&format!("{z}.{y}.{x}.t")));
            }
        }
    }
    names
}

fn probes(names: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in names {
        out.push(n.clone());
        for pre in ["0", "q", "zz", "a.q", "*", "x.*"] {
            let mut p = k(pre);
            p.extend_from_slice(n);
            out.push(p);
        }
    }
    out
}

/// A generated rule: name index, trigger (0 exact, 1 wildcard, 2 subtree),
/// action (0..4 plain, 4 and 5 local data 0 and 1).
type Gen = (usize, u8, u8);

fn action(a: u8, f: &mut FeedRules, tag: u8) -> Action {
    match a {
        0 => Action::Block,
        1 => Action::Nodata,
        2 => Action::Passthru,
        3 => Action::Drop,
        _ => f.push_local(record(tag, a)),
    }
}

fn trigger(t: u8, regular: bool) -> Trigger {
    match t % if regular { 2 } else { 3 } {
        0 => Trigger::Exact,
        1 => Trigger::Wildcard,
        _ => Trigger::Subtree,
    }
}

/// A feed from generated rules; a `regular` one (the delta's) has no
/// subtree trigger and each (name, trigger) once.
fn feed(picks: &[Gen], names: &[Vec<u8>], regular: bool, tag: u8) -> FeedRules {
    let mut f = FeedRules::new();
    let mut seen = Vec::new();
    for &(n, t, a) in picks {
        let (n, t) = (n % names.len(), trigger(t, regular));
        if regular && seen.contains(&(n, t)) {
            continue;
        }
        seen.push((n, t));
        let a = action(a, &mut f, tag);
        f.push(&names[n], t, a);
    }
    f
}

/// A generated delta on `before`: some of its rules removed, some changed,
/// some new, some removals of rules it does not have.
fn delta(before: &FeedRules, picks: &[(Gen, u8)], names: &[Vec<u8>], tag: u8) -> FeedDelta {
    let mut d = FeedDelta::default();
    let existing: Vec<_> = before.iter().map(|(n, t, _)| (n.to_vec(), t)).collect();
    let mut added = Vec::new();
    for &((n, t, a), what) in picks {
        let (name, t) = match (what % 4, existing.get(n % existing.len().max(1))) {
            (0 | 1, Some((name, t))) => (name.clone(), *t),
            _ => (names[n % names.len()].clone(), trigger(t, true)),
        };
        if what % 4 == 0 || what % 4 == 3 {
            d.removed.push(&name, t, Action::Block);
        } else if !added.contains(&(name.clone(), t)) {
            added.push((name.clone(), t));
            let a = action(a, &mut d.added, tag);
            d.added.push(&name, t, a);
        }
    }
    d
}

/// Feed layout of the property test: mode and scope of each feed.
fn specs<'a>(
    feeds: &'a [FeedRules],
    layout: &[(bool, u8)],
    scopes: &'a [Vec<TenantId>],
) -> Vec<FeedSpec<'a>> {
    feeds
        .iter()
        .enumerate()
        .map(|(i, rules)| {
            let (monitor, scope) = layout[i];
            FeedSpec {
                id: i as FeedId,
                rules,
                mode: if monitor {
                    FeedMode::Monitor
                } else {
                    FeedMode::Block
                },
                tenants: (scope != 0).then(|| scopes[i].as_slice()),
            }
        })
        .collect()
}

fn same_decisions(
    got: &PolicySet,
    want: &PolicySet,
    probes: &[Vec<u8>],
) -> Result<(), TestCaseError> {
    for t in 0..3 {
        for q in probes {
            prop_assert_eq!(
                resolved(got, got.decide(t, q)),
                resolved(want, want.decide(t, q)),
                "tenant {} name {}",
                t,
                crate::name::key_to_text(q)
            );
        }
    }
    prop_assert_eq!(got.shared_len(), want.shared_len());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Applying deltas one after another to the compiled set decides every
    /// name as compiling the feeds after each change does.
    #[test]
    fn a_delta_decides_as_a_compile_of_the_feeds_after_it(
        gens in proptest::collection::vec(proptest::collection::vec((0usize..85, 0u8..3, 0u8..6), 0..24), 4),
        layout in proptest::collection::vec((proptest::bool::weighted(0.25), 0u8..8), 4),
        target in 0usize..4,
        deltas in proptest::collection::vec(proptest::collection::vec(((0usize..85, 0u8..3, 0u8..6), 0u8..4), 0..12), 1..4),
    ) {
        let names = universe();
        let probes = probes(&names);
        let scopes: Vec<Vec<TenantId>> = layout
            .iter()
            .map(|&(_, s)| (0..3).filter(|t| s & (1 << t) != 0).collect())
            .collect();
        let mut feeds: Vec<FeedRules> = gens
            .iter()
            .enumerate()
            .map(|(i, g)| feed(g, &names, i == target, i as u8))
            .collect();
        let mut current = PolicySet::compile(NameSet::default(), &specs(&feeds, &layout, &scopes), 3);
        // counted ahead of the first draft, or by it
        if target % 2 == 0 {
            current.prepare_deltas();
        }
        for (step, picks) in deltas.iter().enumerate() {
            let d = delta(&feeds[target], picks, &names, 100 + step as u8);
            feeds[target] = apply_to_rules(&feeds[target], &d);
            let want = PolicySet::compile(NameSet::default(), &specs(&feeds, &layout, &scopes), 3);
            if let Some(got) = current.apply_delta(target as FeedId, &d) {
                same_decisions(&got, &want, &probes)?;
                current = got;
            } else {
                current = want;
            }
        }
    }
}
