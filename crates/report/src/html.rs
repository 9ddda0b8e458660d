//! Print-friendly HTML, no JavaScript. The public report is built from the
//! [`PublicView`] only.

use std::fmt::Write;

use crate::{PublicView, ReportInput, arrow};

pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body { font-family: "Libertinus Serif", Georgia, serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #111; line-height: 1.45; }
h1 { font-size: 1.8rem; margin-bottom: 0.2rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #999; margin-top: 2rem; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; width: 100%; margin: 0.8rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #999; padding: 0.25rem 0.4rem; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; }
.rag-green { background: #cfe8cf; } .rag-amber { background: #fde3b0; } .rag-red { background: #f5c2c2; } .rag-none { background: #e4e4e4; }
.meta dt { font-weight: bold; float: left; clear: left; width: 9rem; } .meta dd { margin-left: 9rem; }
.council { font-size: 1.1rem; margin: 0; }
.banner { border: 3px solid #b00020; color: #b00020; font-weight: bold; padding: 0.5rem; text-align: center; }
.small { font-size: 0.85rem; } .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 0.85rem; word-break: break-all; }
svg { max-width: 100%; height: auto; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; } tr, .chart { break-inside: avoid; } @page { size: A4; margin: 18mm; } }
"#;

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(title)
    )
}

fn title_block(o: &mut String, v: &PublicView, title: &str, status: &str) {
    let _ = write!(
        o,
        "<header>\n<p class=\"council\">{}</p>\n<h1>{}</h1>\n<dl class=\"meta\">\n<dt>Committee</dt><dd>{}</dd>\n<dt>Date</dt><dd>{}</dd>\n<dt>Period</dt><dd>{} ({})</dd>\n<dt>Snapshot date</dt><dd>{}</dd>\n<dt>Status</dt><dd>{}</dd>\n</dl>\n</header>\n",
        esc(&v.council),
        esc(title),
        esc(&v.committee),
        esc(&v.date),
        esc(&v.period),
        esc(&v.quarter),
        esc(&v.snapshot_date),
        esc(status)
    );
}

fn kpi_table(o: &mut String, v: &PublicView) {
    o.push_str("<table>\n<thead><tr><th scope=\"col\">Measure</th><th scope=\"col\">This quarter</th><th scope=\"col\">Of</th><th scope=\"col\">Status</th><th scope=\"col\">Previous quarter</th><th scope=\"col\">Trend</th><th scope=\"col\">Excepted</th><th scope=\"col\">Cyber Essentials</th></tr></thead>\n<tbody>\n");
    for k in &v.kpis {
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\">{}. {}</th><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"rag-{}\">{}</td><td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            k.id,
            esc(&k.name),
            k.count,
            k.denominator,
            k.status().1,
            k.status().0,
            k.previous
                .map_or_else(|| "—".to_string(), |p| p.to_string()),
            arrow(&k.direction),
            k.excepted,
            if !k.assessed {
                "—"
            } else if k.ce_compliant {
                "compliant"
            } else {
                "not compliant"
            }
        );
    }
    o.push_str("</tbody>\n</table>\n");
}

