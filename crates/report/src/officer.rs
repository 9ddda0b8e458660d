//! Officer commentary: what the council's officer writes into its committee
//! report (commentary and actions per KPI, options considered, the
//! implications, background papers), from a TOML or Markdown file
//! (`parapet report --commentary FILE`) or the dashboard's form.
//!
//! Commentary is public text by design: it is printed in the public report,
//! so an officer must not write appendix detail into it.

use std::path::Path;

use parapet_assurance::quarter::Quarter;
use parapet_assurance::store::{ReportSources, SavedCommentary};
use serde::{Deserialize, Serialize};

/// Largest commentary file read.
pub const MAX_FILE: usize = 256 * 1024;
/// Longest single field (a KPI's commentary, one implication...).
pub const MAX_FIELD: usize = 16 * 1024;
/// Most actions per KPI, and most background papers.
pub const MAX_ITEMS: usize = 50;

/// One KPI's commentary and actions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct KpiNote {
    pub commentary: String,
    pub actions: Vec<String>,
}

/// Financial, legal, risk and equalities implications.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Implications {
    pub financial: String,
    pub legal: String,
    pub risk: String,
    pub equalities: String,
}

/// The officer's words in a report. Stored as its JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfficerCommentary {
    /// KPI 1 to 5, in order.
    pub kpis: [KpiNote; 5],
    pub options: String,
    pub implications: Implications,
    pub background_papers: Vec<String>,
}

impl OfficerCommentary {
    /// Whether nothing is written.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Each field within its limits, named when it is not.
    pub fn check(&self) -> Result<(), String> {
        let long = |name: String, s: &str| {
            if s.len() > MAX_FIELD {
                Err(format!("{name}: longer than {MAX_FIELD} bytes"))
            } else {
                Ok(())
            }
        };
        for (i, k) in self.kpis.iter().enumerate() {
            long(format!("kpi.{}.commentary", i + 1), &k.commentary)?;
            if k.actions.len() > MAX_ITEMS {
                return Err(format!("kpi.{}.actions: more than {MAX_ITEMS}", i + 1));
            }
            for a in &k.actions {
                long(format!("kpi.{}.actions", i + 1), a)?;
            }
        }
        long("options".into(), &self.options)?;
        let i = &self.implications;
        for (n, s) in [
            ("financial", &i.financial),
            ("legal", &i.legal),
            ("risk", &i.risk),
            ("equalities", &i.equalities),
        ] {
            long(format!("implications.{n}"), s)?;
        }
        if self.background_papers.len() > MAX_ITEMS {
            return Err(format!("background_papers: more than {MAX_ITEMS}"));
        }
        for p in &self.background_papers {
            long("background_papers".into(), p)?;
        }
        Ok(())
    }
}

/// Why commentary was not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError<E: std::error::Error + 'static> {
    #[error(
        "{quarter} of {tenant} is frozen: its commentary is part of what was tabled; reopen the quarter to change it"
    )]
    Frozen { tenant: String, quarter: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(E),
}

/// Saves a new version of the commentary of `tenant` for `quarter`,
/// refused while the quarter is frozen (its commentary is what was
/// tabled with it).
pub fn save_officer_commentary<S: ReportSources + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    author: &str,
    commentary: &OfficerCommentary,
    now: i64,
) -> Result<(), SaveError<S::Error>> {
    commentary.check().map_err(SaveError::Invalid)?;
    let key = quarter.to_string();
    if quarter.start() > now {
        return Err(SaveError::Invalid(format!(
            "{key} has not started yet: there is nothing to comment on"
        )));
    }
    if store
        .kpi_snapshot(tenant, &key)
        .map_err(SaveError::Store)?
        .is_some()
    {
        return Err(SaveError::Frozen {
            tenant: tenant.to_string(),
            quarter: key,
        });
    }
    let body = serde_json::to_string(commentary).expect("serialisable");
    store
        .save_commentary(tenant, &key, now, author, &body)
        .map_err(SaveError::Store)
}

/// The commentary in force for a quarter: the latest saved at or before
/// its freeze time when frozen, else the latest; `None` when none was
/// ever saved.
pub fn commentary_in_force<S: ReportSources + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: &str,
) -> Result<Option<(SavedCommentary, OfficerCommentary)>, S::Error> {
    let until = store
        .kpi_snapshot(tenant, quarter)?
        .map_or(i64::MAX, |(v, _)| v.frozen_at);
    Ok(store.commentary(tenant, quarter, until)?.map(|saved| {
        // written by this crate and checked before saving; a body a later
        // version cannot read shows as no commentary rather than failing
        // the whole report
        let c = serde_json::from_str(&saved.body).unwrap_or_default();
        (saved, c)
    }))
}

