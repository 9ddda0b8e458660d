//! A document as an outline: its sections, headings, paragraphs, tables and
//! notes, computed once from the report model and free of any markup.
//! [`crate::html`] and [`crate::typ`] each walk the same outline, so the
//! HTML and the PDF cannot drift apart in what they say; only in how they
//! lay it out.
//!
//! What only the printed page uses (the footer's quarter, a table's
//! layout, short column headings, the chart's alternative text) is marked
//! as such: the Typst renderer builds only with the `pdf` feature or in
//! tests.
//!
//! The document's own wording ([`Run::Text`]) is kept apart from data
//! ([`Run::Data`], table cells), so that a renderer can write data only in
//! its escaped or quoted form, never as markup.

use parapet_assurance::kpi::{FindingEvidence, Kpi, KpiReport};

use crate::{PublicView, ReportInput, arrow, words};

/// The marking on every page of an exempt document.
pub(crate) const EXEMPT_MARKING: &str = "NOT FOR PUBLICATION — exempt information";

pub(crate) struct Document {
    /// The file's title (HTML `<title>`, PDF metadata).
    pub title: String,
    pub council: String,
    /// For the page footer.
    #[cfg_attr(not(any(feature = "pdf", test)), allow(dead_code))]
    pub quarter: String,
    /// The front matter: the heading under the council's name, and the
    /// committee, date, period and status lines.
    pub heading: &'static str,
    pub facts: Vec<(&'static str, String)>,
    /// The exemption an exempt document is withheld under; its banner
    /// cites it.
    pub exemption: Option<String>,
    /// Marked across every page (PROVISIONAL figures).
    pub watermark: Option<&'static str>,
    pub sections: Vec<Section>,
}

pub(crate) struct Section {
    /// A stable anchor (`#figures`), for links into the HTML.
    pub id: &'static str,
    pub heading: &'static str,
    pub blocks: Vec<Block>,
}

pub(crate) enum Block {
    /// A heading within a section.
    Heading(Vec<Run>),
    Paragraph(Vec<Run>),
    /// A bulleted list of data.
    List(Vec<String>),
    /// Terms and their descriptions.
    Terms(Vec<(Vec<Run>, Vec<Run>)>),
    Table(Table),
    Chart(Chart),
    /// Qualifying findings on the counted devices. Each renderer words
    /// them its own way: a table on screen, a short paragraph each on
    /// paper, where long plugin keys and titles make poor narrow columns.
    Findings(Vec<DeviceFinding>),
}

/// A piece of a paragraph or heading.
pub(crate) enum Run {
    /// The document's own wording.
    Text(&'static str),
    /// The document's own wording, emphasised.
    Strong(&'static str),
    /// The document's own wording, in italics.
    Emphasis(&'static str),
    /// Data from the model: names, references, free text.
    Data(String),
}

pub(crate) struct Table {
    #[cfg_attr(not(any(feature = "pdf", test)), allow(dead_code))]
    pub layout: Layout,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

/// How a paged renderer lays a table out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Columns of equal width.
    Even,
    /// The figures at a glance: a wide measure column, narrow numbers.
    Figures,
    /// Each quarter's counts: columns of equal width.
    Trend,
    /// Cyber Essentials progress: a wide check column, narrow results.
    Checks,
    /// Evidence files: the SHA-256 column as wide as a hash in the small
    /// fixed-width face, so it stays whole on one line (copied, it
    /// verifies).
    Evidence,
}

pub(crate) struct Column {
    pub heading: &'static str,
    /// A shorter heading for the printed page, where columns are narrow.
    pub short: Option<&'static str>,
    /// False for a column the printed page leaves out for want of width.
    pub on_paper: bool,
}

impl Column {
    fn new(heading: &'static str) -> Self {
        Self {
            heading,
            short: None,
            on_paper: true,
        }
    }

    /// The heading a paged renderer prints.
    #[cfg_attr(not(any(feature = "pdf", test)), allow(dead_code))]
    pub fn paper_heading(&self) -> &'static str {
        self.short.unwrap_or(self.heading)
    }
}

fn columns(headings: &[&'static str]) -> Vec<Column> {
    headings.iter().copied().map(Column::new).collect()
}

pub(crate) struct Cell {
    pub text: String,
    pub kind: CellKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum CellKind {
    /// The cell that names its row.
    Label,
    Plain,
    Number,
    /// Identifiers, hashes, addresses: set in a fixed-width face.
    Code,
    /// Long lists set smaller on screen.
    Small,
    /// A RAG status: `green`, `amber`, `red` or `none`, and its word.
    Status(&'static str),
}

impl Cell {
    fn new(kind: CellKind, text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            kind,
        }
    }

    fn label(text: impl Into<String>) -> Self {
        Self::new(CellKind::Label, text)
    }

    fn plain(text: impl Into<String>) -> Self {
        Self::new(CellKind::Plain, text)
    }

    fn number(text: impl Into<String>) -> Self {
        Self::new(CellKind::Number, text)
    }

    fn code(text: impl Into<String>) -> Self {
        Self::new(CellKind::Code, text)
    }

    fn small(text: impl Into<String>) -> Self {
        Self::new(CellKind::Small, text)
    }
}

/// An SVG chart, with the words that stand for it where it cannot be seen.
pub(crate) struct Chart {
    pub svg: String,
    /// The file a paged renderer reads the chart from.
    #[cfg_attr(not(any(feature = "pdf", test)), allow(dead_code))]
    pub file: &'static str,
    pub caption: &'static str,
    /// The caption on the printed page.
    #[cfg_attr(not(any(feature = "pdf", test)), allow(dead_code))]
    pub paper_caption: &'static str,
    /// The chart described for a reader who cannot see it (the printed
    /// page's alternative text; the SVG carries its own title on screen).
    #[cfg_attr(not(any(feature = "pdf", test)), allow(dead_code))]
    pub alt: &'static str,
}

/// The file name the trend chart is given beside a paged document.
pub(crate) const TREND_FILE: &str = "trend.svg";

pub(crate) struct DeviceFinding {
    pub device: String,
    pub finding: FindingEvidence,
}

/// A sentence of the document's wording with data in the places its
/// template marks `{}`.
fn filled<const N: usize>(template: &'static str, data: [String; N]) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut data = data.into_iter();
    for (i, piece) in template.split("{}").enumerate() {
        if i > 0 {
            runs.push(Run::Data(data.next().expect("a datum for each {}")));
        }
        if !piece.is_empty() {
            runs.push(Run::Text(piece));
        }
    }
    debug_assert!(
        data.next().is_none(),
        "more data than places in {template:?}"
    );
    runs
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A Cyber Essentials check's result in words: never a pass the data
/// cannot support.
fn check_result(decided: bool, pass: bool) -> &'static str {
    match (decided, pass) {
        (false, _) => "Cannot be decided",
        (true, true) => "Pass",
        (true, false) => "Fail",
    }
}

/// The watermark on every page of a report whose figures are not frozen.
pub(crate) const PROVISIONAL: &str = "PROVISIONAL";

/// The committee, date, agenda item, author, contact, period and status
/// lines of the front matter. A provisional report says why instead of
/// `status` ("For publication").
fn facts(v: &PublicView, status: &str) -> Vec<(&'static str, String)> {
    let p = &v.profile;
    let mut f = vec![("Committee", v.committee.clone()), ("Date", v.date.clone())];
    for (label, value) in [
        ("Agenda item", &p.agenda_item),
        ("Report author", &p.author),
        ("Contact", &p.contact),
    ] {
        if let Some(x) = value {
            f.push((label, x.clone()));
        }
    }
    f.extend([
        ("Period", format!("{} ({})", v.period, v.quarter)),
        ("Snapshot date", v.snapshot_date.clone()),
    ]);
    if let Some((n, at, by)) = &v.version {
        let by = if by.is_empty() {
            String::new()
        } else {
            format!(" by {by}")
        };
        f.push(("Frozen", format!("version {n}, {at}{by}")));
    }
    f.push((
        "Status",
        match (&v.provisional, status == EXEMPT_MARKING) {
            (Some(why), false) => format!("{PROVISIONAL}: {why}"),
            (Some(why), true) => format!("{status}; {PROVISIONAL}: {why}"),
            (None, _) => status.to_string(),
        },
    ));
    f
}

fn watermark(v: &PublicView) -> Option<&'static str> {
    v.provisional.as_ref().map(|_| PROVISIONAL)
}

/// The five measures at a glance, as the public sees them.
pub(crate) fn figures(v: &PublicView) -> Table {
    let mut cols = columns(&[
        "Measure",
        "This quarter",
        "Of",
        "Status",
        "Previous quarter",
        "Trend",
        "Excepted",
        "Cyber Essentials",
    ]);
    cols[4].short = Some("Previous");
    let rows = v
        .kpis
        .iter()
        .map(|k| {
            let (word, rag) = k.status();
            // no figure at all rather than a "0 of 0" beside "No data"
            let figure = |n: u64| {
                if k.assessed {
                    n.to_string()
                } else {
                    "—".to_string()
                }
            };
            vec![
                Cell::label(format!("{}. {}", k.id, k.name)),
                Cell::number(figure(k.count)),
                Cell::number(figure(k.denominator)),
                Cell::new(CellKind::Status(rag), word),
                Cell::number(
                    k.previous
                        .map_or_else(|| "—".to_string(), |p| p.to_string()),
                ),
                Cell::plain(arrow(&k.direction)),
                Cell::number(k.excepted.to_string()),
                Cell::plain(if !k.assessed {
                    "—"
                } else if k.ce_compliant {
                    "compliant"
                } else {
                    "not compliant"
                }),
            ]
        })
        .collect();
    Table {
        layout: Layout::Figures,
        columns: cols,
        rows,
    }
}

/// The public report, built from the [`PublicView`] only. `trend` is the
/// trend chart, when there is more than one quarter to draw.
pub(crate) fn public(v: &PublicView, trend: Option<&str>) -> Document {
    Document {
        title: format!("Cyber security assurance report — {}", v.quarter),
        council: v.council.clone(),
        quarter: v.quarter.clone(),
        heading: "Cyber security assurance report",
        facts: facts(v, "For publication"),
        exemption: None,
        watermark: watermark(v),
        sections: vec![
            Section {
                id: "purpose",
                heading: "1. Purpose",
                blocks: std::iter::once(Block::Paragraph(vec![Run::Text(
                    "This report gives the committee the council's cyber-security position at the end of the quarter: five measures with their thresholds and status, the trend, progress against Cyber Essentials, the protective DNS and e-mail security services, and the council's Public Services Network (PSN) compliance. Detail that could help an attacker is in a separate exempt appendix.",
                )]))
                .chain(psn(v))
                .collect(),
            },
            Section {
                id: "recommendation",
                heading: "2. Recommendation",
                blocks: vec![Block::Paragraph(vec![Run::Data(
                    v.profile.recommendation().to_string(),
                )])],
            },
            Section {
                id: "summary",
                heading: "3. Summary",
                blocks: psn(v)
                    .into_iter()
                    .chain(
                        v.commentary
                            .iter()
                            .map(|p| Block::Paragraph(vec![Run::Data(p.clone())])),
                    )
                    .collect(),
            },
            kpis(v),
            trend_section(v, trend),
            progress(v),
            services(v),
            officer(v),
            options(v),
            implications(v),
            background_papers(v),
            Section {
                id: "appendix",
                heading: "12. Exempt appendix",
                blocks: vec![
                    Block::Paragraph(filled(
                        "The device-level and incident detail behind every figure is in the exempt appendix, which is not for publication by virtue of {}.",
                        [v.exemption.clone()],
                    )),
                    public_interest(v),
                ],
            },
        ],
    }
}

/// The PSN status sentence, when the profile gives one.
fn psn(v: &PublicView) -> Option<Block> {
    v.profile
        .psn
        .as_ref()
        .map(|p| Block::Paragraph(vec![Run::Data(p.sentence(&v.date))]))
}

/// The public-interest test of the appendix's exemption.
fn public_interest(v: &PublicView) -> Block {
    Block::Paragraph(vec![
        Run::Strong("Public interest test:"),
        Run::Text(" "),
        Run::Data(v.profile.public_interest().to_string()),
    ])
}

/// Paragraphs of an officer's text, or `none` when there is none.
fn written(text: &str, none: &'static str) -> Vec<Block> {
    let ps = crate::officer::paragraphs(text);
    if ps.is_empty() {
        return vec![Block::Paragraph(vec![Run::Text(none)])];
    }
    ps.into_iter()
        .map(|p| Block::Paragraph(vec![Run::Data(p)]))
        .collect()
}

/// The officer's commentary and actions on each measure.
fn officer(v: &PublicView) -> Section {
    let mut blocks = Vec::new();
    for (k, note) in v.kpis.iter().zip(&v.officer.kpis) {
        if note.commentary.trim().is_empty() && note.actions.is_empty() {
            continue;
        }
        blocks.push(Block::Heading(vec![Run::Data(format!(
            "{}. {}",
            k.id, k.name
        ))]));
        blocks.extend(
            crate::officer::paragraphs(&note.commentary)
                .into_iter()
                .map(|p| Block::Paragraph(vec![Run::Data(p)])),
        );
        if !note.actions.is_empty() {
            blocks.push(Block::Paragraph(vec![Run::Strong("Actions:")]));
            blocks.push(Block::List(note.actions.clone()));
        }
    }
    if blocks.is_empty() {
        blocks.push(Block::Paragraph(vec![Run::Text(
            "No officer commentary has been recorded for this quarter.",
        )]));
    }
    Section {
        id: "officer-commentary",
        heading: "8. Officer commentary and actions",
        blocks,
    }
}

fn options(v: &PublicView) -> Section {
    Section {
        id: "options",
        heading: "9. Options considered",
        blocks: written(&v.officer.options, "None recorded."),
    }
}

fn implications(v: &PublicView) -> Section {
    let i = &v.officer.implications;
    let term = |name: &'static str, text: &str| {
        let p = crate::officer::paragraphs(text);
        (
            vec![Run::Text(name)],
            if p.is_empty() {
                vec![Run::Text("None recorded.")]
            } else {
                vec![Run::Data(p.join(" "))]
            },
        )
    };
    Section {
        id: "implications",
        heading: "10. Implications",
        blocks: vec![Block::Terms(vec![
            term("Financial", &i.financial),
            term("Legal", &i.legal),
            term("Risk", &i.risk),
            term("Equalities", &i.equalities),
        ])],
    }
}

fn background_papers(v: &PublicView) -> Section {
    Section {
        id: "background-papers",
        heading: "11. Background papers",
        blocks: if v.officer.background_papers.is_empty() {
            vec![Block::Paragraph(vec![Run::Text("None.")])]
        } else {
            vec![Block::List(v.officer.background_papers.clone())]
        },
    }
}

/// The figures, then what each measure counts and its thresholds.
fn kpis(v: &PublicView) -> Section {
    let terms = v
        .kpis
        .iter()
        .map(|k| {
            (
                vec![Run::Data(format!("{}. {}", k.id, k.name))],
                vec![
                    Run::Data(k.definition.clone()),
                    Run::Text(" "),
                    Run::Emphasis("Threshold:"),
                    Run::Text(" "),
                    Run::Data(k.threshold.clone()),
                    Run::Text("."),
                ],
            )
        })
        .collect();
    Section {
        id: "kpis",
        heading: "4. Key performance indicators",
        blocks: vec![
            Block::Table(figures(v)),
            Block::Heading(vec![Run::Text("Definitions and thresholds")]),
            Block::Terms(terms),
        ],
    }
}

/// The chart of each quarter's counts and the same figures as a table,
/// or a note that the trend starts next quarter.
fn trend_section(v: &PublicView, trend: Option<&str>) -> Section {
    let blocks = match trend {
        Some(svg) => {
            vec![
                Block::Chart(Chart {
                    svg: svg.to_string(),
                    file: TREND_FILE,
                    caption: "Number of incidents and devices failing each measure, by quarter (the table below gives the same figures).",
                    paper_caption: "Incidents and devices failing each measure, by quarter",
                    alt: "Line chart of the number of incidents and devices failing each of the five measures, by quarter; the table below gives the same figures.",
                }),
                Block::Table(Table {
                    layout: Layout::Trend,
                    columns: columns(&["Quarter", "1", "2", "3", "4", "5"]),
                    rows: v
                        .history
                        .iter()
                        .map(|h| {
                            std::iter::once(Cell::label(&h.quarter))
                                .chain(h.counts.iter().map(|c| Cell::number(c.to_string())))
                                .collect()
                        })
                        .collect(),
                }),
            ]
        }
        None => vec![Block::Paragraph(vec![Run::Text(
            "This is the first quarter reported: the trend starts next quarter.",
        )])],
    };
    Section {
        id: "trend",
        heading: "5. Trend",
        blocks,
    }
}

/// Cyber Essentials progress: each check's result and how many devices
/// fail it (the devices themselves are in the exempt appendix).
fn progress(v: &PublicView) -> Section {
    Section {
        id: "cyber-essentials",
        heading: "6. Cyber Essentials progress",
        blocks: vec![
            Block::Paragraph(vec![Run::Text(
                "Checks from the Cyber Essentials requirements that the council's own data can decide. A check fails when any device fails it; the number of devices is given, the devices are listed in the exempt appendix.",
            )]),
            Block::Table(Table {
                layout: Layout::Checks,
                columns: columns(&["Check", "Result", "Devices failing", "Weight"]),
                rows: v
                    .checks
                    .iter()
                    .map(|c| {
                        let rag = if !c.decided {
                            "none"
                        } else if c.pass {
                            "green"
                        } else if c.level == "warning" {
                            "amber"
                        } else {
                            "red"
                        };
                        vec![
                            Cell::label(&c.rule),
                            Cell::new(CellKind::Status(rag), check_result(c.decided, c.pass)),
                            Cell::number(if c.decided {
                                c.devices.to_string()
                            } else {
                                "—".to_string()
                            }),
                            Cell::plain(&c.level),
                        ]
                    })
                    .collect(),
            }),
        ],
    }
}

/// Protective DNS and Mail Check in a sentence each.
fn services(v: &PublicView) -> Section {
    let pdns = match &v.pdns {
        Some(p) => vec![Run::Data(format!(
            "Protective DNS answered {} queries from the council's networks this quarter and blocked {} attempts to reach sites that threat intelligence lists as malicious; {} {} raised for investigation.",
            crate::thousands(p.queries),
            crate::thousands(p.blocked),
            words::count(
                p.alerts,
                "suspicious-activity alert",
                "suspicious-activity alerts"
            ),
            words::was(p.alerts),
        ))],
        None => vec![Run::Text(
            "No protective DNS data is held for this quarter.",
        )],
    };
    let mail = match v.mail {
        Some((domains, compliant, errors, warnings)) if domains > 0 => vec![Run::Data(format!(
            "Mail Check: {compliant} of {} {} the required standard (no error findings); {errors} {} errors to fix and {warnings} {} warnings only.",
            words::count(domains, "e-mail domain", "e-mail domains"),
            words::verb(compliant, "meets", "meet"),
            words::has(errors),
            words::has(warnings),
        ))],
        _ => vec![Run::Text(
            "No Mail Check results are held for the council's domains at the quarter end.",
        )],
    };
    let mut blocks = vec![Block::Paragraph(pdns), Block::Paragraph(mail)];
    if !v.mail_findings.is_empty() {
        // the counts by finding, as `parapet mailcheck` codes them
        blocks.push(Block::Table(Table {
            layout: Layout::Even,
            columns: columns(&["Mail Check finding", "Severity", "Domains"]),
            rows: v
                .mail_findings
                .iter()
                .map(|(sev, code, n)| {
                    vec![
                        Cell::code(code),
                        Cell::plain(sev),
                        Cell::number(n.to_string()),
                    ]
                })
                .collect(),
        }));
    }
    Section {
        id: "services",
        heading: "7. Protective DNS and Mail Check",
        blocks,
    }
}

/// The exempt appendix: the detail behind every figure.
pub(crate) fn exempt(input: &ReportInput, v: &PublicView) -> Document {
    let k = &input.kpi;
    Document {
        title: format!(
            "Exempt appendix — cyber security assurance report — {}",
            v.quarter
        ),
        council: v.council.clone(),
        quarter: v.quarter.clone(),
        heading: "Cyber security assurance report: exempt appendix",
        facts: facts(v, EXEMPT_MARKING),
        exemption: Some(input.exemption.clone()),
        watermark: watermark(v),
        sections: vec![
            Section {
                id: "figures",
                heading: "A. The figures",
                blocks: vec![public_interest(v), Block::Table(figures(v))],
            },
            Section {
                id: "detail",
                heading: "B. Detail behind each measure",
                blocks: k.kpis.iter().flat_map(measure_detail).collect(),
            },
            incidents(k),
            alerts(input),
            exceptions(k),
            checks(k),
            register(k),
            evidence_files(k),
        ],
    }
}

/// One measure's counted devices (or incidents), their findings, the
/// excepted ones beside them and the devices not assessed.
fn measure_detail(kp: &Kpi) -> Vec<Block> {
    let mut b = vec![Block::Heading(vec![Run::Data(match &kp.missing {
        Some(missing) => format!("{}. {} — no data: {missing}", kp.id, kp.name),
        None => format!(
            "{}. {} — {} of {}",
            kp.id, kp.name, kp.count, kp.denominator
        ),
    })])];
    if kp.evidence.is_empty() {
        b.push(Block::Paragraph(vec![Run::Text("Nothing counted.")]));
    } else {
        b.push(Block::Table(Table {
            layout: Layout::Even,
            columns: columns(&["Device / incident", "Reasons", "Evidence", "Also known as"]),
            rows: kp
                .evidence
                .iter()
                .map(|e| {
                    vec![
                        Cell::label(&e.device),
                        Cell::plain(e.reasons.join(", ")),
                        Cell::plain(e.details.join("; ")),
                        Cell::code(e.identifiers.join(", ")),
                    ]
                })
                .collect(),
        }));
        let findings: Vec<DeviceFinding> = kp
            .evidence
            .iter()
            .flat_map(|e| {
                e.findings.iter().map(|f| DeviceFinding {
                    device: e.device.clone(),
                    finding: f.clone(),
                })
            })
            .collect();
        if !findings.is_empty() {
            b.push(Block::Findings(findings));
        }
    }
    if !kp.excepted_evidence.is_empty() {
        b.push(Block::Paragraph(vec![Run::Strong(
            "Excepted (shown beside the figure, not in it):",
        )]));
        b.push(Block::List(
            kp.excepted_evidence
                .iter()
                .map(|e| format!("{}: {}", e.device, e.details.join("; ")))
                .collect(),
        ));
    }
    if !kp.not_assessed.is_empty() {
        b.push(Block::Paragraph(vec![
            Run::Strong("Not assessed"),
            Run::Text(" (no credentialed scan in 30 days): "),
            Run::Data(kp.not_assessed.join(", ")),
        ]));
    }
    b
}

fn incidents(k: &KpiReport) -> Section {
    let blocks = if k.incidents.is_empty() {
        vec![Block::Paragraph(vec![Run::Text("No incidents recorded.")])]
    } else {
        vec![Block::Table(Table {
            layout: Layout::Even,
            columns: columns(&[
                "Reference",
                "Detected",
                "Category",
                "Outcome",
                "Status at quarter end",
                "Impact",
                "ICO reference",
            ]),
            rows: k
                .incidents
                .iter()
                .map(|i| {
                    vec![
                        Cell::label(&i.reference),
                        Cell::plain(&i.detected),
                        Cell::plain(&i.category),
                        Cell::plain(&i.outcome),
                        Cell::plain(&i.status_at_t),
                        Cell::plain(&i.impact),
                        Cell::plain(i.ico_reference.as_deref().unwrap_or("—")),
                    ]
                })
                .collect(),
        })]
    };
    Section {
        id: "incidents",
        heading: "C. Incidents",
        blocks,
    }
}

/// Detection alerts, and Mail Check's result for each domain.
fn alerts(input: &ReportInput) -> Section {
    let mut blocks = Vec::new();
    if input.alerts.is_empty() {
        blocks.push(Block::Paragraph(vec![Run::Text("No alerts.")]));
    } else {
        blocks.push(Block::Table(Table {
            layout: Layout::Even,
            columns: columns(&[
                "Alert",
                "First seen",
                "Rule",
                "Domain",
                "Severity",
                "Status",
                "Queries",
            ]),
            rows: input
                .alerts
                .iter()
                .map(|a| {
                    vec![
                        Cell::label(a.id.to_string()),
                        Cell::plain(&a.first_seen),
                        Cell::plain(&a.rule),
                        Cell::code(&a.domain),
                        Cell::plain(&a.severity),
                        Cell::plain(&a.status),
                        Cell::number(a.count.to_string()),
                    ]
                })
                .collect(),
        }));
    }
    if let Some(m) = input.mail.as_ref().filter(|m| !m.detail.is_empty()) {
        blocks.push(Block::Heading(vec![Run::Text("Mail Check by domain")]));
        blocks.push(Block::Table(Table {
            layout: Layout::Even,
            columns: columns(&["Domain", "Worst finding", "Checked"]),
            rows: m
                .detail
                .iter()
                .map(|(d, w, c)| vec![Cell::label(d), Cell::plain(w), Cell::plain(c)])
                .collect(),
        }));
    }
    Section {
        id: "alerts",
        heading: "D. Detection alerts this quarter",
        blocks,
    }
}

fn exceptions(k: &KpiReport) -> Section {
    let blocks = if k.exceptions.is_empty() {
        vec![Block::Paragraph(vec![Run::Text("No exceptions.")])]
    } else {
        let mut cols = columns(&[
            "Device",
            "Finding / scope",
            "Kind",
            "Reason",
            "Owner",
            "Approver",
            "Expires",
            "In force at quarter end",
        ]);
        cols[7].short = Some("In force");
        vec![Block::Table(Table {
            layout: Layout::Even,
            columns: cols,
            rows: k
                .exceptions
                .iter()
                .map(|e| {
                    vec![
                        Cell::label(&e.device),
                        Cell::plain(e.finding.as_deref().unwrap_or(&e.scope)),
                        Cell::plain(&e.kind),
                        Cell::plain(&e.reason),
                        Cell::plain(&e.owner),
                        Cell::plain(&e.approver),
                        Cell::plain(&e.expires),
                        Cell::plain(yes_no(e.in_force)),
                    ]
                })
                .collect(),
        })]
    };
    Section {
        id: "exceptions",
        heading: "E. Exceptions register",
        blocks,
    }
}

/// Each Cyber Essentials check with the devices that fail it.
fn checks(k: &KpiReport) -> Section {
    Section {
        id: "checks",
        heading: "F. Cyber Essentials checks: devices",
        blocks: vec![Block::Table(Table {
            layout: Layout::Even,
            columns: columns(&["Check", "Result", "Devices"]),
            rows: k
                .cyber_essentials
                .iter()
                .map(|c| {
                    vec![
                        Cell::label(format!("{} {}", c.id, c.rule)),
                        Cell::plain(check_result(c.decided, c.pass)),
                        Cell::plain(c.devices.join(", ")),
                    ]
                })
                .collect(),
        })],
    }
}

fn register(k: &KpiReport) -> Section {
    let mut cols = columns(&[
        "Device",
        "Class (rule)",
        "OS",
        "Last seen",
        "In scope",
        "Sources",
        "Joined by / conflicts",
    ]);
    // a device's sightings (file, row, source and date each) need more
    // width than a seventh column on A4 has; the printed page leaves them off
    cols[5].on_paper = false;
    Section {
        id: "register",
        heading: "G. Asset register and data quality",
        blocks: vec![Block::Table(Table {
            layout: Layout::Even,
            columns: cols,
            rows: k
                .register
                .iter()
                .map(|d| {
                    vec![
                        Cell::label(format!(
                            "{}{}",
                            d.device,
                            if d.managed { "" } else { " (unmanaged)" }
                        )),
                        Cell::plain(format!("{} ({})", d.class, d.class_rule)),
                        Cell::plain(d.os.as_deref().unwrap_or("—")),
                        Cell::plain(&d.last_seen),
                        Cell::plain(yes_no(d.in_scope)),
                        Cell::small(d.sources.join("; ")),
                        Cell::small(
                            d.merged_by
                                .iter()
                                .chain(d.conflicts.iter())
                                .cloned()
                                .collect::<Vec<_>>()
                                .join("; "),
                        ),
                    ]
                })
                .collect(),
        })],
    }
}

/// The evidence chain: each input file and its hash.
fn evidence_files(k: &KpiReport) -> Section {
    Section {
        id: "evidence",
        heading: "H. Evidence files",
        blocks: vec![Block::Table(Table {
            layout: Layout::Evidence,
            columns: columns(&["File", "Source", "Taken", "SHA-256"]),
            rows: k
                .evidence_files
                .iter()
                .map(|f| {
                    vec![
                        Cell::label(&f.file),
                        Cell::plain(&f.source),
                        Cell::plain(format!(
                            "{}{}",
                            f.as_of,
                            if f.stale {
                                " (outside the evidence window)"
                            } else {
                                ""
                            }
                        )),
                        Cell::code(&f.sha256),
                    ]
                })
                .collect(),
        })],
    }
}
