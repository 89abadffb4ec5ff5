//! Implicit neural representations (SPEC §4): an image as a function of pixel coordinates.
//! Coordinates go through random Fourier features `[sin(2πBc), cos(2πBc)]` with `B ~ N(0, σ²)`
//! (`features/2 × k`, drawn from the counter-based generator), the network predicts intensities in
//! [0, 1], and PSNR uses peak 1. As in the paper's code, coordinates are the raw pixel indices
//! (row, column); an RGB image adds the channel index as a third coordinate whose frequencies
//! have scale 0.05 instead of σ, and each (pixel, channel) is one sample.
//!
//! This build materializes the n × features matrix, so it suits images up to a few hundred
//! thousand samples; larger ones are downscaled (`max_side`).

use crate::error::{Error, Result};
use crate::io::model_file::InrMeta;
use crate::problem::data::{Data, InMemory, RowSource};
use crate::problem::dense::View;
use crate::problem::network::Network;
use crate::problem::rng::{self, Stream};
use crate::solver::scalar::Safeguards;
use multiversion::multiversion;
use rayon::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// The bundled CC0 photo (`assets/camera.png`, 512 × 512 gray), compiled in so the default fit
/// runs from any directory with no data fetched.
pub const BUNDLED_CAMERA: &[u8] = include_bytes!("../../assets/camera.png");

/// Standard deviation of the frequencies of the channel coordinate of RGB images.
pub const CHANNEL_SCALE: f32 = 0.05;