/// A commentary file that cannot be used: the file, the line and the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct CommentaryError {
    pub file: String,
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// The TOML form of a commentary file: `[kpi.N]` tables rather than an
/// array, so an officer names the KPI a note is about.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    kpi: std::collections::BTreeMap<String, toml::Spanned<KpiNote>>,
    #[serde(default)]
    options: String,
    #[serde(default)]
    implications: Implications,
    #[serde(default)]
    background_papers: Vec<String>,
}

/// Reads a commentary file: `.toml`, or `.md`/`.markdown` (see
/// [`parse_markdown`]).
pub fn read_commentary(path: &Path) -> Result<OfficerCommentary, CommentaryError> {
    let file = path.display().to_string();
    let err = |line, field: &str, message: String| CommentaryError {
        file: file.clone(),
        line,
        field: field.to_string(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(0, "file", e.to_string()))?;
    if meta.len() > MAX_FILE as u64 {
        return Err(err(0, "file", format!("larger than {MAX_FILE} bytes")));
    }
    let bytes = std::fs::read(path).map_err(|e| err(0, "file", e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        err(line, "file", "not UTF-8".into())
    })?;
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let (c, line_of_field) = match ext.as_str() {
        "toml" => parse_toml(&text).map_err(|(l, f, m)| err(l, &f, m))?,
        "md" | "markdown" => parse_markdown(&text).map_err(|(l, f, m)| err(l, &f, m))?,
        _ => {
            return Err(err(
                0,
                "file",
                "the commentary must be a .toml or .md file".into(),
            ));
        }
    };
    c.check().map_err(|m| {
        let field = m.split(':').next().unwrap_or("").to_string();
        err(
            line_of_field(&field),
            &field,
            m[field.len() + 1..].trim().into(),
        )
    })?;
    Ok(c)
}

type Parsed = (OfficerCommentary, Box<dyn Fn(&str) -> usize>);
type ParseError = (usize, String, String);

fn line_at(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

fn parse_toml(text: &str) -> Result<Parsed, ParseError> {
    let f: TomlFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_at(text, s.start));
        (line, "toml".to_string(), e.message().to_string())
    })?;
    let mut c = OfficerCommentary {
        options: f.options,
        implications: f.implications,
        background_papers: f.background_papers,
        ..OfficerCommentary::default()
    };
    let mut lines = [0usize; 5];
    for (k, note) in f.kpi {
        let line = line_at(text, note.span().start);
        let i = match k.parse::<usize>() {
            Ok(i @ 1..=5) => i,
            _ => return Err((line, format!("kpi.{k}"), "the KPIs are 1 to 5".into())),
        };
        lines[i - 1] = line;
        c.kpis[i - 1] = note.into_inner();
    }
    let text = text.to_string();
    Ok((
        c,
        Box::new(move |field| {
            // a KPI's field is on its table's line; others where first named
            if let Some(n) = field
                .strip_prefix("kpi.")
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<usize>().ok())
            {
                return lines[n - 1];
            }
            let key = field.rsplit('.').next().unwrap_or(field);
            text.find(key).map_or(0, |o| line_at(&text, o))
        }),
    ))
}

/// Where Markdown text goes.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Kpi(usize),
    Actions(usize),
    Options,
    Financial,
    Legal,
    Risk,
    Equalities,
    Papers,
}

/// A heading's slot: `KPI 1` (anything after the number is a title),
/// `Actions` (under a KPI), `Options considered`, `Financial implications`
/// and the like, `Background papers`.
fn slot(heading: &str, current: Option<Slot>) -> Option<Slot> {
    let h = heading.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix("kpi") {
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return match digits.parse::<usize>() {
            Ok(n @ 1..=5) => Some(Slot::Kpi(n - 1)),
            _ => None,
        };
    }
    Some(match h.as_str() {
        "actions" => match current {
            Some(Slot::Kpi(n) | Slot::Actions(n)) => Slot::Actions(n),
            _ => return None,
        },
        "options considered" | "options" => Slot::Options,
        "financial implications" | "financial" => Slot::Financial,
        "legal implications" | "legal" => Slot::Legal,
        "risk implications" | "risk" => Slot::Risk,
        "equalities implications" | "equalities" | "equality implications" => Slot::Equalities,
        "background papers" => Slot::Papers,
        // a heading over the implications only groups them (the caller
        // sets no slot for it)
        "implications" => Slot::Financial,
        _ => return None,
    })
}

