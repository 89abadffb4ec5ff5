//! [`WideBackend`]: the CPU engine at `--precision f64`. The same solver and the same rules
//! ([`crate::backend::rules`]) as [`super::CpuBackend`], with every product, residual, gradient,
//! step size and weight in f64; the data stay as stored (f32, read exactly into f64).
//!
//! Weights cross the solver's boundary as f32 ([`SparseVec`]). So that the iterate itself stays
//! in f64 from one phase to the next, the engine keeps the f64 values of the vectors it returned
//! last ([`Shadow`]) and takes them back for every entry the solver hands in unchanged (an entry
//! whose f32 value is the rounding of the kept one); anything else is read as given.
//!
//! Every sum runs in a fixed order with plain multiplies and adds (no fused multiply-add, no
//! instruction-set dispatch, no `gemm`): eight lanes over the rows, folded by a fixed tree, and
//! work split across threads only by output. The results are therefore the same bits on every
//! x86-64 or ARM machine and for any number of threads, which the f32 engine (whose products
//! come from `gemm`'s kernels for the processor at hand) does not promise. The cost: no SIMD
//! GEMM, so a step takes several times the f32 engine's (README, "Precision").

use crate::backend::{rules, Backend, GradientPhase, SupportOps, SupportPhase};
use crate::error::{Error, Result};
use crate::problem::data::Data;
use crate::problem::model::{Blocks, Loss, VectorStep};
use crate::problem::operator::{Generators, Operator, Support};
use crate::problem::sparse::SparseVec;
use rayon::prelude::*;
use std::cmp::Ordering;

/// Rows per block of the forward product's parallel split.
const ROW_BLOCK: usize = 2048;

/// The f64 values of vectors the engine returned, by index (the latest first).
#[derive(Debug, Default)]
struct Shadow {
    kept: Vec<(u64, Vec<u32>, Vec<f64>)>,
}

impl Shadow {
    /// Vectors remembered: the last gradient phase's `z₀` and the last support phase's `z` (and
    /// one more, for a solver that holds on to an older iterate).
    const DEPTH: usize = 3;

    fn remember(&mut self, len: u64, idx: Vec<u32>, val: Vec<f64>) {
        self.kept.insert(0, (len, idx, val));
        self.kept.truncate(Self::DEPTH);
    }

    /// The f64 value of entry `c` whose f32 copy is `v`: a kept value that rounds to `v` (or to
    /// `−v`, negated: signed neurons' generators), else `v` itself.
    fn value(&self, len: u64, c: u32, v: f32) -> f64 {
        for (l, idx, val) in &self.kept {
            if *l != len {
                continue;
            }
            if let Ok(k) = idx.binary_search(&c) {
                // A signed neuron's generator is the negated weight.
                if (val[k] as f32).to_bits() == v.to_bits() {
                    return val[k];
                }
                if (-val[k] as f32).to_bits() == v.to_bits() {
                    return -val[k];
                }
            }
        }
        v as f64
    }

    /// The f64 values of a sparse vector handed in by the solver.
    fn widen(&self, x: &SparseVec) -> Vec<f64> {
        (x.indices().iter().zip(x.values()))
            .map(|(&c, &v)| self.value(x.len(), c, v))
            .collect()
    }
}

/// `Σ_r a[r]·b[r]` in f64: eight lanes (row r into lane r mod 8), then a fixed tree. The same
/// bits whatever vector width the compiler maps the lanes to.
fn dot(a: &[f32], b: &[f64]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 8];
    let (ac, at) = a.split_at(a.len() / 8 * 8);
    let (bc, bt) = b.split_at(ac.len());
    for (ca, cb) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] as f64 * cb[l];
        }
    }
    for (l, (&x, &y)) in at.iter().zip(bt).enumerate() {
        acc[l] += x as f64 * y;
    }
    fold(acc)
}

/// `Σ_r a[r]²` (or `Σ (a[r] − μ b[r])²`) with the lanes and tree of [`dot`].
fn sum_sq(a: &[f64], b: Option<(&[f64], f64)>) -> f64 {
    let mut acc = [0.0f64; 8];
    for (r, &x) in a.iter().enumerate() {
        let e = match b {
            Some((b, mu)) => x - mu * b[r],
            None => x,
        };
        acc[r % 8] += e * e;
    }
    fold(acc)
}

