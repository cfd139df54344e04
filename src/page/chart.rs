//! The page's chart: at-risk accounts by severity, one stacked bar per run, runs where the index
//! was rebuilt marked. Plain generated SVG rather than `plotters`: the chart is a few dozen
//! rectangles and labels; generating them directly keeps the page's markup small and
//! deterministic (tests compare numbers in it), styles it with the page's own CSS colours, gives
//! every bar a `<title>` a screen reader and a hovering mouse can read, and adds no dependency
//! (plotters' SVG backend still pulls its font and colour machinery for text we can write
//! ourselves).

use super::Run;
use std::fmt::Write;

/// Severities from the bottom of a bar up, with their CSS class.
pub const SEVERITIES: [(&str, &str); 4] = [
    ("critical", "sev-critical"),
    ("high", "sev-high"),
    ("medium", "sev-medium"),
    ("unknown", "sev-unknown"),
];

const W: f64 = 800.0;
const H: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 36.0;

/// A round step for about four grid lines up to `max`.
fn step(max: u64) -> u64 {
    let raw = (max as f64 / 4.0).max(1.0);
    let mag = 10f64.powf(raw.log10().floor());
    // Counts are whole: 2.5 only from 25 up.
    let steps: &[f64] = if mag >= 10.0 {
        &[1.0, 2.0, 2.5, 5.0, 10.0]
    } else {
        &[1.0, 2.0, 5.0, 10.0]
    };
    let nice = steps
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    nice.round().max(1.0) as u64
}

fn values(r: &Run) -> [u64; 4] {
    [r.row.critical, r.row.high, r.row.medium, r.row.unknown]
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of `runs` (oldest first) as an inline `<svg>` element.
pub fn svg(runs: &[Run]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg"><title id="chart-title">At-risk accounts by severity over the last {} runs</title>"#,
        runs.len()
    );
    let max = runs
        .iter()
        .map(|r| values(r).iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let step = step(max);
    let top = max.div_ceil(step).max(1) * step;
    let plot_h = H - TOP - BOTTOM;
    let plot_w = W - LEFT - RIGHT;
    let y = |v: u64| TOP + plot_h - plot_h * v as f64 / top as f64;
    let mut v = 0;
    while v <= top {
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{v}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y(v) + 4.0,
            y = y(v)
        );
        v += step;
    }
    let n = runs.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.8).max(1.0);
    for (i, r) in runs.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar) / 2.0;
        let date = r.date();
        let total: u64 = values(r).iter().sum();
        let _ = write!(
            s,
            r#"<g class="run{}"><title>{}: {total} at risk ({} critical, {} high, {} medium, {} unknown){}{}</title>"#,
            if r.row.complete { "" } else { " incomplete" },
            escape(&date),
            r.row.critical,
            r.row.high,
            r.row.medium,
            r.row.unknown,
            if r.row.index_rebuilt {
                "; index rebuilt"
            } else {
                ""
            },
            if r.row.complete {
                ""
            } else {
                "; run incomplete"
            },
        );
        let mut base = 0;
        for (val, (_, class)) in values(r).iter().zip(SEVERITIES) {
            if *val == 0 {
                continue;
            }
            let (y0, y1) = (y(base + val), y(base));
            let _ = write!(
                s,
                r#"<rect class="{class}" x="{x:.1}" y="{y0:.1}" width="{bar:.1}" height="{:.1}"/>"#,
                (y1 - y0).max(0.5)
            );
            base += val;
        }
        // A slot wide enough to hover even when nothing was at risk.
        let _ = write!(
            s,
            r#"<rect class="hover" x="{:.1}" y="{TOP}" width="{slot:.1}" height="{plot_h}"/></g>"#,
            LEFT + slot * i as f64
        );
        if r.row.index_rebuilt {
            let cx = x + bar / 2.0;
            let _ = write!(
                s,
                r#"<g class="rebuilt"><title>{}: index rebuilt</title><line x1="{cx:.1}" x2="{cx:.1}" y1="{TOP}" y2="{:.1}"/><path d="M{:.1} {:.1}h8l-4 7z"/></g>"#,
                escape(&date),
                TOP + plot_h,
                cx - 4.0,
                TOP - 10.0
            );
        }
    }
    let _ = write!(
        s,
        r#"<line class="axis-line" x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}"/>"#,
        W - RIGHT,
        TOP + plot_h,
        TOP + plot_h
    );
    // Dates under the first, middle and last runs.
    let mut labelled = vec![0, runs.len() / 2, runs.len().saturating_sub(1)];
    labelled.dedup();
    for i in labelled {
        let Some(r) = runs.get(i) else { continue };
        let anchor = match i {
            0 => "start",
            _ if i + 1 == runs.len() => "end",
            _ => "middle",
        };
        let x = match anchor {
            "start" => LEFT + slot * i as f64,
            "end" => LEFT + slot * (i + 1) as f64,
            _ => LEFT + slot * (i as f64 + 0.5),
        };
        let _ = write!(
            s,
            r#"<text class="axis" x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            H - BOTTOM + 16.0,
            escape(&r.date())
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_and_cover_the_maximum() {
        for (max, want) in [(0, 1), (3, 1), (10, 5), (37, 10), (400, 100), (1234, 500)] {
            assert_eq!(step(max), want, "max {max}");
        }
    }

    #[test]
    fn bars_stack_to_the_run_totals_and_rebuilds_are_marked() {
        let mut a = super::super::example("2026-11-01T02:00:00Z", [2, 3, 0, 1]);
        a.row.index_rebuilt = true;
        let b = super::super::example("2026-11-02T02:00:00Z", [0, 0, 0, 0]);
        let svg = svg(&[a, b]);
        assert!(svg.contains(
            "2026-11-01: 6 at risk (2 critical, 3 high, 0 medium, 1 unknown); index rebuilt"
        ));
        assert!(svg.contains("2026-11-02: 0 at risk"));
        assert_eq!(svg.matches("class=\"rebuilt\"").count(), 1);
        // Three severities drawn for the first run, none for the second.
        assert_eq!(svg.matches("<rect class=\"sev-").count(), 3);
        // The bars of run one reach exactly the top grid line of 6 (step 2: 0,2,4,6).
        assert!(svg.contains(">6</text>"));
    }
}
