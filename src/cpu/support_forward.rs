//! CPU twin of `support_forward`: `A_T z = Σ_{j ∈ T} D_j X[:, T_j] z_j` in O(n·|T|) work.
//!
//! Rows are processed in chunks of [`SUPPORT_ROWS`] in parallel (the chunk's columns of X stay in
//! L2). Inside a chunk each neuron's partial product `X[rows, T_j] z_j` is built by column axpys
//! and added under the neuron's mask, expanded 8 bits at a time through a lookup table so the
//! loop vectorizes; a neuron with a single weight skips the temporary. No n × |T| matrix is ever
//! formed, and the result does not depend on the number of threads.

use super::relu_mask::{expand, Masks};
use crate::operator::{axpy, Operator, Support};
use crate::stream::SUPPORT_ROWS;
use rayon::prelude::*;

/// `out = A_T z` for the support `t` with its masks.
pub fn support_forward(op: &Operator, t: &Support, masks: &Masks, z: &[f32], out: &mut [f32]) {
    debug_assert_eq!(z.len(), t.len());
    let (data, d) = (op.data(), op.d());
    out.par_chunks_mut(SUPPORT_ROWS).enumerate().for_each_init(
        || vec![0.0f32; SUPPORT_ROWS],
        |tmp, (ci, out)| {
            let r0 = ci * SUPPORT_ROWS;
            let rows = r0..r0 + out.len();
            out.fill(0.0);
            let tmp = &mut tmp[..out.len()];
            for (k, &(_, start, end)) in t.runs.iter().enumerate() {
                let words = &masks.run(k)[r0 / 64..];
                let col = |p: usize| &data.column(t.idx[p] as usize % d)[rows.clone()];
                if end - start == 1 {
                    masked_axpy(words, z[start], col(start), out);
                } else {
                    for (v, &x) in tmp.iter_mut().zip(col(start)) {
                        *v = z[start] * x;
                    }
                    for (p, &zp) in z.iter().enumerate().take(end).skip(start + 1) {
                        axpy(zp, col(p), tmp);
                    }
                    masked_axpy(words, 1.0, tmp, out);
                }
            }
        },
    );
}

/// `out[r] += a · v[r]` where row r's bit is set (`words` starts at the chunk's first row).
#[inline]
fn masked_axpy(words: &[u64], a: f32, v: &[f32], out: &mut [f32]) {
    let mut oc = out.chunks_exact_mut(8);
    let mut vc = v.chunks_exact(8);
    for (q, (o, x)) in (&mut oc).zip(&mut vc).enumerate() {
        let m = expand(words, q);
        for l in 0..8 {
            o[l] += m[l] * (a * x[l]);
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
            *o += m[l] * (a * x);
        }
    }
}
