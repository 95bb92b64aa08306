//! Server-rendered SVG charts for the reports page.
//!
//! Each function returns one self-contained `<svg>` element to place inline in a page: no
//! script, no external resource, no `style` attribute or element (the page's CSP allows
//! stylesheets from `'self'` only), so every colour and size is a presentation attribute. The
//! root carries `class="chart"` and a `viewBox`, so the page stylesheet can scale it with
//! `svg.chart { width: 100%; height: auto; }`.
//!
//! Every piece of text that reaches the output must go through [`esc`], and every number
//! through [`num`] (at most one decimal): these functions must never emit unescaped input or a
//! long float.

use super::html;
use std::fmt::Write;

/// One line of a [`line_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// x label → y; None (or a non-finite y) is a gap that breaks the line.
    pub points: Vec<(String, Option<f64>)>,
}

/// Distinct colours (Tableau 10's first eight, readable on white); a ninth series and on reuse
/// them dashed.
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
];
const TEXT_COLOUR: &str = "#222";
const MUTED_COLOUR: &str = "#666";
const GRID_COLOUR: &str = "#ddd";

const LINE_WIDTH_PX: f64 = 640.0;
const LINE_HEIGHT_PX: f64 = 260.0;
const LINE_LEFT_PX: f64 = 56.0;
const LINE_RIGHT_PX: f64 = 16.0;
const LINE_TOP_PX: f64 = 32.0;
const X_LABEL_ROW_PX: f64 = 18.0;
const LEGEND_ROW_PX: f64 = 16.0;
const LEGEND_PER_ROW: usize = 4;
const BOTTOM_PAD_PX: f64 = 6.0;
const Y_TICKS: usize = 5;
/// More x labels than this overlap at 640 px; only every k-th is written.
const MAX_X_LABELS: usize = 10;

const BAR_ROW_PX: f64 = 22.0;
const BAR_HEIGHT_PX: f64 = 14.0;
const BAR_TOP_PX: f64 = 30.0;
const BAR_LABEL_END_PX: f64 = 196.0;
const BAR_START_PX: f64 = 204.0;
const BAR_VALUE_END_PX: f64 = 632.0;
/// Room kept for the value text between the longest bar and the right edge.
const BAR_MAX_WIDTH_PX: f64 = 372.0;

/// A line chart, 640 × 260. The x labels come from the first series; every series gives its
/// points for the same labels in the same order (a missing point is a gap). Each point is a dot
/// with a tooltip; lines join consecutive points only. Five y gridlines from `y_min` to `y_max`;
/// values outside are drawn at the edge (the tooltip keeps the true value).
pub fn line_chart(title: &str, y_label: &str, y_min: f64, y_max: f64, series: &[Series]) -> String {
    let labels: Vec<&str> = series
        .first()
        .map(|s| s.points.iter().map(|(x, _)| x.as_str()).collect())
        .unwrap_or_default();
    let present: Vec<f64> = series
        .iter()
        .flat_map(|s| (0..labels.len()).filter_map(move |i| value_at(s, i)))
        .collect();
    if present.is_empty() {
        return no_data(title);
    }
    let (lo, hi) = y_range(y_min, y_max, &present);
    let plot = LinePlot::new(labels, lo, hi, series.len());

    let desc = line_desc(y_label, plot.labels.len(), series);
    let mut out = open_svg(title, &desc, LINE_HEIGHT_PX);
    title_text(&mut out, title, LINE_LEFT_PX);
    plot.gridlines(&mut out);
    plot.axes(&mut out, y_label);
    plot.x_labels(&mut out);
    for (n, s) in series.iter().enumerate() {
        plot.series_lines(&mut out, n, s);
        plot.series_dots(&mut out, n, s);
    }
    plot.legend(&mut out, series);
    out.push_str("</svg>");
    out
}

/// The i-th value of a series, if present and finite (anything else is a gap).
fn value_at(s: &Series, i: usize) -> Option<f64> {
    s.points.get(i).and_then(|p| p.1).filter(|v| v.is_finite())
}

