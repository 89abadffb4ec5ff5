//! CPU twin of `support_forward`: `A_T z = Σ_{j ∈ T} D_j X[:, T_j] z_j` in O(n·|T|) work. Rows are
//! processed in chunks of 4096 in parallel; inside a chunk each neuron's partial product
//! `X[rows, T_j] z_j` is built by column axpys (contiguous in the column-major layout) and added
//! where the neuron's bit is set. No n × |T| matrix is ever formed, and the result does not depend
//! on the number of threads.

use super::reduce::CHUNK;
use super::relu_mask::Masks;
use crate::operator::{axpy, Operator, Support};
use rayon::prelude::*;

/// `out = A_T z` for the support `t` with its masks.
pub fn support_forward(op: &Operator, t: &Support, masks: &Masks, z: &[f32], out: &mut [f32]) {
    debug_assert_eq!(z.len(), t.len());
    let data = op.data();
    out.par_chunks_mut(CHUNK).enumerate().for_each_init(
        || vec![0.0f32; CHUNK],
        |tmp, (ci, out)| {
            let r0 = ci * CHUNK;
            let rows = r0..r0 + out.len();
            out.fill(0.0);
            let tmp = &mut tmp[..out.len()];
            for (k, &(_, start, end)) in t.runs.iter().enumerate() {
                tmp.fill(0.0);
                for p in start..end {
                    let i = (t.idx[p] as usize) % op.d();
                    axpy(z[p], &data.column(i)[rows.clone()], tmp);
                }
                masked_add(&masks.run(k)[r0 / 64..], tmp, out);
            }
        },
    );
}

/// `out[r] += tmp[r]` where the bit is set (`words` starts at the chunk's first row, a multiple
/// of 64).
#[inline]
fn masked_add(words: &[u64], tmp: &[f32], out: &mut [f32]) {
    for ((o, t), &w) in out.chunks_mut(64).zip(tmp.chunks(64)).zip(words) {
        for (b, (o, &v)) in o.iter_mut().zip(t).enumerate() {
            let on = ((w >> b) & 1) as f32;
            *o += on * v;
        }
    }
}
