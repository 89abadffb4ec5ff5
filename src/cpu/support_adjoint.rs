//! CPU twin of `support_adjoint`: `(A_Tᵀ r)_c = Σ_r X[r, i] · 1{row r active for j} · r_r` for each
//! `c = (j, i) ∈ T`, in O(n·|T|). Rows are split into fixed chunks of 4096 processed in parallel;
//! each chunk forms the masked residual of one neuron once and dots it with that neuron's
//! columns; chunk partials are summed in f64 in chunk order (deterministic for any thread count).

use super::reduce::{dot_chunk, CHUNK};
use super::relu_mask::Masks;
use crate::operator::{Operator, Support};
use rayon::prelude::*;

/// `out = A_Tᵀ r` for the support `t` with its masks.
pub fn support_adjoint(op: &Operator, t: &Support, masks: &Masks, r: &[f32], out: &mut [f32]) {
    debug_assert_eq!(out.len(), t.len());
    let data = op.data();
    let n = op.n();
    let partials: Vec<Vec<f64>> = (0..n.div_ceil(CHUNK))
        .into_par_iter()
        .map_init(
            || vec![0.0f32; CHUNK],
            |mr, ci| {
                let rows = ci * CHUNK..((ci + 1) * CHUNK).min(n);
                let len = rows.len();
                let mr = &mut mr[..len];
                let mut part = vec![0.0f64; t.len()];
                for (k, &(_, start, end)) in t.runs.iter().enumerate() {
                    masked_copy(&masks.run(k)[rows.start / 64..], &r[rows.clone()], mr);
                    for p in start..end {
                        let i = (t.idx[p] as usize) % op.d();
                        part[p] = dot_chunk(&data.column(i)[rows.clone()], mr);
                    }
                }
                part
            },
        )
        .collect();
    out.fill(0.0);
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

/// `mr[r] = r[r]` where the bit is set, else 0.
#[inline]
fn masked_copy(words: &[u64], r: &[f32], mr: &mut [f32]) {
    for ((m, v), &w) in mr.chunks_mut(64).zip(r.chunks(64)).zip(words) {
        for (b, (m, &v)) in m.iter_mut().zip(v).enumerate() {
            *m = if (w >> b) & 1 == 1 { v } else { 0.0 };
        }
    }
}
