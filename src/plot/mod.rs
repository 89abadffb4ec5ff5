//! Paper figures as PNG: heatmaps over an (m, s) grid, one or several side by side (IHT vs IMP),
//! and line plots with markers (the exact-recovery phase transition).
//!
//! Drawing goes through `plotters` into an in-memory RGB buffer; the PNG is encoded with `image`
//! and written atomically (a temporary file in the same folder, then a rename), so a crash or a
//! full disk never leaves a half-written figure. Text uses a font compiled into the binary
//! (`assets/DejaVuSans-subset.ttf`), so figures render the same on a machine without system fonts.
//!
//! Invariants: inputs are validated before anything is drawn or written; heatmap cells are
//! categorical (tick labels are the grid values, equally spaced whatever their magnitude), the
//! first row is drawn at the bottom (the paper's convention: small m low), and [`heatmap_layout`]
//! gives exactly the pixel rectangles [`heatmap_png`] fills, so tests and callers can find cells.
//!
//! Layout: `heatmap` holds the heatmap figure and its layout, `curves` the line plots, `common`
//! the bundled font, the canvas, the atomic PNG write and the text and line helpers both share.

mod common;
mod curves;
mod heatmap;

pub use curves::{curves_png, Curves, CURVES_HEIGHT, CURVES_WIDTH};
pub use heatmap::{
    heatmap_layout, heatmap_png, Heatmap, Layout, PanelLayout, Rect, ANNOTATE_MAX_COLS,
    PANEL_HEIGHT, PANEL_WIDTH,
};
