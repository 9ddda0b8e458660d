//! Typst markup for the PDFs. Every piece of data goes in as a Typst
//! string literal (`#"…"`), never as markup, so no input can change the
//! document's structure.

use std::fmt::Write;

use crate::{PublicView, ReportInput, arrow};

/// A Typst string literal of `s`, as content.
fn s(x: &str) -> String {
    let mut o = String::with_capacity(x.len() + 3);
    o.push_str("#\"");
    for c in x.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            '\r' => {}
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A table cell.
fn c(x: &str) -> String {
    format!("[{}]", s(x))
}

fn rag_fill(rag: &str) -> &'static str {
    match rag {
        "green" => "rgb(\"#cfe8cf\")",
        "amber" => "rgb(\"#fde3b0\")",
        "none" => "rgb(\"#e4e4e4\")",
        _ => "rgb(\"#f5c2c2\")",
    }
}

fn preamble(o: &mut String, v: &PublicView, title: &str, header: Option<&str>) {
    let _ = writeln!(
        o,
        "#set document(title: {}, author: {})",
        &s(title)[1..],
        &s(&v.council)[1..]
    );
    let header = match header {
        Some(h) => format!(
            "header: align(center, text(fill: rgb(\"#b00020\"), weight: \"bold\", {})),",
            &s(h)[1..]
        ),
        None => String::new(),
    };
    let _ = writeln!(
        o,
        "#set page(paper: \"a4\", margin: (x: 18mm, y: 20mm), {header} footer: context align(center, text(size: 9pt)[{} — page #counter(page).display(\"1 of 1\", both: true)]))",
        s(&format!("{} — {}", v.council, v.quarter))
    );
    o.push_str("#set text(font: \"Libertinus Serif\", size: 10.5pt, lang: \"en\", region: \"gb\")\n#set par(justify: false)\n#set heading(numbering: none)\n#show heading.where(level: 2): it => block(above: 1.4em, below: 0.7em, it)\n#set table(stroke: 0.5pt + rgb(\"#999999\"), inset: 4pt)\n#show table: set text(size: 9pt)\n\n");
}

fn title_block(o: &mut String, v: &PublicView, title: &str, status: &str) {
    let _ = writeln!(o, "{}\n", s(&v.council));
    let _ = writeln!(o, "= {}\n", s(title));
    let _ = writeln!(
        o,
        "#table(columns: (auto, 1fr), stroke: none, inset: 2pt, [*Committee*], {}, [*Date*], {}, [*Period*], {}, [*Snapshot date*], {}, [*Status*], {})\n",
        c(&v.committee),
        c(&v.date),
        c(&format!("{} ({})", v.period, v.quarter)),
        c(&v.snapshot_date),
        c(status)
    );
}

fn kpi_table(o: &mut String, v: &PublicView) {
    o.push_str("#table(columns: (2.6fr, auto, auto, auto, auto, 1.1fr, auto, 1fr),\n  table.header([*Measure*], [*This quarter*], [*Of*], [*Status*], [*Previous*], [*Trend*], [*Excepted*], [*Cyber Essentials*]),\n");
    for k in &v.kpis {
        let _ = writeln!(
            o,
            "  {}, {}, {}, table.cell(fill: {})[{}], {}, {}, {}, {},",
            c(&format!("{}. {}", k.id, k.name)),
            c(&k.count.to_string()),
            c(&k.denominator.to_string()),
            rag_fill(k.status().1),
            s(k.status().0),
            c(&k.previous
                .map_or_else(|| "—".to_string(), |p| p.to_string())),
            c(arrow(&k.direction)),
            c(&k.excepted.to_string()),
            c(if !k.assessed {
                "—"
            } else if k.ce_compliant {
                "compliant"
            } else {
                "not compliant"
            })
        );
    }
    o.push_str(")\n\n");
}

