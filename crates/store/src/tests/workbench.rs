//! The alert workbench's storage on both backends: the pseudonyms behind an
//! alert.

use super::*;

on_both_backends!(
    an_alert_lists_its_distinct_pseudonyms,
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
    assert_eq!(s.alert_pseudonyms(id, 1).unwrap(), [ClientPseudonym([1; 8])]);
    assert!(s.alert_pseudonyms(999, 10).unwrap().is_empty());
}