fn fold(a: [f64; 8]) -> f64 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// Pre-activation signs `1{X h > 0}` in f64 as packed bits (bit r%64 of word r/64), `h` dense
/// over d; columns are accumulated in ascending order.
fn mask_bits(data: &Data, h: &[f64]) -> Vec<u64> {
    let n = data.n();
    let mut pre = vec![0.0f64; n];
    for (i, &hi) in h.iter().enumerate() {
        if hi != 0.0 {
            for (p, &x) in pre.iter_mut().zip(data.column(i)) {
                *p += x as f64 * hi;
            }
        }
    }
    let mut bits = vec![0u64; n.div_ceil(64)];
    for (r, &p) in pre.iter().enumerate() {
        if p > 0.0 {
            bits[r / 64] |= 1 << (r % 64);
        }
    }
    bits
}

/// `v` where the mask is set, 0 elsewhere.
fn masked(bits: &[u64], v: &[f64]) -> Vec<f64> {
    v.iter()
        .enumerate()
        .map(|(r, &x)| {
            if bits[r / 64] >> (r % 64) & 1 == 1 {
                x
            } else {
                0.0
            }
        })
        .collect()
}

/// Ranks `a` before `b`: the larger magnitude, ties by the smaller index (as the f32 engines).
fn rank(a: &(u32, f64), b: &(u32, f64)) -> Ordering {
    b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0))
}

/// The `keep` best nonzero entries, in rank order.
fn best(mut v: Vec<(u32, f64)>, keep: usize) -> Vec<(u32, f64)> {
    v.retain(|p| p.1 != 0.0);
    if v.len() > keep && keep > 0 {
        v.select_nth_unstable_by(keep - 1, rank);
    }
    v.truncate(keep);
    v.sort_unstable_by(rank);
    v
}

/// The f64 CPU engine.
#[derive(Debug, Default)]
pub struct WideBackend {
    support: Support,
    /// The mask bits of each run of `support` (its neuron's).
    masks: Vec<Vec<u64>>,
    shadow: Shadow,
}

impl WideBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// The generator `h_j` in f64 (the iterate's own f64 weights under `h = w`).
    fn generator(&self, op: &Operator, j: u32) -> Vec<f64> {
        let h = op.generator(j);
        match op.generators() {
            Generators::Random { .. } => h.iter().map(|&v| v as f64).collect(),
            Generators::Weights(w) => {
                let lo = j * op.d() as u32;
                (h.iter().enumerate())
                    .map(|(i, &v)| match v {
                        0.0 => 0.0,
                        _ => self.shadow.value(w.len(), lo + i as u32, v),
                    })
                    .collect()
            }
        }
    }

    fn check_support(&self, got: usize) -> Result<()> {
        Error::check_len("z (support size)", self.support.len(), got)
    }

    fn product(&self, op: &Operator, z: &[f64], minus_y: bool) -> Result<Vec<f64>> {
        self.check_support(z.len())?;
        let data = op.data();
        let n = data.n();
        let mut out = vec![0.0f64; n];
        out.par_chunks_mut(ROW_BLOCK)
            .enumerate()
            .for_each(|(b, chunk)| {
                let r0 = b * ROW_BLOCK;
                let rows = r0..r0 + chunk.len();
                let mut tmp = vec![0.0f64; chunk.len()];
                for (run, bits) in self.support.runs.iter().zip(&self.masks) {
                    tmp.fill(0.0);
                    let entries = self.support.idx[run.1..run.2].iter().zip(&z[run.1..run.2]);
                    for (&c, &zk) in entries {
                        let i = (c % op.d() as u32) as usize;
                        for (t, &x) in tmp.iter_mut().zip(&data.column(i)[rows.clone()]) {
                            *t += x as f64 * zk;
                        }
                    }
                    for (q, (o, &t)) in chunk.iter_mut().zip(&tmp).enumerate() {
                        let r = r0 + q;
                        if bits[r / 64] >> (r % 64) & 1 == 1 {
                            *o += t;
                        }
                    }
                }
                if minus_y {
                    for (o, &y) in chunk.iter_mut().zip(&data.y()[rows]) {
                        *o -= y as f64;
                    }
                }
            });
        Ok(out)
    }

    fn remember(&mut self, len: u64, idx: &[u32], val: &[f64]) -> SparseVec {
        let v32: Vec<f32> = val.iter().map(|&v| v as f32).collect();
        self.shadow.remember(len, idx.to_vec(), val.to_vec());
        SparseVec::from_sorted(len, idx.to_vec(), v32)
    }
}

