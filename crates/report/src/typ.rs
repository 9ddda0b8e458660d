//! Typst markup for the PDFs: a document's outline ([`crate::outline`])
//! written as Typst. Every piece of data goes in as a Typst string literal
//! (`#"…"`), never as markup, so no input can change the document's
//! structure.

use std::fmt::Write;

use crate::outline::{
    Block, Cell, CellKind, DeviceFinding, Document, EXEMPT_MARKING, Layout, Run, Table,
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

/// Column widths of the figures table: the measure's name wide, the
/// numbers as narrow as they are.
const FIGURES_COLUMNS: &str = "(2.6fr, auto, auto, auto, auto, 1.1fr, auto, 1fr)";

/// Column widths of the Cyber Essentials progress table: the check wide.
const CHECKS_COLUMNS: &str = "(3fr, auto, auto, auto)";

/// Column widths of the evidence files: the hash as wide as it is.
const EVIDENCE_COLUMNS: &str = "(1fr, auto, 1fr, auto)";

fn table(o: &mut String, t: &Table) {
    let cols: Vec<usize> = (0..t.columns.len())
        .filter(|&i| t.columns[i].on_paper)
        .collect();
    let headings = |quoted: bool| {
        cols.iter()
            .map(|&i| {
                let h = t.columns[i].paper_heading();
                if quoted {
                    format!("[*{}*]", s(h))
                } else {
                    format!("[*{h}*]")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    // the appendix's tables quote their headings like data; the public
    // report's write them, the document's own wording, as markup. Both
    // print the same.
    let _ = match t.layout {
        Layout::Even => writeln!(
            o,
            "#table(columns: {}, table.header({}),",
            cols.len(),
            headings(true)
        ),
        Layout::Trend => writeln!(
            o,
            "#table(columns: {}, table.header({}),",
            cols.len(),
            headings(false)
        ),
        Layout::Figures => writeln!(
            o,
            "#table(columns: {FIGURES_COLUMNS},\n  table.header({}),",
            headings(false)
        ),
        Layout::Checks => writeln!(
            o,
            "#table(columns: {CHECKS_COLUMNS}, table.header({}),",
            headings(false)
        ),
        Layout::Evidence => writeln!(
            o,
            "#table(columns: {EVIDENCE_COLUMNS}, table.header({}),",
            headings(true)
        ),
    };
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
        // hashes and identifiers: a smaller fixed-width face that may break
        // anywhere, so a SHA-256 wraps inside its column, never off the page
        CellKind::Code => format!(
            "[#text(font: \"DejaVu Sans Mono\", size: 7pt, {})]",
            &s(&breakable(&x.text))[1..]
        ),
        _ => c(&x.text),
    }
}

/// Runs of more than 64 characters without a space (long names) with a
/// zero-width space every 8: places Typst may break a line that has no
/// other. Identifiers and SHA-256 hashes (64) stay whole, so that text
/// copied from the PDF still matches.
fn breakable(x: &str) -> String {
    let mut o = String::with_capacity(x.len() + x.len() / 8 * 3);
    for (i, word) in x.split(' ').enumerate() {
        if i > 0 {
            o.push(' ');
        }
        if word.chars().count() <= 64 {
            o.push_str(word);
            continue;
        }
        for (j, ch) in word.chars().enumerate() {
            if j > 0 && j % 8 == 0 {
                o.push('\u{200b}');
            }
            o.push(ch);
        }
    }
    o
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
    if let Some(w) = d.watermark {
        // across every page, behind the text: a provisional report cannot
        // be mistaken for the tabled one, whichever page is copied
        let _ = writeln!(
            o,
            "#set page(background: rotate(-35deg, text(size: 80pt, weight: \"bold\", fill: rgb(\"#b0002030\"), {})))\n",
            &s(w)[1..]
        );
    }
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
    // a document that ends in a paragraph ends with one newline, not a
    // blank line, as the public report's source always has
    let last = d.sections.last().and_then(|sec| sec.blocks.last());
    if matches!(last, Some(Block::Paragraph(_))) {
        o.pop();
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
            Run::Emphasis(t) => {
                let _ = write!(o, "_{t}_");
            }
            Run::Data(x) => o.push_str(&s(x)),
        }
    }
}

/// A paragraph of plain wording with data in it is set as one string
/// literal, wording and all; one with emphasis is written run by run.
fn paragraph(o: &mut String, r: &[Run]) {
    let mut text = String::new();
    let mut data = false;
    for x in r {
        match x {
            Run::Text(t) => text.push_str(t),
            Run::Data(d) => {
                text.push_str(d);
                data = true;
            }
            Run::Strong(_) | Run::Emphasis(_) => return runs(o, r),
        }
    }
    if data {
        o.push_str(&s(&text));
    } else {
        o.push_str(&text);
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
            paragraph(o, r);
            o.push_str("\n\n");
        }
        Block::List(items) => {
            for i in items {
                let _ = writeln!(o, "- {}", s(i));
            }
            o.push('\n');
        }
        Block::Terms(terms) => {
            for (term, description) in terms {
                o.push_str("/ ");
                runs(o, term);
                o.push_str(": ");
                runs(o, description);
                o.push_str("\n\n");
            }
        }
        Block::Table(t) => table(o, t),
        Block::Chart(c) => {
            let _ = writeln!(
                o,
                "#figure(image({}, width: 100%, alt: {}), caption: [{}])\n",
                &s(c.file)[1..],
                &s(c.alt)[1..],
                c.paper_caption
            );
        }
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
        assert_eq!(
            breakable("10.10.0.10, 00:50:56:00:00:11"),
            "10.10.0.10, 00:50:56:00:00:11"
        );
        assert_eq!(breakable(&"a".repeat(64)), "a".repeat(64));
        assert_eq!(
            breakable(&"ab".repeat(33)),
            format!("{}ab", "abababab\u{200b}".repeat(8))
        );
    }
}
