//! The quarterly committee report: a **public report** a committee member
//! reads in five minutes (figures, thresholds, RAG, trend, plain-English
//! commentary — no host names, addresses, user names, vulnerability or
//! plugin identifiers), and an **exempt appendix** with the detail behind
//! every figure, each as print-friendly HTML (no JavaScript) and, with the
//! `pdf` feature, as A4 PDF typeset in-process by Typst (fonts embedded,
//! page numbers, tagged for accessibility). Charts are SVG, drawn here.
//!
//! The public documents are built only from [`PublicView`], which holds no
//! identifying field: what is not in it cannot leak.

mod chart;
mod commentary;
mod gather;
mod html;
mod officer;
mod outline;
#[cfg(feature = "pdf")]
mod pdf;
mod profile;
#[cfg(any(feature = "pdf", test))]
mod typ;
mod words;

use std::path::Path;

use parapet_assurance::kpi::{KpiReport, Rag};
use serde::Serialize;

pub use commentary::commentary;
pub use gather::{Council, ReportText, provisional, report_input, report_input_of};
pub use officer::{
    CommentaryError, Implications, KpiNote, MAX_FIELD, OfficerCommentary, SaveError,
    commentary_in_force, read_commentary, save_officer_commentary,
};
pub use profile::{DEFAULT_PUBLIC_INTEREST, DEFAULT_RECOMMENDATION, Psn, ReportProfile};

/// Default exemption: paragraph 3 of Part 1 of Schedule 12A to the Local
/// Government Act 1972 (the council's own business affairs: here, the
/// security of its systems).
pub const DEFAULT_EXEMPTION: &str = "paragraph 3 of Part 1 of Schedule 12A to the Local Government Act 1972 — information relating to the financial or business affairs of any particular person (including the authority holding that information)";

/// Protective DNS over the quarter, aggregate numbers only.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PdnsSummary {
    pub queries: u64,
    pub blocked: u64,
    pub alerts: u64,
}

/// Mail Check: the latest result of each of the council's domains.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MailSummary {
    pub domains: u64,
    /// No error-severity finding.
    pub compliant: u64,
    /// Domains with at least one finding code per worst severity.
    pub with_errors: u64,
    pub with_warnings: u64,
    /// How many domains have each finding: `(severity, code, domains)`,
    /// errors first, as `parapet mailcheck` words them.
    pub findings: Vec<(String, String, u64)>,
    /// (domain, worst severity, checked) — exempt appendix only.
    pub detail: Vec<(String, String, String)>,
}

/// A detection alert, for the exempt appendix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertLine {
    pub id: i64,
    pub rule: String,
    pub domain: String,
    pub severity: String,
    pub status: String,
    pub first_seen: String,
    pub count: u64,
}

/// One past quarter's counts, for the trend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub quarter: String,
    pub counts: [u64; 5],
    pub denominators: [u64; 5],
}

/// Everything the report is made from.
#[derive(Debug, Clone)]
pub struct ReportInput {
    pub council: String,
    pub committee: String,
    /// The date printed on the report (`YYYY-MM-DD`).
    pub date: String,
    pub exemption: String,
    /// The council's report profile (author, agenda item, PSN...).
    pub profile: ReportProfile,
    /// The officer's commentary in force for the quarter (empty: none).
    pub officer: OfficerCommentary,
    pub kpi: KpiReport,
    /// Earlier quarters, oldest first (the current one is added from `kpi`).
    pub history: Vec<HistoryPoint>,
    pub pdns: Option<PdnsSummary>,
    pub mail: Option<MailSummary>,
    pub alerts: Vec<AlertLine>,
    /// Why the figures are provisional (the quarter has not ended, or has
    /// not been frozen): the documents are then marked PROVISIONAL and
    /// never "For publication". `None` for a frozen quarter.
    pub provisional: Option<String>,
}