impl SupportOps for WideBackend {
    type Vector = Vec<f64>;
    type Elem = f64;

    fn upload(&mut self, host: &[f32]) -> Result<Vec<f64>> {
        Ok(host.iter().map(|&v| v as f64).collect())
    }

    fn download(&mut self, v: &Vec<f64>) -> Result<Vec<f32>> {
        Ok(v.iter().map(|&v| v as f32).collect())
    }

    fn prepare_support(&mut self, op: &Operator, support: &[u32]) -> Result<()> {
        let t = Support::new(support, op.d());
        if let Some(&c) = t.idx.last() {
            if c as u64 >= op.cols() {
                return Err(Error::invalid(
                    "support index",
                    c,
                    format!("≥ m·d = {}", op.cols()),
                ));
            }
        }
        let data = op.data();
        self.masks = t
            .runs
            .par_iter()
            .map(|run| mask_bits(data, &self.generator(op, run.0)))
            .collect();
        self.support = t;
        Ok(())
    }

    fn forward(&mut self, op: &Operator, z: &[f64]) -> Result<Vec<f64>> {
        self.product(op, z, false)
    }

    fn adjoint(&mut self, op: &Operator, r: &Vec<f64>) -> Result<Vec<f64>> {
        Error::check_len("r (n)", op.n(), r.len())?;
        let (data, d) = (op.data(), op.d() as u32);
        let t = &self.support;
        let per_run: Vec<Vec<f64>> = (t.runs.par_iter().zip(&self.masks))
            .map(|(run, bits)| {
                let rm = masked(bits, r);
                (run.1..run.2)
                    .map(|k| dot(data.column((t.idx[k] % d) as usize), &rm))
                    .collect()
            })
            .collect();
        Ok(per_run.concat())
    }

    fn residual(&mut self, op: &Operator, z: &[f64]) -> Result<Vec<f64>> {
        self.product(op, z, true)
    }

    fn norm2(&mut self, v: &Vec<f64>) -> Result<f64> {
        Ok(sum_sq(v, None))
    }

    fn shifted_norm2(&mut self, r: &Vec<f64>, q: &Vec<f64>, mu: f64) -> Result<f64> {
        Ok(sum_sq(r, Some((q, mu))))
    }

    fn axpy(&mut self, r: &mut Vec<f64>, q: &Vec<f64>, mu: f64) -> Result<()> {
        for (a, &b) in r.iter_mut().zip(q) {
            *a -= mu * b;
        }
        Ok(())
    }
}

impl Backend for WideBackend {
    fn name(&self) -> String {
        "cpu-f64".into()
    }

