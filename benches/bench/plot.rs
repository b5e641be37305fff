//! SVG line charts with plotters' SVG backend (no fonts needed: text is left to the viewer).

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// One line: a server's points.
pub struct Series {
    /// The legend label: the server's name (the key to its colour), then
    /// anything after a space or a colon (why it is drawn so, or not at all).
    pub name: String,
    /// (x, y) points; those with y not finite or not positive are not drawn.
    pub points: Vec<(f64, f64)>,
}

/// One panel of a figure.
pub struct Panel {
    /// Caption above the panel.
    pub title: String,
    /// Label of the y axis (the unit).
    pub y_desc: String,
    /// The lines drawn, one per server.
    pub series: Vec<Series>,
}

/// A stable colour per server, so every figure agrees (keyed by the label's first word).
fn colour(label: &str) -> RGBColor {
    match label.split([' ', ':']).next().unwrap_or(label) {
        "poll" => RGBColor(31, 119, 180),
        "select" => RGBColor(255, 127, 14),
        "epoll" => RGBColor(44, 160, 44),
        "sequential" => RGBColor(127, 127, 127),
        "threads" => RGBColor(214, 39, 40),
        "pool" => RGBColor(148, 103, 189),
        "tokio" => RGBColor(140, 86, 75),
        _ => RGBColor(23, 190, 207),
    }
}

/// The y range of `panel`: its smallest and largest y (positive values only: log scale),
/// with room above for the legend.
fn y_bounds(panel: &Panel) -> (f64, f64) {
    let ys = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = ys
        .filter(|y| y.is_finite() && *y > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if lo > hi {
        return (1.0, 10.0);
    }
    // Headroom above the highest line for the legend (upper left), which
    // takes about the top third of the panel: on the log scale, 60% of the
    // decades the lines span.
    let headroom = (hi / lo).powf(0.6).max(1.5);
    (lo / 1.5, hi * headroom)
}

/// An x label as a whole number.
pub fn whole(x: &f64) -> String {
    format!("{x:.0}")
}

/// An x label as a rate: `250k`, `1.2M`.
pub fn per_sec(x: &f64) -> String {
    if *x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if *x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// Panels side by side, sharing the x axis `x_desc` over `x_spec` (log or linear),
/// labelled by `x_fmt`, y on a log scale. A series without points still gets
/// its legend entry, so a server left out says why.
pub fn figure<X>(
    path: &Path,
    panels: &[Panel],
    x_desc: &str,
    x_spec: impl Fn() -> X,
    x_fmt: fn(&f64) -> String,
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let width = 560 * panels.len() as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((1, panels.len()));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let (lo, hi) = y_bounds(panel);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_spec(), (lo..hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(&panel.y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&|y| {
                if *y >= 100.0 { format!("{y:.0}") } else { format!("{y:.1}") }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        for series in &panel.series {
            let points: Vec<(f64, f64)> =
                series.points.iter().copied().filter(|p| p.1.is_finite() && p.1 > 0.0).collect();
            let c = colour(&series.name);
            if points.is_empty() {
                // Nothing to draw: the legend entry alone, a dashed stub, says why.
                chart
                    .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                    .map_err(|e| e.to_string())?
                    .label(series.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(
                            vec![(x, y), (x + 5, y), (x + 8, y), (x + 13, y)],
                            c.mix(0.4),
                        )
                    });
                continue;
            }
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(series.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