/// A KPI as the public sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicKpi {
    pub id: u8,
    pub name: String,
    pub definition: String,
    pub count: u64,
    pub denominator: u64,
    pub percent: f64,
    pub excepted: u64,
    pub rag: Rag,
    pub threshold: String,
    pub ce_figure: u64,
    pub ce_compliant: bool,
    pub previous: Option<u64>,
    pub direction: String,
    /// False when there was no data to measure (`rag` is `no_data`).
    pub assessed: bool,
    /// With no data: what data is missing, in plain words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

impl PublicKpi {
    /// The status in words (never colour alone), and its colour class.
    pub fn status(&self) -> (&'static str, &'static str) {
        if self.assessed {
            (rag_word(self.rag), self.rag.as_str())
        } else {
            (rag_word(Rag::NoData), "none")
        }
    }
}

/// A Cyber Essentials check as the public sees it: a count, no devices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicCheck {
    pub id: String,
    pub rule: String,
    pub level: String,
    pub pass: bool,
    /// False: the data cannot decide it ("cannot be decided", not a pass).
    pub decided: bool,
    pub devices: usize,
}

/// The only data the public documents and `kpi.json` are built from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicView {
    pub council: String,
    pub committee: String,
    pub date: String,
    pub quarter: String,
    pub period: String,
    pub snapshot_date: String,
    pub kpis: Vec<PublicKpi>,
    pub checks: Vec<PublicCheck>,
    pub history: Vec<HistoryPoint>,
    pub pdns: Option<PdnsSummary>,
    pub mail: Option<(u64, u64, u64, u64)>,
    /// Domains per Mail Check finding: `(severity, code, domains)`.
    pub mail_findings: Vec<(String, String, u64)>,
    /// Servers and workstations without a recent credentialed scan.
    pub not_assessed: usize,
    pub commentary: Vec<String>,
    pub exemption: String,
    /// Why the figures are provisional; `None` when frozen.
    pub provisional: Option<String>,
    /// The frozen version shown: `(version, frozen at, by)`.
    pub version: Option<(u32, String, String)>,
    /// The profile and the officer's commentary: public text by design,
    /// printed in the public report (not part of `kpi.json`).
    #[serde(skip)]
    pub profile: ReportProfile,
    #[serde(skip)]
    pub officer: OfficerCommentary,
}

impl PublicView {
    pub fn new(input: &ReportInput) -> Self {
        let k = &input.kpi;
        let kpis: Vec<PublicKpi> = k
            .kpis
            .iter()
            .map(|x| PublicKpi {
                id: x.id,
                name: x.name.clone(),
                definition: x.definition.clone(),
                count: x.count,
                denominator: x.denominator,
                percent: x.percent,
                excepted: x.excepted,
                rag: x.rag,
                threshold: x.threshold.clone(),
                ce_figure: x.ce_figure,
                ce_compliant: x.ce_compliant,
                previous: x.previous,
                direction: x.direction.clone(),
                assessed: x.rag != Rag::NoData,
                missing: x.missing.clone(),
            })
            .collect();
        let mut history = input.history.clone();
        let mut den = [0; 5];
        for x in &k.kpis {
            den[x.id as usize - 1] = x.denominator;
        }
        history.push(HistoryPoint {
            quarter: k.quarter.clone(),
            counts: k.counts(),
            denominators: den,
        });
        let not_assessed = k
            .kpis
            .iter()
            .filter(|x| x.id == 4 || x.id == 5)
            .map(|x| x.not_assessed.len())
            .sum();
        let mut v = Self {
            council: input.council.clone(),
            committee: input.committee.clone(),
            date: input.date.clone(),
            quarter: k.quarter.clone(),
            period: k.period.clone(),
            snapshot_date: k.snapshot_date.clone(),
            kpis,
            checks: k
                .cyber_essentials
                .iter()
                .map(|c| PublicCheck {
                    id: c.id.clone(),
                    rule: c.rule.clone(),
                    level: c.level.clone(),
                    pass: c.pass,
                    decided: c.decided,
                    devices: c.devices.len(),
                })
                .collect(),
            history,
            pdns: input.pdns.clone(),
            mail: input
                .mail
                .as_ref()
                .map(|m| (m.domains, m.compliant, m.with_errors, m.with_warnings)),
            mail_findings: input
                .mail
                .as_ref()
                .map(|m| m.findings.clone())
                .unwrap_or_default(),
            not_assessed,
            commentary: Vec::new(),
            exemption: input.exemption.clone(),
            provisional: input.provisional.clone(),
            version: k.freeze.as_ref().map(|f| {
                (
                    f.version,
                    f.frozen_at.get(..10).unwrap_or(&f.frozen_at).to_string(),
                    f.frozen_by.clone(),
                )
            }),
            profile: input.profile.clone(),
            officer: input.officer.clone(),
        };
        v.commentary = commentary(&v);
        v
    }
}

