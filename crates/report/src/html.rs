//! Print-friendly HTML, no JavaScript: a document's outline
//! ([`crate::outline`]) written as HTML.

use std::fmt::Write;

use crate::outline::{Block, CellKind, DeviceFinding, Document, EXEMPT_MARKING, Run, Table};

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
.watermark { position: fixed; top: 40%; left: 0; right: 0; text-align: center; font-size: 6rem; font-weight: bold; color: rgba(176, 0, 32, 0.15); transform: rotate(-30deg); pointer-events: none; margin: 0; }
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
    if let Some(w) = d.watermark {
        // fixed: on every printed page, behind the text
        let _ = writeln!(o, "<p class=\"watermark\" aria-hidden=\"true\">{w}</p>");
    }
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
            Run::Emphasis(t) => {
                let _ = write!(o, "<em>{t}</em>");
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
        Block::Terms(terms) => {
            o.push_str("<dl>\n");
            for (term, description) in terms {
                o.push_str("<dt>");
                runs(o, term);
                o.push_str("</dt><dd>");
                runs(o, description);
                o.push_str("</dd>\n");
            }
            o.push_str("</dl>\n");
        }
        Block::Table(t) => table(o, t),
        Block::Chart(c) => {
            let _ = writeln!(
                o,
                "<figure class=\"chart\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
                c.svg, c.caption
            );
        }
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
