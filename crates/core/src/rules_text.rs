//! What each alert rule means, in plain English, for the people working
//! the alerts: a short title for lists and headings, and guidance on what
//! the rule saw and what to do next. One place, so the alert page, the
//! alert list and anything else that names a rule say the same thing.

/// Every rule code Parapet raises, with its title and guidance.
const RULES: &[(&str, &str, &str)] = &[
    (
        "feed.block",
        "Blocked by a threat feed",
        "A device asked for a name on a blocking threat feed, and Parapet refused to resolve it, so the connection most likely never happened. \
         The question is why the device asked: malware calling home, a phishing link that was clicked, or an advert or script on an ordinary page. \
         Next: open the client's query timeline around the alert to see what it asked for before and after; if the names around it look like normal browsing, \
         it was probably a page element. If the device keeps asking at regular intervals or asks for other listed names, reveal the address, find the machine \
         and have it scanned. If the name is wanted and safe (the feed is wrong), mark the alert a false positive and allow the name for a limited time.",
    ),
    (
        "feed.monitor",
        "Seen on a monitor-only feed",
        "A device asked for a name on a feed that is set to monitor rather than block, so the name was resolved and the device may have connected. \
         Monitor feeds are often broader or newer lists, trialled before they block. \
         Next: check the client's timeline for what else it asked for, and judge from the feed's category (e.g. malware, phishing) how urgent it is. \
         If the connection is a real concern, reveal the address and check the machine; if the name is harmless, mark the alert a false positive.",
    ),
    (
        "dga",
        "Machine-generated domain name",
        "A device asked for a name whose letters look randomly generated. Some malware generates such names each day to find its controllers, \
         so that blocking one name does not cut it off. Content delivery networks and some software also use random-looking names, so this rule \
         gives false positives. \
         Next: look at the client's timeline: many different random names, especially ones that do not exist, point to malware; one name that \
         resolves and recurs for many devices is usually a service. Reveal the address and scan the machine if it looks like malware; \
         otherwise mark the alert a false positive and allow the name.",
    ),
    (
        "tunnel",
        "Possible DNS tunnel or data exfiltration",
        "A device sent DNS queries that carry data: very long, high-entropy labels, many distinct names under one domain, or many TXT/NULL queries. \
         Malware uses DNS to move data out of a network where other traffic is blocked; some security and anti-virus products also use DNS this way, legitimately. \
         Next: check whether the domain belongs to a product the council runs (anti-virus, endpoint protection); if not, treat it as urgent: \
         reveal the address, isolate the machine and promote the alert to an incident. If it is a known product, mark it a false positive and allow the name.",
    ),
    (
        "beacon",
        "Regular check-ins (beaconing)",
        "One device asked for the same name again and again at a regular interval. Malware checks in with its controller this way; \
         so do update checkers, monitoring agents and time services. \
         Next: look up who the domain belongs to and whether other devices do the same; a single device beaconing to an unknown or recently \
         registered domain is suspicious: reveal the address and check the machine. A known service is a false positive: allow the name.",
    ),
    (
        "new_domain",
        "First query for a new domain",
        "The council's network asked for a registrable domain it had not used since Parapet started learning its traffic. New domains are \
         usually harmless (a new supplier, a new website) but phishing and malware often use domains nobody in the organisation has visited before. \
         Next: look at the domain and the client's timeline; if it is unfamiliar and the device visited it right after an e-mail or download, \
         check the machine. Otherwise resolve the alert: the domain is now known and will not alert again.",
    ),
    (
        "feed.load_failed",
        "A threat feed failed to load",
        "Parapet could not load a threat feed (a file error, a parse error, or a database problem). The last good version of the feed stays in force; \
         a feed with no good version blocks nothing until it is fixed. \
         Next: read the evidence for the file, line and error, fix the feed or its source, and check `parapet feeds status`; resolve the alert once it loads.",
    ),
    (
        "feed.fetch_failed",
        "A threat feed could not be fetched",
        "Parapet could not download a threat feed from its URL (network error, TLS error, HTTP error or a size limit). The copy fetched last stays in force. \
         Next: check the URL, the provider's status and the network path from the server, then `parapet feeds status`; resolve the alert once a fetch succeeds.",
    ),
    (
        "feed.stale",
        "A threat feed is out of date",
        "A feed taken by zone transfer has not been refreshed from its primary server for longer than expected, so new threats on it are not blocked. \
         Next: check that the primary server is reachable and answers transfers (address, TSIG key), and resolve the alert once a transfer succeeds.",
    ),
    (
        "config.load_failed",
        "The configuration failed to reload",
        "Parapet's configuration file was changed but could not be loaded; the running configuration stays in force, so the change is not applied. \
         Next: run `parapet config check` for the file, line and field at fault, fix it and reload; resolve the alert once the reload succeeds.",
    ),
    (
        "mailcheck.regression",
        "Mail security got worse",
        "A scheduled Mail Check found a problem with a mail domain that was not there at the previous check: for example a weaker DMARC policy, \
         a broken SPF record or an expired certificate. Attackers can then spoof the council's mail more easily, or mail may stop being delivered. \
         Next: open the domain on the Mail page to see the finding and the raw records, ask whoever manages the domain's DNS what changed, \
         and resolve the alert once a check is clean again.",
    ),
    (
        "dmarc.unknown_sender",
        "Unidentified mail sender",
        "DMARC reports show a source that is not identified as one of the council's known mail services sending mail in the council's name and failing DMARC. \
         This is either spoofing, or a legitimate service (a newsletter tool, a new system) nobody has set up SPF or DKIM for. \
         Next: look up the source on the Mail page; if it is a service the council uses, have SPF/DKIM configured for it; if not, it is spoofing, \
         and moving DMARC towards p=reject stops it.",
    ),
    (
        "store.unavailable",
        "Storage is unavailable",
        "Parapet could not write to its database and its local spool filled up, so some query records were not kept (DNS answers continue). \
         Alerts raised from those queries may be missing. \
         Next: check the database (disk space, PostgreSQL reachable), the node's logs and `/metrics`; resolve the alert once storage is healthy.",
    ),
];

