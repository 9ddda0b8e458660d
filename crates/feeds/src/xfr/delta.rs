//! What an IXFR changes in a feed's rules. The records of each owner name
//! the IXFR touched are rendered before and after as RPZ zone text and read
//! by the feed parser, so a delta means exactly what a full load would.

use hashbrown::HashMap;

use parapet_core::policy::{Action, FeedDelta, FeedRules, LocalRecord, Trigger};
use parapet_detect::feed::{FeedFormat, FeedWarning, parse_feed};

fn trigger_code(t: Trigger) -> u8 {
    match t {
        Trigger::Exact => 0,
        Trigger::Wildcard => 1,
        Trigger::Subtree => 2,
    }
}

/// A rule's action with its local data.
type Effect<'a> = (Action, &'a [LocalRecord]);

/// What a rule does, local data included, comparable across two rule sets.
fn effect(rules: &FeedRules, action: Action) -> Effect<'_> {
    match action {
        Action::Local(i) => (
            Action::Local(0),
            rules.local.get(i as usize).map_or(&[], Vec::as_slice),
        ),
        a => (a, &[]),
    }
}

/// Copies one rule into `out`, its local data with it.
fn push_rule(out: &mut FeedRules, from: &FeedRules, key: &[u8], t: Trigger, a: Action) {
    let action = match a {
        Action::Local(i) => out.push_local(from.local.get(i as usize).cloned().unwrap_or_default()),
        a => a,
    };
    out.push(key, t, action);
}

/// The change from `before` to `after` (rules of the same names).
pub fn diff(before: &FeedRules, after: &FeedRules) -> FeedDelta {
    let mut old: HashMap<(&[u8], u8), Effect<'_>> = HashMap::new();
    for (k, t, a) in before.iter() {
        old.insert((k, trigger_code(t)), effect(before, a));
    }
    let mut delta = FeedDelta::default();
    let mut kept: HashMap<(&[u8], u8), ()> = HashMap::new();
    for (k, t, a) in after.iter() {
        let id = (k, trigger_code(t));
        kept.insert(id, ());
        if old.get(&id) != Some(&effect(after, a)) {
            push_rule(&mut delta.added, after, k, t, a);
        }
    }
    for (k, t, _) in before.iter() {
        if !kept.contains_key(&(k, trigger_code(t))) {
            delta.removed.push(k, t, Action::Block);
        }
    }
    delta
}

/// `rules` with `delta` applied: what a full load of the changed zone
/// would give, up to order.
pub fn apply(rules: &FeedRules, delta: &FeedDelta) -> FeedRules {
    let mut gone: HashMap<(&[u8], u8), ()> = HashMap::new();
    for (k, t, _) in delta.removed.iter().chain(delta.added.iter()) {
        gone.insert((k, trigger_code(t)), ());
    }
    let mut out = FeedRules::new();
    for (k, t, a) in rules.iter() {
        if !gone.contains_key(&(k, trigger_code(t))) {
            push_rule(&mut out, rules, k, t, a);
        }
    }
    for (k, t, a) in delta.added.iter() {
        push_rule(&mut out, &delta.added, k, t, a);
    }
    out.shrink_to_fit();
    out
}

/// The rules of a piece of zone text (an SOA line first, so the parser
/// knows the apex). Errors are joined into one line.
pub fn rules_of(text: &[u8], label: &str) -> Result<(FeedRules, Vec<FeedWarning>), String> {
    match parse_feed(text, FeedFormat::Rpz, label) {
        Ok(p) => Ok((p.rules, p.warnings)),
        Err(errors) => Err(errors
            .iter()
            .take(3)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> FeedRules {
        let soa = "rpz.test. 60 IN SOA ns. . 1 3600 600 86400 60\n";
        rules_of(format!("{soa}{text}").as_bytes(), "t").unwrap().0
    }

    fn sorted(r: &FeedRules) -> Vec<String> {
        let mut v: Vec<String> = r
            .iter()
            .map(|(k, t, a)| {
                format!(
                    "{} {t:?} {:?}",
                    parapet_core::name::key_to_text(k),
                    effect(r, a)
                )
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn diff_then_apply_gives_the_new_rules() {
        let before = rules(
            "a.rpz.test. 60 IN CNAME .\n\
             b.rpz.test. 60 IN CNAME .\n\
             c.rpz.test. 60 IN A 192.0.2.1\n\
             *.d.rpz.test. 60 IN CNAME rpz-drop.\n",
        );
        let after = rules(
            "a.rpz.test. 60 IN CNAME .\n\
             b.rpz.test. 60 IN CNAME *.\n\
             c.rpz.test. 60 IN A 192.0.2.2\n\
             e.rpz.test. 60 IN CNAME .\n",
        );
        let d = diff(&before, &after);
        assert_eq!(d.added.len(), 3, "b changed, c's data changed, e new");
        assert_eq!(d.removed.len(), 1, "the wildcard of d left");
        assert_eq!(sorted(&apply(&before, &d)), sorted(&after));
        assert!(diff(&after, &after).is_empty());
    }
}
