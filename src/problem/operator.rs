//! The implicit sensing operator `A = [D_1 X, …, D_m X]` (SPEC §1), never stored.
//!
//! `D_j = diag(1{X h_j > 0})` (strict `>`) is fixed by a generator vector `h_j`, which is either
//! Gaussian from the counter-based generator keyed by (seed, j, i) — the convex model — or the
//! current fused weights `w_j` — the sequential-convex model, where a neuron without weights has a
//! zero block. Column `c = j·d + i` of `A` is `D_j X[:, i]`.
//!
//! This file holds the description (data, width, generators) and the plain, dense reference
//! formulas used by the tests; backends do the real work on a [`Support`] in O(n·|T|).

use crate::error::{Error, Result};
use crate::problem::data::Data;
use crate::problem::rng::{self, Stream};
use crate::problem::sparse::SparseVec;
use multiversion::multiversion;
use std::sync::Arc;

/// How the activation patterns are chosen (SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// `h_j ~ N(0, I)` fixed for the whole run.
    Convex,
    /// Random `h` for the first steps, then `h_j := w_j` before every step (the paper's default).
    SequentialConvex,
}

/// The generator vectors of one step.
#[derive(Clone, Debug, PartialEq)]
pub enum Generators {
    /// Gaussian `h_j[i] = gauss(key(seed, Generators), j, i)`.
    Random { seed: u64 },
    /// `h_j = w_j`, the fused weights of a sparse iterate (length `m·d`).
    Weights(SparseVec),
}

impl Generators {
    /// Generator key of the random mode.
    pub fn random_key(seed: u64) -> u64 {
        rng::key(seed, Stream::Generators)
    }

    /// Pre-activations `z = X h_j` of `data` over rows `r0..r0+out.len()`, accumulated in f32 in
    /// column order (for `h = w` a sparse product, the hot case).
    pub fn preactivation(&self, data: &Data, j: u32, r0: usize, out: &mut [f32]) {
        out.fill(0.0);
        let d = data.d();
        let rows = r0..r0 + out.len();
        match self {
            Generators::Random { seed } => {
                let key = Generators::random_key(*seed);
                for i in 0..d {
                    let h = rng::gauss(key, j as u64, i as u64);
                    axpy(h, &data.column(i)[rows.clone()], out);
                }
            }
            Generators::Weights(w) => {
                let lo = j * d as u32;
                let r = w.range(lo, lo + d as u32);
                sparse_columns(data, lo, &w.indices()[r.clone()], &w.values()[r], rows, out);
            }
        }
    }
}

/// The model output `A x = Σ_j D_j X x_j` on `data` for a sparse `x` (length a multiple of d, the
/// neurons' weights one after the other), on the host and without any engine: for each neuron
/// holding weights, `z = X x_j` by a sparse column sum, kept where its generator gives
/// `X h_j > 0`. With `h = x` (the sequential-convex model) this is `Σ_j relu(X x_j)`. Work
/// O(n·nnz(x)), plus O(n·d) per live neuron for random generators; memory O(n).
///
/// The sums run in f32 in column order, so the result agrees with an engine's product to
/// rounding, not bit for bit.
pub fn apply_sparse(data: &Data, gens: &Generators, x: &SparseVec) -> Result<Vec<f32>> {
    let (n, d) = (data.n(), data.d());
    if !x.len().is_multiple_of(d as u64) {
        return Err(Error::invalid(
            "d",
            d,
            format!("does not divide the {} weights of the model", x.len()),
        ));
    }
    if let Generators::Weights(w) = gens {
        Error::check_len("generator weights", x.len() as usize, w.len() as usize)?;
    }
    // The sequential-convex model masks each neuron by its own pre-activation.
    let own_masks = matches!(gens, Generators::Weights(w) if w == x);
    let mut out = vec![0.0f32; n];
    // Row blocks outside, neurons inside: a block's columns stay in cache for every neuron.
    let block = crate::problem::stream::sparse_block_rows(d);
    let mut z = vec![0.0f32; block.min(n)];
    let mut h = vec![0.0f32; if own_masks { 0 } else { block.min(n) }];
    let neurons = x.neurons(d);
    for r0 in (0..n).step_by(block) {
        let rows = r0..(r0 + block).min(n);
        let (z, h) = (&mut z[..rows.len()], &mut h[..]);
        let out = &mut out[rows.clone()];
        for &j in &neurons {
            let lo = j * d as u32;
            let r = x.range(lo, lo + d as u32);
            z.fill(0.0);
            sparse_columns(
                data,
                lo,
                &x.indices()[r.clone()],
                &x.values()[r],
                rows.clone(),
                z,
            );
            let mask: &[f32] = if own_masks {
                z
            } else {
                let h = &mut h[..rows.len()];
                gens.preactivation(data, j, rows.start, h);
                h
            };
            for ((o, &zr), &hr) in out.iter_mut().zip(z.iter()).zip(mask) {
                if hr > 0.0 {
                    *o += zr;
                }
            }
        }
    }
    Ok(out)
}