/// The rule's plain-English name, e.g. "Blocked by a threat feed"; the
/// code itself for a rule this build does not know.
pub fn rule_title(code: &str) -> &str {
    RULES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(code, |(_, title, _)| title)
}

/// What the rule means and what to do next, in plain English.
pub fn rule_guidance(code: &str) -> &'static str {
    RULES.iter().find(|(c, _, _)| *c == code).map_or(
        "Parapet has no guidance for this rule yet. Read the alert's reason and evidence, and the rule's description in the documentation.",
        |(_, _, text)| text,
    )
}

/// Every rule code with guidance, in the order above.
pub fn known_rules() -> impl Iterator<Item = &'static str> {
    RULES.iter().map(|(c, _, _)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_the_code_raises_has_a_title_and_guidance() {
        for code in [
            "feed.block",
            "feed.monitor",
            "dga",
            "tunnel",
            "beacon",
            "new_domain",
            "feed.load_failed",
            "feed.fetch_failed",
            "feed.stale",
            "config.load_failed",
            "mailcheck.regression",
            "dmarc.unknown_sender",
            "store.unavailable",
        ] {
            assert_ne!(rule_title(code), code, "{code} has no title");
            assert!(
                rule_guidance(code).contains("Next:"),
                "{code}'s guidance says what to do next"
            );
        }
        assert_eq!(known_rules().count(), RULES.len());
    }

    #[test]
    fn an_unknown_rule_keeps_its_code_as_title() {
        assert_eq!(rule_title("made.up"), "made.up");
        assert!(rule_guidance("made.up").contains("no guidance"));
    }

    #[test]
    fn codes_are_unique() {
        let mut codes: Vec<_> = known_rules().collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RULES.len());
    }
}
