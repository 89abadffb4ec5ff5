//! Heatmaps over an (m, s) grid, one or several panels side by side (IHT vs IMP), each with its
//! colour bar; [`heatmap_layout`] computes where every cell lies without drawing.
//!
//! Invariants: inputs are validated before anything is drawn or written; cells are categorical
//! (tick labels are the grid values, equally spaced whatever their magnitude) and tile the grid
//! with shared integer edges; the first row is drawn at the bottom; [`heatmap_layout`] gives exactly
//! the rectangles [`heatmap_png`] fills.

use super::common::{check_path, grid_label, line, render, text, text_style, write_png_atomic};
use super::common::{Area, DrawResult};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use std::path::Path;

/// Pixel size of one heatmap panel, colour bar included.
pub const PANEL_WIDTH: u32 = 600;
pub const PANEL_HEIGHT: u32 = 500;

// Margins of the cell grid inside a panel: the title above; tick labels and the axis name left
// and below; the colour bar with its ticks and name to the right.
const GRID_LEFT: i32 = 95;
const GRID_RIGHT: i32 = 135;
const GRID_TOP: i32 = 50;
const GRID_BOTTOM: i32 = 70;
const BAR_GAP: i32 = 20;
const BAR_WIDTH: i32 = 20;
/// Grids with more columns than this get no numbers inside the cells (they would not fit).
pub const ANNOTATE_MAX_COLS: usize = 12;

const MISSING_FILL: RGBColor = RGBColor(190, 190, 190);
const MISSING_HATCH: RGBColor = RGBColor(140, 140, 140);

/// One heatmap: rows (m) × columns (s), values row-major, `None` where the cell was not run.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    pub title: String,
    /// Name of the vertical axis, `"m"` in the paper.
    pub row_label: String,
    /// Name of the horizontal axis, `"s"` in the paper.
    pub col_label: String,
    /// Row grid values; `rows[0]` is drawn at the bottom, so give them ascending.
    pub rows: Vec<f64>,
    /// Column grid values, drawn left to right.
    pub cols: Vec<f64>,
    /// `rows.len() × cols.len()` values, row-major; `None` is drawn as a hatched grey cell.
    pub values: Vec<Option<f64>>,
    /// Colour limits; values outside are clamped to the end colours.
    pub vmin: f64,
    pub vmax: f64,
    pub colorbar_label: String,
    /// Print each value in its cell (only when the grid has at most [`ANNOTATE_MAX_COLS`] columns).
    pub annotate: bool,
}

impl Heatmap {
    /// A heatmap with the paper's axis names (`m`, `s`), colour limits spanning the finite
    /// values (or [0, 1] when there are fewer than two distinct ones), and annotations on.
    pub fn new(title: &str, rows: Vec<f64>, cols: Vec<f64>, values: Vec<Option<f64>>) -> Self {
        let finite = values.iter().flatten().copied().filter(|v| v.is_finite());
        let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        let (vmin, vmax) = if lo < hi { (lo, hi) } else { (0.0, 1.0) };
        Self {
            title: title.to_string(),
            row_label: "m".to_string(),
            col_label: "s".to_string(),
            rows,
            cols,
            values,
            vmin,
            vmax,
            colorbar_label: String::new(),
            annotate: true,
        }
    }

