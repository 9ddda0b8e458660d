//! The alert workbench's storage on both backends: the pseudonyms behind an
//! alert, and the database allowlist (entries in force, expiry, removal,
//! and the alert marked a false positive in the same transaction).

use super::*;
use crate::NewAllow;

on_both_backends!(
    an_alert_lists_its_distinct_pseudonyms,
    an_allow_entry_marks_its_alert_and_applies_until_it_expires,
    a_resolved_alert_is_not_allowed_and_nothing_is_added,
);

fn an_alert_lists_its_distinct_pseudonyms(fx: &Fx) {
    let mut s = fx.open();
    s.record_signals(&[
        signal(100, "feed.block", "evil.test", 3, None),
        signal(101, "feed.block", "evil.test", 1, None),
        signal(102, "feed.block", "evil.test", 3, None),
        signal(103, "dga", "other.test", 7, None),
    ])
    .unwrap();
    let id = s
        .list_alerts(&AlertFilter {
            rule: Some("feed.block".into()),
            ..AlertFilter::default()
        })
        .unwrap()[0]
        .id;
    let all = s.alert_pseudonyms(id, 10).unwrap();
    assert_eq!(all, [ClientPseudonym([1; 8]), ClientPseudonym([3; 8])]);
    assert_eq!(
        s.alert_pseudonyms(id, 1).unwrap(),
        [ClientPseudonym([1; 8])]
    );
    assert!(s.alert_pseudonyms(999, 10).unwrap().is_empty());
}

fn an_allow_entry_marks_its_alert_and_applies_until_it_expires(fx: &Fx) {
    let mut s = fx.open();
    s.record_signals(&[signal(100, "feed.block", "evil.test", 1, None)])
        .unwrap();
    let t = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
    let new = NewAllow {
        name: "evil.test".into(),
        tenant: Some("council-a".into()),
        alert_id: Some(1),
        added_by: "carol".into(),
        reason: "the council's own supplier".into(),
        expires_at: 5_000_000,
    };
    let e = s.add_allow(&new, t(1000)).unwrap();
    assert_eq!(
        (e.name.as_str(), e.alert_id, e.created_at, e.expires_at),
        ("evil.test", Some(1), 1_000_000, 5_000_000)
    );
    let a = s.alert(1).unwrap();
    assert_eq!(a.status, AlertStatus::FalsePositive);
    let h = a.history.last().unwrap();
    assert_eq!((h.by.as_str(), h.time), ("carol", 1_000_000));
    assert!(
        h.note.contains("allowed evil.test until") && h.note.contains("own supplier"),
        "{}",
        h.note
    );
    // a second entry for an alert already a false positive adds no step
    let other = NewAllow {
        name: "www.evil.test".into(),
        expires_at: 3_000_000,
        ..new.clone()
    };
    s.add_allow(&other, t(1001)).unwrap();
    assert_eq!(s.alert(1).unwrap().history.len(), a.history.len());

    let names = |s: &mut Box<dyn TestDb>, at: u64| -> Vec<String> {
        s.active_allows(t(at))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect()
    };
    assert_eq!(names(&mut s, 2000), ["evil.test", "www.evil.test"]);
    assert_eq!(names(&mut s, 3000), ["evil.test"], "expired at 3000 s");
    assert!(names(&mut s, 5000).is_empty());
    let removed = s.remove_allow(e.id, "dave", t(2500)).unwrap();
    assert_eq!(removed.removed_by.as_deref(), Some("dave"));
    assert!(!removed.in_force(2_600_000));
    // the first removal stands
    let again = s.remove_allow(e.id, "erin", t(2700)).unwrap();
    assert_eq!(
        (again.removed_at, again.removed_by.as_deref()),
        (Some(2_500_000), Some("dave"))
    );
    assert_eq!(names(&mut s, 2600), ["www.evil.test"]);
    // every entry stays as the record, newest first
    let all: Vec<i64> = s.allow_entries(10).unwrap().iter().map(|e| e.id).collect();
    assert_eq!(all, [e.id + 1, e.id]);
    assert!(matches!(
        s.remove_allow(999, "dave", t(1)),
        Err(StoreError::NoSuchAllow(999))
    ));
}

fn a_resolved_alert_is_not_allowed_and_nothing_is_added(fx: &Fx) {
    let mut s = fx.open();
    s.record_signals(&[signal(100, "feed.block", "evil.test", 1, None)])
        .unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    s.set_alert_status(1, AlertStatus::Resolved, "bob", "done", now)
        .unwrap();
    let new = NewAllow {
        name: "evil.test".into(),
        alert_id: Some(1),
        added_by: "carol".into(),
        reason: "r".into(),
        expires_at: 9_000_000,
        ..NewAllow::default()
    };
    let e = s.add_allow(&new, now).unwrap_err();
    assert!(matches!(e, StoreError::BadTransition { .. }), "{e}");
    assert!(s.allow_entries(10).unwrap().is_empty());
    let missing = NewAllow {
        alert_id: Some(42),
        ..new
    };
    assert!(matches!(
        s.add_allow(&missing, now),
        Err(StoreError::NoSuchAlert(42))
    ));
    assert!(s.allow_entries(10).unwrap().is_empty());
}
