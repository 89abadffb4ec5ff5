//! CPU twin of `support_adjoint`: `(A_Tᵀ r)_c = Σ_r X[r, i] · 1{row r active for j} · r_r` for each
//! `c = (j, i) ∈ T`, in O(n·|T|).
//!
//! Rows are split into fixed chunks of [`SUPPORT_ROWS`] processed in parallel. A neuron with one
//! weight is a single fused pass (column × residual × expanded mask bits, 8 f32 lanes); a neuron
//! with several forms its masked residual once and dots it with each column. Chunk partials are
//! summed in f64 in chunk order, so the result is independent of the thread count.

use super::lanes::{dot, masked_copy, masked_dot, masked_dot2};
use super::relu_mask::Masks;
use crate::problem::data::Data;
use crate::problem::operator::{Operator, Support, Visit};
use crate::problem::stream::SUPPORT_ROWS;
use multiversion::multiversion;
use rayon::prelude::*;
use std::ops::Range;

/// `out = A_Tᵀ r` for the support `t` with its masks.
pub fn support_adjoint(op: &Operator, t: &Support, masks: &Masks, r: &[f32], out: &mut [f32]) {
    debug_assert_eq!(out.len(), t.len());
    let n = op.n();
    let partials: Vec<Vec<f64>> = (0..n.div_ceil(SUPPORT_ROWS))
        .into_par_iter()
        .map_init(
            || vec![0.0f32; SUPPORT_ROWS],
            |mr, ci| {
                let rows = ci * SUPPORT_ROWS..((ci + 1) * SUPPORT_ROWS).min(n);
                let mut part = vec![0.0f64; t.len()];
                adjoint_chunk(op.data(), t, masks, r, rows, mr, &mut part);
                part
            },
        )
        .collect();
    let mut acc = vec![0.0f64; t.len()];
    for part in &partials {
        for (a, &p) in acc.iter_mut().zip(part) {
            *a += p;
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a as f32;
    }
}

/// The partial sums of rows `rows`; compiled for AVX2+FMA when the CPU has it.
#[multiversion(targets("x86_64+avx2+fma"))]
fn adjoint_chunk(
    data: &Data,
    t: &Support,
    masks: &Masks,
    r: &[f32],
    rows: Range<usize>,
    mr: &mut [f32],
    part: &mut [f64],
) {
    let d = data.d();
    let mr = &mut mr[..rows.len()];
    let rc = &r[rows.clone()];
    let words = |k: usize| &masks.run(k)[rows.start / 64..];
    let col = |p: usize| &data.column(t.idx[p] as usize % d)[rows.clone()];
    for visit in t.visits() {
        match visit {
            Visit::Pair(k, p1, p2) => {
                (part[p1], part[p2]) = masked_dot2(words(k), col(p1), words(k + 1), col(p2), rc)
            }
            Visit::Run(k, ps) if ps.len() == 1 => {
                part[ps.start] = masked_dot(words(k), col(ps.start), rc)
            }
            Visit::Run(k, ps) => {
                masked_copy(words(k), rc, mr);
                for p in ps {
                    part[p] = dot(col(p), mr);
                }
            }
        }
    }
}

/// CPU twin of `shaders/support_adjoint.wgsl` with its arithmetic: for each support entry, 64
/// Kahan-compensated f32 lanes over rows `lane, lane + 64, …`, then a fixed tree over the lanes.
pub fn twin(
    b: &crate::cpu::support_forward::RowBlock<'_>,
    s: &crate::cpu::support_forward::SupportLayout<'_>,
    res: &[f32],
    r_row0: usize,
) -> Vec<f32> {
    let crate::cpu::support_forward::RowBlock {
        x,
        x_stride,
        x_row0,
        rows,
        m_row0,
    } = *b;
    (0..s.cols.len())
        .map(|p| {
            let col = s.cols[p] as usize * x_stride + x_row0;
            let k = s.run_of[p] as usize;
            let mut lanes = [0.0f32; 64];
            for (lane, out) in lanes.iter_mut().enumerate() {
                let (mut sum, mut comp) = (0.0f32, 0.0f32);
                for r in (lane..rows).step_by(64) {
                    if s.bit(k, m_row0 + r) {
                        let term = x[col + r] * res[r_row0 + r] - comp;
                        let t = sum + term;
                        comp = (t - sum) - term;
                        sum = t;
                    }
                }
                *out = sum;
            }
            tree_sum(&mut lanes)
        })
        .collect()
}

/// The workgroup tree reduction of the kernels: strides 32, 16, …, 1.
pub fn tree_sum(lanes: &mut [f32; 64]) -> f32 {
    let mut stride = 32;
    while stride > 0 {
        for l in 0..stride {
            lanes[l] += lanes[l + stride];
        }
        stride /= 2;
    }
    lanes[0]
}
