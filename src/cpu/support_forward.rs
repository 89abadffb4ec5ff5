//! CPU twin of `support_forward`: `A_T z = Σ_{j ∈ T} D_j X[:, T_j] z_j` in O(n·|T|) work.
//!
//! Rows are processed in chunks of [`SUPPORT_ROWS`] in parallel (the chunk's columns of X stay in
//! L2). Inside a chunk each neuron's partial product `X[rows, T_j] z_j` is built by column axpys
//! and added under the neuron's mask, expanded 8 bits at a time through a lookup table so the
//! loop vectorizes; neurons with a single weight skip the temporary and go two at a time. No n × |T| matrix is ever
//! formed, and the result does not depend on the number of threads.

use super::lanes::{masked_axpy, masked_axpy2};
use super::relu_mask::Masks;
use crate::data::Data;
use crate::operator::{axpy, Operator, Support, Visit};
use crate::stream::SUPPORT_ROWS;
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