    fn validate(&self) -> Result<()> {
        let (nr, nc) = (self.rows.len(), self.cols.len());
        let (grid_w, grid_h) = grid_size();
        for (name, grid, fit) in [
            ("heatmap rows", &self.rows, grid_h),
            ("heatmap cols", &self.cols, grid_w),
        ] {
            if grid.is_empty() || grid.len() > fit as usize {
                let why = format!("'{}' needs 1 to {fit} grid values per axis", self.title);
                return Err(Error::invalid(name, grid.len(), why));
            }
            if let Some(v) = grid.iter().find(|v| !v.is_finite()) {
                return Err(Error::invalid(name, v, "grid values must be finite"));
            }
        }
        Error::check_len("heatmap values (rows × cols)", nr * nc, self.values.len())?;
        if let Some((i, v)) = (self.values.iter().enumerate())
            .find_map(|(i, v)| v.filter(|v| !v.is_finite()).map(|v| (i, v)))
        {
            let at = format!("{v} at row {}, column {}", i / nc, i % nc);
            let why = "values must be finite (None marks a cell not run)";
            return Err(Error::invalid("heatmap value", at, why));
        }
        if !(self.vmin.is_finite() && self.vmax.is_finite() && self.vmin < self.vmax) {
            let value = format!("{} (vmax = {})", self.vmin, self.vmax);
            let why = "colour limits must be finite with vmin < vmax";
            return Err(Error::invalid("vmin", value, why));
        }
        Ok(())
    }
}

/// A pixel rectangle `[x0, x1) × [y0, y1)`, origin at the top-left of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    /// The pixel at the middle (rounded towards the top-left).
    pub fn center(&self) -> (u32, u32) {
        (
            ((self.x0 + self.x1 - 1) / 2) as u32,
            ((self.y0 + self.y1 - 1) / 2) as u32,
        )
    }
    pub fn width(&self) -> i32 {
        self.x1 - self.x0
    }
    pub fn height(&self) -> i32 {
        self.y1 - self.y0
    }
}

/// Where one panel's parts lie in the image.
#[derive(Clone, Debug, PartialEq)]
pub struct PanelLayout {
    /// One rectangle per value, in the same row-major order as [`Heatmap::values`].
    pub cells: Vec<Rect>,
    /// The colour gradient (vmax at the top).
    pub colorbar: Rect,
}

/// Image size and the panels of a heatmap figure, left to right.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    pub panels: Vec<PanelLayout>,
}

fn grid_size() -> (i32, i32) {
    (
        PANEL_WIDTH as i32 - GRID_LEFT - GRID_RIGHT,
        PANEL_HEIGHT as i32 - GRID_TOP - GRID_BOTTOM,
    )
}

/// The layout [`heatmap_png`] draws, computed without drawing (after the same validation).
pub fn heatmap_layout(maps: &[Heatmap]) -> Result<Layout> {
    if maps.is_empty() {
        return Err(Error::invalid("heatmaps", 0, "a figure needs at least one"));
    }
    maps.iter().try_for_each(Heatmap::validate)?;
    let (grid_w, grid_h) = grid_size();
    let panels = (maps.iter().enumerate())
        .map(|(p, map)| {
            let (nr, nc) = (map.rows.len() as i32, map.cols.len() as i32);
            let left = p as i32 * PANEL_WIDTH as i32 + GRID_LEFT;
            let bottom = GRID_TOP + grid_h;
            // Integer edges shared by neighbours: cells tile the grid with no gaps or overlaps.
            let x_edge = |c: i32| left + (c * grid_w + nc / 2) / nc;
            let y_edge = |r: i32| bottom - (r * grid_h + nr / 2) / nr;
            let cells = (0..nr)
                .flat_map(|r| (0..nc).map(move |c| (r, c)))
                .map(|(r, c)| Rect {
                    x0: x_edge(c),
                    x1: x_edge(c + 1),
                    y0: y_edge(r + 1),
                    y1: y_edge(r),
                })
                .collect();
            let bar_x = left + grid_w + BAR_GAP;
            let colorbar = Rect {
                x0: bar_x,
                x1: bar_x + BAR_WIDTH,
                y0: GRID_TOP,
                y1: bottom,
            };
            PanelLayout { cells, colorbar }
        })
        .collect();
    Ok(Layout {
        width: PANEL_WIDTH * maps.len() as u32,
        height: PANEL_HEIGHT,
        panels,
    })
}