/// The files written.
#[derive(Debug, Clone, Default)]
pub struct Written {
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("PDF typesetting failed for {doc}: {message}")]
    Typeset { doc: String, message: String },
}

fn write(dir: &Path, name: &str, bytes: &[u8], out: &mut Written) -> Result<(), ReportError> {
    let path = dir.join(name);
    // write then rename: a reader never sees half a document
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| ReportError::Io {
            path: path.display().to_string(),
            source,
        })?;
    out.files.push(name.to_string());
    Ok(())
}

/// The trend chart the public report draws (the earlier quarters and this
/// one), for the dashboard's assurance page: the same SVG in both places.
pub fn trend_chart(input: &ReportInput) -> Option<String> {
    chart::trend_svg(&PublicView::new(input).history)
}

/// Whether PDFs are produced by this build.
pub const PDF: bool = cfg!(feature = "pdf");

/// Writes `public-report.html`, `exempt-appendix.html`, `kpi.json` and (with
/// the `pdf` feature) `public-report.pdf` and `exempt-appendix.pdf` into `dir`.
pub fn write_all(input: &ReportInput, dir: &Path) -> Result<Written, ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let public = PublicView::new(input);
    let trend = chart::trend_svg(&public.history);
    let report = outline::public(&public, trend.as_deref());
    let mut out = Written::default();
    write(
        dir,
        "public-report.html",
        html::render(&report).as_bytes(),
        &mut out,
    )?;
    let exempt = outline::exempt(input, &public);
    write(
        dir,
        "exempt-appendix.html",
        html::render(&exempt).as_bytes(),
        &mut out,
    )?;
    let json = serde_json::to_vec_pretty(&public).expect("serialisable");
    write(dir, "kpi.json", &json, &mut out)?;
    #[cfg(feature = "pdf")]
    {
        let files: Vec<(&str, Vec<u8>)> = trend
            .iter()
            .map(|s| (outline::TREND_FILE, s.clone().into_bytes()))
            .collect();
        let p = pdf::render("public-report", &typ::render(&report), &files, &input.date)?;
        write(dir, "public-report.pdf", &p, &mut out)?;
        let e = pdf::render("exempt-appendix", &typ::render(&exempt), &[], &input.date)?;
        write(dir, "exempt-appendix.pdf", &e, &mut out)?;
    }
    Ok(out)
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut o = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            o.push(',');
        }
        o.push(c);
    }
    o
}

/// RAG in words (never colour alone).
pub(crate) fn rag_word(r: Rag) -> &'static str {
    match r {
        Rag::Green => "Green",
        Rag::Amber => "Amber",
        Rag::Red => "Red",
        Rag::NoData => "No data",
    }
}

pub(crate) fn arrow(direction: &str) -> &'static str {
    match direction {
        "improving" => "▼ improving",
        "worse" => "▲ worse",
        "unchanged" => "▶ unchanged",
        "no data" => "— no data",
        _ => "— first quarter",
    }
}

/// The report files a build can produce, by name.
pub fn files() -> &'static [&'static str] {
    if PDF {
        &[
            "public-report.html",
            "exempt-appendix.html",
            "kpi.json",
            "public-report.pdf",
            "exempt-appendix.pdf",
        ]
    } else {
        &["public-report.html", "exempt-appendix.html", "kpi.json"]
    }
}

