//! The plain-English commentary, generated from the figures alone.

use parapet_assurance::kpi::Rag;

use crate::{PublicKpi, PublicView, words};

fn plural(n: u64, one: &str, many: &str) -> String {
    words::count(n, one, many)
}

fn versus(k: &PublicKpi) -> String {
    match k.previous {
        None => String::new(),
        Some(p) if p == k.count => ", the same as last quarter".to_string(),
        Some(p) if p > k.count => format!(", down from {p} last quarter"),
        Some(p) => format!(", up from {p} last quarter"),
    }
}

fn rag_phrase(r: Rag) -> &'static str {
    match r {
        Rag::Green => "within the target (green)",
        Rag::Amber => "outside the target but within tolerance (amber)",
        Rag::Red => "outside tolerance (red)",
        Rag::NoData => "not measured (no data)",
    }
}

/// Paragraphs of commentary, most important first.
pub fn commentary(v: &PublicView) -> Vec<String> {
    let mut out = Vec::new();
    let k = |id: u8| v.kpis.iter().find(|k| k.id == id);
    if let Some(b) = k(1) {
        out.push(if !b.assessed {
            "Measure 1 could not be assessed (no data): the incident register has not been used and no protective DNS or detection data covers the quarter, so the absence of recorded breaches is not evidence that there were none.".to_string()
        } else if b.count == 0 {
            let mut s = "There were no successful cyber-attacks or data breaches this quarter".to_string();
            if b.rag == Rag::Amber {
                s.push_str(", but at least one incident was still under investigation at the quarter end (amber)");
            }
            s.push('.');
            s
        } else {
            format!(
                "There {} this quarter{}. The threshold is zero, so this measure is red; the exempt appendix gives the detail and the response.",
                if b.count == 1 { "was 1 successful cyber-attack or breach".to_string() } else { format!("were {} successful cyber-attacks or breaches", b.count) },
                versus(b)
            )
        });
    }
    // what a failing device did, as one device and as several
    const AV: [&str; 2] = [
        "was without working anti-virus protection",
        "were without working anti-virus protection",
    ];
    const PATCH: [&str; 2] = [
        "had security updates outstanding beyond 14 days or was running unsupported software",
        "had security updates outstanding beyond 14 days or were running unsupported software",
    ];
    for (id, what, failing) in [
        (2u8, "servers", AV),
        (3, "workstations", AV),
        (4, "servers", PATCH),
        (5, "workstations", PATCH),
    ] {
        let Some(x) = k(id) else { continue };
        let mut s = if x.denominator == 0 {
            format!(
                "No {what} were in the data for this quarter, so measure {id} could not be assessed."
            )
        } else if !x.assessed {
            format!(
                "Measure {id} could not be assessed (no data): {}.",
                x.missing
                    .as_deref()
                    .unwrap_or("its sources did not cover the quarter")
            )
        } else if x.count == 0 {
            format!(
                "{} in scope {} protected on measure {id} ({})",
                if x.denominator == 1 {
                    format!("The 1 {}", what.trim_end_matches('s'))
                } else {
                    format!("All {} {what}", x.denominator)
                },
                words::was(x.denominator),
                rag_phrase(x.rag)
            )
        } else {
            format!(
                "{} of the {} {what} ({:.1}%) {} at the quarter end{}; this is {}.",
                x.count,
                x.denominator,
                x.percent,
                words::noun(x.count, failing[0], failing[1]),
                versus(x),
                rag_phrase(x.rag)
            )
        };
        if x.assessed && x.count == 0 {
            s.push_str(&versus(x));
            s.push('.');
        }
        if x.excepted > 0 {
            s.push_str(&format!(
                " A further {} covered by an approved, time-limited exception.",
                if x.excepted == 1 {
                    "1 device is".to_string()
                } else {
                    format!("{} devices are", x.excepted)
                }
            ));
        }
        out.push(s);
    }
    let assessed: Vec<&PublicKpi> = v.kpis.iter().filter(|k| k.assessed).collect();
    let red = assessed.iter().filter(|k| k.rag == Rag::Red).count();
    let amber = assessed.iter().filter(|k| k.rag == Rag::Amber).count();
    let green = assessed.iter().filter(|k| k.rag == Rag::Green).count();
    let missing = v.kpis.len() - assessed.len();
    out.push(format!(
        "Overall, {red} of the {} measures {} red, {amber} amber and {green} green{}.",
        v.kpis.len(),
        words::is(red as u64),
        if missing > 0 {
            format!("; {missing} could not be assessed for lack of data")
        } else {
            String::new()
        }
    ));
    // what is missing, once, in plain words
    let mut missing: Vec<&str> = Vec::new();
    for m in v.kpis.iter().filter_map(|k| k.missing.as_deref()) {
        if !missing.contains(&m) {
            missing.push(m);
        }
    }
    if !missing.is_empty() {
        out.push(format!(
            "Data missing this quarter: {}. Until it is provided, these measures show \"no data\", not green.",
            missing.join("; ")
        ));
    }
    if v.not_assessed > 0 {
        out.push(format!(
            "{} had no credentialed vulnerability scan in the 30 days to the quarter end, so the patching measures may understate the position.",
            plural(v.not_assessed as u64, "server or workstation", "servers and workstations")
        ));
    }
    let passed = v.checks.iter().filter(|c| c.pass).count();
    let decided = v.checks.iter().filter(|c| c.decided).count();
    out.push(if decided == 0 {
        format!(
            "None of the {} Cyber Essentials checks can be decided: there is no device data for the quarter.",
            v.checks.len()
        )
    } else {
        format!(
            "Of the {decided} Cyber Essentials checks that can be decided from this data, {passed} {}{}{}.",
            words::verb(passed as u64, "passes", "pass"),
            if decided < v.checks.len() {
                let undecided = v.checks.len() - decided;
                format!(
                    "; {undecided} cannot be decided without the data {}",
                    words::verb(undecided as u64, "it needs", "they need")
                )
            } else {
                String::new()
            },
            if v
                .checks
                .iter()
                .any(|c| c.decided && !c.pass && c.level == "auto-fail")
            {
                "; the 14-day patching rule is not met, which would fail a Cyber Essentials assessment today"
            } else {
                ""
            }
        )
    });
    if v.history.len() < 2 {
        out.push("This is the first quarter reported, so no trend is shown yet.".into());
    }
    out
}
