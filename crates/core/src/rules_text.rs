//! What each detection rule means, in plain English, for people who do not
//! know the rule codes: the alert list shows the title and the code small
//! beside it.

/// A short plain-English title for an alert rule code; `None` for a code
/// this build does not know (the page then shows the code alone).
pub fn rule_title(code: &str) -> Option<&'static str> {
    Some(match code {
        "feed.block" => "Blocked by a threat feed",
        "feed.monitor" => "Seen on a monitored threat feed",
        "dga" => "Machine-generated domain name",
        "tunnel" => "Data hidden in DNS queries",
        "beacon" => "Regular check-ins to one domain",
        "new_domain" => "First visit to a new domain",
        "feed.load_failed" => "Threat feed failed to load",
        "feed.fetch_failed" => "Threat feed download failed",
        "feed.stale" => "Threat feed out of date",
        "mailcheck.regression" => "Mail security got worse",
        "dmarc.unknown_sender" => "Unknown sender failing DMARC",
        "store.unavailable" => "Event store unavailable",
        _ => return None,
    })
}

/// The rule codes [`rule_title`] knows, in the order the alert filter
/// lists them.
pub const RULE_CODES: &[&str] = &[
    "feed.block",
    "feed.monitor",
    "dga",
    "tunnel",
    "beacon",
    "new_domain",
    "feed.load_failed",
    "feed.fetch_failed",
    "feed.stale",
    "mailcheck.regression",
    "dmarc.unknown_sender",
    "store.unavailable",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_code_has_a_title_and_unknown_codes_have_none() {
        for c in RULE_CODES {
            assert!(rule_title(c).is_some(), "{c}");
        }
        assert_eq!(rule_title("no.such_rule"), None);
    }
}
