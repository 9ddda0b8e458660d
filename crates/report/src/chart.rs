//! The trend chart: KPI counts per quarter as an SVG line chart, drawn by
//! hand (no chart library: small, deterministic, and text stays text).
//!
//! The legend is laid out in rows below the plot, as many as its entries
//! need, so no name is ever cut however many series there are; each line
//! also ends in its number, moved apart from the others' so two lines that
//! end on the same value stay told apart.

use crate::HistoryPoint;

const COLOURS: [&str; 5] = ["#b00020", "#1f5fa8", "#4f9fe0", "#8a4f00", "#d4952b"];
const DASH: [&str; 5] = ["", "6 3", "2 3", "8 3 2 3", "1 2"];

/// The chart's width, and the font size of its text (px).
const WIDTH: f64 = 640.0;
const FONT: f64 = 12.0;
/// A generous average advance of the serif face at [`FONT`]: a legend
/// entry is given at least the room its name needs.
const CHAR_WIDTH: f64 = 7.0;
/// Least vertical distance between two line-end labels.
const LABEL_GAP: f64 = 13.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One line of the chart.
pub(crate) struct Series {
    /// The short mark at the line's end (the KPI's number).
    pub mark: String,
    pub name: String,
    pub values: Vec<u64>,
}

/// `None` when there is a single quarter (no trend to draw).
pub fn trend_svg(history: &[HistoryPoint]) -> Option<String> {
    if history.len() < 2 {
        return None;
    }
    const NAMES: [&str; 5] = [
        "1 Breaches",
        "2 Servers without AV",
        "3 Workstations without AV",
        "4 Servers unpatched",
        "5 Workstations unpatched",
    ];
    let series: Vec<Series> = NAMES
        .iter()
        .enumerate()
        .map(|(k, name)| Series {
            mark: (k + 1).to_string(),
            name: (*name).to_string(),
            values: history.iter().map(|p| p.counts[k]).collect(),
        })
        .collect();
    let labels: Vec<String> = history.iter().map(|p| p.quarter.clone()).collect();
    Some(line_chart(
        "Number of incidents and devices failing each measure, by quarter",
        &labels,
        &series,
    ))
}

/// Where each legend entry goes: `(x, row)`, and the number of rows.
fn legend_layout(series: &[Series], left: f64, right_edge: f64) -> (Vec<(f64, usize)>, usize) {
    let mut out = Vec::with_capacity(series.len());
    let (mut x, mut row) = (left, 0);
    for s in series {
        let w = 26.0 + CHAR_WIDTH * s.name.chars().count() as f64 + 16.0;
        if x > left && x + w > right_edge {
            x = left;
            row += 1;
        }
        out.push((x, row));
        x += w;
    }
    (out, if series.is_empty() { 0 } else { row + 1 })
}

/// The y of each line-end label: its line's last point, moved apart by at
/// least [`LABEL_GAP`] within `[top, bottom]`.
fn end_labels(wanted: &[f64], top: f64, bottom: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by(|&a, &b| wanted[a].total_cmp(&wanted[b]).then(a.cmp(&b)));
    let mut placed = vec![0.0; wanted.len()];
    // downwards: each at least a gap below the one above, none above `top`
    let mut prev = top - LABEL_GAP;
    for &i in &order {
        placed[i] = wanted[i].max(prev + LABEL_GAP);
        prev = placed[i];
    }
    // upwards: each at least a gap above the one below, none past
    // `bottom` (the plot is tall enough for all of them to fit)
    let mut next = bottom + LABEL_GAP;
    for &i in order.iter().rev() {
        placed[i] = placed[i].min(next - LABEL_GAP);
        next = placed[i];
    }
    placed
}

