//! SVG line charts with plotters' SVG backend (no fonts needed: text is left to the viewer).

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
    /// How the y axis labels its values.
    pub y_fmt: fn(&f64) -> String,
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

/// The y range of `panel`: its smallest and largest y (positive values only: log scale).
fn y_bounds(panel: &Panel) -> (f64, f64) {
    let ys = panel.series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = ys
        .filter(|y| y.is_finite() && *y > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(y), hi.max(y)));
    if lo > hi { (1.0, 10.0) } else { (lo / 1.5, hi * 1.5) }
}

/// An x label as a whole number.
pub fn whole(x: &f64) -> String {
    format!("{x:.0}")
}

/// A label as a rate: `250k`, `1.2M`.
pub fn per_sec(x: &f64) -> String {
    if *x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if *x >= 1e3 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A y label for a time in microseconds: `50 µs`, `2 ms`, `1.5 s`.
pub fn micros(y: &f64) -> String {
    let trim = |v: f64| {
        let text = if v >= 10.0 { format!("{v:.0}") } else { format!("{v:.1}") };
        text.trim_end_matches(".0").to_string()
    };
    if *y >= 1e6 {
        format!("{} s", trim(y / 1e6))
    } else if *y >= 1e3 {
        format!("{} ms", trim(y / 1e3))
    } else {
        format!("{} µs", trim(*y))
    }
}

/// Height of one legend row, pixels.
const LEGEND_ROW: u32 = 20;
/// Legend entries per row.
const LEGEND_COLUMNS: usize = 2;

/// Panels side by side, sharing the x axis `x_desc` over `x_spec` (log or linear),
/// labelled by `x_fmt`, y on a log scale; below them one legend for all, its
/// own strip, so that no line is hidden under it. A series without points
/// still gets its legend entry (a faint stub), so a server left out says why.
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
    // The legend: every series name once, in the order first seen.
    let mut names: Vec<(String, bool)> = Vec::new();
    for series in panels.iter().flat_map(|p| &p.series) {
        let drawn = series.points.iter().any(|p| p.1.is_finite() && p.1 > 0.0);
        match names.iter_mut().find(|(n, _)| *n == series.name) {
            Some(entry) => entry.1 |= drawn,
            None => names.push((series.name.clone(), drawn)),
        }
    }
    let rows = names.len().div_ceil(LEGEND_COLUMNS) as u32;
    let legend_height = rows * LEGEND_ROW + 16;
    let width = 560 * panels.len() as u32;
    let root = SVGBackend::new(path, (width, 420 + legend_height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (plots, legend) = root.split_vertically(420);
    let areas = plots.split_evenly((1, panels.len()));
    for (panel, area) in panels.iter().zip(areas.iter()) {
        let (lo, hi) = y_bounds(panel);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x_spec(), (lo..hi).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(&panel.y_desc)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&panel.y_fmt)
            .draw()
            .map_err(|e| e.to_string())?;
        for series in &panel.series {
            let points: Vec<(f64, f64)> =
                series.points.iter().copied().filter(|p| p.1.is_finite() && p.1 > 0.0).collect();
            if points.is_empty() {
                continue;
            }
            let c = colour(&series.name);
            chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(|e| e.to_string())?;
        }
    }
    let column = width as i32 / LEGEND_COLUMNS as i32;
    for (i, (name, drawn)) in names.iter().enumerate() {
        let x = 20 + (i % LEGEND_COLUMNS) as i32 * column;
        let y = 10 + (i / LEGEND_COLUMNS) as i32 * LEGEND_ROW as i32 + LEGEND_ROW as i32 / 2;
        let c = colour(name);
        let style = if *drawn { c.stroke_width(3) } else { c.mix(0.35).stroke_width(1) };
        legend
            .draw(&PathElement::new(vec![(x, y), (x + 24, y)], style))
            .map_err(|e| e.to_string())?;
        let font =
            TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        legend.draw(&Text::new(name.clone(), (x + 32, y), font)).map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
