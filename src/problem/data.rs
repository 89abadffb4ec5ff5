//! A training set `(X, y)` in the layout the engine streams: `X` is stored column by column
//! (`xt[i·ld + r] = X[r, i]`, with a column stride `ld ≥ n`), so the columns a support touches
//! are contiguous slices and a row block of `X` is a strided view the GEMM kernels read directly.
//! The stride is `n` unless `n` is a multiple of 256: then columns a multiple of 1 KiB apart
//! would fall into the same few cache sets (a support reads hundreds of columns at the same rows),
//! and each column is padded by 64 bytes. Values are validated finite
//! once, at construction, so no kernel has to think about NaN.

use crate::error::{Error, Result};
use std::sync::Arc;

/// Inputs and scalar targets of one (mini)batch.
#[derive(Clone, Debug)]
pub struct Data {
    n: usize,
    d: usize,
    /// Column stride of `xt` ([`column_stride`]).
    ld: usize,
    xt: Vec<f32>,
    y: Vec<f32>,
    /// Per column, the smallest nonzero |X[r, i]| (∞ for an all-zero column), computed on first
    /// use (only `h = w` mask classes need it; minibatches built per step never pay for it).
    min_abs: std::sync::OnceLock<Vec<f32>>,
}

/// The column stride for `n` rows: `n`, or `n + 16` when `n` is a multiple of 256 (see the
/// module's notes).
pub fn column_stride(n: usize) -> usize {
    if n > 0 && n.is_multiple_of(256) {
        n + 16
    } else {
        n
    }
}

/// The smallest nonzero magnitude of each column.
fn column_min_abs(n: usize, ld: usize, xt: &[f32]) -> Vec<f32> {
    xt.chunks(ld.max(1))
        .map(|col| {
            col[..n]
                .iter()
                .map(|v| v.abs())
                .filter(|&a| a > 0.0)
                .fold(f32::INFINITY, f32::min)
        })
        .collect()
}

impl Data {
    /// Builds from column-major inputs (`xt[i·n + r] = X[r, i]`) and targets, checking shapes and
    /// finiteness.
    pub fn from_columns(n: usize, d: usize, xt: Vec<f32>, y: Vec<f32>) -> Result<Self> {
        if n == 0 {
            return Err(Error::invalid("n", n, "need at least one data point"));
        }
        if d == 0 {
            return Err(Error::invalid("d", d, "need at least one input dimension"));
        }
        let len = n
            .checked_mul(d)
            .ok_or_else(|| Error::invalid("n·d", format!("{n}·{d}"), "overflows"))?;
        if xt.len() != len {
            return Err(Error::ShapeMismatch {
                what: "X (n·d values)",
                expected: len,
                got: xt.len(),
            });
        }
        if y.len() != n {
            return Err(Error::ShapeMismatch {
                what: "y (n values)",
                expected: n,
                got: y.len(),
            });
        }
        check_finite("X", &xt)?;
        check_finite("y", &y)?;
        let ld = column_stride(n);
        let mut xt = xt;
        if ld != n {
            // Spread the columns in place, last first (each moves up), zeroing the padding.
            xt.resize(ld * d, 0.0);
            for i in (0..d).rev() {
                xt.copy_within(i * n..(i + 1) * n, i * ld);
                xt[i * ld + n..(i + 1) * ld].fill(0.0);
            }
        }
        Ok(Self {
            n,
            d,
            ld,
            xt,
            y,
            min_abs: Default::default(),
        })
    }

    /// Builds from row-major inputs (`x[r·d + i] = X[r, i]`).
    pub fn from_rows(n: usize, d: usize, x: &[f32], y: Vec<f32>) -> Result<Self> {
        if x.len() != n.saturating_mul(d) {
            return Err(Error::ShapeMismatch {
                what: "X (n·d values)",
                expected: n.saturating_mul(d),
                got: x.len(),
            });
        }
        let mut xt = vec![0.0; x.len()];
        for r in 0..n {
            for i in 0..d {
                xt[i * n + r] = x[r * d + i];
            }
        }
        Self::from_columns(n, d, xt, y)
    }

    /// The same inputs with new targets.
    pub fn with_targets(self, y: Vec<f32>) -> Result<Self> {
        if y.len() != self.n {
            return Err(Error::ShapeMismatch {
                what: "y (n values)",
                expected: self.n,
                got: y.len(),
            });
        }
        check_finite("y", &y)?;
        Ok(Self { y, ..self })
    }

