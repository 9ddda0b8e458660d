//! Typst markup for the PDFs. Every piece of data goes in as a Typst
//! string literal (`#"…"`), never as markup, so no input can change the
//! document's structure.

use std::fmt::Write;

use crate::PublicView;
use crate::outline::{
    Block, Cell, CellKind, DeviceFinding, Document, EXEMPT_MARKING, Layout, Run, Table, figures,
};

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

fn preamble(o: &mut String, title: &str, council: &str, quarter: &str, header: Option<&str>) {
    let _ = writeln!(
        o,
        "#set document(title: {}, author: {})",
        &s(title)[1..],
        &s(council)[1..]
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
        s(&format!("{council} — {quarter}"))
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

/// The public report. `trend` says whether `trend.svg` is available.
pub fn public(v: &PublicView, trend: bool) -> String {
    let mut o = String::new();
    preamble(
        &mut o,
        &format!("Cyber security assurance report — {}", v.quarter),
        &v.council,
        &v.quarter,
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
    table(&mut o, &figures(v));
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

/// Column widths of the figures table: the measure's name wide, the
/// numbers as narrow as they are.
const FIGURES_COLUMNS: &str = "(2.6fr, auto, auto, auto, auto, 1.1fr, auto, 1fr)";

fn table(o: &mut String, t: &Table) {
    let cols: Vec<usize> = (0..t.columns.len())
        .filter(|&i| t.columns[i].on_paper)
        .collect();
    match t.layout {
        Layout::Even => {
            let _ = writeln!(
                o,
                "#table(columns: {}, table.header({}),",
                cols.len(),
                cols.iter()
                    .map(|&i| format!("[*{}*]", s(t.columns[i].paper_heading())))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        // the figures table writes its headings, the document's own
        // wording, as markup; the others quote theirs like data. Both
        // print the same.
        Layout::Figures => {
            let _ = writeln!(
                o,
                "#table(columns: {FIGURES_COLUMNS},\n  table.header({}),",
                cols.iter()
                    .map(|&i| format!("[*{}*]", t.columns[i].paper_heading()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    for row in &t.rows {
        let _ = writeln!(
            o,
            "  {},",
            cols.iter()
                .map(|&i| cell(&row[i]))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    o.push_str(")\n\n");
}

fn cell(x: &Cell) -> String {
    match x.kind {
        CellKind::Status(rag) => format!("table.cell(fill: {})[{}]", rag_fill(rag), s(&x.text)),
        _ => c(&x.text),
    }
}

/// A document from its outline.
pub fn render(d: &Document) -> String {
    let mut o = String::new();
    preamble(
        &mut o,
        &d.title,
        &d.council,
        &d.quarter,
        d.exemption.as_ref().map(|_| EXEMPT_MARKING),
    );
    if let Some(x) = &d.exemption {
        let _ = writeln!(
            o,
            "#block(stroke: 2pt + rgb(\"#b00020\"), inset: 8pt, width: 100%, align(center)[*{EXEMPT_MARKING}* \\ {}])\n",
            s(&format!("by virtue of {x}"))
        );
    }
    front(&mut o, d);
    for sec in &d.sections {
        let _ = writeln!(o, "== {}\n", sec.heading);
        for b in &sec.blocks {
            block(&mut o, b);
        }
    }
    o
}

fn front(o: &mut String, d: &Document) {
    let _ = writeln!(o, "{}\n", s(&d.council));
    let _ = writeln!(o, "= {}\n", s(d.heading));
    let _ = writeln!(
        o,
        "#table(columns: (auto, 1fr), stroke: none, inset: 2pt, {})\n",
        d.facts
            .iter()
            .map(|(label, value)| format!("[*{label}*], {}", c(value)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn runs(o: &mut String, runs: &[Run]) {
    for r in runs {
        match r {
            Run::Text(t) => o.push_str(t),
            Run::Strong(t) => {
                let _ = write!(o, "*{t}*");
            }
            Run::Data(x) => o.push_str(&s(x)),
        }
    }
}

fn block(o: &mut String, b: &Block) {
    match b {
        Block::Heading(r) => {
            o.push_str("=== ");
            runs(o, r);
            o.push_str("\n\n");
        }
        Block::Paragraph(r) => {
            runs(o, r);
            o.push_str("\n\n");
        }
        Block::List(items) => {
            for i in items {
                let _ = writeln!(o, "- {}", s(i));
            }
            o.push('\n');
        }
        Block::Table(t) => table(o, t),
        Block::Findings(f) => findings(o, f),
    }
}

/// Findings as paragraphs, not a wide table: long plugin keys and titles
/// then wrap at spaces and stay whole.
fn findings(o: &mut String, list: &[DeviceFinding]) {
    for DeviceFinding { device, finding: f } in list {
        let _ = writeln!(
            o,
            "#block(breakable: false, below: 0.8em)[*{}* — {} \\ #text(size: 8.5pt)[{}]]\n",
            s(device),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_become_markup() {
        assert_eq!(s(r#"a "b" \ #c [d] *e*"#), r##"#"a \"b\" \\ #c [d] *e*""##);
        assert_eq!(c("x\ny"), "[#\"x\\ny\"]");
    }
}
