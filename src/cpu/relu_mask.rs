//! CPU twin of `relu_mask`: pre-activations `Z = X_blk · H_tile` for a tile of neurons over a
//! block of rows, and the activation bits `1{Z > 0}` (strict) packed 64 rows to a word.
//!
//! In the random mode Z is a GEMM against the tile's Gaussian generators (formed on the fly from
//! the counter-based generator, d × tile floats); with `h = w` it is a sparse product, one column
//! axpy per weight. The gradient pass and the support masks both go through
//! [`preactivation_tile`], so a neuron's mask is the same bits wherever it is used. Storing bits
//! costs n/8 bytes per neuron of a support instead of the n × |T| f32 matrix.

use super::lanes;
use crate::problem::operator::{sparse_bits, Generators, Operator};
use crate::problem::rng;
use crate::problem::stream::{row_blocks, BLOCK_ROWS, MAX_TILE};
use gemm::{gemm, Parallelism};
use multiversion::multiversion;
use rayon::prelude::*;
use std::ops::Range;

/// Fills `h[jj·d + i] = h_{tile[jj]}[i]` for the random mode; returns false (nothing to fill)
/// when the generators are weights.
pub fn fill_generators(op: &Operator, tile: &[u32], h: &mut [f32]) -> bool {
    let d = op.d();
    match op.generators() {
        Generators::Random { seed } => {
            let key = Generators::random_key(*seed);
            for (jj, &j) in tile.iter().enumerate() {
                rng::fill_gauss(key, j as u64, 0, &mut h[jj * d..(jj + 1) * d]);
            }
            true
        }
        Generators::Weights(_) => false,
    }
}

