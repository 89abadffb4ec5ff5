//! CPU twin of `masked_gradient`, fused with the candidate step and the streaming top-s: for each
//! tile of live neurons and each block of rows,
//!
//! ```text
//! Z = X_blk H_tile            (block × tile; a GEMM in the random mode, column axpys for h = w)
//! P = 1{Z > 0} ∘ r_blk        (in place)
//! G_tile += Pᵀ X_blk          (tile × d; a GEMM accumulating over blocks)
//! ```
//!
//! then candidates `x_j − μ g_j` go straight into the worker's running top-s. Tiles run in
//! parallel, each with single-threaded GEMMs, and per-worker sets are merged at the end; the
//! selection order is total (see `topk`), so the result does not depend on the thread count.
//! The dense m·d gradient is never formed: a worker holds one block of Z and one tile of G.

use super::relu_mask::{fill_generators, pack, preactivation_tile, Masks};
use crate::problem::operator::{Generators, Operator};
use crate::problem::sparse::SparseVec;
use crate::problem::stream::{row_blocks, Plan};
use crate::problem::topk::TopS;
use gemm::{gemm, Parallelism};
use multiversion::multiversion;
use rayon::prelude::*;

/// Per-worker scratch.
struct Scratch {
    z: Vec<f32>,
    h: Vec<f32>,
    g: Vec<f32>,
}

/// Tile gradients `G[jj·d + i] = (A_jᵀ r)_i` for the neurons of `tile` (`j = tile[jj]`).
pub fn tile_gradient(op: &Operator, tile: &[u32], r: &[f32], block: usize, g: &mut [f32]) {
    let mut z = vec![0.0; block * tile.len()];
    let mut h = vec![0.0; op.d() * tile.len()];
    compute_tile(op, tile, None, r, block, &mut z, &mut h, g, &mut []);
}

/// One tile's gradients. With `known` (per neuron of the tile, its mask words over all n rows,
/// computed under the same data and generators) the masked residual is selected from those bits
/// and no pre-activation is formed; otherwise the pre-activations are formed block by block, and
/// with a non-empty `bits` (`ceil(n/64)` words per neuron of the tile) the tile's activation bits
/// are kept, packed as [`Masks`] packs them.
#[allow(clippy::too_many_arguments)] // the tile, its inputs and its scratch
fn compute_tile(
    op: &Operator,
    tile: &[u32],
    known: Option<&[&[u64]]>,
    r: &[f32],
    block: usize,
    z: &mut [f32],
    h: &mut [f32],
    g: &mut [f32],
    bits: &mut [u64],
) {
    let (n, d, t) = (op.n(), op.d(), tile.len());
    let xt = op.data().xt();
    let g = &mut g[..t * d];
    g.fill(0.0);
    let random = known.is_none() && fill_generators(op, tile, h);
    for rows in row_blocks(n, block) {
        let bb = rows.len();
        let z = &mut z[..bb * t];
        if let Some(known) = known {
            debug_assert!(rows.start.is_multiple_of(64), "blocks start on a word");
            let w0 = rows.start / 64;
            for (col, words) in z.chunks_mut(bb).zip(known) {
                select_residual(&words[w0..w0 + bb.div_ceil(64)], &r[rows.clone()], col);
            }
        } else {
            preactivation_tile(op, tile, rows.clone(), random, h, z);
            if !bits.is_empty() {
                let words = n.div_ceil(64);
                debug_assert!(rows.start.is_multiple_of(64), "blocks start on a word");
                for jj in 0..t {
                    let w0 = jj * words + rows.start / 64;
                    pack(
                        &z[jj * bb..(jj + 1) * bb],
                        &mut bits[w0..w0 + bb.div_ceil(64)],
                    );
                }
            }
            mask_residual(z, &r[rows.clone()]);
        }
        // SAFETY: G is t × d row-major (g[jj·d + i]), Pᵀ is t × bb (z[jj·bb + r]), X_blk is
        // bb × d at xt[i·ld + rows.start + r]; all in bounds.
        unsafe {
            gemm(
                t,
                d,
                bb,
                g.as_mut_ptr(),
                1,
                d as isize,
                true,
                z.as_ptr(),
                1,
                bb as isize,
                xt.as_ptr().add(rows.start),
                op.data().ld() as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    }
}

/// `P = 1{Z > 0} ∘ r` in place, column by column; compiled for AVX-512 or AVX2 when present
/// (no fused operation: every width gives the same bits).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn mask_residual(z: &mut [f32], rb: &[f32]) {
    for col in z.chunks_mut(rb.len()) {
        for (v, &res) in col.iter_mut().zip(rb) {
            *v = if *v > 0.0 { res } else { 0.0 };
        }
    }
}

/// `out[r] = bit(r) ? rb[r] : 0` from packed mask words (64 rows each, row 0 at bit 0 of the
/// first word): the same values as [`mask_residual`] on the pre-activations the bits came from.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn select_residual(words: &[u64], rb: &[f32], out: &mut [f32]) {
    for ((o, v), &w) in out.chunks_mut(64).zip(rb.chunks(64)).zip(words) {
        for (l, (o, &v)) in o.iter_mut().zip(v).enumerate() {
            *o = if (w >> l) & 1 == 1 { v } else { 0.0 };
        }
    }
}

