//! CPU twin of `support_forward`: `A_T z = Σ_{j ∈ T} D_j X[:, T_j] z_j` in O(n·|T|) work.
//!
//! Rows are processed in chunks of [`SUPPORT_ROWS`] in parallel (the chunk's columns of X stay in
//! L2). Inside a chunk each neuron's partial product `X[rows, T_j] z_j` is built by column axpys
//! and added under the neuron's mask, expanded 8 bits at a time through a lookup table so the
//! loop vectorizes; neurons with a single weight skip the temporary and go two at a time. No n × |T| matrix is ever
//! formed, and the result does not depend on the number of threads.

use super::lanes::{masked_axpy, masked_axpy2};
use super::relu_mask::Masks;
use crate::problem::data::Data;
use crate::problem::operator::{axpy, Operator, Support, Visit};
use crate::problem::stream::SUPPORT_ROWS;
use multiversion::multiversion;
use rayon::prelude::*;

/// `out = A_T z` for the support `t` with its masks.
pub fn support_forward(op: &Operator, t: &Support, masks: &Masks, z: &[f32], out: &mut [f32]) {
    debug_assert_eq!(z.len(), t.len());
    out.par_chunks_mut(SUPPORT_ROWS).enumerate().for_each_init(
        || vec![0.0f32; SUPPORT_ROWS],
        |tmp, (ci, out)| forward_chunk(op.data(), t, masks, z, ci * SUPPORT_ROWS, out, tmp),
    );
}

/// Rows `r0..r0 + out.len()` of `A_T z`; compiled for AVX2+FMA when the CPU has it.
#[multiversion(targets("x86_64+avx2+fma"))]
fn forward_chunk(
    data: &Data,
    t: &Support,
    masks: &Masks,
    z: &[f32],
    r0: usize,
    out: &mut [f32],
    tmp: &mut [f32],
) {
    let (d, rows) = (data.d(), r0..r0 + out.len());
    out.fill(0.0);
    let tmp = &mut tmp[..out.len()];
    let words = |k: usize| &masks.run(k)[r0 / 64..];
    let col = |p: usize| &data.column(t.idx[p] as usize % d)[rows.clone()];
    for visit in t.visits() {
        match visit {
            Visit::Pair(k, p1, p2) => {
                masked_axpy2(words(k), z[p1], col(p1), words(k + 1), z[p2], col(p2), out)
            }
            Visit::Run(k, ps) if ps.len() == 1 => {
                masked_axpy(words(k), z[ps.start], col(ps.start), out)
            }
            Visit::Run(k, ps) => {
                for (v, &x) in tmp.iter_mut().zip(col(ps.start)) {
                    *v = z[ps.start] * x;
                }
                for (p, &zp) in z.iter().enumerate().take(ps.end).skip(ps.start + 1) {
                    axpy(zp, col(p), tmp);
                }
                masked_axpy(words(k), 1.0, tmp, out);
            }
        }
    }
}

/// A support laid out as the GPU kernels read it: per entry its column and run, per run its
/// start, and the masks `bits[k·words + row/32]` over all rows.
pub struct SupportLayout<'a> {
    pub cols: &'a [u32],
    pub run_start: &'a [u32],
    pub run_of: &'a [u32],
    pub bits: &'a [u32],
    pub words: usize,
}

impl SupportLayout<'_> {
    #[inline]
    pub fn bit(&self, k: usize, row: usize) -> bool {
        (self.bits[k * self.words + row / 32] >> (row % 32)) & 1 == 1
    }
}

/// A block of rows as the GPU kernels see it: column-major `X[r, i] = x[i·x_stride + x_row0 + r]`
/// for `r < rows`, whose first row is row `m_row0` of the whole data (for the masks).
pub struct RowBlock<'a> {
    pub x: &'a [f32],
    pub x_stride: usize,
    pub x_row0: usize,
    pub rows: usize,
    pub m_row0: usize,
}

impl<'a> RowBlock<'a> {
    /// All rows of a column-major n-row matrix.
    pub fn all(x: &'a [f32], n: usize) -> Self {
        Self {
            x,
            x_stride: n,
            x_row0: 0,
            rows: n,
            m_row0: 0,
        }
    }
}

/// CPU twin of `shaders/support_forward.wgsl` with its arithmetic: the block's rows of `A_T z`,
/// inner sums by f32 `fma` in support order, outer sums in run order.
pub fn twin(b: &RowBlock<'_>, s: &SupportLayout<'_>, z: &[f32]) -> Vec<f32> {
    let RowBlock {
        x,
        x_stride,
        x_row0,
        rows,
        m_row0,
    } = *b;
    let runs = s.run_start.len() - 1;
    (0..rows)
        .map(|r| {
            let mut acc = 0.0f32;
            for k in 0..runs {
                if !s.bit(k, m_row0 + r) {
                    continue;
                }
                let mut sum = 0.0f32;
                for p in s.run_start[k] as usize..s.run_start[k + 1] as usize {
                    sum = z[p].mul_add(x[s.cols[p] as usize * x_stride + x_row0 + r], sum);
                }
                acc += sum;
            }
            acc
        })
        .collect()
}
