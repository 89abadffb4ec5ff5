//! CPU twin of `support_adjoint`: `(A_Tᵀ r)_c = Σ_r X[r, i] · 1{row r active for j} · r_r` for each
//! `c = (j, i) ∈ T`, in O(n·|T|).
//!
//! Rows are split into fixed chunks of [`SUPPORT_ROWS`] processed in parallel. A neuron with one
//! weight is a single fused pass (column × residual × expanded mask bits, 8 f32 lanes); a neuron
//! with several forms its masked residual once and dots it with each column. Chunk partials are
//! summed in f64 in chunk order, so the result is independent of the thread count.

use super::reduce::dot_chunk;
use super::relu_mask::{expand, Masks};
use crate::operator::{Operator, Support};
use crate::stream::SUPPORT_ROWS;
use rayon::prelude::*;

/// `out = A_Tᵀ r` for the support `t` with its masks.
pub fn support_adjoint(op: &Operator, t: &Support, masks: &Masks, r: &[f32], out: &mut [f32]) {
    debug_assert_eq!(out.len(), t.len());
    let (data, d, n) = (op.data(), op.d(), op.n());
    let partials: Vec<Vec<f64>> = (0..n.div_ceil(SUPPORT_ROWS))
        .into_par_iter()
        .map_init(
            || vec![0.0f32; SUPPORT_ROWS],
            |mr, ci| {
                let rows = ci * SUPPORT_ROWS..((ci + 1) * SUPPORT_ROWS).min(n);
                let mr = &mut mr[..rows.len()];
                let rc = &r[rows.clone()];
                let mut part = vec![0.0f64; t.len()];
                for (k, &(_, start, end)) in t.runs.iter().enumerate() {
                    let words = &masks.run(k)[rows.start / 64..];
                    let col = |p: usize| &data.column(t.idx[p] as usize % d)[rows.clone()];
                    if end - start == 1 {
                        part[start] = masked_dot(words, col(start), rc);
                    } else {
                        masked_copy(words, rc, mr);
                        for (p, out) in part.iter_mut().enumerate().take(end).skip(start) {
                            *out = dot_chunk(col(p), mr);
                        }
                    }
                }
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

/// `Σ_r bit(r) · x[r] · v[r]` in 8 f32 lanes.
#[inline]
fn masked_dot(words: &[u64], x: &[f32], v: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let (xc, vc) = (x.chunks_exact(8), v.chunks_exact(8));
    let (xr, vr) = (xc.remainder(), vc.remainder());
    for (q, (a, b)) in xc.zip(vc).enumerate() {
        let m = expand(words, q);
        for l in 0..8 {
            acc[l] += m[l] * (a[l] * b[l]);
        }
    }
    if !xr.is_empty() {
        let m = expand(words, x.len() / 8);
        for (l, (&a, &b)) in xr.iter().zip(vr).enumerate() {
            acc[l] += m[l] * (a * b);
        }
    }
    acc.iter().map(|&v| v as f64).sum()
}

/// `mr[r] = bit(r) · v[r]`.
#[inline]
fn masked_copy(words: &[u64], v: &[f32], mr: &mut [f32]) {
    let mut oc = mr.chunks_exact_mut(8);
    let mut vc = v.chunks_exact(8);
    for (q, (o, x)) in (&mut oc).zip(&mut vc).enumerate() {
        let m = expand(words, q);
        for l in 0..8 {
            o[l] = m[l] * x[l];
        }
    }
    if !vc.remainder().is_empty() {
        let m = expand(words, v.len() / 8);
        for (l, (o, &x)) in oc
            .into_remainder()
            .iter_mut()
            .zip(vc.remainder())
            .enumerate()
        {
            *o = m[l] * x;
        }
    }
}