/// The streamed full-gradient pass: the `keep` best candidates `x − μ Aᵀ r` over all live blocks,
/// plus the entries of `x` on neurons whose block is zero (their candidate is `x` itself).
pub fn gradient_topk(
    op: &Operator,
    x: &SparseVec,
    r: &[f32],
    mu: f32,
    keep: usize,
    workers: usize,
) -> SparseVec {
    gradient_topk_keeping_masks(op, x, r, mu, keep, workers, None).0
}

/// [`gradient_topk`], and under `h = w` the activation bits of the live neurons it formed on
/// the way (ascending neurons, aligned with the runs of the [`Masks`]): the support phase of
/// the same step needs the masks of the same neurons under the same generators, and takes them
/// from here instead of forming them again.
///
/// `known` offers masks already formed under the same data and generators (ascending neurons and
/// their [`Masks`], as the support phase keeps them): when they cover every live neuron the pass
/// selects the residual from those bits and forms no pre-activation (under `h = w` the live
/// neurons are exactly the old support's, whose masks the normalized step size needed first), and
/// it keeps no masks of its own.
pub fn gradient_topk_keeping_masks(
    op: &Operator,
    x: &SparseVec,
    r: &[f32],
    mu: f32,
    keep: usize,
    workers: usize,
    known: Option<(&[u32], &Masks)>,
) -> (SparseVec, Option<(Vec<u32>, Masks)>) {
    let d = op.d();
    let live = op.live_neurons();
    let (reps, members) = mask_classes(op, &live);
    let plan = Plan::for_pass(reps.len(), workers);
    // Per representative, its known mask words (all of them, or none used).
    let known: Option<Vec<&[u64]>> = known.and_then(|(neurons, masks)| {
        reps.iter()
            .map(|j| neurons.binary_search(j).ok().map(|k| masks.run(k)))
            .collect()
    });
    let tiles: Vec<(&[u32], &[Vec<u32>])> = reps
        .chunks(plan.tile)
        .zip(members.chunks(plan.tile))
        .collect();
    let known_tiles: Vec<Option<&[&[u64]]>> = match &known {
        Some(k) => k.chunks(plan.tile).map(Some).collect(),
        None => vec![None; tiles.len()],
    };
    let keep_masks =
        known.is_none() && matches!(op.generators(), Generators::Weights(_)) && !reps.is_empty();
    let words = op.n().div_ceil(64);
    let mut rep_bits = vec![0u64; if keep_masks { words * reps.len() } else { 0 }];
    let mut slots: Vec<&mut [u64]> = if keep_masks {
        rep_bits.chunks_mut(words * plan.tile).collect()
    } else {
        tiles.iter().map(|_| <&mut [u64]>::default()).collect()
    };
    let mut top = tiles
        .par_iter()
        .zip(known_tiles.par_iter())
        .zip(slots.par_iter_mut())
        .fold(
            || {
                let s = Scratch {
                    z: vec![0.0; plan.block * plan.tile],
                    h: vec![0.0; d * plan.tile],
                    g: vec![0.0; d * plan.tile],
                };
                (s, TopS::new(keep), vec![0.0f32; d])
            },
            |(mut s, mut top, mut cand), ((&(tile, members), &known), bits)| {
                let (z, h, g) = (&mut s.z, &mut s.h, &mut s.g);
                compute_tile(op, tile, known, r, plan.block, z, h, g, bits);
                for (jj, class) in members.iter().enumerate() {
                    let g = &s.g[jj * d..(jj + 1) * d];
                    // Every neuron of the class has this gradient: its candidates x_j − μ g.
                    for &j in class {
                        let lo = j * d as u32;
                        for (c, &gv) in cand.iter_mut().zip(g) {
                            *c = gv * -mu;
                        }
                        let range = x.range(lo, lo + d as u32);
                        for (&c, &v) in x.indices()[range.clone()].iter().zip(&x.values()[range]) {
                            cand[(c - lo) as usize] += v;
                        }
                        top.push_run(lo, &cand);
                    }
                }
                (s, top, cand)
            },
        )
        .map(|(_, top, _)| top)
        .reduce(|| TopS::new(keep), TopS::merge);
    if let Generators::Weights(_) = op.generators() {
        // Entries of x on dead neurons keep their value (their block of A is zero).
        for (&c, &v) in x.indices().iter().zip(x.values()) {
            if live.binary_search(&(c / d as u32)).is_err() {
                top.push(c, v);
            }
        }
    }
    let masks = keep_masks.then(|| {
        // Every member of a class has its representative's bits.
        let mut of: Vec<(u32, usize)> = members
            .iter()
            .enumerate()
            .flat_map(|(k, class)| class.iter().map(move |&j| (j, k)))
            .collect();
        of.sort_unstable();
        let mut bits = Vec::with_capacity(words * of.len());
        for &(_, k) in &of {
            bits.extend_from_slice(&rep_bits[k * words..(k + 1) * words]);
        }
        let neurons = of.into_iter().map(|(j, _)| j).collect();
        (neurons, Masks { words, bits })
    });
    (top.finish(op.cols()), masks)
}