/// An image with intensities in [0, 1], row-major, channels interleaved.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// 1 (gray) or 3 (RGB).
    pub channels: usize,
    pub pixels: Vec<f32>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::Format {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

impl Image {
    /// Loads a PNG or JPEG (by content), gray or RGB (alpha dropped), downscaled so that its longer
    /// side is at most `max_side`.
    pub fn load(path: &Path, max_side: usize) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::decode(&bytes, path, max_side)
    }

    /// Decodes image bytes (`path` names them in errors).
    pub fn decode(bytes: &[u8], path: &Path, max_side: usize) -> Result<Self> {
        let format =
            image::guess_format(bytes).map_err(|_| bad(path, "not a PNG or JPEG image"))?;
        if !matches!(format, image::ImageFormat::Png | image::ImageFormat::Jpeg) {
            return Err(bad(
                path,
                format!("{format:?} images are not supported (PNG or JPEG)"),
            ));
        }
        let img = image::load_from_memory_with_format(bytes, format)
            .map_err(|e| bad(path, format!("cannot decode: {e}")))?;
        if img.width() == 0 || img.height() == 0 {
            return Err(bad(
                path,
                format!("empty image ({} × {})", img.width(), img.height()),
            ));
        }
        let longer = img.width().max(img.height()) as usize;
        let img = if longer > max_side {
            let scale = max_side as f64 / longer as f64;
            let w = ((img.width() as f64 * scale).round() as u32).max(1);
            let h = ((img.height() as f64 * scale).round() as u32).max(1);
            img.resize_exact(w, h, image::imageops::FilterType::Triangle)
        } else {
            img
        };
        let (width, height) = (img.width() as usize, img.height() as usize);
        let gray = img.color().channel_count() <= 2;
        let (channels, raw) = if gray {
            (1, img.to_luma8().into_raw())
        } else {
            (3, img.to_rgb8().into_raw())
        };
        Ok(Self {
            width,
            height,
            channels,
            pixels: raw.into_iter().map(|v| v as f32 / 255.0).collect(),
        })
    }

    /// A gray image from raw 0–255 pixel values.
    pub fn gray(width: usize, height: usize, raw: &[f32]) -> Self {
        Self {
            width,
            height,
            channels: 1,
            pixels: raw.iter().map(|&v| v / 255.0).collect(),
        }
    }

    /// Samples: one per (pixel, channel).
    pub fn len(&self) -> usize {
        self.pixels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }

    /// Coordinate dimension: 2 for gray, 3 for RGB.
    pub fn coord_dims(&self) -> usize {
        if self.channels == 1 {
            2
        } else {
            3
        }
    }

    /// The coordinates of every sample, `k` per sample, in pixel order: raw pixel indices (the
    /// paper's convention), or with `unit` the indices divided by the longer side (in [0, 1)).
    pub fn coords(&self, unit: bool) -> Vec<f32> {
        let k = self.coord_dims();
        let scale = coord_scale(self.width, self.height, unit);
        let mut out = Vec::with_capacity(self.len() * k);
        for r in 0..self.height {
            for c in 0..self.width {
                for ch in 0..self.channels {
                    out.extend_from_slice(&[r as f32 * scale, c as f32 * scale]);
                    if k == 3 {
                        out.push(ch as f32);
                    }
                }
            }
        }
        out
    }

    /// The pixels of even row and even column: a `⌈width/2⌉ × ⌈height/2⌉` image whose pixel
    /// (r, c) is this image's pixel (2r, 2c) (the training grid of a held-out test).
    pub fn subgrid(&self) -> Self {
        let (w, h, ch) = (
            self.width.div_ceil(2),
            self.height.div_ceil(2),
            self.channels,
        );
        let mut pixels = Vec::with_capacity(w * h * ch);
        for r in 0..h {
            for c in 0..w {
                let at = ((2 * r) * self.width + 2 * c) * ch;
                pixels.extend_from_slice(&self.pixels[at..at + ch]);
            }
        }
        Self {
            width: w,
            height: h,
            channels: ch,
            pixels,
        }
    }

    /// Per sample (pixel and channel), whether its pixel lies on the sub-grid of [`Image::subgrid`].
    pub fn on_subgrid(&self) -> Vec<bool> {
        (0..self.len())
            .map(|e| {
                let p = e / self.channels;
                (p / self.width).is_multiple_of(2) && (p % self.width).is_multiple_of(2)
            })
            .collect()
    }

    /// The same image with new intensities (clamped to [0, 1]).
    pub fn with_pixels(&self, values: &[f32]) -> Self {
        Self {
            pixels: values.iter().map(|v| v.clamp(0.0, 1.0)).collect(),
            ..self.clone()
        }
    }

    /// Writes a PNG atomically ([`crate::atomic`]), so an interrupted run leaves no half-written
    /// image and no temporary file.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        let bytes: Vec<u8> = self
            .pixels
            .iter()
            .map(|v| (v * 255.0).round() as u8)
            .collect();
        let (w, h) = (self.width as u32, self.height as u32);
        let encoded = if self.channels == 1 {
            image::GrayImage::from_raw(w, h, bytes).map(|i| encode_png(&i))
        } else {
            image::RgbImage::from_raw(w, h, bytes).map(|i| encode_png(&i))
        };
        match encoded {
            Some(Ok(png)) => crate::atomic::write(path, &png),
            Some(Err(e)) => Err(bad(path, format!("cannot encode PNG: {e}"))),
            None => Err(bad(path, "pixel buffer does not match the image size")),
        }
    }
}

/// The paper's INR settings (`--paper`, and an MNIST digit's defaults): Fourier features, σ for
/// a digit and for other images (raw pixel indices), width, budget and full-batch steps.
pub const PAPER_FEATURES: usize = 1500;
pub const PAPER_SIGMA_DIGIT: f32 = 2.0;
pub const PAPER_SIGMA: f32 = 5.0;
pub const PAPER_M: usize = 200;
pub const PAPER_S: usize = 2000;
pub const PAPER_STEPS: usize = 100;
pub const PAPER_INNER_STEPS: usize = 10;