fn slot_field(s: Slot) -> String {
    match s {
        Slot::Kpi(n) => format!("kpi.{}.commentary", n + 1),
        Slot::Actions(n) => format!("kpi.{}.actions", n + 1),
        Slot::Options => "options".into(),
        Slot::Financial => "implications.financial".into(),
        Slot::Legal => "implications.legal".into(),
        Slot::Risk => "implications.risk".into(),
        Slot::Equalities => "implications.equalities".into(),
        Slot::Papers => "background_papers".into(),
    }
}

/// Parses the Markdown form:
///
/// ```markdown
/// # KPI 2: servers without anti-virus
/// Two servers were rebuilt after the quarter end.
/// ## Actions
/// - Replace the anti-virus agent on the file servers (ICT, March)
/// # Options considered
/// # Financial implications
/// # Legal implications
/// # Risk implications
/// # Equalities implications
/// # Background papers
/// - Cyber security strategy 2025–2028
/// ```
///
/// Headings of any level name where the text below goes; paragraphs are
/// kept (blank lines separate them), list items become actions or
/// papers. Text before the first heading, or under a heading not listed,
/// is an error naming its line.
pub fn parse_markdown(text: &str) -> Result<Parsed, ParseError> {
    let mut c = OfficerCommentary::default();
    let mut current: Option<Slot> = None;
    // under `# Implications`, before its first subheading
    let mut grouping = false;
    let mut first_line = std::collections::HashMap::<String, usize>::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end();
        if let Some(h) = l.strip_prefix('#') {
            let h = h.trim_start_matches('#');
            let s = slot(h, current).ok_or_else(|| {
                (
                    line,
                    "heading".to_string(),
                    format!(
                        "`{}` is not a section of the commentary (KPI 1–5, Actions under a KPI, Options considered, Financial/Legal/Risk/Equalities implications, Background papers)",
                        h.trim()
                    ),
                )
            })?;
            // `# Implications` only groups its subheadings
            grouping = h.trim().eq_ignore_ascii_case("implications");
            current = if grouping { None } else { Some(s) };
            if let Some(s) = current {
                first_line.entry(slot_field(s)).or_insert(line);
            }
            continue;
        }
        if l.trim().is_empty() {
            if let Some(s) = current {
                push_break(&mut c, s);
            }
            continue;
        }
        let Some(s) = current else {
            let message = if grouping {
                "text under `Implications`: put it under `## Financial implications`, `## Legal implications`, `## Risk implications` or `## Equalities implications`"
            } else {
                "text before any heading: start with a heading such as `# KPI 1`"
            };
            return Err((line, "text".into(), message.into()));
        };
        let item = l
            .trim_start()
            .strip_prefix("- ")
            .or_else(|| l.trim_start().strip_prefix("* "));
        match (s, item) {
            (Slot::Actions(n), Some(it)) => c.kpis[n].actions.push(it.trim().to_string()),
            (Slot::Papers, Some(it)) => c.background_papers.push(it.trim().to_string()),
            (Slot::Actions(n), None) => match c.kpis[n].actions.last_mut() {
                // a continuation line of the last item
                Some(last) => {
                    last.push(' ');
                    last.push_str(l.trim());
                }
                None => c.kpis[n].actions.push(l.trim().to_string()),
            },
            (Slot::Papers, None) => match c.background_papers.last_mut() {
                Some(last) => {
                    last.push(' ');
                    last.push_str(l.trim());
                }
                None => c.background_papers.push(l.trim().to_string()),
            },
            (s, _) => push_text(&mut c, s, l.trim()),
        }
        if c.kpis.iter().any(|k| k.actions.len() > MAX_ITEMS)
            || c.background_papers.len() > MAX_ITEMS
        {
            return Err((line, slot_field(s), format!("more than {MAX_ITEMS} items")));
        }
    }
    for s in [
        Slot::Options,
        Slot::Financial,
        Slot::Legal,
        Slot::Risk,
        Slot::Equalities,
    ]
    .into_iter()
    .chain((0..5).map(Slot::Kpi))
    {
        let t = text_of(&mut c, s);
        *t = t.trim().to_string();
    }
    Ok((
        c,
        Box::new(move |field| first_line.get(field).copied().unwrap_or(0)),
    ))
}