pub(crate) fn line_chart(title: &str, labels: &[String], series: &[Series]) -> String {
    let w = WIDTH;
    let (left, right, top) = (48.0, 40.0, 20.0);
    // tall enough for every line-end label to keep its distance
    let ph = (220.0_f64).max(series.len() as f64 * LABEL_GAP + 8.0);
    let pw = w - left - right;
    let (legend, rows) = legend_layout(series, left, w - 8.0);
    let legend_top = top + ph + 40.0;
    let h = legend_top + rows as f64 * 20.0 + 6.0;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
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
    let n = labels.len().max(2);
    let x = |i: usize| left + pw * i as f64 / (n - 1) as f64;
    let y = |v: u64| top + ph - ph * v as f64 / top_val as f64;
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-labelledby="trend-title" font-family="Libertinus Serif, Georgia, serif" font-size="{FONT}"><title id="trend-title">{}</title><rect width="{w}" height="{h}" fill="#ffffff"/>"##,
        esc(title)
    );
    let mut v = 0;
    while v <= top_val {
        let yy = y(v);
        s.push_str(&format!(r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"##, left + pw, left - 6.0, yy + 4.0));
        v += step;
    }
    for (i, l) in labels.iter().enumerate() {
        s.push_str(&format!(
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(i),
            top + ph + 18.0,
            esc(l)
        ));
    }
    let ends: Vec<f64> = series
        .iter()
        .map(|se| y(se.values.last().copied().unwrap_or(0)))
        .collect();
    let ends = end_labels(&ends, top + 4.0, top + ph + 4.0);
    for (k, se) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        // colours and dashes cycle at different lengths, so past five
        // series the pairs still differ
        let dash = match DASH[(k / COLOURS.len() + k) % DASH.len()] {
            "" => String::new(),
            d => format!(r#" stroke-dasharray="{d}""#),
        };
        let pts: Vec<String> = se
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
            .collect();
        s.push_str(&format!(
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
            pts.join(" ")
        ));
        for (i, v) in se.values.iter().enumerate() {
            s.push_str(&format!(
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(i),
                y(*v)
            ));
        }
        s.push_str(&format!(
            r#"<text class="end" x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
            left + pw + 8.0,
            ends[k] + 4.0,
            esc(&se.mark)
        ));
        let (lx, row) = legend[k];
        let ly = legend_top + row as f64 * 20.0;
        s.push_str(&format!(r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"{dash}/><text class="legend" x="{:.1}" y="{ly:.1}">{}</text>"#, ly - 4.0, lx + 20.0, ly - 4.0, lx + 26.0, esc(&se.name)));
    }
    s.push_str(&format!(
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333333"/></svg>"##,
        top + ph,
        left + pw,
        top + ph
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(tag: &str, name: &str) -> f64 {
        let i = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        tag[i..].split('"').next().unwrap().parse().unwrap()
    }

    /// `(x, y, text)` of each `<text class="CLASS">`.
    fn texts(svg: &str, class: &str) -> Vec<(f64, f64, String)> {
        svg.split(&format!("<text class=\"{class}\""))
            .skip(1)
            .map(|t| {
                let text = t.split('>').nth(1).unwrap().split('<').next().unwrap();
                (attr(t, "x"), attr(t, "y"), text.to_string())
            })
            .collect()
    }

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
        // KPIs 2 and 4 end on 3, KPIs 3 and 1 on 1: their labels still differ
        let ends = texts(&svg, "end");
        for (i, a) in ends.iter().enumerate() {
            for b in &ends[i + 1..] {
                assert!((a.1 - b.1).abs() >= LABEL_GAP, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn legends_never_clip_and_labels_never_overlap_with_many_series() {
        let labels: Vec<String> = (1..=8).map(|q| format!("2021-Q{q}")).collect();
        let series: Vec<Series> = (0..16)
            .map(|k| Series {
                mark: (k + 1).to_string(),
                name: format!("{} Workstations without anti-virus protection", k + 1),
                // many lines end on the same value
                values: (0..8).map(|i| (i + k as u64 % 3) % 4).collect(),
            })
            .collect();
        let svg = line_chart("t", &labels, &series);
        let head = &svg[..svg.find('>').unwrap()];
        let (w, h) = (attr(head, "width"), attr(head, "height"));
        let legend = texts(&svg, "legend");
        assert_eq!(legend.len(), 16);
        for (x, y, text) in &legend {
            assert!(
                x + CHAR_WIDTH * text.chars().count() as f64 <= w,
                "{text} at {x}"
            );
            assert!(*y <= h - 4.0, "{text} at {y} of {h}");
        }
        // entries of one row stay apart
        for a in &legend {
            for b in &legend {
                if a.1 == b.1 && a.0 < b.0 {
                    assert!(
                        a.0 + CHAR_WIDTH * a.2.chars().count() as f64 <= b.0,
                        "{a:?} {b:?}"
                    );
                }
            }
        }
        let ends = texts(&svg, "end");
        assert_eq!(ends.len(), 16);
        for (i, a) in ends.iter().enumerate() {
            assert!(a.1 >= 0.0 && a.1 <= h, "{a:?}");
            for b in &ends[i + 1..] {
                assert!((a.1 - b.1).abs() >= LABEL_GAP - 0.01, "{a:?} {b:?}");
            }
        }
    }
}