/// The `<desc>` of a line chart: what is plotted, over how many points, for whom.
fn line_desc(y_label: &str, points: usize, series: &[Series]) -> String {
    let names: Vec<String> = series.iter().map(|s| s.name.clone()).collect();
    format!(
        "{} over {} points: {}",
        if y_label.is_empty() {
            "values"
        } else {
            y_label
        },
        points,
        names.join(", ")
    )
}

/// The plot area of a [`line_chart`] and its scales: x by label index, y from `lo` to `hi`.
struct LinePlot<'a> {
    labels: Vec<&'a str>,
    lo: f64,
    hi: f64,
    bottom: f64,
    width: f64,
    height: f64,
}

impl<'a> LinePlot<'a> {
    /// The plot area left once the legend rows (one per four series) and x labels are below it.
    fn new(labels: Vec<&'a str>, lo: f64, hi: f64, series_count: usize) -> Self {
        let legend_rows = series_count.div_ceil(LEGEND_PER_ROW);
        let bottom =
            LINE_HEIGHT_PX - BOTTOM_PAD_PX - LEGEND_ROW_PX * legend_rows as f64 - X_LABEL_ROW_PX;
        LinePlot {
            labels,
            lo,
            hi,
            bottom,
            width: LINE_WIDTH_PX - LINE_LEFT_PX - LINE_RIGHT_PX,
            height: bottom - LINE_TOP_PX,
        }
    }

    fn x_of(&self, i: usize) -> f64 {
        if self.labels.len() < 2 {
            LINE_LEFT_PX + self.width / 2.0
        } else {
            LINE_LEFT_PX + self.width * i as f64 / (self.labels.len() - 1) as f64
        }
    }

    fn y_of(&self, v: f64) -> f64 {
        let (lo, hi) = (self.lo, self.hi);
        self.bottom - self.height * (v.clamp(lo, hi) - lo) / (hi - lo)
    }

    /// Gridlines and their tick labels, bottom to top.
    fn gridlines(&self, out: &mut String) {
        let (lo, hi) = (self.lo, self.hi);
        for k in 0..Y_TICKS {
            let v = lo + (hi - lo) * k as f64 / (Y_TICKS - 1) as f64;
            let y = self.y_of(v);
            let _ = write!(
                out,
                r#"<line x1="{}" y1="{y}" x2="{}" y2="{y}" stroke="{GRID_COLOUR}" stroke-width="1"/><text x="{}" y="{}" text-anchor="end" fill="{MUTED_COLOUR}">{}</text>"#,
                num(LINE_LEFT_PX),
                num(LINE_LEFT_PX + self.width),
                num(LINE_LEFT_PX - 6.0),
                num(y + 4.0),
                num(v),
                y = num(y),
            );
        }
    }

    /// The two axes, and the y label (rotated) when there is one.
    fn axes(&self, out: &mut String, y_label: &str) {
        let _ = write!(
            out,
            r#"<line x1="{l}" y1="{t}" x2="{l}" y2="{b}" stroke="{MUTED_COLOUR}" stroke-width="1"/><line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="{MUTED_COLOUR}" stroke-width="1"/>"#,
            l = num(LINE_LEFT_PX),
            t = num(LINE_TOP_PX),
            b = num(self.bottom),
            r = num(LINE_LEFT_PX + self.width),
        );
        if !y_label.is_empty() {
            let mid = num((LINE_TOP_PX + self.bottom) / 2.0);
            let _ = write!(
                out,
                r#"<text x="14" y="{mid}" transform="rotate(-90 14 {mid})" text-anchor="middle" fill="{MUTED_COLOUR}">{}</text>"#,
                esc(&truncate(y_label, 30)),
            );
        }
    }

