//! How mail data is stored and read back, the same on both backends: Mail
//! Check findings as text (one per line) and what changed between two
//! checks, the DKIM selectors named in DMARC rows, and a domain's DMARC
//! totals summed from its per-source rows.

use crate::{DmarcSenderRow, DmarcSummary, MailCheckDiff, MailFinding, SourceSummary};

/// Findings as stored: one per line, `severity TAB code TAB message` (a
/// message's own tabs and line breaks become spaces).
pub(crate) fn finding_lines(f: &[MailFinding]) -> Vec<String> {
    f.iter()
        .map(|x| {
            format!(
                "{}\t{}\t{}",
                x.severity,
                x.code,
                x.message.replace(['\n', '\t'], " ")
            )
        })
        .collect()
}

/// The inverse of [`finding_lines`], for a whole stored column.
pub(crate) fn findings_from_lines(text: &str) -> Vec<MailFinding> {
    text.lines().map(finding_from_line).collect()
}

/// A stored findings column as `(severity, code)` pairs, for the
/// committee report's counts by finding.
pub(crate) fn latest_findings(text: &str) -> Vec<(String, String)> {
    findings_from_lines(text)
        .into_iter()
        .map(|f| (f.severity, f.code))
        .collect()
}

fn finding_from_line(line: &str) -> MailFinding {
    let mut it = line.splitn(3, '\t');
    MailFinding {
        severity: it.next().unwrap_or("").to_string(),
        code: it.next().unwrap_or("").to_string(),
        message: it.next().unwrap_or("").to_string(),
    }
}

/// What changed between the previous check (its time and stored findings)
/// and the findings about to be stored: a line is new or fixed as a whole,
/// so a finding whose message changed is both.
pub(crate) fn diff_findings(
    previous: Option<(i64, String)>,
    now_lines: &[String],
) -> MailCheckDiff {
    let mut diff = MailCheckDiff::default();
    if let Some((at, before)) = previous {
        diff.previous_at = Some(at);
        let before: Vec<&str> = before.lines().collect();
        diff.new = now_lines
            .iter()
            .filter(|l| !before.contains(&l.as_str()))
            .map(|l| finding_from_line(l))
            .collect();
        diff.fixed = before
            .iter()
            .filter(|l| !now_lines.iter().any(|n| n == *l))
            .map(|l| finding_from_line(l))
            .collect();
    }
    diff
}

/// Adds to `out` the selectors that one stored `dkim` column
/// (`domain/selector=result`, space-separated) names for `domain`, each once.
/// Callers sort `out` when every row is in.
pub(crate) fn add_selectors(out: &mut Vec<String>, dkim: &str, domain: &str) {
    for entry in dkim.split(' ') {
        if let Some((d, rest)) = entry.split_once('/')
            && d.eq_ignore_ascii_case(domain)
            && let Some((sel, _)) = rest.split_once('=')
            && !sel.is_empty()
            && !out.iter().any(|s| s == sel)
        {
            out.push(sel.to_string());
        }
    }
}

/// Adds one sending source (rows come busiest first) to a domain's totals.
/// Gives each source of `sum` its stored identity.
pub(crate) fn attach_senders(sum: &mut DmarcSummary, senders: Vec<DmarcSenderRow>) {
    for d in senders {
        if let Some(s) = sum.sources.iter_mut().find(|s| s.source_ip == d.source_ip) {
            s.sender = Some(d);
        }
    }
}

pub(crate) fn add_source(sum: &mut DmarcSummary, s: SourceSummary) {
    sum.messages += s.messages;
    sum.dmarc_pass += s.dmarc_pass;
    sum.dkim_aligned += s.dkim_aligned;
    sum.spf_aligned += s.spf_aligned;
    sum.sources.push(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(code: &str, message: &str) -> MailFinding {
        MailFinding {
            severity: "warning".into(),
            code: code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn findings_survive_their_text_form() {
        let lines = finding_lines(&[f("a", "one\ttwo\nthree"), f("b", "")]);
        assert_eq!(lines, ["warning\ta\tone two three", "warning\tb\t"]);
        assert_eq!(
            findings_from_lines(&lines.join("\n")),
            [f("a", "one two three"), f("b", "")]
        );
    }

    #[test]
    fn selectors_of_other_domains_are_left_out() {
        let mut out = vec!["sel1".to_string()];
        add_selectors(
            &mut out,
            "Example.gov.uk/sel2=pass other.example/x=fail example.gov.uk/sel1=pass example.gov.uk/=none",
            "example.gov.uk",
        );
        assert_eq!(out, ["sel1", "sel2"]);
    }
}