fn text_of(c: &mut OfficerCommentary, s: Slot) -> &mut String {
    match s {
        Slot::Kpi(n) | Slot::Actions(n) => &mut c.kpis[n].commentary,
        Slot::Options | Slot::Papers => &mut c.options,
        Slot::Financial => &mut c.implications.financial,
        Slot::Legal => &mut c.implications.legal,
        Slot::Risk => &mut c.implications.risk,
        Slot::Equalities => &mut c.implications.equalities,
    }
}

fn push_text(c: &mut OfficerCommentary, s: Slot, l: &str) {
    let t = text_of(c, s);
    if !t.is_empty() && !t.ends_with('\n') {
        t.push(' ');
    }
    t.push_str(l);
}

/// A blank line: the paragraph ends.
fn push_break(c: &mut OfficerCommentary, s: Slot) {
    if matches!(s, Slot::Actions(_) | Slot::Papers) {
        return;
    }
    let t = text_of(c, s);
    if !t.is_empty() && !t.ends_with("\n\n") {
        t.push_str("\n\n");
    }
}

/// A field's paragraphs (blank lines apart).
pub(crate) fn paragraphs(s: &str) -> Vec<String> {
    s.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(text: &str) -> Result<OfficerCommentary, ParseError> {
        parse_markdown(text).map(|(c, _)| c)
    }

    #[test]
    fn markdown_sections_fill_their_fields() {
        let c = md("# KPI 2: servers without anti-virus\nTwo servers were\nrebuilt.\n\nA second paragraph.\n## Actions\n- Replace the agent\n  (ICT, March)\n- Review\n# Options considered\nNone other.\n# Implications\n## Financial implications\nWithin budget.\n## Equalities\nNone.\n# Background papers\n- Strategy 2025\n")
            .unwrap();
        assert_eq!(
            c.kpis[1].commentary,
            "Two servers were rebuilt.\n\nA second paragraph."
        );
        assert_eq!(
            c.kpis[1].actions,
            ["Replace the agent (ICT, March)", "Review"]
        );
        assert_eq!(c.options, "None other.");
        assert_eq!(c.implications.financial, "Within budget.");
        assert_eq!(c.implications.equalities, "None.");
        assert_eq!(c.background_papers, ["Strategy 2025"]);
        assert_eq!(
            paragraphs(&c.kpis[1].commentary),
            ["Two servers were rebuilt.", "A second paragraph."]
        );
    }

    #[test]
    fn markdown_errors_name_the_line() {
        let e = md("Intro\n# KPI 1\n").unwrap_err();
        assert_eq!((e.0, e.1.as_str()), (1, "text"));
        let e = md("# KPI 1\nok\n# KPI 9\n").unwrap_err();
        assert_eq!((e.0, e.1.as_str()), (3, "heading"));
        let e = md("# Options considered\n## Actions\n").unwrap_err();
        assert_eq!(e.0, 2);
        let e = md("# Implications\nSome text\n").unwrap_err();
        assert_eq!(e.0, 2);
        assert!(e.2.contains("## Financial implications"), "{}", e.2);
    }

    #[test]
    fn toml_files_and_their_errors() {
        let dir = std::env::temp_dir().join(format!("parapet-officer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("c.toml");
        std::fs::write(
            &good,
            "options = \"Do nothing.\"\nbackground_papers = [\"Strategy\"]\n[implications]\nrisk = \"Lower.\"\n[kpi.4]\ncommentary = \"Patching is late.\"\nactions = [\"Patch\"]\n",
        )
        .unwrap();
        let c = read_commentary(&good).unwrap();
        assert_eq!(c.kpis[3].actions, ["Patch"]);
        assert_eq!(c.implications.risk, "Lower.");
        let cases = [
            (
                "a.toml",
                "options = \"x\"\n[kpi.7]\ncommentary = \"y\"\n",
                "a.toml:2: kpi.7:",
            ),
            ("b.toml", "options = 3\n", "b.toml:1: toml:"),
            (
                "c.toml",
                "\n[implications]\nmoney = \"x\"\n",
                "c.toml:3: toml:",
            ),
            ("d.txt", "x", "d.txt:0: file:"),
            ("e.md", "# KPI 1\n\n# Nonsense\n", "e.md:3: heading:"),
        ];
        for (name, text, want) in cases {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            let e = read_commentary(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{name}: {e}");
        }
        let long = dir.join("long.toml");
        std::fs::write(
            &long,
            format!(
                "options = \"x\"\n[kpi.2]\ncommentary = \"{}\"\n",
                "a".repeat(MAX_FIELD + 1)
            ),
        )
        .unwrap();
        let e = read_commentary(&long).unwrap_err().to_string();
        assert!(
            e.contains("long.toml:2: kpi.2.commentary: longer than"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