    /// The x labels, every k-th when there are more than fit.
    fn x_labels(&self, out: &mut String) {
        let step = self.labels.len().div_ceil(MAX_X_LABELS).max(1);
        for (i, label) in self.labels.iter().enumerate().step_by(step) {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="middle" fill="{MUTED_COLOUR}" font-size="10">{}</text>"#,
                num(self.x_of(i)),
                num(self.bottom + 14.0),
                esc(&truncate(label, 12)),
            );
        }
    }

    /// One path per run of consecutive present points of the n-th series.
    fn series_lines(&self, out: &mut String, n: usize, s: &Series) {
        let (colour, dash) = series_style(n);
        // Runs of consecutive present points; a run of one is only a dot (a path needs two).
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for i in 0..self.labels.len() {
            match value_at(s, i) {
                Some(v) => {
                    if let Some(run) = runs.last_mut() {
                        run.push((self.x_of(i), self.y_of(v)));
                    }
                }
                None => runs.push(Vec::new()),
            }
        }
        for run in runs.iter().filter(|r| r.len() >= 2) {
            let mut d = String::new();
            for (j, (x, y)) in run.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{} {}",
                    if j == 0 { "M" } else { " L" },
                    num(*x),
                    num(*y)
                );
            }
            let _ = write!(
                out,
                r#"<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>"#
            );
        }
    }

    /// A dot with a tooltip (the true value) for every present point of the n-th series.
    fn series_dots(&self, out: &mut String, n: usize, s: &Series) {
        let (colour, _) = series_style(n);
        for i in 0..self.labels.len() {
            if let Some(v) = value_at(s, i) {
                let _ = write!(
                    out,
                    r#"<circle cx="{}" cy="{}" r="3" fill="{colour}"><title>{}, {}: {}</title></circle>"#,
                    num(self.x_of(i)),
                    num(self.y_of(v)),
                    esc(&s.name),
                    esc(self.labels.get(i).copied().unwrap_or_default()),
                    num(v),
                );
            }
        }
    }

    /// Legend under the x labels, four entries a row.
    fn legend(&self, out: &mut String, series: &[Series]) {
        let entry_width = self.width / LEGEND_PER_ROW as f64;
        for (n, s) in series.iter().enumerate() {
            let (colour, _) = series_style(n);
            let x = LINE_LEFT_PX + entry_width * (n % LEGEND_PER_ROW) as f64;
            let baseline =
                self.bottom + X_LABEL_ROW_PX + 12.0 + LEGEND_ROW_PX * (n / LEGEND_PER_ROW) as f64;
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}" fill="{TEXT_COLOUR}">{}<title>{}</title></text>"#,
                num(x),
                num(baseline - 9.0),
                num(x + 14.0),
                num(baseline),
                esc(&truncate(&s.name, 20)),
                esc(&s.name),
            );
        }
    }
}

/// Horizontal bars in the order given: label left, bar scaled to `max`, value right with its
/// `unit` (`"%"` → `83.3%`, a word → `12 calls`). A value above `max` fills the bar; without a
/// usable `max` the largest value is the full width. No bars → a small "no data" SVG.
pub fn bar_chart(title: &str, unit: &str, bars: &[(String, f64)], max: f64) -> String {
    if bars.is_empty() {
        return no_data(title);
    }
    let scale_max = if max.is_finite() && max > 0.0 {
        max
    } else {
        let largest = bars
            .iter()
            .map(|(_, v)| *v)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        if largest > 0.0 {
            largest
        } else {
            1.0
        }
    };
    let height = BAR_TOP_PX + BAR_ROW_PX * bars.len() as f64 + BOTTOM_PAD_PX;
    let desc = format!(
        "{} bars, scale 0 to {}",
        bars.len(),
        value_text(scale_max, unit)
    );
    let mut out = open_svg(title, &desc, height);
    title_text(&mut out, title, 8.0);
    for (i, (label, v)) in bars.iter().enumerate() {
        let top = BAR_TOP_PX + BAR_ROW_PX * i as f64;
        let fraction = if v.is_finite() {
            (v / scale_max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let shown = value_text(*v, unit);
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end" fill="{TEXT_COLOUR}">{}<title>{}</title></text><rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect><text x="{}" y="{}" text-anchor="end" fill="{TEXT_COLOUR}">{}</text>"#,
            num(BAR_LABEL_END_PX),
            num(top + 15.0),
            esc(&truncate(label, 28)),
            esc(label),
            num(BAR_START_PX),
            num(top + 4.0),
            num(BAR_MAX_WIDTH_PX * fraction),
            num(BAR_HEIGHT_PX),
            PALETTE[0],
            esc(label),
            esc(&shown),
            num(BAR_VALUE_END_PX),
            num(top + 15.0),
            esc(&shown),
        );
    }
    out.push_str("</svg>");
    out
}

/// The root element with its accessible name (`aria-label` and `<title>`) and a description.
fn open_svg(title: &str, desc: &str, height_px: f64) -> String {
    let (w, h) = (num(LINE_WIDTH_PX), num(height_px));
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}" font-family="sans-serif" font-size="11"><title>{t}</title><desc>{d}</desc>"#,
        t = esc(title),
        d = esc(desc),
    )
}