/// Photo defaults, chosen from the fits measured in RESULTS.md ("Defaults for photos"): unit
/// coordinates, these features and σ (cycles per image).
pub const PHOTO_FEATURES: usize = 1500;
pub const PHOTO_SIGMA: f32 = 10.0;
/// ... and the high band mixed into them (see [`HighBand`]).
pub const PHOTO_SIGMA_HIGH: f32 = 40.0;
pub const PHOTO_HIGH_SHARE: f32 = 0.3;
/// Photos with at most this many samples are fitted in full batch for the paper's 100 steps,
/// with the paper's width and budget.
pub const PHOTO_FULL_BATCH: usize = 1 << 16;
/// Larger photos stream: batches of this many samples, this many epochs, with this width and
/// budget.
pub const PHOTO_BATCH: usize = 2048;
pub const PHOTO_EPOCHS: usize = 2;
pub const PHOTO_M: usize = 400;
pub const PHOTO_S: usize = 72_000;
/// ... the random generators for this many steps only, instead of the paper's whole first
/// epoch, which spends half of a two-epoch run on a model that is then discarded ...
pub const PHOTO_WARMUP: usize = 8;
/// ... and fewer Armijo steps per batch: the time goes to a larger budget instead.
pub const PHOTO_INNER_STEPS: usize = 3;

/// What a caller of an INR fit asked for; `None` leaves a setting to [`InrRequest::resolve`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct InrRequest {
    /// The paper's settings for everything not given.
    pub paper: bool,
    /// The image is an MNIST digit (the paper's task: its settings, σ = 2).
    pub digit: bool,
    /// Unit coordinates (pixel indices over the longer side) rather than raw indices.
    pub unit: Option<bool>,
    pub sigma: Option<f32>,
    /// The high band's σ and share (a share of 0 turns it off).
    pub sigma_high: Option<f32>,
    pub high_share: Option<f32>,
    pub features: Option<usize>,
    pub m: Option<usize>,
    pub s: Option<usize>,
    pub steps: Option<usize>,
    pub batch_size: Option<usize>,
    pub epochs: Option<usize>,
    pub warmup: Option<usize>,
    pub inner_steps: Option<usize>,
}

/// Every setting of an INR fit, resolved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InrPlan {
    pub unit: bool,
    pub sigma: f32,
    /// Higher frequencies mixed in (photos with unit coordinates, by default).
    pub band: Option<HighBand>,
    pub features: usize,
    pub m: usize,
    pub s: usize,
    /// Full-batch steps (without a batch size), or epochs (with one).
    pub steps: usize,
    pub batch_size: Option<usize>,
    /// The sequential-convex warm-up (see [`crate::solver::scalar::IhtConfig::warmup`]).
    pub warmup: Option<usize>,
    /// Armijo steps on the support per IHT step.
    pub inner_steps: usize,
    /// Whether the schedule streams because the image is large and none was asked for.
    pub streamed_by_default: bool,
    /// The solver's safeguards: none with `paper` (the paper's algorithm), else the default's.
    pub safeguards: Safeguards,
}

