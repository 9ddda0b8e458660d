//! The trend chart: KPI counts per quarter as an SVG line chart, drawn by
//! hand (no chart library: small, deterministic, and text stays text).

use crate::HistoryPoint;

const COLOURS: [&str; 5] = ["#b00020", "#1f5fa8", "#4f9fe0", "#8a4f00", "#d4952b"];
const DASH: [&str; 5] = ["", "6 3", "2 3", "8 3 2 3", "1 2"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `None` when there is a single quarter (no trend to draw).
pub fn trend_svg(history: &[HistoryPoint]) -> Option<String> {
    if history.len() < 2 {
        return None;
    }
    let (w, h) = (640.0_f64, 300.0_f64);
    let (left, right, top, bottom) = (48.0, 170.0, 20.0, 40.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let max = history
        .iter()
        .flat_map(|p| p.counts)
        .max()
        .unwrap_or(0)
        .max(1);
    // a tidy axis maximum
    let step = [
        1u64, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000,
    ]
    .into_iter()
    .find(|s| max.div_ceil(*s) <= 5)
    .unwrap_or(max.div_ceil(5));
    let top_val = max.div_ceil(step) * step;
    let x = |i: usize| left + pw * i as f64 / (history.len() - 1) as f64;
    let y = |v: u64| top + ph - ph * v as f64 / top_val as f64;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-labelledby="trend-title" font-family="Libertinus Serif, Georgia, serif" font-size="12"><title id="trend-title">Number of incidents and devices failing each measure, by quarter</title><rect width="{w}" height="{h}" fill="#ffffff"/>"##
    );
    let mut v = 0;
    while v <= top_val {
        let yy = y(v);
        s.push_str(&format!(r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##, left + pw, left - 6.0, yy + 4.0));
        v += step;
    }
    for (i, p) in history.iter().enumerate() {
        s.push_str(&format!(
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(i),
            top + ph + 18.0,
            esc(&p.quarter)
        ));
    }
    const NAMES: [&str; 5] = [
        "1 Breaches",
        "2 Servers without AV",
        "3 Workstations without AV",
        "4 Servers unpatched",
        "5 Workstations unpatched",
    ];
    for k in 0..5 {
        let pts: Vec<String> = history
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.counts[k])))
            .collect();
        let dash = if DASH[k].is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{}""#, DASH[k])
        };
        s.push_str(&format!(
            r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
            COLOURS[k],
            pts.join(" ")
        ));
        for (i, p) in history.iter().enumerate() {
            s.push_str(&format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                x(i),
                y(p.counts[k]),
                COLOURS[k]
            ));
        }
        let ly = top + 14.0 + k as f64 * 20.0;
        let lx = w - right + 14.0;
        s.push_str(&format!(r#"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#, ly - 4.0, lx + 20.0, ly - 4.0, COLOURS[k], lx + 26.0, ly, NAMES[k]));
    }
    s.push_str(&format!(
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333333"/></svg>"##,
        top + ph,
        left + pw,
        top + ph
    ));
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_quarter_has_no_trend_and_two_draw_five_lines() {
        let p = |q: &str, c: [u64; 5]| HistoryPoint {
            quarter: q.into(),
            counts: c,
            denominators: [0; 5],
        };
        assert!(trend_svg(&[p("2021-22-Q1", [0; 5])]).is_none());
        let svg = trend_svg(&[
            p("2021-22-Q1", [0, 2, 0, 1, 0]),
            p("2021-22-Q2", [1, 3, 1, 3, 2]),
        ])
        .unwrap();
        assert_eq!(svg.matches("<polyline").count(), 5);
        assert!(svg.contains("2021-22-Q2") && svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