fn title_text(out: &mut String, title: &str, x_px: f64) {
    let _ = write!(
        out,
        r#"<text x="{}" y="18" font-size="13" font-weight="bold" fill="{TEXT_COLOUR}">{}</text>"#,
        num(x_px),
        esc(&truncate(title, 80)),
    );
}

fn no_data(title: &str) -> String {
    let mut out = open_svg(title, "no data", 48.0);
    title_text(&mut out, title, 8.0);
    let _ = write!(
        out,
        r#"<text x="{}" y="38" text-anchor="middle" fill="{MUTED_COLOUR}">no data</text></svg>"#,
        num(LINE_WIDTH_PX / 2.0),
    );
    out
}

/// Colour and dash attribute for the n-th series.
fn series_style(n: usize) -> (&'static str, &'static str) {
    let colour = PALETTE[n % PALETTE.len()];
    let dash = if n >= PALETTE.len() {
        r#" stroke-dasharray="5 3""#
    } else {
        ""
    };
    (colour, dash)
}

/// The y axis range: the caller's when usable, else the data's (padded when flat).
fn y_range(y_min: f64, y_max: f64, values: &[f64]) -> (f64, f64) {
    if y_min.is_finite() && y_max.is_finite() && y_max > y_min {
        return (y_min, y_max);
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi.is_finite() && hi > lo {
        (lo, hi)
    } else if lo.is_finite() {
        (lo - 1.0, lo + 1.0)
    } else {
        (0.0, 1.0)
    }
}

/// A value with its unit: no space before a symbol (`%`), one before a word (`calls`).
fn value_text(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    match unit.chars().next() {
        None => num(v),
        Some(c) if c.is_alphanumeric() => format!("{} {unit}", num(v)),
        Some(_) => format!("{}{unit}", num(v)),
    }
}

/// A number with at most one decimal and no `-0`; non-finite numbers are written as 0 so that
/// an attribute is never `NaN`.
fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let r = (v * 10.0).round() / 10.0;
    if r == 0.0 {
        "0".into()
    } else if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// XML-escapes text (`& < > " '`) and drops characters XML 1.0 cannot carry at all (control
/// characters other than tab and newlines), which would make the whole SVG unreadable.
fn esc(s: &str) -> String {
    let allowed: String = s
        .chars()
        .filter(|&c| {
            matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
        })
        .collect();
    html::esc(&allowed)
}

/// At most `max_chars` characters, the last one an ellipsis when cut (before escaping, so an
/// entity is never cut in half).
fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    type TestResult = Result<(), Box<dyn std::error::Error>>;
    use super::*;

    const HOSTILE: &str = "<script>&\"'";
    const HOSTILE_ESCAPED: &str = "&lt;script&gt;&amp;&quot;&#39;";

    /// A tiny well-formedness check: tags balance with one root `<svg>`, attribute values are
    /// quoted, and every `&` starts one of the entities [`esc`] writes.
    fn well_formed(svg: &str) -> Result<(), String> {
        let mut stack: Vec<&str> = Vec::new();
        let mut roots = 0;
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            check_text(&rest[..open])?;
            let after = &rest[open + 1..];
            let close = after.find('>').ok_or("a tag is not closed")?;
            let tag = &after[..close];
            rest = &after[close + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                let top = stack.pop().ok_or(format!("</{name}> closes nothing"))?;
                if top != name.trim() {
                    return Err(format!("</{name}> closes <{top}>"));
                }
                continue;
            }
            let name = tag
                .split(|c: char| c.is_whitespace() || c == '/')
                .next()
                .filter(|n| !n.is_empty())
                .ok_or(format!("empty tag <{tag}>"))?;
            if tag.matches('"').count() % 2 != 0 {
                return Err(format!("unbalanced quotes in <{tag}>"));
            }
            check_text(tag)?;
            if stack.is_empty() {
                roots += 1;
            }
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        check_text(rest)?;
        if !stack.is_empty() || roots != 1 || !svg.starts_with("<svg ") {
            return Err(format!("{roots} roots, unclosed: {stack:?}"));
        }
        Ok(())
    }

    fn check_text(s: &str) -> Result<(), String> {
        for (i, _) in s.match_indices('&') {
            let tail = &s[i..];
            if !["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| tail.starts_with(e))
            {
                return Err(format!("bare & in {s:?}"));
            }
        }
        Ok(())
    }

    fn count(svg: &str, element: &str) -> usize {
        svg.matches(&format!("<{element} ")).count()
    }

    fn series(name: &str, ys: &[Option<f64>]) -> Series {
        Series {
            name: name.into(),
            points: ys
                .iter()
                .enumerate()
                .map(|(i, y)| (format!("W{}", 40 + i), *y))
                .collect(),
        }
    }

    /// No number in the output has more than one decimal.
    fn short_numbers(svg: &str) -> bool {
        let b = svg.as_bytes();
        !(0..b.len().saturating_sub(2))
            .any(|i| b[i] == b'.' && b[i + 1].is_ascii_digit() && b[i + 2].is_ascii_digit())
    }

    #[test]
    fn hostile_text_is_escaped_everywhere() -> TestResult {
        let line = line_chart(
            HOSTILE,
            HOSTILE,
            0.0,
            100.0,
            &[Series {
                name: HOSTILE.into(),
                points: vec![(HOSTILE.into(), Some(50.0)), ("b".into(), Some(60.0))],
            }],
        );
        let bar = bar_chart(HOSTILE, HOSTILE, &[(HOSTILE.into(), 3.0)], 10.0);
        let empty = bar_chart(HOSTILE, "%", &[], 100.0);
        for svg in [&line, &bar, &empty] {
            well_formed(svg)?;
            assert!(!svg.contains("<script"), "{svg}");
            assert!(svg.contains(HOSTILE_ESCAPED), "{svg}");
            assert!(
                svg.contains(&format!("aria-label=\"{HOSTILE_ESCAPED}")),
                "{svg}"
            );
            assert!(
                svg.contains(&format!("<title>{HOSTILE_ESCAPED}</title>")),
                "{svg}"
            );
            for banned in ["style", "href", "onload", "onclick", "<image", "url("] {
                assert!(!svg.contains(banned), "{banned}: {svg}");
            }
        }
        // Control characters XML cannot carry are dropped, not passed through.
        let ctl = bar_chart("a\u{0}b\u{1b}c", "", &[("x".into(), 1.0)], 1.0);
        assert!(ctl.contains("<title>abc</title>"), "{ctl}");
        Ok(())
    }

    #[test]
    fn line_chart_elements_for_a_known_input() -> TestResult {
        let svg = line_chart(
            "Mean score per week",
            "score %",
            0.0,
            100.0,
            &[
                series("alice", &[Some(80.0), Some(82.5), Some(90.0), Some(85.0)]),
                series("bob", &[Some(70.0), Some(75.0), Some(72.25), Some(100.0)]),
            ],
        );
        well_formed(&svg)?;
        assert_eq!(count(&svg, "path"), 2, "one line per series");
        assert_eq!(count(&svg, "circle"), 8, "one dot per point");
        assert_eq!(count(&svg, "rect"), 2, "one legend swatch per series");
        assert_eq!(count(&svg, "line"), Y_TICKS + 2, "gridlines and two axes");
        for tick in ["0", "25", "50", "75", "100"] {
            assert!(
                svg.contains(&format!(">{tick}</text>")),
                "tick {tick}: {svg}"
            );
        }
        assert!(svg.contains(r#"viewBox="0 0 640 260""#));
        assert!(svg.contains(r#"role="img""#));
        assert!(svg.contains("<title>bob, W42: 72.3</title>"), "{svg}");
        assert!(
            svg.contains("#1f77b4") && svg.contains("#ff7f0e"),
            "distinct colours"
        );
        assert!(short_numbers(&svg), "{svg}");
        // The first point of alice: x at the left edge, y 80 % up the plot (y 32 to 220).
        // plot bottom = 260 − 6 − 16 (one legend row) − 18 = 220; y = 220 − 188 × 0.8 = 69.6.
        assert!(svg.contains(r#"<path d="M56 69.6 L"#), "{svg}");
        Ok(())
    }

    #[test]
    fn gaps_break_the_line() -> TestResult {
        let svg = line_chart(
            "t",
            "",
            0.0,
            10.0,
            &[series(
                "a",
                &[Some(1.0), Some(2.0), None, Some(3.0), Some(4.0)],
            )],
        );
        well_formed(&svg)?;
        assert_eq!(count(&svg, "path"), 2, "{svg}");
        assert_eq!(count(&svg, "circle"), 4);
        for path in svg.split("<path ").skip(1) {
            let d = path.split('"').nth(1).ok_or("no d")?;
            assert_eq!(
                (d.matches('M').count(), d.matches('L').count()),
                (1, 1),
                "{d}"
            );
        }

        // Lone points between gaps (and NaN, a gap too) are dots without a line; a short
        // series leaves its missing tail as a gap.
        let svg = line_chart(
            "t",
            "",
            0.0,
            10.0,
            &[
                series("a", &[Some(1.0), None, Some(f64::NAN), Some(3.0), None]),
                series("b", &[Some(5.0), Some(6.0)]),
            ],
        );
        well_formed(&svg)?;
        assert_eq!(
            (count(&svg, "path"), count(&svg, "circle")),
            (1, 4),
            "{svg}"
        );
        Ok(())
    }

    #[test]
    fn empty_inputs_say_no_data() -> TestResult {
        for svg in [
            line_chart("t", "y", 0.0, 1.0, &[]),
            line_chart("t", "y", 0.0, 1.0, &[series("a", &[])]),
            line_chart("t", "y", 0.0, 1.0, &[series("a", &[None, None])]),
            bar_chart("t", "%", &[], 100.0),
        ] {
            well_formed(&svg)?;
            assert!(svg.contains(">no data</text>"), "{svg}");
            assert_eq!(
                count(&svg, "path") + count(&svg, "circle") + count(&svg, "rect"),
                0
            );
        }
        Ok(())
    }

    #[test]
    fn bar_chart_in_order_with_values() -> TestResult {
        let bars = vec![
            ("greeting".to_owned(), 50.0),
            ("identity-verified".to_owned(), 83.333),
            ("closing".to_owned(), 120.0),
        ];
        let svg = bar_chart("Failure rate per question", "%", &bars, 100.0);
        well_formed(&svg)?;
        assert_eq!(count(&svg, "rect"), 3);
        // Widths: 372 px is 100 %; 50 % → 186; 83.333 % → 310; 120 % fills the bar (372).
        for width in ["186", "310", "372"] {
            assert!(
                svg.contains(&format!(r#"width="{width}" height="14""#)),
                "{width}: {svg}"
            );
        }
        assert!(
            svg.contains(">83.3%</text>") && svg.contains(">120%</text>"),
            "{svg}"
        );
        let at = |s: &str| svg.find(s).ok_or(format!("{s} missing"));
        assert!(at(">greeting<")? < at(">identity-verified<")?);
        assert!(at(">identity-verified<")? < at(">closing<")?);
        assert!(short_numbers(&svg), "{svg}");

        // A word unit gets a space; without a usable max the largest value is the full width.
        let svg = bar_chart(
            "Calls",
            "calls",
            &[("a".into(), 4.0), ("b".into(), 8.0)],
            0.0,
        );
        assert!(svg.contains(">8 calls</text>"), "{svg}");
        assert!(svg.contains(r#"width="186" height="14""#) && svg.contains(r#"width="372""#));
        Ok(())
    }

    #[test]
    fn numbers_have_at_most_one_decimal() {
        assert_eq!(num(83.333), "83.3");
        assert_eq!(num(80.0), "80");
        assert_eq!(num(79.96), "80");
        assert_eq!(num(-0.04), "0");
        assert_eq!(num(-2.25), "-2.3");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(value_text(f64::INFINITY, "%"), "–");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