/// `A` for one data set, width `m` and generators.
#[derive(Clone, Debug)]
pub struct Operator {
    data: Arc<Data>,
    m: usize,
    gens: Generators,
}

impl Operator {
    /// Checks `m ≥ 1` and that `m·d` fits 32-bit indices.
    pub fn new(data: Arc<Data>, m: usize, gens: Generators) -> Result<Self> {
        if m == 0 {
            return Err(Error::invalid("m", m, "need at least one neuron"));
        }
        let md = m as u128 * data.d() as u128;
        if md >= u32::MAX as u128 {
            return Err(Error::TooLarge(md));
        }
        if let Generators::Weights(w) = &gens {
            if w.len() != md as u64 {
                return Err(Error::ShapeMismatch {
                    what: "generator weights (m·d)",
                    expected: md as usize,
                    got: w.len() as usize,
                });
            }
        }
        Ok(Self { data, m, gens })
    }

    /// The same data and width with other generators.
    pub fn with_generators(&self, gens: Generators) -> Self {
        Self {
            data: self.data.clone(),
            m: self.m,
            gens,
        }
    }

    /// The same width and generators over other data (a minibatch).
    pub fn with_data(&self, data: Arc<Data>) -> Self {
        Self {
            data,
            m: self.m,
            gens: self.gens.clone(),
        }
    }

    pub fn data(&self) -> &Data {
        &self.data
    }
    pub fn data_arc(&self) -> &Arc<Data> {
        &self.data
    }
    pub fn n(&self) -> usize {
        self.data.n()
    }
    pub fn d(&self) -> usize {
        self.data.d()
    }
    pub fn m(&self) -> usize {
        self.m
    }
    /// Number of columns, `m·d`.
    pub fn cols(&self) -> u64 {
        (self.m * self.data.d()) as u64
    }
    pub fn generators(&self) -> &Generators {
        &self.gens
    }

    /// Neurons whose block can be nonzero, ascending: all of them in the random mode, only those
    /// holding weights in the weights mode (a zero `h_j` gives an all-zero block).
    pub fn live_neurons(&self) -> Vec<u32> {
        match &self.gens {
            Generators::Random { .. } => (0..self.m as u32).collect(),
            Generators::Weights(w) => w.neurons(self.d()),
        }
    }

    /// Pre-activations `z = X h_j` over rows `r0..r0+out.len()`, accumulated in f32 in column
    /// order (for `h = w` a sparse product, the hot case).
    pub fn preactivation(&self, j: u32, r0: usize, out: &mut [f32]) {
        self.gens.preactivation(&self.data, j, r0, out);
    }