/// `z[jj·bb + r] = (X h_{tile[jj]})[rows.start + r]` with `bb = rows.len()`. `h` must hold the
/// tile's generators from [`fill_generators`] when `random` is true.
pub fn preactivation_tile(
    op: &Operator,
    tile: &[u32],
    rows: Range<usize>,
    random: bool,
    h: &[f32],
    z: &mut [f32],
) {
    let (d, t, bb) = (op.d(), tile.len(), rows.len());
    let z = &mut z[..bb * t];
    if random {
        // SAFETY: Z is bb × t column-major (z[jj·bb + r]); X_blk is bb × d at
        // xt[i·ld + rows.start + r]; H is d × t column-major (h[jj·d + i]); all in bounds.
        unsafe {
            gemm(
                bb,
                t,
                d,
                z.as_mut_ptr(),
                bb as isize,
                1,
                false,
                op.data().xt().as_ptr().add(rows.start),
                op.data().ld() as isize,
                1,
                h.as_ptr(),
                d as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    } else {
        // Sparse generators: sub-blocks of rows small enough that the X columns the whole tile
        // reads stay in cache while every neuron of the tile reads them.
        let sub = crate::problem::stream::sparse_block_rows(d);
        for r0 in (0..bb).step_by(sub) {
            let r1 = (r0 + sub).min(bb);
            for (jj, &j) in tile.iter().enumerate() {
                op.preactivation(j, rows.start + r0, &mut z[jj * bb + r0..jj * bb + r1]);
            }
        }
    }
}

/// Activation bits of the neurons of one support.
#[derive(Clone, Debug, Default)]
pub struct Masks {
    /// 64-bit words per neuron, `ceil(n / 64)`.
    pub words: usize,
    /// `bits[k·words + r/64] >> (r % 64) & 1` is the bit of row r for neuron run k.
    pub bits: Vec<u64>,
}

impl Masks {
    /// Computes the bits of `neurons` (in that order): tiles of neurons in parallel, each
    /// streaming row blocks through [`preactivation_tile`].
    pub fn compute(op: &Operator, neurons: &[u32]) -> Self {
        let (n, d) = (op.n(), op.d());
        let words = n.div_ceil(64);
        let mut bits = vec![0u64; words * neurons.len()];
        if neurons.is_empty() {
            return Self { words, bits };
        }
        let tile = MAX_TILE.min(
            neurons
                .len()
                .div_ceil(2 * rayon::current_num_threads())
                .max(8),
        );
        if let Generators::Weights(w) = op.generators() {
            // Sparse generators: the bits straight from registers, sub-blocks of rows outside
            // so that the columns every neuron of a tile reads stay in cache.
            let sub = crate::problem::stream::sparse_block_rows(d);
            let data = op.data();
            bits.par_chunks_mut(words * tile)
                .zip(neurons.par_chunks(tile))
                .for_each(|(out, tile)| {
                    for rows in row_blocks(n, sub) {
                        let (w0, nw) = (rows.start / 64, rows.len().div_ceil(64));
                        for (jj, &j) in tile.iter().enumerate() {
                            let lo = j * d as u32;
                            let r = w.range(lo, lo + d as u32);
                            let (idx, vals) = (&w.indices()[r.clone()], &w.values()[r]);
                            let out = &mut out[jj * words + w0..jj * words + w0 + nw];
                            sparse_bits(data, lo, idx, vals, rows.clone(), out);
                        }
                    }
                });
            return Self { words, bits };
        }
        bits.par_chunks_mut(words * tile)
            .zip(neurons.par_chunks(tile))
            .for_each_init(
                || (vec![0.0f32; d * tile], vec![0.0f32; BLOCK_ROWS * tile]),
                |(h, z), (out, tile)| {
                    let random = fill_generators(op, tile, h);
                    for rows in row_blocks(n, BLOCK_ROWS) {
                        let bb = rows.len();
                        preactivation_tile(op, tile, rows.clone(), random, h, z);
                        for jj in 0..tile.len() {
                            let w0 = jj * words + rows.start / 64;
                            let nw = bb.div_ceil(64);
                            pack(&z[jj * bb..(jj + 1) * bb], &mut out[w0..w0 + nw]);
                        }
                    }
                },
            );
        Self { words, bits }
    }

    /// The bits of `neurons`, taking those of `old` (computed for `old_neurons` under the same
    /// data and generators) where possible and computing only the rest.
    pub fn update(op: &Operator, neurons: &[u32], old: &Masks, old_neurons: &[u32]) -> Self {
        let missing: Vec<u32> = neurons
            .iter()
            .copied()
            .filter(|j| old_neurons.binary_search(j).is_err())
            .collect();
        let fresh = Self::compute(op, &missing);
        let words = fresh.words;
        let mut bits = Vec::with_capacity(words * neurons.len());
        for j in neurons {
            match old_neurons.binary_search(j) {
                Ok(k) => bits.extend_from_slice(old.run(k)),
                Err(_) => {
                    let k = missing.binary_search(j).expect("computed above");
                    bits.extend_from_slice(fresh.run(k));
                }
            }
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

/// Packs `z > 0` into bits; compiled for AVX-512 or AVX2 when the CPU has it.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
pub fn pack(z: &[f32], out: &mut [u64]) {
    lanes::pack(z, out)
}

/// Whether row `r` is active in a packed mask.
#[inline]
pub fn bit(words: &[u64], r: usize) -> bool {
    (words[r / 64] >> (r % 64)) & 1 == 1
}

/// CPU twin of `shaders/relu_mask.wgsl` with its arithmetic (f32 `fma` over i in order): the
/// bits of `tile` neurons over `rows` rows of a column-major X (`x[i·x_stride + x_row0 + r]`),
/// `words = ceil(rows / 32)` u32 words per neuron.
pub fn twin(
    x: &[f32],
    x_stride: usize,
    x_row0: usize,
    rows: usize,
    d: usize,
    h: &[f32],
    tile: usize,
) -> Vec<u32> {
    let words = rows.div_ceil(32);
    let mut bits = vec![0u32; tile * words];
    for jj in 0..tile {
        for w in 0..words {
            let mut word = 0u32;
            for b in 0..32 {
                let r = w * 32 + b;
                if r >= rows {
                    break;
                }
                let mut z = 0.0f32;
                for i in 0..d {
                    z = x[i * x_stride + x_row0 + r].mul_add(h[jj * d + i], z);
                }
                if z > 0.0 {
                    word |= 1 << b;
                }
            }
            bits[jj * words + w] = word;
        }
    }
    bits
}

/// CPU twin of the `sparse` entry of `shaders/relu_mask.wgsl`: the bits of runs
/// `run0..run0 + tile` of generators given as runs of nonzeros (`start`, `cols`, `vals`), each sum
/// an f32 `fma` over the run's nonzeros in order. Equal to [`twin`] on the dense generators.
#[allow(clippy::too_many_arguments)] // X's layout, the rows and the three arrays of the runs
pub fn twin_sparse(
    x: &[f32],
    x_stride: usize,
    x_row0: usize,
    rows: usize,
    start: &[u32],
    cols: &[u32],
    vals: &[f32],
    run0: usize,
    tile: usize,
) -> Vec<u32> {
    let words = rows.div_ceil(32);
    let mut bits = vec![0u32; tile * words];
    for jj in 0..tile {
        let run = start[run0 + jj] as usize..start[run0 + jj + 1] as usize;
        for r in 0..rows {
            let mut z = 0.0f32;
            for p in run.clone() {
                z = x[cols[p] as usize * x_stride + x_row0 + r].mul_add(vals[p], z);
            }
            if z > 0.0 {
                bits[jj * words + r / 32] |= 1 << (r % 32);
            }
        }
    }
    bits
}
