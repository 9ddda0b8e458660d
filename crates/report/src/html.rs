//! Print-friendly HTML, no JavaScript. The public report is built from the
//! [`PublicView`] only; the exempt appendix is rendered from its outline.

use std::fmt::Write;

use crate::PublicView;
use crate::outline::{
    Block, CellKind, DeviceFinding, Document, EXEMPT_MARKING, Run, Table, figures,
};

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
    table(&mut o, &figures(v));
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
        "<p class=\"banner\">{EXEMPT_MARKING}<br><span class=\"small\">by virtue of {}</span></p>",
        esc(reason)
    );
}

/// A document from its outline.
pub fn render(d: &Document) -> String {
    let mut o = head(&d.title);
    if let Some(x) = &d.exemption {
        banner(&mut o, x);
    }
    front(&mut o, d);
    for s in &d.sections {
        let _ = writeln!(o, "<section id=\"{}\">\n<h2>{}</h2>", s.id, s.heading);
        for b in &s.blocks {
            block(&mut o, b);
        }
        o.push_str("</section>\n");
    }
    if let Some(x) = &d.exemption {
        banner(&mut o, x);
    }
    o.push_str("</body>\n</html>\n");
    o
}

fn front(o: &mut String, d: &Document) {
    let _ = write!(
        o,
        "<header>\n<p class=\"council\">{}</p>\n<h1>{}</h1>\n<dl class=\"meta\">\n",
        esc(&d.council),
        esc(d.heading)
    );
    for (label, value) in &d.facts {
        let _ = writeln!(o, "<dt>{label}</dt><dd>{}</dd>", esc(value));
    }
    o.push_str("</dl>\n</header>\n");
}

fn runs(o: &mut String, runs: &[Run]) {
    for r in runs {
        match r {
            Run::Text(t) => o.push_str(t),
            Run::Strong(t) => {
                let _ = write!(o, "<strong>{t}</strong>");
            }
            Run::Data(x) => o.push_str(&esc(x)),
        }
    }
}

fn block(o: &mut String, b: &Block) {
    match b {
        Block::Heading(r) => {
            o.push_str("<h3>");
            runs(o, r);
            o.push_str("</h3>\n");
        }
        Block::Paragraph(r) => {
            o.push_str("<p>");
            runs(o, r);
            o.push_str("</p>\n");
        }
        Block::List(items) => {
            o.push_str("<ul>\n");
            for i in items {
                let _ = writeln!(o, "<li>{}</li>", esc(i));
            }
            o.push_str("</ul>\n");
        }
        Block::Table(t) => table(o, t),
        Block::Findings(f) => findings(o, f),
    }
}

fn table_head<'a>(o: &mut String, headings: impl IntoIterator<Item = &'a str>) {
    o.push_str("<table>\n<thead><tr>");
    for h in headings {
        let _ = write!(o, "<th scope=\"col\">{h}</th>");
    }
    o.push_str("</tr></thead>\n<tbody>\n");
}

fn table(o: &mut String, t: &Table) {
    table_head(o, t.columns.iter().map(|c| c.heading));
    for row in &t.rows {
        o.push_str("<tr>");
        for c in row {
            let x = esc(&c.text);
            let _ = match c.kind {
                CellKind::Label => write!(o, "<th scope=\"row\">{x}</th>"),
                CellKind::Plain => write!(o, "<td>{x}</td>"),
                CellKind::Number => write!(o, "<td class=\"num\">{x}</td>"),
                CellKind::Code => write!(o, "<td class=\"mono\">{x}</td>"),
                CellKind::Small => write!(o, "<td class=\"small\">{x}</td>"),
                CellKind::Status(rag) => write!(o, "<td class=\"rag-{rag}\">{x}</td>"),
            };
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody>\n</table>\n");
}

/// Findings on screen: one table, a row each.
fn findings(o: &mut String, list: &[DeviceFinding]) {
    table_head(
        o,
        [
            "Device",
            "Finding",
            "CVEs",
            "Severity",
            "First detected",
            "14 days run from",
            "Days past fix",
            "Source",
        ],
    );
    for DeviceFinding { device, finding: f } in list {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td><span class=\"mono\">{}</span> {}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(device),
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