    fn gradient_phase(
        &mut self,
        op: &Operator,
        x: &SparseVec,
        keep: usize,
    ) -> Result<GradientPhase> {
        Error::check_len("x (m·d)", op.cols() as usize, x.len() as usize)?;
        let xv = self.shadow.widen(x);
        let (r, mu) = rules::niht_on(self, op, x.indices(), &xv)?;
        let (data, d) = (op.data(), op.d());
        let this = &*self;
        let per_neuron: Vec<Vec<(u32, f64)>> = op
            .live_neurons()
            .par_iter()
            .map(|&j| {
                let rm = masked(&mask_bits(data, &this.generator(op, j)), &r);
                let lo = j * d as u32;
                let mut xj = vec![0.0f64; d];
                let range = x.range(lo, lo + d as u32);
                for (&c, &v) in x.indices()[range.clone()].iter().zip(&xv[range]) {
                    xj[(c - lo) as usize] = v;
                }
                let cand = (0..d)
                    .map(|i| (lo + i as u32, xj[i] - mu * dot(data.column(i), &rm)))
                    .collect();
                best(cand, keep)
            })
            .collect();
        // Entries of x on dead neurons keep their value (their block of A is zero).
        let live = op.live_neurons();
        let dead: Vec<(u32, f64)> = (x.indices().iter().zip(&xv))
            .filter(|(&c, _)| live.binary_search(&(c / d as u32)).is_err())
            .map(|(&c, &v)| (c, v))
            .collect();
        let mut z0 = best([per_neuron.concat(), dead].concat(), keep);
        // Entries below f32's range would be zeros at the boundary: not selected.
        z0.retain(|p| p.1 as f32 != 0.0);
        z0.sort_unstable_by_key(|p| p.0);
        let (idx, val): (Vec<u32>, Vec<f64>) = z0.into_iter().unzip();
        let z0 = self.remember(x.len(), &idx, &val);
        Ok(GradientPhase { z0, mu })
    }

    fn support_phase(
        &mut self,
        op: &Operator,
        z0: &SparseVec,
        mu: f64,
        inner_steps: usize,
    ) -> Result<SupportPhase> {
        let zw = self.shadow.widen(z0);
        let ph = rules::support_phase_on(self, op, z0.indices(), &zw, mu, inner_steps)?;
        let z = self.remember(z0.len(), z0.indices(), &ph.z);
        // The boundary's values, aligned with z0's support (an entry that rounds to zero is 0).
        let z = z0.indices().iter().map(|&c| z.get(c)).collect();
        Ok(SupportPhase {
            z,
            f: ph.f,
            mu: ph.mu,
            trials: ph.trials,
            resets: ph.resets,
        })
    }

    fn refine(&mut self, op: &Operator, x: &SparseVec, iters: usize) -> Result<SparseVec> {
        let xv = self.shadow.widen(x);
        let z = rules::cgls_on(self, op, x.indices(), &xv, iters)?;
        Ok(self.remember(x.len(), x.indices(), &z))
    }

    fn predict(&mut self, op: &Operator, x: &SparseVec) -> Result<Vec<f32>> {
        let xv = self.shadow.widen(x);
        self.prepare_support(op, x.indices())?;
        let out = self.product(op, &xv, false)?;
        self.download(&out)
    }

    fn vector_forward(&mut self, _op: &Operator, _b: &Blocks, _k: usize) -> Result<Vec<f32>> {
        Err(vector_refused())
    }

    fn vector_step(
        &mut self,
        _op: &Operator,
        _targets: &[f32],
        _k: usize,
        _loss: Loss,
        _cur: &Blocks,
        _at: Option<&Blocks>,
        _alpha: f32,
    ) -> Result<VectorStep> {
        Err(vector_refused())
    }
}

fn vector_refused() -> Error {
    Error::invalid(
        "precision",
        "f64",
        "covers the scalar-output model; the vector-output model (k > 1 outputs) runs in f32",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_is_the_exact_sum_on_integers() {
        let a: Vec<f32> = (0..37).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f64> = (0..37).map(|i| (i % 5) as f64 + 0.5).collect();
        let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y).sum();
        assert_eq!(dot(&a, &b), want);
    }

    #[test]
    fn best_ranks_by_magnitude_then_index() {
        let v = vec![(5, -2.0), (1, 2.0), (3, 0.0), (2, 1.0), (4, -3.0)];
        assert_eq!(best(v, 3), vec![(4, -3.0), (1, 2.0), (5, -2.0)]);
    }

    #[test]
    fn shadow_gives_back_what_rounds_to_the_f32_copy() {
        let mut s = Shadow::default();
        let v = 0.1f64 + 1e-12;
        s.remember(10, vec![2, 7], vec![v, -3.0]);
        assert_eq!(s.value(10, 2, v as f32), v);
        assert_eq!(s.value(10, 2, 0.5), 0.5);
        assert_eq!(s.value(10, 3, 0.25), 0.25);
        assert_eq!(s.value(11, 2, v as f32), (v as f32) as f64);
    }
}