impl InrRequest {
    /// The settings for an image of `samples` samples (pixels × channels): the paper's with
    /// `paper` or for a digit; else the photo defaults, which fit in full batch up to
    /// [`PHOTO_FULL_BATCH`] samples, and beyond it take the large-photo budget and stream unless
    /// a schedule was asked for.
    pub fn resolve(&self, samples: usize) -> InrPlan {
        let paper = self.paper || self.digit;
        let unit = self.unit.unwrap_or(!paper);
        let sigma = self.sigma.unwrap_or(match (unit, self.digit) {
            (true, _) => PHOTO_SIGMA,
            (false, true) => PAPER_SIGMA_DIGIT,
            (false, false) => PAPER_SIGMA,
        });
        // A large photo keeps its budget whatever schedule is asked for; it streams by default
        // unless --steps (full batch) or a batch size is given, and a streamed large photo takes
        // the warm-up and Armijo steps chosen for streaming.
        let large = !paper && samples > PHOTO_FULL_BATCH;
        let stream = large && self.steps.is_none() && self.batch_size.is_none();
        let (m, s) = if large {
            (PHOTO_M, PHOTO_S)
        } else {
            (PAPER_M, PAPER_S)
        };
        let batch_size = self.batch_size.or(stream.then_some(PHOTO_BATCH));
        let streamed_large = large && batch_size.is_some();
        let steps = match batch_size {
            Some(_) => {
                self.epochs
                    .or(self.steps)
                    .unwrap_or(if paper { PAPER_STEPS } else { PHOTO_EPOCHS })
            }
            None => self.steps.unwrap_or(PAPER_STEPS),
        };
        // Photos in unit coordinates take the high band unless told otherwise; the paper's
        // settings (and raw pixel coordinates) take one σ.
        let band_default = unit && !paper;
        let share = self
            .high_share
            .unwrap_or(if band_default || self.sigma_high.is_some() {
                PHOTO_HIGH_SHARE
            } else {
                0.0
            });
        let band = (share != 0.0).then(|| HighBand {
            sigma: self.sigma_high.unwrap_or(PHOTO_SIGMA_HIGH),
            share,
        });
        InrPlan {
            unit,
            sigma,
            band,
            features: self.features.unwrap_or(if paper {
                PAPER_FEATURES
            } else {
                PHOTO_FEATURES
            }),
            m: self.m.unwrap_or(m),
            s: self.s.unwrap_or(s),
            steps,
            batch_size,
            warmup: self.warmup.or(streamed_large.then_some(PHOTO_WARMUP)),
            inner_steps: self.inner_steps.unwrap_or(if streamed_large {
                PHOTO_INNER_STEPS
            } else {
                PAPER_INNER_STEPS
            }),
            streamed_by_default: stream,
            safeguards: if self.paper {
                Safeguards::PAPER
            } else {
                Safeguards::DEFAULT
            },
        }
    }
}

/// A band of higher frequencies in a photo's features: a share of the frequencies drawn with a
/// larger σ. A ReLU of a few Fourier features cannot form an edge finer than its highest
/// frequency; a single σ large enough for the edges leaves too few frequencies for the smooth
/// parts (measured on the bundled photo and the astronaut: see RESULTS.md).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HighBand {
    /// σ of the band's frequencies (cycles per image with unit coordinates).
    pub sigma: f32,
    /// The share of the frequencies in the band, in (0, 1).
    pub share: f32,
}

impl HighBand {
    /// Frequencies in the band out of `half`.
    pub fn frequencies(&self, half: usize) -> usize {
        ((half as f64 * self.share as f64).round() as usize).min(half)
    }
}

/// Random Fourier features.
#[derive(Clone, Debug)]
pub struct FourierFeatures {
    /// Frequencies, `half × k` row-major, `N(0, σ²)`.
    pub b: Vec<f32>,
    pub half: usize,
    pub k: usize,
}

impl FourierFeatures {
    /// `features` (even, ≥ 2) features of `k`-dimensional coordinates, frequencies `N(0, σ²)`;
    /// for `k = 3` (RGB) the third (channel) column has scale [`CHANNEL_SCALE`].
    pub fn new(features: usize, k: usize, sigma: f32, seed: u64) -> Result<Self> {
        Self::with_band(features, k, sigma, None, seed)
    }

    /// [`new`](Self::new) with a high band: the first `band.frequencies(features / 2)`
    /// frequencies drawn with `band.sigma` instead of σ (the same Gaussian draws, scaled).
    pub fn with_band(
        features: usize,
        k: usize,
        sigma: f32,
        band: Option<HighBand>,
        seed: u64,
    ) -> Result<Self> {
        if let Some(b) = band {
            if !(b.sigma > 0.0 && b.sigma.is_finite()) {
                return Err(Error::invalid(
                    "sigma-high",
                    b.sigma,
                    "must be a positive number",
                ));
            }
            if !(b.share > 0.0 && b.share < 1.0) {
                return Err(Error::invalid(
                    "high-share",
                    b.share,
                    "must be in (0, 1) (0 turns the band off)",
                ));
            }
        }
        if features < 2 || !features.is_multiple_of(2) {
            return Err(Error::invalid(
                "features",
                features,
                "must be an even number ≥ 2",
            ));
        }
        if !(sigma > 0.0 && sigma.is_finite()) {
            return Err(Error::invalid("sigma", sigma, "must be a positive number"));
        }
        let key = rng::key(seed, Stream::Features);
        let half = features / 2;
        let (high_sigma, high) = match band {
            Some(b) => (b.sigma, b.frequencies(half)),
            None => (sigma, 0),
        };
        let scale = |row: usize, col: usize| {
            if k == 3 && col == 2 {
                CHANNEL_SCALE
            } else if row < high {
                high_sigma
            } else {
                sigma
            }
        };
        let b = (0..half * k)
            .map(|q| scale(q / k, q % k) * rng::gauss(key, (q / k) as u64, (q % k) as u64))
            .collect();
        Ok(Self { b, half, k })
    }