/// The public report. `trend` says whether `trend.svg` is available.
pub fn public(v: &PublicView, trend: bool) -> String {
    let mut o = String::new();
    preamble(
        &mut o,
        v,
        &format!("Cyber security assurance report — {}", v.quarter),
        None,
    );
    title_block(
        &mut o,
        v,
        "Cyber security assurance report",
        "For publication",
    );
    o.push_str("== 1. Purpose\n\nThis report gives the committee the council's cyber-security position at the end of the quarter: five measures with their thresholds and status, the trend, progress against Cyber Essentials, and the protective DNS and e-mail security services. Detail that could help an attacker is in a separate exempt appendix.\n\n== 2. Summary\n\n");
    for p in &v.commentary {
        let _ = writeln!(o, "{}\n", s(p));
    }
    o.push_str("== 3. Key performance indicators\n\n");
    kpi_table(&mut o, v);
    o.push_str("=== Definitions and thresholds\n\n");
    for k in &v.kpis {
        let _ = writeln!(
            o,
            "/ {}: {} _Threshold:_ {}.\n",
            s(&format!("{}. {}", k.id, k.name)),
            s(&k.definition),
            s(&k.threshold)
        );
    }
    o.push_str("== 4. Trend\n\n");
    if trend {
        o.push_str("#figure(image(\"trend.svg\", width: 100%, alt: \"Line chart of the number of incidents and devices failing each of the five measures, by quarter; the table below gives the same figures.\"), caption: [Incidents and devices failing each measure, by quarter])\n\n");
        o.push_str(
            "#table(columns: 6, table.header([*Quarter*], [*1*], [*2*], [*3*], [*4*], [*5*]),\n",
        );
        for h in &v.history {
            let _ = write!(o, "  {},", c(&h.quarter));
            for n in h.counts {
                let _ = write!(o, " {},", c(&n.to_string()));
            }
            o.push('\n');
        }
        o.push_str(")\n\n");
    } else {
        o.push_str("This is the first quarter reported: the trend starts next quarter.\n\n");
    }
    o.push_str("== 5. Cyber Essentials progress\n\nChecks from the Cyber Essentials requirements that the council's own data can decide. A check fails when any device fails it; the number of devices is given, the devices are listed in the exempt appendix.\n\n#table(columns: (3fr, auto, auto, auto), table.header([*Check*], [*Result*], [*Devices failing*], [*Weight*]),\n");
    for ch in &v.checks {
        let fill = if ch.pass {
            "green"
        } else if ch.level == "warning" {
            "amber"
        } else {
            "red"
        };
        let _ = writeln!(
            o,
            "  {}, table.cell(fill: {})[{}], {}, {},",
            c(&ch.rule),
            rag_fill(fill),
            s(if ch.pass { "Pass" } else { "Fail" }),
            c(&ch.devices.to_string()),
            c(&ch.level)
        );
    }
    o.push_str(")\n\n== 6. Protective DNS and Mail Check\n\n");
    match &v.pdns {
        Some(p) => {
            let _ = writeln!(
                o,
                "{}\n",
                s(&format!(
                    "Protective DNS answered {} queries from the council's networks this quarter and blocked {} attempts to reach sites that threat intelligence lists as malicious; {} suspicious-activity alerts were raised for investigation.",
                    crate::thousands(p.queries),
                    crate::thousands(p.blocked),
                    p.alerts
                ))
            );
        }
        None => o.push_str("No protective DNS data is held for this quarter.\n\n"),
    }
    match v.mail {
        Some((domains, compliant, errors, warnings)) if domains > 0 => {
            let _ = writeln!(
                o,
                "{}\n",
                s(&format!(
                    "Mail Check: {compliant} of {domains} e-mail domains meet the required standard (no error findings); {errors} have errors to fix and {warnings} have warnings only."
                ))
            );
        }
        _ => o.push_str(
            "No Mail Check results are held for the council's domains at the quarter end.\n\n",
        ),
    }
    let _ = writeln!(
        o,
        "== 7. Exempt appendix\n\n{}",
        s(&format!(
            "The device-level and incident detail behind every figure is in the exempt appendix, which is not for publication by virtue of {}.",
            v.exemption
        ))
    );
    o
}

