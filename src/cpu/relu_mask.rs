//! CPU twin of `relu_mask`: the activation bits `1{X h_j > 0}` (strict) of the neurons of a
//! support, packed 64 rows to a word. These bits are what the support forward/adjoint products
//! use; storing them costs n/8 bytes per neuron of T instead of the n × |T| f32 matrix the
//! reference materializes.

use crate::operator::{Operator, Support};
use rayon::prelude::*;

/// Activation bits of the neurons of one support.
#[derive(Clone, Debug, Default)]
pub struct Masks {
    /// 64-bit words per neuron, `ceil(n / 64)`.
    pub words: usize,
    /// `bits[k·words + r/64] >> (r % 64) & 1` is the bit of row r for neuron run k.
    pub bits: Vec<u64>,
}

impl Masks {
    /// Computes the bits of every neuron run of `support`, neurons in parallel.
    pub fn compute(op: &Operator, support: &Support) -> Self {
        let n = op.n();
        let words = n.div_ceil(64);
        let mut bits = vec![0u64; words * support.runs.len()];
        if words > 0 {
            bits.par_chunks_mut(words)
                .zip(support.runs.par_iter())
                .for_each_init(
                    || vec![0.0f32; n],
                    |z, (out, &(j, _, _))| {
                        op.preactivation(j, 0, z);
                        pack(z, out);
                    },
                );
        }
        Self { words, bits }
    }

    /// Bit words of neuron run `k`.
    #[inline]
    pub fn run(&self, k: usize) -> &[u64] {
        &self.bits[k * self.words..(k + 1) * self.words]
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bits.len() * 8
    }
}

/// Packs `z > 0` into bits.
pub fn pack(z: &[f32], out: &mut [u64]) {
    for (w, chunk) in out.iter_mut().zip(z.chunks(64)) {
        let mut word = 0u64;
        for (b, &v) in chunk.iter().enumerate() {
            word |= ((v > 0.0) as u64) << b;
        }
        *w = word;
    }
}

/// Whether row `r` is active in a packed mask.
#[inline]
pub fn bit(words: &[u64], r: usize) -> bool {
    (words[r / 64] >> (r % 64)) & 1 == 1
}