    /// Number of features (`d` of the model).
    pub fn dim(&self) -> usize {
        2 * self.half
    }

    /// Embeds `coords` (`k` per sample) column-major: `xt[i·n + r]` is feature i of sample r.
    pub fn embed(&self, coords: &[f32]) -> Vec<f32> {
        let n = coords.len() / self.k;
        let mut xt = vec![0.0f32; self.dim() * n];
        let (sin, cos) = xt.split_at_mut(self.half * n);
        sin.par_chunks_mut(n)
            .zip(cos.par_chunks_mut(n))
            .enumerate()
            .for_each(|(i, (s, c))| {
                let b = &self.b[i * self.k..(i + 1) * self.k];
                for (block, (s, c)) in s
                    .chunks_mut(EMBED_BLOCK)
                    .zip(c.chunks_mut(EMBED_BLOCK))
                    .enumerate()
                {
                    let rows = block * EMBED_BLOCK * self.k..;
                    embed_block(b, &coords[rows], self.k, s, c);
                }
            });
        xt
    }
}

/// `(sin 2πp, cos 2πp)` rounded to f32, within 2 ulps of the f32 rounding of the exact values
/// (for |p| < 2⁴⁹): the argument is reduced exactly in f64 to an eighth of a turn around the
/// nearest quarter turn, then two f32 Taylor polynomials (truncation error below 2e-9 on |x| ≤
/// π/4) and a quadrant swap, all without branches so that blocks of it vectorize. The library's
/// f64 `sin` and `cos` took 30 % of a streamed fit's time generating features.
#[inline(always)]
pub fn sin_cos_turns(p: f64) -> (f32, f32) {
    // Round 4p to the nearest integer q (ties to even) by the 1.5·2⁵² trick; the low bits of the
    // shifted value are q's two's-complement low bits, i.e. the quadrant q mod 4.
    const ROUND: f64 = 6_755_399_441_055_744.0;
    let shifted = 4.0 * p + ROUND;
    let quadrant = (shifted.to_bits() & 3) as u32;
    let q = shifted - ROUND;
    // Exact: p and q/4 are within an eighth of each other.
    let x = (std::f64::consts::TAU * (p - 0.25 * q)) as f32;
    let x2 = x * x;
    let sin = x
        * (1.0
            + x2 * (-1.0 / 6.0
                + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362_880.0)))));
    let cos = 1.0
        + x2 * (-0.5
            + x2 * (1.0 / 24.0
                + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40_320.0 + x2 * (-1.0 / 3_628_800.0)))));
    // Quadrants 0..3: (s, c), (c, −s), (−s, −c), (−c, s), as bit operations.
    let swap = 0u32.wrapping_sub(quadrant & 1);
    let (sb, cb) = (sin.to_bits(), cos.to_bits());
    let first = (sb & !swap) | (cb & swap);
    let second = (cb & !swap) | (sb & swap);
    let sin_sign = (quadrant & 2) << 30;
    let cos_sign = ((quadrant + 1) & 2) << 30;
    (
        f32::from_bits(first ^ sin_sign),
        f32::from_bits(second ^ cos_sign),
    )
}

/// Rows per block of phases in [`FourierFeatures::embed`].
const EMBED_BLOCK: usize = 1024;

