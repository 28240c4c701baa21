//! Latency against offered load as a standalone SVG, written by hand (no plotting dependency):
//! offered arrivals per second on the x axis, latency on a logarithmic y axis (a saturating
//! system's latency grows by orders of magnitude), per series a solid p50 and a dashed p99 line.
//! Each point's tooltip gives the offered and achieved rates and both percentiles.

use std::fmt::Write as _;

use crate::report::Series;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The SVG document for `series`, titled with the scenario's name.
pub fn latency_vs_load(scenario: &str, series: &[Series]) -> String {
    let points = || series.iter().flat_map(|s| s.points.iter());
    let max_rate = points().map(|p| p.offered_rps).fold(0.0_f64, f64::max);
    let max_rate = if max_rate > 0.0 { max_rate * 1.05 } else { 1.0 };
    let latencies = || {
        points()
            .flat_map(|p| [p.p50_us, p.p99_us])
            .filter(|&us| us > 0)
    };
    // Whole decades of milliseconds around every latency.
    let low = latencies().min().unwrap_or(1_000) as f64 / 1_000.0;
    let high = latencies().max().unwrap_or(1_000) as f64 / 1_000.0;
    let low_decade = low.log10().floor();
    let high_decade = high.log10().ceil().max(low_decade + 1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |rate: f64| LEFT + rate / max_rate * plot_w;
    let y = |us: u64| {
        let ms = (us.max(1) as f64 / 1_000.0).log10();
        TOP + plot_h - (ms - low_decade) / (high_decade - low_decade) * plot_h
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        svg,
        "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{LEFT}\" y=\"24\" font-size=\"15\">{}: latency against offered load</text>",
        escape(scenario)
    );
    // Axes, decades of latency and five rate ticks.
    let _ = writeln!(
        svg,
        "<g stroke=\"#444\"><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\"/>\
         <line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/></g>",
        b = TOP + plot_h,
        r = LEFT + plot_w
    );
    let mut decade = low_decade;
    while decade <= high_decade + f64::EPSILON {
        let ms = 10_f64.powf(decade);
        let py = y((ms * 1_000.0) as u64);
        let label = if ms >= 1.0 {
            format!("{ms:.0} ms")
        } else {
            format!("{ms} ms")
        };
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{r}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{label}</text>",
            r = LEFT + plot_w,
            tx = LEFT - 6.0,
            ty = py + 4.0
        );
        decade += 1.0;
    }
    for tick in 0..=5 {
        let rate = max_rate * f64::from(tick) / 5.0;
        let px = x(rate);
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{b}\" x2=\"{px:.1}\" y2=\"{b2}\" stroke=\"#444\"/>\
             <text x=\"{px:.1}\" y=\"{ty}\" text-anchor=\"middle\">{rate:.0}</text>",
            b = TOP + plot_h,
            b2 = TOP + plot_h + 5.0,
            ty = TOP + plot_h + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{cx}\" y=\"{ty}\" text-anchor=\"middle\">offered per second</text>",
        cx = LEFT + plot_w / 2.0,
        ty = HEIGHT - 10.0
    );

    for (index, one) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        for (dash, pick) in [("", 0), (" stroke-dasharray=\"6 4\"", 1)] {
            let path: Vec<String> = one
                .points
                .iter()
                .map(|p| {
                    let us = if pick == 0 { p.p50_us } else { p.p99_us };
                    format!("{:.1},{:.1}", x(p.offered_rps), y(us))
                })
                .collect();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} \
                 points=\"{}\"/>",
                path.join(" ")
            );
        }
        for p in &one.points {
            for us in [p.p50_us, p.p99_us] {
                let _ = writeln!(
                    svg,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>{}: \
                     offered {:.1}/s, achieved {:.1}/s, p50 {:.1} ms, p99 {:.1} ms</title>\
                     </circle>",
                    x(p.offered_rps),
                    y(us),
                    escape(&one.name),
                    p.offered_rps,
                    p.achieved_rps,
                    p.p50_us as f64 / 1_000.0,
                    p.p99_us as f64 / 1_000.0
                );
            }
        }
        let ly = TOP + 10.0 + index as f64 * 36.0;
        let lx = LEFT + plot_w + 16.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{l2}\" y2=\"{ly}\" stroke=\"{colour}\" \
             stroke-width=\"2\"/><text x=\"{t}\" y=\"{ty}\">{name} p50</text>\
             <line x1=\"{lx}\" y1=\"{ly2}\" x2=\"{l2}\" y2=\"{ly2}\" stroke=\"{colour}\" \
             stroke-width=\"2\" stroke-dasharray=\"6 4\"/><text x=\"{t}\" y=\"{ty2}\">{name} \
             p99</text>",
            l2 = lx + 22.0,
            t = lx + 28.0,
            ty = ly + 4.0,
            ly2 = ly + 15.0,
            ty2 = ly + 19.0,
            name = escape(&one.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::LoadPoint;

    #[test]
    fn every_point_is_drawn_with_its_numbers_and_names_are_escaped() {
        let series = vec![Series {
            name: "points <saga>".to_owned(),
            points: vec![
                LoadPoint {
                    offered_rps: 10.0,
                    achieved_rps: 10.0,
                    p50_us: 900,
                    p99_us: 4_000,
                },
                LoadPoint {
                    offered_rps: 40.0,
                    achieved_rps: 31.5,
                    p50_us: 250_000,
                    p99_us: 2_000_000,
                },
            ],
        }];
        let svg = latency_vs_load("saga", &series);
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert!(svg.contains("offered 40.0/s, achieved 31.5/s, p50 250.0 ms, p99 2000.0 ms"));
        assert!(svg.contains("points &lt;saga&gt; p50") && !svg.contains("<saga>"));
        // The decades span 0.1 ms to 10 s.
        assert!(
            svg.contains(">0.1 ms<") && svg.contains(">10000 ms<"),
            "{svg}"
        );
    }

    #[test]
    fn no_points_still_make_a_valid_empty_chart() {
        let svg = latency_vs_load("empty", &[]);
        assert!(svg.contains("empty: latency against offered load"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