/// Renders one of [`files`] in memory (for the dashboard's downloads):
/// `None` for a name this build does not produce.
pub fn render(input: &ReportInput, file: &str) -> Result<Option<Vec<u8>>, ReportError> {
    let public = PublicView::new(input);
    Ok(match file {
        "public-report.html" => {
            let trend = chart::trend_svg(&public.history);
            Some(html::render(&outline::public(&public, trend.as_deref())).into_bytes())
        }
        "exempt-appendix.html" => Some(html::render(&outline::exempt(input, &public)).into_bytes()),
        "kpi.json" => Some(serde_json::to_vec_pretty(&public).expect("serialisable")),
        #[cfg(feature = "pdf")]
        "public-report.pdf" => {
            let trend = chart::trend_svg(&public.history);
            let files: Vec<(&str, Vec<u8>)> = trend
                .iter()
                .map(|s| (outline::TREND_FILE, s.clone().into_bytes()))
                .collect();
            Some(pdf::render(
                "public-report",
                &typ::render(&outline::public(&public, trend.as_deref())),
                &files,
                &input.date,
            )?)
        }
        #[cfg(feature = "pdf")]
        "exempt-appendix.pdf" => Some(pdf::render(
            "exempt-appendix",
            &typ::render(&outline::exempt(input, &public)),
            &[],
            &input.date,
        )?),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_assurance::kpi::{Inputs, Settings, compute};
    use parapet_assurance::model::Incident;

    fn input(previous: Option<[u64; 5]>, history: Vec<HistoryPoint>) -> ReportInput {
        let incidents = vec![Incident {
            reference: "INC-9".into(),
            detected_at: 1_628_726_400, // 2021-08-12
            category: "phishing".into(),
            outcome: "successful".into(),
            status: "closed".into(),
            ..Incident::default()
        }];
        let settings = Settings::default();
        let kpi = compute(&Inputs {
            tenant: "t",
            quarter: "2021-22-Q2".parse().unwrap(),
            imports: &[],
            incidents: &incidents,
            exceptions: &[],
            settings: &settings,
            previous,
            detection_covered: false,
            now: 1_633_046_400,
        });
        ReportInput {
            council: "Northshire <District> Council".into(),
            committee: "Audit & Governance Committee".into(),
            date: "2021-10-14".into(),
            exemption: DEFAULT_EXEMPTION.into(),
            profile: ReportProfile::default(),
            officer: OfficerCommentary::default(),
            kpi,
            history,
            pdns: Some(PdnsSummary {
                queries: 1_234_567,
                blocked: 89,
                alerts: 3,
            }),
            mail: None,
            alerts: Vec::new(),
            provisional: None,
        }
    }

    #[test]
    fn render_in_memory_matches_the_written_files() {
        let i = input(None, Vec::new());
        let dir = std::env::temp_dir().join(format!("parapet-render-{}", std::process::id()));
        write_all(&i, &dir).unwrap();
        for f in ["public-report.html", "exempt-appendix.html", "kpi.json"] {
            let mem = render(&i, f).unwrap().unwrap();
            assert_eq!(mem, std::fs::read(dir.join(f)).unwrap(), "{f}");
            assert!(files().contains(&f));
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(render(&i, "../etc/passwd").unwrap(), None);
        assert_eq!(render(&i, "public-report.pdf").unwrap().is_some(), PDF);
    }

    #[test]
    fn public_html_structure_snapshot() {
        let prev = HistoryPoint {
            quarter: "2021-22-Q1".into(),
            counts: [0, 1, 0, 2, 0],
            denominators: [0; 5],
        };
        let i = input(Some([0, 1, 0, 2, 0]), vec![prev]);
        let v = PublicView::new(&i);
        let svg = chart::trend_svg(&v.history);
        let html = html::render(&outline::public(&v, svg.as_deref()));
        assert!(
            html.contains("Northshire &lt;District&gt; Council"),
            "escaped"
        );
        insta::assert_snapshot!("public_report_html", html);
    }

    #[test]
    fn a_provisional_report_is_watermarked_and_never_for_publication() {
        let mut i = input(None, Vec::new());
        assert!(
            html::render(&outline::public(&PublicView::new(&i), None)).contains("For publication")
        );
        i.provisional = Some("the quarter has not ended".into());
        let v = PublicView::new(&i);
        for doc in [outline::public(&v, None), outline::exempt(&i, &v)] {
            let h = html::render(&doc);
            assert!(h.contains("<p class=\"watermark\" aria-hidden=\"true\">PROVISIONAL</p>"));
            assert!(h.contains("PROVISIONAL: the quarter has not ended"), "{h}");
            assert!(!h.contains("For publication"));
            let t = typ::render(&doc);
            assert!(t.contains("#set page(background: rotate(-35deg"), "{t}");
            assert!(!t.contains("For publication"));
        }
    }

    #[test]
    fn commentary_from_the_figures() {
        let v = PublicView::new(&input(None, Vec::new()));
        let c = v.commentary.join("\n");
        assert!(c.contains("There was 1 successful cyber-attack or breach this quarter. The threshold is zero, so this measure is red"), "{c}");
        assert!(
            c.contains(
                "No servers were in the data for this quarter, so measure 2 could not be assessed."
            ),
            "{c}"
        );
        assert!(c.contains("Overall, 1 of the 5 measures is red, 0 amber and 0 green; 4 could not be assessed for lack of data."), "{c}");
        assert!(c.contains("This is the first quarter reported"), "{c}");
    }

    #[test]
    fn the_profile_and_commentary_are_in_both_formats() {
        let mut i = input(None, Vec::new());
        i.profile = ReportProfile {
            author: Some("Pat Officer, Head of ICT".into()),
            contact: Some("ict@northshire.test".into()),
            agenda_item: Some("Item 7".into()),
            recommendation: Some("That the committee notes the report.".into()),
            psn: Some(Psn::Certified {
                certified: "2021-03-01".into(),
                expires: "2022-02-28".into(),
            }),
            public_interest: Some("Withheld to protect systems.".into()),
            ..ReportProfile::default()
        };
        i.officer.kpis[0] = KpiNote {
            commentary: "The breach was contained.\n\nTraining follows.".into(),
            actions: vec!["Phishing drill in October".into()],
        };
        i.officer.options = "No other option.".into();
        i.officer.implications.legal = "Reported to the ICO.".into();
        i.officer.background_papers = vec!["Cyber strategy 2021".into()];
        let v = PublicView::new(&i);
        let html = html::render(&outline::public(&v, None));
        let typ = typ::render(&outline::public(&v, None));
        for want in [
            "Pat Officer, Head of ICT",
            "ict@northshire.test",
            "Item 7",
            "That the committee notes the report.",
            "issued 1 March 2021, valid until 28 February 2022",
            "The breach was contained.",
            "Training follows.",
            "Phishing drill in October",
            "No other option.",
            "Reported to the ICO.",
            "Cyber strategy 2021",
            "Withheld to protect systems.",
            "paragraph 3 of Part 1 of Schedule 12A",
        ] {
            assert!(html.contains(want), "HTML lacks {want}");
            assert!(typ.contains(want), "Typst lacks {want}");
        }
        // the PSN status is in the Purpose and the Summary
        assert_eq!(html.matches("valid until 28 February 2022").count(), 2);
        let appendix = html::render(&outline::exempt(&i, &v));
        assert!(appendix.contains("Withheld to protect systems."));
    }

    #[test]
    fn typst_markup_keeps_data_as_strings() {
        let i = input(None, Vec::new());
        let v = PublicView::new(&i);
        let t = typ::render(&outline::public(&v, None));
        assert!(t.contains("#\"Northshire <District> Council\""));
        assert!(!t.contains("\n= Northshire"));
    }

    #[test]
    fn exempt_typst_keeps_data_as_strings() {
        let mut i = input(None, Vec::new());
        i.exemption = "paragraph 3 *of* #schedule \"12A\"".into();
        let t = typ::render(&outline::exempt(&i, &PublicView::new(&i)));
        assert!(t.contains(r#"#"by virtue of paragraph 3 *of* #schedule \"12A\"""#));
        assert!(t.contains("\n=== #\"1. Successful cyber-attacks / breaches — 1 of 1\"\n"));
        assert!(t.contains("[*#\"Reference\"*]"), "{t}");
    }
}