fn table(o: &mut String, headers: &[&str], rows: impl IntoIterator<Item = Vec<String>>) {
    let _ = writeln!(
        o,
        "#table(columns: {}, table.header({}),",
        headers.len(),
        headers
            .iter()
            .map(|h| format!("[*{}*]", s(h)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in rows {
        let _ = writeln!(
            o,
            "  {},",
            r.iter().map(|x| c(x)).collect::<Vec<_>>().join(", ")
        );
    }
    o.push_str(")\n\n");
}

/// The exempt appendix.
pub fn exempt(input: &ReportInput, v: &PublicView) -> String {
    let k = &input.kpi;
    let mut o = String::new();
    preamble(
        &mut o,
        v,
        &format!(
            "Exempt appendix — cyber security assurance report — {}",
            v.quarter
        ),
        Some("NOT FOR PUBLICATION — exempt information"),
    );
    let _ = writeln!(
        o,
        "#block(stroke: 2pt + rgb(\"#b00020\"), inset: 8pt, width: 100%, align(center)[*NOT FOR PUBLICATION — exempt information* \\ {}])\n",
        s(&format!("by virtue of {}", input.exemption))
    );
    title_block(
        &mut o,
        v,
        "Cyber security assurance report: exempt appendix",
        "NOT FOR PUBLICATION — exempt information",
    );
    o.push_str("== A. The figures\n\n");
    kpi_table(&mut o, v);
    o.push_str("== B. Detail behind each measure\n\n");
    for kp in &k.kpis {
        let _ = writeln!(
            o,
            "=== {}\n",
            s(&format!(
                "{}. {} — {} of {}",
                kp.id, kp.name, kp.count, kp.denominator
            ))
        );
        if kp.evidence.is_empty() {
            o.push_str("Nothing counted.\n\n");
        } else {
            table(
                &mut o,
                &["Device / incident", "Reasons", "Evidence", "Also known as"],
                kp.evidence.iter().map(|e| {
                    vec![
                        e.device.clone(),
                        e.reasons.join(", "),
                        e.details.join("; "),
                        e.identifiers.join(", "),
                    ]
                }),
            );
            // findings as paragraphs, not a wide table: long plugin keys and
            // titles then wrap at spaces and stay whole
            for e in &kp.evidence {
                for f in &e.findings {
                    let _ = writeln!(
                        o,
                        "#block(breakable: false, below: 0.8em)[*{}* — {} \\ #text(size: 8.5pt)[{}]]\n",
                        s(&e.device),
                        s(&f.title),
                        s(&format!(
                            "{} · {} · {} · first detected {} · 14 days run from {} ({}) · {} days past the fix · {}",
                            f.key,
                            if f.cves.is_empty() {
                                "no CVE".to_string()
                            } else {
                                f.cves.join(" ")
                            },
                            f.severity,
                            f.first_detected,
                            f.fix_released,
                            f.fix_basis,
                            f.days_past_fix,
                            f.source
                        ))
                    );
                }
            }
        }
        if !kp.excepted_evidence.is_empty() {
            o.push_str("*Excepted (shown beside the figure, not in it):*\n\n");
            for e in &kp.excepted_evidence {
                let _ = writeln!(
                    o,
                    "- {}",
                    s(&format!("{}: {}", e.device, e.details.join("; ")))
                );
            }
            o.push('\n');
        }
        if !kp.not_assessed.is_empty() {
            let _ = writeln!(
                o,
                "*Not assessed* (no credentialed scan in 30 days): {}\n",
                s(&kp.not_assessed.join(", "))
            );
        }
    }
    o.push_str("== C. Incidents\n\n");
    if k.incidents.is_empty() {
        o.push_str("No incidents recorded.\n\n");
    } else {
        table(
            &mut o,
            &[
                "Reference",
                "Detected",
                "Category",
                "Outcome",
                "Status at quarter end",
                "Impact",
                "ICO reference",
            ],
            k.incidents.iter().map(|i| {
                vec![
                    i.reference.clone(),
                    i.detected.clone(),
                    i.category.clone(),
                    i.outcome.clone(),
                    i.status_at_t.clone(),
                    i.impact.clone(),
                    i.ico_reference.clone().unwrap_or_else(|| "—".into()),
                ]
            }),
        );
    }
    o.push_str("== D. Detection alerts this quarter\n\n");
    if input.alerts.is_empty() {
        o.push_str("No alerts.\n\n");
    } else {
        table(
            &mut o,
            &[
                "Alert",
                "First seen",
                "Rule",
                "Domain",
                "Severity",
                "Status",
                "Queries",
            ],
            input.alerts.iter().map(|a| {
                vec![
                    a.id.to_string(),
                    a.first_seen.clone(),
                    a.rule.clone(),
                    a.domain.clone(),
                    a.severity.clone(),
                    a.status.clone(),
                    a.count.to_string(),
                ]
            }),
        );
    }
    if let Some(m) = input.mail.as_ref().filter(|m| !m.detail.is_empty()) {
        o.push_str("=== Mail Check by domain\n\n");
        table(
            &mut o,
            &["Domain", "Worst finding", "Checked"],
            m.detail
                .iter()
                .map(|(d, w, c)| vec![d.clone(), w.clone(), c.clone()]),
        );
    }
    o.push_str("== E. Exceptions register\n\n");
    if k.exceptions.is_empty() {
        o.push_str("No exceptions.\n\n");
    } else {
        table(
            &mut o,
            &[
                "Device",
                "Finding / scope",
                "Kind",
                "Reason",
                "Owner",
                "Approver",
                "Expires",
                "In force",
            ],
            k.exceptions.iter().map(|e| {
                vec![
                    e.device.clone(),
                    e.finding.clone().unwrap_or_else(|| e.scope.clone()),
                    e.kind.clone(),
                    e.reason.clone(),
                    e.owner.clone(),
                    e.approver.clone(),
                    e.expires.clone(),
                    if e.in_force { "yes" } else { "no" }.into(),
                ]
            }),
        );
    }
    o.push_str("== F. Cyber Essentials checks: devices\n\n");
    table(
        &mut o,
        &["Check", "Result", "Devices"],
        k.cyber_essentials.iter().map(|ch| {
            vec![
                format!("{} {}", ch.id, ch.rule),
                if ch.pass { "Pass" } else { "Fail" }.into(),
                ch.devices.join(", "),
            ]
        }),
    );
    o.push_str("== G. Asset register and data quality\n\n");
    table(
        &mut o,
        &[
            "Device",
            "Class (rule)",
            "OS",
            "Last seen",
            "In scope",
            "Joined by / conflicts",
        ],
        k.register.iter().map(|d| {
            vec![
                format!(
                    "{}{}",
                    d.device,
                    if d.managed { "" } else { " (unmanaged)" }
                ),
                format!("{} ({})", d.class, d.class_rule),
                d.os.clone().unwrap_or_else(|| "—".into()),
                d.last_seen.clone(),
                if d.in_scope { "yes" } else { "no" }.into(),
                d.merged_by
                    .iter()
                    .chain(d.conflicts.iter())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        }),
    );
    o.push_str("== H. Evidence files\n\n");
    table(
        &mut o,
        &["File", "Source", "Taken", "SHA-256"],
        k.evidence_files.iter().map(|f| {
            vec![
                f.file.clone(),
                f.source.clone(),
                format!(
                    "{}{}",
                    f.as_of,
                    if f.stale {
                        " (outside the evidence window)"
                    } else {
                        ""
                    }
                ),
                f.sha256.clone(),
            ]
        }),
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_become_markup() {
        assert_eq!(s(r#"a "b" \ #c [d] *e*"#), r##"#"a \"b\" \\ #c [d] *e*""##);
        assert_eq!(c("x\ny"), "[#\"x\\ny\"]");
    }
}