    /// The model output `A x` for a sparse `x` of length `m·d`, on the host (see
    /// [`apply_sparse`]).
    pub fn apply_sparse(&self, x: &SparseVec) -> Result<Vec<f32>> {
        Error::check_len("weights (m·d)", self.cols() as usize, x.len() as usize)?;
        apply_sparse(&self.data, &self.gens, x)
    }

    /// The dense generator vector `h_j` (length d).
    pub fn generator(&self, j: u32) -> Vec<f32> {
        let d = self.d();
        match &self.gens {
            Generators::Random { seed } => {
                let mut h = vec![0.0; d];
                rng::fill_gauss(Generators::random_key(*seed), j as u64, 0, &mut h);
                h
            }
            Generators::Weights(w) => {
                let lo = j * d as u32;
                let mut h = vec![0.0; d];
                let r = w.range(lo, lo + d as u32);
                for (&c, &v) in w.indices()[r.clone()].iter().zip(&w.values()[r]) {
                    h[(c - lo) as usize] = v;
                }
                h
            }
        }
    }

    /// Reference: the dense block `A_j` (n × d, row-major), from the formula with f64 sums.
    pub fn dense_block(&self, j: u32) -> Vec<f32> {
        let (n, d) = (self.n(), self.d());
        let h = self.generator(j);
        let mut out = vec![0.0; n * d];
        for r in 0..n {
            let z: f64 = (0..d)
                .map(|i| self.data.at(r, i) as f64 * h[i] as f64)
                .sum();
            if z > 0.0 {
                for i in 0..d {
                    out[r * d + i] = self.data.at(r, i);
                }
            }
        }
        out
    }

    /// Reference: `A x` for a dense x of length m·d, block by block, f64 sums.
    pub fn dense_forward(&self, x: &[f32]) -> Vec<f64> {
        let (n, d) = (self.n(), self.d());
        let mut out = vec![0.0f64; n];
        for j in 0..self.m {
            let xj = &x[j * d..(j + 1) * d];
            if xj.iter().all(|&v| v == 0.0) {
                continue;
            }
            let block = self.dense_block(j as u32);
            for r in 0..n {
                out[r] += (0..d)
                    .map(|i| block[r * d + i] as f64 * xj[i] as f64)
                    .sum::<f64>();
            }
        }
        out
    }

    /// Reference: `Aᵀ v` (length m·d), f64 sums.
    pub fn dense_adjoint(&self, v: &[f32]) -> Vec<f64> {
        let (n, d) = (self.n(), self.d());
        let mut out = vec![0.0f64; self.m * d];
        for j in 0..self.m {
            let block = self.dense_block(j as u32);
            for i in 0..d {
                out[j * d + i] = (0..n).map(|r| block[r * d + i] as f64 * v[r] as f64).sum();
            }
        }
        out
    }
}

/// `out += Σ_k vals[k] · X[rows, idx[k] − lo]`, each row's terms added in k order with a
/// rounded product and a rounded sum (as [`axpy`] column after column gives them), 32 rows at a
/// time held in registers; compiled for AVX-512 or AVX2+FMA when the CPU has it (the same
/// operations at every width).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn sparse_columns(
    data: &Data,
    lo: u32,
    idx: &[u32],
    vals: &[f32],
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    const B: usize = 32;
    let full = out.len() / B * B;
    let col = |c: u32| &data.column((c - lo) as usize)[rows.clone()];
    for (b, block) in out[..full].chunks_exact_mut(B).enumerate() {
        let mut acc = [0.0f32; B];
        acc.copy_from_slice(block);
        for (&c, &h) in idx.iter().zip(vals) {
            let x: &[f32; B] = col(c)[b * B..(b + 1) * B].try_into().expect("32 rows");
            for l in 0..B {
                acc[l] += h * x[l];
            }
        }
        block.copy_from_slice(&acc);
    }
    for (&c, &h) in idx.iter().zip(vals) {
        axpy(h, &col(c)[full..], &mut out[full..]);
    }
}

