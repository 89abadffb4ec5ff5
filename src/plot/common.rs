//! What the figures share: the bundled font and its registration, the in-memory canvas, the atomic
//! PNG write, and small text and line helpers.
//!
//! Invariants: the font is registered once per process under our own family name, and every
//! drawing names that family, so output never depends on system fonts; a PNG is encoded beside its
//! target and renamed over it, so a crash or a full disk never leaves a half-written figure or a
//! stray temporary file.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::OnceLock;

/// DejaVu Sans cut down to Latin-1, Greek and a few math signs (licence in `assets/README.md`).
const FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans-subset.ttf");
/// Our own family name, so that registering it cannot clash with anyone else's `sans-serif`.
pub(super) const FONT: &str = "relu-iht-sans";

pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// Drawing failures carry no path; [`render`] attaches it.
pub(super) type DrawResult = std::result::Result<(), String>;

fn registered_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    ok.then_some(()).ok_or_else(|| Error::Format {
        path: "assets/DejaVuSans-subset.ttf".to_string(),
        why: "the bundled font cannot be parsed".to_string(),
    })
}

/// Runs `draw` on a white `width × height` RGB canvas and returns the pixels.
pub(super) fn render(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(&Area) -> DrawResult,
) -> Result<Vec<u8>> {
    registered_font()?;
    let mut pixels = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        draw(&root)
            .and_then(|()| root.present().map_err(|e| e.to_string()))
            .map_err(|why| Error::Format {
                path: path.display().to_string(),
                why: format!("cannot draw the figure: {why}"),
            })?;
    }
    Ok(pixels)
}

pub(super) fn check_path(path: &Path) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::invalid("path", path.display(), "names no file"));
    }
    Ok(())
}

/// Encodes the PNG in memory and writes it atomically ([`crate::atomic`]): neither a partial PNG
/// nor litter is left behind.
pub(super) fn write_png_atomic(
    path: &Path,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
) -> Result<()> {
    let img = image::RgbImage::from_raw(width, height, pixels).ok_or_else(|| Error::Format {
        path: path.display().to_string(),
        why: "pixel buffer does not match the image size".to_string(),
    })?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| Error::Format {
            path: path.display().to_string(),
            why: format!("cannot encode PNG: {e}"),
        })?;
    crate::atomic::write(path, &png.into_inner())
}

pub(super) fn text_style(size: f64, color: RGBColor, h: HPos, v: VPos) -> TextStyle<'static> {
    let mut style = TextStyle::from((FONT, size).into_font()).pos(Pos::new(h, v));
    style.color = color.to_backend_color();
    style
}

/// Draws `s` anchored at `at`. plotters' ab_glyph path puts the baseline half an em below the
/// top of the layout box, which leaves centred text about a quarter em too high; `VPos::Center`
/// is corrected here so that labels sit visually centred on ticks and cells.
pub(super) fn text(area: &Area, s: &str, at: (i32, i32), style: &TextStyle) -> DrawResult {
    let shift = match style.pos.v_pos {
        VPos::Center => (style.font.get_size() * 0.25).round() as i32,
        _ => 0,
    };
    let at = match style.font.get_transform() {
        FontTransform::Rotate270 => (at.0 + shift, at.1),
        _ => (at.0, at.1 + shift),
    };
    area.draw_text(s, style, at).map_err(|e| e.to_string())
}

/// `1000` → "1000", `0.5` → "0.5": grid values as the paper writes them.
pub(super) fn grid_label(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

pub(super) fn line(area: &Area, points: Vec<(i32, i32)>, color: RGBColor) -> DrawResult {
    area.draw(&PathElement::new(points, color))
        .map_err(|e| e.to_string())
}