/// The live neurons grouped by mask: under `h = w` a neuron with one weight `a` at input i has
/// the mask `1{sign(a)·X[:, i] > 0}`, whatever `|a|` (as long as no product `a·X[r, i]` rounds to
/// zero), so all such neurons with the same (i, sign) share one gradient `A_jᵀ r` and the pass
/// computes it once. Returns one representative per class (ascending) and each class's neurons.
pub fn mask_classes(op: &Operator, live: &[u32]) -> (Vec<u32>, Vec<Vec<u32>>) {
    let Generators::Weights(w) = op.generators() else {
        return (live.to_vec(), live.iter().map(|&j| vec![j]).collect());
    };
    let d = op.d() as u32;
    let data = op.data();
    let mut reps: Vec<u32> = Vec::with_capacity(live.len());
    let mut members: Vec<Vec<u32>> = Vec::with_capacity(live.len());
    let mut class_of: std::collections::HashMap<(u32, bool), usize> = Default::default();
    for &j in live {
        let range = w.range(j * d, (j + 1) * d);
        let key = (range.len() == 1).then(|| {
            let (c, a) = (w.indices()[range.start] % d, w.values()[range.start]);
            (a.abs() * data.min_nonzero_abs(c as usize) >= f32::MIN_POSITIVE)
                .then_some((c, a > 0.0))
        });
        match key.flatten() {
            Some(key) => match class_of.get(&key) {
                Some(&k) => members[k].push(j),
                None => {
                    class_of.insert(key, reps.len());
                    reps.push(j);
                    members.push(vec![j]);
                }
            },
            None => {
                reps.push(j);
                members.push(vec![j]);
            }
        }
    }
    (reps, members)
}

/// One block of `shaders/masked_gradient.wgsl`, described for its CPU twin.
pub struct GradientBlock<'a> {
    /// Column-major X: `X[r, i] = x[i·x_stride + x_row0 + r]`.
    pub x: &'a [f32],
    pub x_stride: usize,
    pub x_row0: usize,
    pub rows: usize,
    pub d: usize,
    /// Residual, `res[r_row0 + r]`, or with `res_stride > 0` one already-masked residual per
    /// neuron, `res[jj·res_stride + r_row0 + r]` (the bits are then not read).
    pub res: &'a [f32],
    pub r_row0: usize,
    pub res_stride: usize,
    /// Masks of the block, `bits[jj·words + r/32]`, `words = ceil(rows/32)`.
    pub bits: &'a [u32],
    pub tile: usize,
    /// Rows per split of the device's split-K dispatch (`gpu::masked_gradient::split_rows`).
    pub split_rows: usize,
}

/// CPU twin of `shaders/masked_gradient.wgsl` with its arithmetic: per split of `split_rows` rows,
/// f32 `fma` over the split's rows in order; the splits' sums added pairwise (while c > 1:
/// h = ⌈c/2⌉, `part[k] += part[k + h]` for k < c − h, c = h); then
/// `g[jj·d + i] = (g_in or 0) + Σ`, and with `finish = Some(μ)` the candidate step `xtile − μ g`.
pub fn twin(
    b: &GradientBlock<'_>,
    g_in: Option<&[f32]>,
    xtile: &[f32],
    finish: Option<f32>,
) -> Vec<f32> {
    let words = b.rows.div_ceil(32);
    let split = b.split_rows.max(1);
    let mut part = vec![0.0f32; b.rows.div_ceil(split).max(1)];
    let mut g = vec![0.0f32; b.tile * b.d];
    for jj in 0..b.tile {
        for i in 0..b.d {
            for (k, acc) in part.iter_mut().enumerate() {
                *acc = 0.0;
                for r in k * split..((k + 1) * split).min(b.rows) {
                    let p = if b.res_stride > 0 {
                        b.res[jj * b.res_stride + b.r_row0 + r]
                    } else if (b.bits[jj * words + r / 32] >> (r % 32)) & 1 == 1 {
                        b.res[b.r_row0 + r]
                    } else {
                        0.0
                    };
                    *acc = b.x[i * b.x_stride + b.x_row0 + r].mul_add(p, *acc);
                }
            }
            let mut c = part.len();
            while c > 1 {
                let h = c.div_ceil(2);
                for k in 0..c - h {
                    part[k] += part[k + h];
                }
                c = h;
            }
            let at = jj * b.d + i;
            let mut total = g_in.map_or(part[0], |g0| g0[at] + part[0]);
            if let Some(mu) = finish {
                total = xtile[at] - mu * total;
            }
            g[at] = total;
        }
    }
    g
}
