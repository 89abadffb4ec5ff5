//! Line plots with markers (the exact-recovery phase transition): one line per series, gaps where a
//! value is missing, an optional logarithmic x axis with ticks at 1, 2, 5 × 10^k.
//!
//! Invariants: inputs are validated before anything is drawn or written; the axes leave a little
//! air around the data so markers on the limits are drawn whole; series colours follow
//! matplotlib's `tab10` order.

use super::common::{check_path, grid_label, line, render, text, text_style, write_png_atomic};
use super::common::{Area, DrawResult, FONT};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// Pixel size of a line plot.
pub const CURVES_WIDTH: u32 = 700;
pub const CURVES_HEIGHT: u32 = 500;

/// matplotlib's `tab10` (0xRRGGBB): distinct hues, readable on white.
const SERIES_COLORS: [u32; 10] = [
    0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22,
    0x17becf,
];

/// A line plot: one line with markers per series; `None` leaves a gap (no marker, line broken).
/// The legend sits in the lower right, where rising recovery curves leave room.
#[derive(Clone, Debug, PartialEq)]
pub struct Curves {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Vec<f64>,
    /// `(legend name, y values)`, each as long as `x`.
    pub series: Vec<(String, Vec<Option<f64>>)>,
    /// Logarithmic x axis (all x must then be positive).
    pub log_x: bool,
    /// Fixed y limits, e.g. `(0.0, 1.0)` for a fraction of seeds recovered (the axis adds 3 %
    /// of air on both sides so that markers on the limits are drawn whole).
    pub y_range: (f64, f64),
    /// Join each series' present points across its gaps (series measured at different x, on
    /// one merged x axis) instead of breaking the line.
    pub join_gaps: bool,
}

impl Curves {
    fn validate(&self) -> Result<()> {
        let bad_x = (self.x.iter()).find(|v| !v.is_finite() || (self.log_x && **v <= 0.0));
        if self.x.is_empty() || bad_x.is_some() {
            let value = bad_x.map_or("none".to_string(), f64::to_string);
            let why = "x needs at least one value, all finite (and positive on a log axis)";
            return Err(Error::invalid("curves x", value, why));
        }
        for (name, ys) in &self.series {
            Error::check_len("curves series length (= x length)", self.x.len(), ys.len())?;
            if let Some(v) = ys.iter().flatten().find(|v| !v.is_finite()) {
                let why = "values must be finite (None leaves a gap)";
                return Err(Error::invalid(
                    "curves value",
                    format!("{v} in '{name}'"),
                    why,
                ));
            }
        }
        let (lo, hi) = self.y_range;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            let why = "limits must be finite and increasing";
            return Err(Error::invalid("y_range", format!("({lo}, {hi})"), why));
        }
        Ok(())
    }
}

/// Draws `curves` into a PNG of [`CURVES_WIDTH`] × [`CURVES_HEIGHT`] at `path`.
pub fn curves_png(path: &Path, curves: &Curves) -> Result<()> {
    curves.validate()?;
    check_path(path)?;
    let (lo, hi) = (curves.x.iter()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let pixels = render(path, CURVES_WIDTH, CURVES_HEIGHT, |root| {
        if curves.log_x {
            // 4 % of the (logarithmic) span as air on each side keeps end markers off the frame.
            let pad = if lo < hi { (hi / lo).powf(0.04) } else { 2.0 };
            draw_curves(root, curves, (lo / pad..hi * pad).log_scale())
        } else {
            let pad = if lo < hi { 0.04 * (hi - lo) } else { 1.0 };
            draw_curves(root, curves, lo - pad..hi + pad)
        }
    })?;
    write_png_atomic(path, CURVES_WIDTH, CURVES_HEIGHT, pixels)
}

fn draw_curves<X>(root: &Area, c: &Curves, x_spec: X) -> DrawResult
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let err = |e: DrawingAreaErrorKind<_>| e.to_string();
    // 3 % of air above and below, so markers on the limits (0 and 1 for a fraction) stay whole.
    let (lo, hi) = c.y_range;
    let pad = 0.03 * (hi - lo);
    let mut chart = ChartBuilder::on(root)
        .caption(&c.title, (FONT, 20))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(65)
        .build_cartesian_2d(x_spec, lo - pad..hi + pad)
        .map_err(err)?;
    let ticks = (FONT, 14).into_font();
    let x_fmt = |v: &f64| match c.log_x {
        true => String::new(), // see below
        false => grid_label((v * 1e6).round() / 1e6),
    };
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .axis_desc_style((FONT, 16))
        .label_style(ticks)
        .x_label_formatter(&x_fmt);
    if c.log_x {
        // plotters' log axis lists 10^k twice (its grid line drawn twice as dark) and labels
        // 1..9 × 10^k, which collide: keep its ticks unlabelled, and `log_ticks` draws grid
        // lines and labels at 1, 2, 5 × 10^k.
        mesh.disable_x_mesh();
    }
    mesh.draw().map_err(err)?;
    if c.log_x {
        log_ticks(root, &chart)?;
    }
    for (i, (name, ys)) in c.series.iter().enumerate() {
        let hex = SERIES_COLORS[i % SERIES_COLORS.len()];
        let color = RGBColor((hex >> 16) as u8, (hex >> 8) as u8, hex as u8);
        let style = color.stroke_width(2);
        let present = |&(x, y): &(f64, Option<f64>)| Some((x, y?));
        let pairs: Vec<(f64, Option<f64>)> = c.x.iter().copied().zip(ys.iter().copied()).collect();
        if c.join_gaps {
            let line = LineSeries::new(pairs.iter().filter_map(present), style);
            chart.draw_series(line).map_err(err)?;
        } else {
            // Each run of present values is its own line, so a `None` breaks the curve.
            for run in pairs.split(|(_, y)| y.is_none()) {
                let line = LineSeries::new(run.iter().filter_map(present), style);
                chart.draw_series(line).map_err(err)?;
            }
        }
        let points = pairs.iter().filter_map(present);
        chart
            .draw_series(points.map(|p| Circle::new(p, 4, color.filled())))
            .map_err(err)?
            .label(name.as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (20, 0)], color.stroke_width(2))
                    + Circle::new((10, 0), 4, color.filled())
            });
    }
    if !c.series.is_empty() {
        chart
            .configure_series_labels()
            // Recovery curves rise with n: the lower right is where they leave room.
            .position(SeriesLabelPosition::LowerRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Grid lines, ticks and labels at 1, 2, 5 × 10^k on a logarithmic x axis.
fn log_ticks<X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    root: &Area,
    chart: &ChartContext<BitMapBackend, Cartesian2d<X, Y>>,
) -> DrawResult {
    let (xs, ys) = (chart.x_range(), chart.y_range());
    let (_, pixels) = chart.plotting_area().get_pixel_range();
    let style = text_style(14.0, BLACK, HPos::Center, VPos::Top);
    let k0 = xs.start.log10().floor() as i32;
    let k1 = xs.end.log10().ceil() as i32;
    for t in (k0..=k1).flat_map(|k| [1.0, 2.0, 5.0].map(|d| d * 10f64.powi(k))) {
        if !xs.contains(&t) {
            continue;
        }
        let x = chart.backend_coord(&(t, ys.start)).0;
        let grid = PathElement::new(vec![(x, pixels.start), (x, pixels.end)], BLACK.mix(0.12));
        root.draw(&grid).map_err(|e| e.to_string())?;
        line(root, vec![(x, pixels.end), (x, pixels.end + 5)], BLACK)?;
        text(root, &grid_label(t), (x, pixels.end + 8), &style)?;
    }
    Ok(())
}