/// Draws `maps` side by side into one PNG at `path` and returns where everything went.
pub fn heatmap_png(path: &Path, maps: &[Heatmap]) -> Result<Layout> {
    let layout = heatmap_layout(maps)?;
    check_path(path)?;
    let pixels = render(path, layout.width, layout.height, |root| {
        for (map, panel) in maps.iter().zip(&layout.panels) {
            draw_heatmap(root, map, panel)?;
        }
        Ok(())
    })?;
    write_png_atomic(path, layout.width, layout.height, pixels)?;
    Ok(layout)
}

/// About three significant digits, short enough to fit a cell.
fn cell_label(v: f64) -> String {
    let (v, a) = (v + 0.0, v.abs()); // + 0.0 turns -0 into 0
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.0e}")
    }
}

/// Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) inside `[lo, hi]`, with their decimals.
fn nice_ticks(lo: f64, hi: f64, target: f64) -> (Vec<f64>, usize) {
    let raw = (hi - lo) / target;
    let mag = 10f64.powf(raw.log10().floor());
    let (mult, extra) = [(1.0, 0), (2.0, 0), (2.5, 1), (5.0, 0), (10.0, 0)]
        .into_iter()
        .find(|(m, _)| m * mag >= raw)
        .unwrap_or((10.0, 0));
    let step = mult * mag;
    let decimals = ((-step.log10().floor()).max(0.0) as usize + extra).min(9);
    let (first, last) = ((lo / step).ceil(), (hi / step).floor());
    if !(first.is_finite() && last.is_finite()) || last - first > 50.0 {
        return (vec![lo, hi], 3);
    }
    let ticks = (0..=(last - first) as i64)
        .map(|k| (first + k as f64) * step + 0.0)
        .collect();
    (ticks, decimals)
}

fn viridis(map: &Heatmap, v: f64) -> RGBColor {
    let t = ((v - map.vmin) / (map.vmax - map.vmin)).clamp(0.0, 1.0);
    ViridisRGB.get_color(t)
}

/// Black on light colours, white on dark ones (sRGB luma).
fn contrast(c: RGBColor) -> RGBColor {
    let luma = 0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64;
    if luma > 140.0 {
        BLACK
    } else {
        WHITE
    }
}

fn fill(area: &Area, r: Rect, color: RGBColor) -> DrawResult {
    // The bitmap backend fills `[x0, x1) × [y0, y1)`, exactly our rectangles.
    area.draw(&Rectangle::new(
        [(r.x0, r.y0), (r.x1, r.y1)],
        color.filled(),
    ))
    .map_err(|e| e.to_string())
}

/// A one-pixel black line just outside `r`.
fn frame(area: &Area, r: Rect) -> DrawResult {
    let (x0, y0, x1, y1) = (r.x0 - 1, r.y0 - 1, r.x1, r.y1);
    line(
        area,
        vec![(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)],
        BLACK,
    )
}