/// One feature pair over a block of rows: `sin[r], cos[r]` of the phases `b · coords[r]`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn embed_block(b: &[f32], coords: &[f32], k: usize, sin: &mut [f32], cos: &mut [f32]) {
    let mut phase = [0.0f64; EMBED_BLOCK];
    let phase = &mut phase[..sin.len()];
    match k {
        2 => {
            let (b0, b1) = (b[0] as f64, b[1] as f64);
            for (p, c) in phase.iter_mut().zip(coords.chunks_exact(2)) {
                *p = b0 * c[0] as f64 + b1 * c[1] as f64;
            }
        }
        _ => {
            for (p, c) in phase.iter_mut().zip(coords.chunks_exact(k)) {
                *p = b
                    .iter()
                    .zip(c)
                    .map(|(&bi, &ci)| bi as f64 * ci as f64)
                    .sum();
            }
        }
    }
    for ((&p, s), c) in phase.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
        (*s, *c) = sin_cos_turns(p);
    }
}

/// PSNR with peak 1.
pub fn psnr(target: &[f32], pred: &[f32]) -> f64 {
    let mse = target
        .iter()
        .zip(pred)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        / target.len().max(1) as f64;
    -10.0 * mse.log10()
}

/// [`psnr`] of the predictions clipped to the pixels' range [0, 1], as the rendered image shows
/// them (and as dense INR fits are usually scored).
pub fn psnr_clipped(target: &[f32], pred: &[f32]) -> f64 {
    let clipped: Vec<f32> = pred.iter().map(|&v| v.clamp(0.0, 1.0)).collect();
    psnr(target, &clipped)
}

/// The image's features as one data set held in memory, the pixels as targets.
pub fn feature_data(image: &Image, features: &FourierFeatures, unit: bool) -> Result<Data> {
    let xt = features.embed(&image.coords(unit));
    Data::from_columns(image.len(), features.dim(), xt, image.pixels.clone())
}

/// The solver's rows of an image: generated per batch when `streamed` (memory bounded by one
/// batch, for minibatch runs), else formed once ([`feature_data`]).
pub fn feature_rows(
    image: &Image,
    features: FourierFeatures,
    unit: bool,
    streamed: bool,
) -> Result<Arc<dyn RowSource>> {
    Ok(if streamed {
        Arc::new(FeatureRows::new(image, features, unit))
    } else {
        Arc::new(InMemory(Arc::new(feature_data(image, &features, unit)?)))
    })
}

/// Fourier-feature rows generated on demand from the image's coordinates: the solver holds one
/// batch of features at a time instead of the n × features matrix.
pub struct FeatureRows {
    coords: Vec<f32>,
    targets: Vec<f32>,
    features: FourierFeatures,
}

impl FeatureRows {
    pub fn new(image: &Image, features: FourierFeatures, unit: bool) -> Self {
        Self {
            coords: image.coords(unit),
            targets: image.pixels.clone(),
            features,
        }
    }
}

impl RowSource for FeatureRows {
    fn n(&self) -> usize {
        self.targets.len()
    }
    fn d(&self) -> usize {
        self.features.dim()
    }
    fn rows(&self, rows: &[usize]) -> Result<Data> {
        let k = self.features.k;
        let coords: Vec<f32> = rows
            .iter()
            .flat_map(|&r| self.coords[r * k..(r + 1) * k].iter().copied())
            .collect();
        let y = rows.iter().map(|&r| self.targets[r]).collect();
        Data::from_columns(rows.len(), self.d(), self.features.embed(&coords), y)
    }
    fn targets(&self, start: usize, end: usize) -> Result<Vec<f32>> {
        Ok(self.targets[start..end].to_vec())
    }
}

/// PNG bytes of an image.
fn encode_png<P, C>(img: &image::ImageBuffer<P, C>) -> image::ImageResult<Vec<u8>>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