/// The activation bits `1{Σ_k vals[k] · X[r, idx[k] − lo] > 0}` of rows `rows` (64 to a word,
/// row `rows.start` at bit 0 of `out[0]`), each sum formed exactly as [`sparse_columns`] forms it
/// from zero: the same bits as packing its pre-activations, without writing them (64 rows at a
/// time stay in registers). Compiled for AVX-512 or AVX2+FMA when the CPU has it.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
pub fn sparse_bits(
    data: &Data,
    lo: u32,
    idx: &[u32],
    vals: &[f32],
    rows: std::ops::Range<usize>,
    out: &mut [u64],
) {
    const B: usize = 64;
    let len = rows.len();
    let full = len / B * B;
    let col = |c: u32| &data.column((c - lo) as usize)[rows.clone()];
    for (w, word) in out[..full / B].iter_mut().enumerate() {
        let mut acc = [0.0f32; B];
        for (&c, &h) in idx.iter().zip(vals) {
            let x: &[f32; B] = col(c)[w * B..(w + 1) * B].try_into().expect("64 rows");
            for l in 0..B {
                acc[l] += h * x[l];
            }
        }
        let mut bits = 0u64;
        for (l, &a) in acc.iter().enumerate() {
            bits |= ((a > 0.0) as u64) << l;
        }
        *word = bits;
    }
    if full < len {
        let mut acc = [0.0f32; B];
        let acc = &mut acc[..len - full];
        for (&c, &h) in idx.iter().zip(vals) {
            axpy(h, &col(c)[full..], acc);
        }
        let mut bits = 0u64;
        for (l, &a) in acc.iter().enumerate() {
            bits |= ((a > 0.0) as u64) << l;
        }
        out[full / B] = bits;
    }
}

/// `out += a · x` (vectorizes; the workhorse of sparse products over columns). Callers in hot
/// loops are compiled with AVX2+FMA where available, and this inlines into them.
#[inline(always)]
pub fn axpy(a: f32, x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o += a * v;
    }
}

/// A support `T` grouped by neuron: the runs of `idx` that share `j = c / d`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Support {
    /// Sorted column indices.
    pub idx: Vec<u32>,
    /// For each neuron of T: `(j, start, end)` into `idx`.
    pub runs: Vec<(u32, usize, usize)>,
}

impl Support {
    /// Groups sorted, unique indices by neuron.
    pub fn new(idx: &[u32], d: usize) -> Self {
        let mut runs: Vec<(u32, usize, usize)> = Vec::new();
        for (k, &c) in idx.iter().enumerate() {
            let j = c / d as u32;
            match runs.last_mut() {
                Some(run) if run.0 == j => run.2 = k + 1,
                _ => runs.push((j, k, k + 1)),
            }
        }
        Self {
            idx: idx.to_vec(),
            runs,
        }
    }
    pub fn len(&self) -> usize {
        self.idx.len()
    }
    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// The order in which product kernels visit the neuron runs: two consecutive single-weight
    /// neurons together (the common case; they share loads), anything else alone.
    pub fn visits(&self) -> impl Iterator<Item = Visit> + '_ {
        let single = |k: usize| self.runs.get(k).is_some_and(|run| run.2 - run.1 == 1);
        let mut k = 0;
        std::iter::from_fn(move || {
            if k >= self.runs.len() {
                return None;
            }
            let visit = if single(k) && single(k + 1) {
                Visit::Pair(k, self.runs[k].1, self.runs[k + 1].1)
            } else {
                Visit::Run(k, self.runs[k].1..self.runs[k].2)
            };
            k += if matches!(visit, Visit::Pair(..)) {
                2
            } else {
                1
            };
            Some(visit)
        })
    }
}

/// One step of [`Support::visits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Visit {
    /// Runs `k` and `k + 1`, each a single weight, at positions `p1` and `p2` of the support.
    Pair(usize, usize, usize),
    /// Run `k` alone, its weights at these positions.
    Run(usize, std::ops::Range<usize>),
}
