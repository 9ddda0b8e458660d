//! The plain-English commentary, generated from the figures alone.

use parapet_assurance::kpi::Rag;

use crate::{PublicKpi, PublicView};

fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
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
    for (id, what, failing) in [
        (2u8, "servers", "without working anti-virus protection"),
        (3, "workstations", "without working anti-virus protection"),
        (
            4,
            "servers",
            "with security updates outstanding beyond 14 days or running unsupported software",
        ),
        (
            5,
            "workstations",
            "with security updates outstanding beyond 14 days or running unsupported software",
        ),
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
                "All {} in scope were protected on measure {id} ({})",
                plural(x.denominator, what.trim_end_matches('s'), what),
                rag_phrase(x.rag)
            )
        } else {
            format!(
                "{} of {} {what} ({:.1}%) were {failing} at the quarter end{}; this is {}.",
                x.count,
                x.denominator,
                x.percent,
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
        "Overall, {red} of the five measures are red, {amber} amber and {green} green{}.",
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
            "Of the {decided} Cyber Essentials checks that can be decided from this data, {passed} pass{}{}.",
            if decided < v.checks.len() {
                format!(
                    "; {} cannot be decided without the data they need",
                    v.checks.len() - decided
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