/// What a model file records of an INR fit: the frequencies, σ, the coordinate scaling (the
/// factor pixel indices are multiplied by) and the image's size.
pub fn inr_meta(image: &Image, features: &FourierFeatures, sigma: f32, unit: bool) -> InrMeta {
    InrMeta {
        b: features.b.clone(),
        half: features.half,
        coords: features.k,
        sigma,
        coord_scale: coord_scale(image.width, image.height, unit),
        width: image.width,
        height: image.height,
        channels: image.channels,
    }
}

/// The factor pixel indices are multiplied by: 1 for raw indices, 1 / longer side for unit
/// coordinates (as [`Image::coords`]).
fn coord_scale(width: usize, height: usize, unit: bool) -> f32 {
    if unit {
        1.0 / width.max(height) as f32
    } else {
        1.0
    }
}

/// Samples per block of [`render`]: bounds the features held at once (4096 × features floats).
const RENDER_SAMPLES: usize = 4096;

/// Renders a saved INR at `width × height`: output pixel (r, c) is evaluated at the fitted image's
/// coordinates (r·H/height, c·W/width), so the fitted size reproduces the fit and other sizes
/// resample the same function. Streams blocks of samples (memory: the image and one block).
pub fn render(network: &Network, inr: &InrMeta, width: usize, height: usize) -> Result<Image> {
    let (sy, sx) = (
        inr.height as f32 / height as f32,
        inr.width as f32 / width as f32,
    );
    render_scaled(network, inr, width, height, (sy, sx))
}

/// Renders a saved INR fitted on the sub-grid of [`Image::subgrid`] at the full image's size
/// `width × height`: output pixel (r, c) is evaluated at the fitted coordinates (r/2, c/2), so
/// pixels of even row and column are the fitted samples, bit for bit, and the others lie between.
pub fn render_full_grid(
    network: &Network,
    inr: &InrMeta,
    width: usize,
    height: usize,
) -> Result<Image> {
    render_scaled(network, inr, width, height, (0.5, 0.5))
}

/// [`render`] with output pixel (r, c) at the fitted coordinates (r·sy, c·sx).
fn render_scaled(
    network: &Network,
    inr: &InrMeta,
    width: usize,
    height: usize,
    (sy, sx): (f32, f32),
) -> Result<Image> {
    if width == 0 || height == 0 {
        return Err(Error::invalid(
            "size",
            format!("{width}x{height}"),
            "both sides must be at least 1",
        ));
    }
    let channels = inr.channels;
    let n = (width as u128) * (height as u128) * channels as u128;
    crate::mem::check_fits(
        "size",
        format!("{width}x{height}"),
        n * 4 + (RENDER_SAMPLES * 2 * inr.half * 4) as u128,
    )?;
    if n > u32::MAX as u128 {
        return Err(Error::invalid(
            "size",
            format!("{width}x{height}"),
            "more than 2^32 samples",
        ));
    }
    let features = FourierFeatures {
        b: inr.b.clone(),
        half: inr.half,
        k: inr.coords,
    };
    let same = (sy, sx) == (1.0, 1.0);
    let n = n as usize;
    let mut pixels = vec![0.0f32; n];
    let mut coords = Vec::with_capacity(RENDER_SAMPLES * inr.coords);
    for (block, out) in pixels.chunks_mut(RENDER_SAMPLES).enumerate() {
        coords.clear();
        for e in block * RENDER_SAMPLES..block * RENDER_SAMPLES + out.len() {
            let (p, ch) = (e / channels, e % channels);
            let (r, c) = ((p / width) as f32, (p % width) as f32);
            // At the fitted size the coordinates are the fit's own, bit for bit.
            let (r, c) = if same { (r, c) } else { (r * sy, c * sx) };
            coords.extend_from_slice(&[r * inr.coord_scale, c * inr.coord_scale]);
            if inr.coords == 3 {
                coords.push(ch as f32);
            }
        }
        let xt = features.embed(&coords);
        let y = network.predict(View::cols(&xt, out.len()), out.len());
        out.copy_from_slice(&y);
    }
    Ok(Image {
        width,
        height,
        channels,
        pixels: pixels.into_iter().map(|v| v.clamp(0.0, 1.0)).collect(),
    })
}