/// The public report.
pub fn public(v: &PublicView, trend: Option<&str>) -> String {
    let title = format!("Cyber security assurance report — {}", v.quarter);
    let mut o = head(&title);
    title_block(
        &mut o,
        v,
        "Cyber security assurance report",
        "For publication",
    );
    o.push_str("<section id=\"purpose\">\n<h2>1. Purpose</h2>\n<p>This report gives the committee the council's cyber-security position at the end of the quarter: five measures with their thresholds and status, the trend, progress against Cyber Essentials, and the protective DNS and e-mail security services. Detail that could help an attacker is in a separate exempt appendix.</p>\n</section>\n");
    o.push_str("<section id=\"summary\">\n<h2>2. Summary</h2>\n");
    for p in &v.commentary {
        let _ = writeln!(o, "<p>{}</p>", esc(p));
    }
    o.push_str("</section>\n<section id=\"kpis\">\n<h2>3. Key performance indicators</h2>\n");
    kpi_table(&mut o, v);
    o.push_str("<h3>Definitions and thresholds</h3>\n<dl>\n");
    for k in &v.kpis {
        let _ = writeln!(
            o,
            "<dt>{}. {}</dt><dd>{} <em>Threshold:</em> {}.</dd>",
            k.id,
            esc(&k.name),
            esc(&k.definition),
            esc(&k.threshold)
        );
    }
    o.push_str("</dl>\n</section>\n<section id=\"trend\">\n<h2>4. Trend</h2>\n");
    match trend {
        Some(svg) => {
            let _ = writeln!(
                o,
                "<figure class=\"chart\">\n{svg}\n<figcaption>Number of incidents and devices failing each measure, by quarter (the table below gives the same figures).</figcaption>\n</figure>"
            );
            o.push_str("<table>\n<thead><tr><th scope=\"col\">Quarter</th><th scope=\"col\">1</th><th scope=\"col\">2</th><th scope=\"col\">3</th><th scope=\"col\">4</th><th scope=\"col\">5</th></tr></thead>\n<tbody>\n");
            for h in &v.history {
                let _ = writeln!(
                    o,
                    "<tr><th scope=\"row\">{}</th>{}</tr>",
                    esc(&h.quarter),
                    h.counts
                        .iter()
                        .map(|c| format!("<td class=\"num\">{c}</td>"))
                        .collect::<String>()
                );
            }
            o.push_str("</tbody>\n</table>\n");
        }
        None => o.push_str(
            "<p>This is the first quarter reported: the trend starts next quarter.</p>\n",
        ),
    }
    o.push_str("</section>\n<section id=\"cyber-essentials\">\n<h2>5. Cyber Essentials progress</h2>\n<p>Checks from the Cyber Essentials requirements that the council's own data can decide. A check fails when any device fails it; the number of devices is given, the devices are listed in the exempt appendix.</p>\n<table>\n<thead><tr><th scope=\"col\">Check</th><th scope=\"col\">Result</th><th scope=\"col\">Devices failing</th><th scope=\"col\">Weight</th></tr></thead>\n<tbody>\n");
    for c in &v.checks {
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\">{}</th><td class=\"rag-{}\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&c.rule),
            if c.pass {
                "green"
            } else if c.level == "warning" {
                "amber"
            } else {
                "red"
            },
            if c.pass { "Pass" } else { "Fail" },
            c.devices,
            esc(&c.level)
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n<section id=\"services\">\n<h2>6. Protective DNS and Mail Check</h2>\n");
    match &v.pdns {
        Some(p) => {
            let _ = writeln!(
                o,
                "<p>Protective DNS answered {} queries from the council's networks this quarter and blocked {} attempts to reach sites that threat intelligence lists as malicious; {} suspicious-activity alerts were raised for investigation.</p>",
                crate::thousands(p.queries),
                crate::thousands(p.blocked),
                p.alerts
            );
        }
        None => o.push_str("<p>No protective DNS data is held for this quarter.</p>\n"),
    }
    match v.mail {
        Some((domains, compliant, errors, warnings)) if domains > 0 => {
            let _ = writeln!(
                o,
                "<p>Mail Check: {compliant} of {domains} e-mail domains meet the required standard (no error findings); {errors} have errors to fix and {warnings} have warnings only.</p>"
            );
        }
        _ => o.push_str(
            "<p>No Mail Check results are held for the council's domains at the quarter end.</p>\n",
        ),
    }
    let _ = write!(
        o,
        "</section>\n<section id=\"appendix\">\n<h2>7. Exempt appendix</h2>\n<p>The device-level and incident detail behind every figure is in the exempt appendix, which is not for publication by virtue of {}.</p>\n</section>\n</body>\n</html>\n",
        esc(&v.exemption)
    );
    o
}

fn banner(o: &mut String, reason: &str) {
    let _ = writeln!(
        o,
        "<p class=\"banner\">NOT FOR PUBLICATION — exempt information<br><span class=\"small\">by virtue of {}</span></p>",
        esc(reason)
    );
}