fn draw_heatmap(root: &Area, map: &Heatmap, panel: &PanelLayout) -> DrawResult {
    let (nc, nr) = (map.cols.len(), map.rows.len());
    let first = panel.cells[0];
    let last = panel.cells[nr * nc - 1];
    let grid = Rect {
        x0: first.x0,
        y0: last.y0,
        x1: last.x1,
        y1: first.y1,
    };
    let panel_x0 = grid.x0 - GRID_LEFT;
    let tick_style = text_style(13.0, BLACK, HPos::Center, VPos::Top);
    let label_style = text_style(16.0, BLACK, HPos::Center, VPos::Center);

    let annotate = map.annotate && nc <= ANNOTATE_MAX_COLS;
    for (cell, value) in panel.cells.iter().zip(&map.values) {
        match value {
            Some(v) => {
                let color = viridis(map, *v);
                fill(root, *cell, color)?;
                if annotate {
                    let s = cell_label(*v);
                    // DejaVu digits are ~0.64 em wide: fit the text in 85 % of the cell.
                    let size = (13.0f64)
                        .min(cell.height() as f64 * 0.5)
                        .min(cell.width() as f64 * 0.85 / (0.64 * s.chars().count() as f64));
                    if size >= 7.0 {
                        let style = text_style(size, contrast(color), HPos::Center, VPos::Center);
                        let (cx, cy) = cell.center();
                        text(root, &s, (cx as i32, cy as i32), &style)?;
                    }
                }
            }
            None => {
                fill(root, *cell, MISSING_FILL)?;
                // Diagonal hatching, clipped to the cell pixel by pixel.
                for y in cell.y0..cell.y1 {
                    for x in cell.x0..cell.x1 {
                        if (x + y).rem_euclid(7) == 0 {
                            root.draw_pixel((x, y), &MISSING_HATCH)
                                .map_err(|e| e.to_string())?;
                        }
                    }
                }
            }
        }
    }
    frame(root, grid)?;
    let (x0, y1) = (grid.x0 - 1, grid.y1);

    // Column ticks: every column, or every k-th when the labels would collide.
    let widest = (map.cols.iter())
        .map(|v| root.estimate_text_size(&grid_label(*v), &tick_style))
        .try_fold(0u32, |w, s| s.map(|(sw, _)| w.max(sw)))
        .map_err(|e| e.to_string())?;
    let step = ((widest as i32 + 6) as f64 / (grid.width() as f64 / nc as f64)).ceil() as usize;
    for c in (0..nc).step_by(step.max(1)) {
        let x = panel.cells[c].center().0 as i32;
        line(root, vec![(x, y1), (x, y1 + 5)], BLACK)?;
        text(root, &grid_label(map.cols[c]), (x, y1 + 8), &tick_style)?;
    }
    let row_h = grid.height() as f64 / nr as f64;
    let row_step = (20.0 / row_h).ceil().max(1.0) as usize;
    let right = text_style(13.0, BLACK, HPos::Right, VPos::Center);
    for r in (0..nr).step_by(row_step) {
        let y = panel.cells[r * nc].center().1 as i32;
        line(root, vec![(x0 - 5, y), (x0, y)], BLACK)?;
        text(root, &grid_label(map.rows[r]), (x0 - 8, y), &right)?;
    }
    let grid_mid = ((grid.x0 + grid.x1) / 2, (grid.y0 + grid.y1) / 2);
    text(root, &map.col_label, (grid_mid.0, y1 + 45), &label_style)?;
    let rotated = label_style.transform(FontTransform::Rotate270);
    text(root, &map.row_label, (panel_x0 + 18, grid_mid.1), &rotated)?;
    let title = text_style(18.0, BLACK, HPos::Center, VPos::Center);
    text(root, &map.title, (grid_mid.0, GRID_TOP / 2), &title)?;

    // Colour bar: one row of pixels per colour, vmax at the top.
    let bar = panel.colorbar;
    let span = (bar.height() - 1).max(1) as f64;
    for y in bar.y0..bar.y1 {
        let v = map.vmax - (map.vmax - map.vmin) * (y - bar.y0) as f64 / span;
        let row = Rect {
            y0: y,
            y1: y + 1,
            ..bar
        };
        fill(root, row, viridis(map, v))?;
    }
    frame(root, bar)?;
    let bx1 = bar.x1;
    let (ticks, decimals) = nice_ticks(map.vmin, map.vmax, 5.0);
    let left = text_style(13.0, BLACK, HPos::Left, VPos::Center);
    for t in ticks {
        let y = bar.y1 - 1 - ((t - map.vmin) / (map.vmax - map.vmin) * span).round() as i32;
        line(root, vec![(bx1, y), (bx1 + 5, y)], BLACK)?;
        text(root, &format!("{t:.decimals$}"), (bx1 + 8, y), &left)?;
    }
    if !map.colorbar_label.is_empty() {
        let at = (panel_x0 + PANEL_WIDTH as i32 - 18, (bar.y0 + bar.y1) / 2);
        text(root, &map.colorbar_label, at, &rotated)?;
    }
    Ok(())
}