    /// Number of data points.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Input dimension.
    pub fn d(&self) -> usize {
        self.d
    }
    /// Targets.
    pub fn y(&self) -> &[f32] {
        &self.y
    }
    /// Column-major inputs: column `i` is `xt()[i·ld() ..][..n]`; padding entries are zero.
    pub fn xt(&self) -> &[f32] {
        &self.xt
    }
    /// Column stride of [`Data::xt`] (at least `n`).
    pub fn ld(&self) -> usize {
        self.ld
    }
    /// Column `i` of `X` (length `n`).
    #[inline]
    pub fn column(&self, i: usize) -> &[f32] {
        &self.xt[i * self.ld..i * self.ld + self.n]
    }
    /// Entry `X[r, i]`.
    #[inline]
    pub fn at(&self, r: usize, i: usize) -> f32 {
        self.xt[i * self.ld + r]
    }
    /// X column-major with stride `n` (a copy when the columns are padded).
    pub fn packed_columns(&self) -> std::borrow::Cow<'_, [f32]> {
        if self.ld == self.n {
            std::borrow::Cow::Borrowed(&self.xt)
        } else {
            std::borrow::Cow::Owned((0..self.d).flat_map(|i| self.column(i)).copied().collect())
        }
    }
    /// Bytes held by this data set.
    pub fn bytes(&self) -> usize {
        (self.xt.len() + self.y.len()) * 4
    }

    /// The smallest nonzero |X[r, i]| over the rows (∞ when column i is all zero): a product
    /// `a·X[r, i]` with `|a| · min_nonzero_abs(i) ≥ f32::MIN_POSITIVE` never rounds to zero.
    pub fn min_nonzero_abs(&self, i: usize) -> f32 {
        self.min_abs
            .get_or_init(|| column_min_abs(self.n, self.ld, &self.xt))[i]
    }

    /// A new data set of the given rows, in that order (a minibatch).
    pub fn gather_rows(&self, rows: &[usize]) -> Data {
        let b = rows.len();
        let ld = column_stride(b);
        let mut xt = Vec::with_capacity(ld * self.d);
        for i in 0..self.d {
            let col = self.column(i);
            xt.extend(rows.iter().map(|&r| col[r]));
            xt.resize((i + 1) * ld, 0.0);
        }
        let y = rows.iter().map(|&r| self.y[r]).collect();
        Data {
            n: b,
            d: self.d,
            ld,
            xt,
            y,
            min_abs: Default::default(),
        }
    }
}

/// Rejects NaN and infinities with the first offending index.
pub fn check_finite(what: &'static str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what,
            index,
            value: v[index],
        }),
    }
}

/// `‖v‖²` with every square and sum in f64, in index order: deterministic, independent of any
/// engine or thread count (the solvers' relative residuals are reported against it).
pub fn sum_squares(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64 * x as f64).sum()
}

/// Where the solver's rows come from: a data set held in memory, or rows generated on demand
/// (e.g. Fourier features of pixel coordinates), so that memory is bounded by one batch.
pub trait RowSource: Send + Sync {
    /// Number of data points.
    fn n(&self) -> usize;
    /// Input dimension.
    fn d(&self) -> usize;
    /// The given rows, in that order, as a data set.
    fn rows(&self, rows: &[usize]) -> Result<Data>;
    /// The whole data set, when it is held in memory (full-batch steps use it without a copy).
    fn whole(&self) -> Option<Arc<Data>> {
        None
    }
    /// The targets of rows `start..end`. Sources that generate their inputs override it, so
    /// that reading targets costs no input rows.
    fn targets(&self, start: usize, end: usize) -> Result<Vec<f32>> {
        match self.whole() {
            Some(data) => Ok(data.y()[start..end].to_vec()),
            None => Ok(self.rows(&(start..end).collect::<Vec<_>>())?.y().to_vec()),
        }
    }
}

/// Rows per chunk when a whole source is read chunk by chunk (predictions, the training
/// objective): about 32 MiB of inputs, at least one row, at most 65 536.
pub fn rows_per_chunk(d: usize) -> usize {
    ((32 << 20) / (4 * d.max(1))).clamp(1, 1 << 16)
}

/// A data set held in memory.
#[derive(Clone, Debug)]
pub struct InMemory(pub Arc<Data>);

impl RowSource for InMemory {
    fn n(&self) -> usize {
        self.0.n()
    }
    fn d(&self) -> usize {
        self.0.d()
    }
    fn rows(&self, rows: &[usize]) -> Result<Data> {
        Ok(self.0.gather_rows(rows))
    }
    fn whole(&self) -> Option<Arc<Data>> {
        Some(self.0.clone())
    }
}