/// The exempt appendix: the detail behind every figure.
pub fn exempt(input: &ReportInput, v: &PublicView) -> String {
    let k = &input.kpi;
    let title = format!(
        "Exempt appendix — cyber security assurance report — {}",
        v.quarter
    );
    let mut o = head(&title);
    banner(&mut o, &input.exemption);
    title_block(
        &mut o,
        v,
        "Cyber security assurance report: exempt appendix",
        "NOT FOR PUBLICATION — exempt information",
    );
    o.push_str("<section id=\"figures\">\n<h2>A. The figures</h2>\n");
    kpi_table(&mut o, v);
    o.push_str("</section>\n<section id=\"detail\">\n<h2>B. Detail behind each measure</h2>\n");
    for kp in &k.kpis {
        let _ = writeln!(
            o,
            "<h3>{}. {} — {} of {}</h3>",
            kp.id,
            esc(&kp.name),
            kp.count,
            kp.denominator
        );
        if kp.evidence.is_empty() {
            o.push_str("<p>Nothing counted.</p>\n");
        } else {
            o.push_str("<table>\n<thead><tr><th scope=\"col\">Device / incident</th><th scope=\"col\">Reasons</th><th scope=\"col\">Evidence</th><th scope=\"col\">Also known as</th></tr></thead>\n<tbody>\n");
            for e in &kp.evidence {
                let _ = writeln!(
                    o,
                    "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"mono\">{}</td></tr>",
                    esc(&e.device),
                    esc(&e.reasons.join(", ")),
                    esc(&e.details.join("; ")),
                    esc(&e.identifiers.join(", "))
                );
            }
            o.push_str("</tbody>\n</table>\n");
            let findings: Vec<_> = kp
                .evidence
                .iter()
                .flat_map(|e| e.findings.iter().map(move |f| (e, f)))
                .collect();
            if !findings.is_empty() {
                o.push_str("<table>\n<thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Finding</th><th scope=\"col\">CVEs</th><th scope=\"col\">Severity</th><th scope=\"col\">First detected</th><th scope=\"col\">14 days run from</th><th scope=\"col\">Days past fix</th><th scope=\"col\">Source</th></tr></thead>\n<tbody>\n");
                for (e, f) in findings {
                    let _ = writeln!(
                        o,
                        "<tr><td>{}</td><td><span class=\"mono\">{}</span> {}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td class=\"num\">{}</td><td>{}</td></tr>",
                        esc(&e.device),
                        esc(&f.key),
                        esc(&f.title),
                        esc(&f.cves.join(" ")),
                        esc(&f.severity),
                        esc(&f.first_detected),
                        esc(&f.fix_released),
                        esc(&f.fix_basis),
                        f.days_past_fix,
                        esc(&f.source)
                    );
                }
                o.push_str("</tbody>\n</table>\n");
            }
        }
        if !kp.excepted_evidence.is_empty() {
            o.push_str(
                "<p><strong>Excepted (shown beside the figure, not in it):</strong></p>\n<ul>\n",
            );
            for e in &kp.excepted_evidence {
                let _ = writeln!(
                    o,
                    "<li>{}: {}</li>",
                    esc(&e.device),
                    esc(&e.details.join("; "))
                );
            }
            o.push_str("</ul>\n");
        }
        if !kp.not_assessed.is_empty() {
            let _ = writeln!(
                o,
                "<p><strong>Not assessed</strong> (no credentialed scan in 30 days): {}</p>",
                esc(&kp.not_assessed.join(", "))
            );
        }
    }
    o.push_str("</section>\n<section id=\"incidents\">\n<h2>C. Incidents</h2>\n");
    if k.incidents.is_empty() {
        o.push_str("<p>No incidents recorded.</p>\n");
    } else {
        o.push_str("<table>\n<thead><tr><th scope=\"col\">Reference</th><th scope=\"col\">Detected</th><th scope=\"col\">Category</th><th scope=\"col\">Outcome</th><th scope=\"col\">Status at quarter end</th><th scope=\"col\">Impact</th><th scope=\"col\">ICO reference</th></tr></thead>\n<tbody>\n");
        for i in &k.incidents {
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&i.reference),
                esc(&i.detected),
                esc(&i.category),
                esc(&i.outcome),
                esc(&i.status_at_t),
                esc(&i.impact),
                esc(i.ico_reference.as_deref().unwrap_or("—"))
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n<section id=\"alerts\">\n<h2>D. Detection alerts this quarter</h2>\n");
    if input.alerts.is_empty() {
        o.push_str("<p>No alerts.</p>\n");
    } else {
        o.push_str("<table>\n<thead><tr><th scope=\"col\">Alert</th><th scope=\"col\">First seen</th><th scope=\"col\">Rule</th><th scope=\"col\">Domain</th><th scope=\"col\">Severity</th><th scope=\"col\">Status</th><th scope=\"col\">Queries</th></tr></thead>\n<tbody>\n");
        for a in &input.alerts {
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                a.id,
                esc(&a.first_seen),
                esc(&a.rule),
                esc(&a.domain),
                esc(&a.severity),
                esc(&a.status),
                a.count
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    if let Some(m) = &input.mail
        && !m.detail.is_empty()
    {
        o.push_str("<h3>Mail Check by domain</h3>\n<table>\n<thead><tr><th scope=\"col\">Domain</th><th scope=\"col\">Worst finding</th><th scope=\"col\">Checked</th></tr></thead>\n<tbody>\n");
        for (d, w, c) in &m.detail {
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td></tr>",
                esc(d),
                esc(w),
                esc(c)
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n<section id=\"exceptions\">\n<h2>E. Exceptions register</h2>\n");
    if k.exceptions.is_empty() {
        o.push_str("<p>No exceptions.</p>\n");
    } else {
        o.push_str("<table>\n<thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Finding / scope</th><th scope=\"col\">Kind</th><th scope=\"col\">Reason</th><th scope=\"col\">Owner</th><th scope=\"col\">Approver</th><th scope=\"col\">Expires</th><th scope=\"col\">In force at quarter end</th></tr></thead>\n<tbody>\n");
        for e in &k.exceptions {
            let _ = writeln!(
                o,
                "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&e.device),
                esc(e.finding.as_deref().unwrap_or(&e.scope)),
                esc(&e.kind),
                esc(&e.reason),
                esc(&e.owner),
                esc(&e.approver),
                esc(&e.expires),
                if e.in_force { "yes" } else { "no" }
            );
        }
        o.push_str("</tbody>\n</table>\n");
    }
    o.push_str("</section>\n<section id=\"checks\">\n<h2>F. Cyber Essentials checks: devices</h2>\n<table>\n<thead><tr><th scope=\"col\">Check</th><th scope=\"col\">Result</th><th scope=\"col\">Devices</th></tr></thead>\n<tbody>\n");
    for c in &k.cyber_essentials {
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\">{} {}</th><td>{}</td><td>{}</td></tr>",
            esc(&c.id),
            esc(&c.rule),
            if c.pass { "Pass" } else { "Fail" },
            esc(&c.devices.join(", "))
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n<section id=\"register\">\n<h2>G. Asset register and data quality</h2>\n<table>\n<thead><tr><th scope=\"col\">Device</th><th scope=\"col\">Class (rule)</th><th scope=\"col\">OS</th><th scope=\"col\">Last seen</th><th scope=\"col\">In scope</th><th scope=\"col\">Sources</th><th scope=\"col\">Joined by / conflicts</th></tr></thead>\n<tbody>\n");
    for d in &k.register {
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\">{}{}</th><td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td class=\"small\">{}</td><td class=\"small\">{}</td></tr>",
            esc(&d.device),
            if d.managed { "" } else { " (unmanaged)" },
            esc(&d.class),
            esc(&d.class_rule),
            esc(d.os.as_deref().unwrap_or("—")),
            esc(&d.last_seen),
            if d.in_scope { "yes" } else { "no" },
            esc(&d.sources.join("; ")),
            esc(&d
                .merged_by
                .iter()
                .chain(d.conflicts.iter())
                .cloned()
                .collect::<Vec<_>>()
                .join("; "))
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n<section id=\"evidence\">\n<h2>H. Evidence files</h2>\n<table>\n<thead><tr><th scope=\"col\">File</th><th scope=\"col\">Source</th><th scope=\"col\">Taken</th><th scope=\"col\">SHA-256</th></tr></thead>\n<tbody>\n");
    for f in &k.evidence_files {
        let _ = writeln!(
            o,
            "<tr><th scope=\"row\">{}</th><td>{}</td><td>{}{}</td><td class=\"mono\">{}</td></tr>",
            esc(&f.file),
            esc(&f.source),
            esc(&f.as_of),
            if f.stale {
                " (outside the evidence window)"
            } else {
                ""
            },
            esc(&f.sha256)
        );
    }
    o.push_str("</tbody>\n</table>\n</section>\n");
    banner(&mut o, &input.exemption);
    o.push_str("</body>\n</html>\n");
    o
}
