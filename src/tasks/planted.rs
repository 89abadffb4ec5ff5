//! The planted task (SPEC §4): Gaussian inputs and targets produced by a planted sparse network,
//! so recovery can be scored against the truth.
//!
//! Two teachers: `relu`, the paper's planted network `y = Σ_j relu(X W_:,j)` with `s` N(0,1)
//! weights at uniform positions of the d × m matrix; and `convex`, the theory's setting
//! `y = A w*` with `w*` s-sparse in the convex model built from the solver's own generator
//! vectors (same seed), where exact recovery is what the guarantee promises.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::problem::data::{Data, InMemory, RowSource};
use crate::problem::operator::{Generators, Operator};
use crate::problem::rng::{self, Stream};
use crate::problem::sparse::SparseVec;
use crate::solver::depth::{fit_layers, Deep, Hidden};
use crate::solver::scalar::{self, IhtConfig, Recovery};
use crate::tasks::metrics;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use std::sync::Arc;

/// Which network produced the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Teacher {
    Relu,
    Convex,
}

/// Size and seed of a planted problem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlantedSpec {
    pub n: usize,
    pub d: usize,
    pub m: usize,
    pub s: usize,
    pub seed: u64,
    pub teacher: Teacher,
}

impl PlantedSpec {
    /// Rejects sizes that cannot make a problem.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("n", self.n), ("d", self.d), ("m", self.m), ("s", self.s)] {
            if v == 0 {
                return Err(Error::invalid(name, v, "must be at least 1"));
            }
        }
        let md = self.m as u128 * self.d as u128;
        if md >= u32::MAX as u128 {
            return Err(Error::TooLarge(md));
        }
        if self.s as u128 > md {
            return Err(Error::invalid(
                "s",
                self.s,
                format!("exceeds the number of weights m·d = {md}"),
            ));
        }
        if (self.n as u128) * (self.d as u128) > (isize::MAX as u128) / 8 {
            return Err(Error::invalid(
                "n·d",
                format!("{}·{}", self.n, self.d),
                "too large",
            ));
        }
        // X (f32, column-major) and a working copy of it while it is generated, the targets.
        let bytes = 8 * self.n as u128 * self.d as u128 + 16 * self.n as u128;
        crate::mem::check_fits("n", self.n, bytes)
    }
}

/// A generated problem: data with targets, and the planted weights (index j·d + i).
#[derive(Clone, Debug)]
pub struct Planted {
    pub spec: PlantedSpec,
    pub data: Arc<Data>,
    pub truth: SparseVec,
}

/// The planted weights: s N(0,1) values at uniform distinct positions of the m·d weights.
pub fn planted_weights(spec: &PlantedSpec) -> SparseVec {
    let md = spec.m * spec.d;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(rng::key(spec.seed, Stream::Planted));
    let positions = rand::seq::index::sample(&mut rng, md, spec.s.min(md));
    let mut pairs: Vec<(u32, f32)> = positions
        .into_iter()
        .map(|c| (c as u32, StandardNormal.sample(&mut rng)))
        .collect();
    pairs.sort_unstable_by_key(|p| p.0);
    SparseVec::from_pairs(md as u64, pairs).expect("distinct in-range positions")
}

/// Gaussian inputs, column-major, from the counter-based generator (parallel, order-free).
pub fn gaussian_inputs(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let key = rng::key(seed, Stream::Inputs);
    let mut xt = vec![0.0f32; n * d];
    // Columns 2i and 2i + 1 of a row share one Box–Muller draw: generated together.
    xt.par_chunks_mut(2 * n.max(1))
        .enumerate()
        .for_each(|(i2, cols)| {
            let (even, odd) = cols.split_at_mut(n.min(cols.len()));
            if odd.is_empty() {
                for (r, v) in even.iter_mut().enumerate() {
                    *v = rng::gauss(key, r as u64, 2 * i2 as u64);
                }
            } else {
                for (r, (e, o)) in even.iter_mut().zip(odd.iter_mut()).enumerate() {
                    (*e, *o) = rng::gauss_pair(key, r as u64, 2 * i2 as u64);
                }
            }
        });
    xt
}

/// Generates the problem; the targets are computed by `backend` through the same operator the
/// solver uses (teacher masks `1{X w_j > 0}` or the solver's random masks).
pub fn generate<B: Backend>(spec: &PlantedSpec, backend: &mut B) -> Result<Planted> {
    spec.validate()?;
    let xt = gaussian_inputs(spec.n, spec.d, spec.seed);
    let unlabeled = Arc::new(Data::from_columns(spec.n, spec.d, xt, vec![0.0; spec.n])?);
    let truth = planted_weights(spec);
    let gens = match spec.teacher {
        Teacher::Relu => Generators::Weights(truth.clone()),
        Teacher::Convex => Generators::Random { seed: spec.seed },
    };
    let op = Operator::new(unlabeled.clone(), spec.m, gens)?;
    let y = scalar::predict(backend, &op, &truth)?;
    let data = Arc::try_unwrap(unlabeled).unwrap_or_else(|a| (*a).clone());
    let data = Arc::new(data.with_targets(y)?);
    Ok(Planted {
        spec: *spec,
        data,
        truth,
    })
}

/// Scores of a recovery against the planted truth.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct Scores {
    pub psnr: f64,
    pub rel_error: f64,
    pub weight_error: f64,
    /// How recovered neurons were matched to planted ones for `weight_error`.
    pub weight_matching: metrics::Matching,
}

/// Evaluates `rec` on the training points and against the planted weights.
pub fn score<B: Backend>(planted: &Planted, rec: &Recovery, backend: &mut B) -> Result<Scores> {
    let op = Operator::new(planted.data.clone(), planted.spec.m, rec.generators())?;
    let yhat = scalar::predict(backend, &op, &rec.x)?;
    let y = planted.data.y();
    let (weight_error, weight_matching) = match planted.spec.teacher {
        Teacher::Convex => (
            metrics::weight_error_direct(&rec.x, &planted.truth),
            metrics::Matching::Direct,
        ),
        Teacher::Relu => metrics::weight_error_matched(&rec.x, &planted.truth, planted.spec.d),
    };
    Ok(Scores {
        psnr: metrics::psnr(y, &yhat),
        rel_error: metrics::rel_error(y, &yhat),
        weight_error,
        weight_matching,
    })
}

/// Generates, solves and scores one planted problem.
pub fn run<B: Backend>(
    spec: &PlantedSpec,
    config: &IhtConfig,
    mut backend: B,
    on_step: impl FnMut(&scalar::StepRecord),
) -> Result<(Planted, Recovery, Scores)> {
    let planted = generate(spec, &mut backend)?;
    let op = Operator::new(
        planted.data.clone(),
        spec.m,
        Generators::Random { seed: config.seed },
    )?;
    let mut solver = scalar::Iht::new(backend, op, config.clone())?;
    let rec = solver.on_step(on_step).solve()?;
    let mut backend = solver.into_backend();
    let scores = score(&planted, &rec, &mut backend)?;
    Ok((planted, rec, scores))
}

/// A planted vector-output problem: inputs (targets unused), targets `relu(X W1) W2` (n × k
/// row-major), and the planted factors W1 (index `j·d + i`) and W2 (index `j·k + c`).
#[derive(Clone, Debug)]
pub struct PlantedVector {
    pub data: Arc<Data>,
    pub targets: Vec<f32>,
    pub w1: SparseVec,
    pub w2: SparseVec,
}

/// The planted network `y = relu(X W1) W2` of `planted --k K` (SPEC §4), as the paper's code
/// plants it: `s/2` N(0, 1) weights in W1 (d × m) and in W2 (m × k).
pub fn generate_vector(spec: &PlantedSpec, k: usize) -> Result<PlantedVector> {
    spec.validate()?;
    if k == 0 {
        return Err(Error::invalid("k", k, "need at least one output"));
    }
    let (n, d, m) = (spec.n, spec.d, spec.m);
    let half = (spec.s / 2).max(1);
    let w1 = planted_weights(&PlantedSpec {
        s: half.min(m * d),
        ..*spec
    });
    let w2 = planted_weights(&PlantedSpec {
        d: k,
        s: half.min(m * k),
        seed: spec.seed.wrapping_add(1),
        ..*spec
    });
    let xt = gaussian_inputs(n, d, spec.seed);
    let mut y = vec![0.0f32; n * k];
    let mut z = vec![0.0f32; n];
    let w2d = w2.to_dense();
    for j in w1.neurons(d) {
        z.fill(0.0);
        let r = w1.range(j * d as u32, (j + 1) * d as u32);
        for (&c, &v) in w1.indices()[r.clone()].iter().zip(&w1.values()[r]) {
            let col = &xt[(c as usize % d) * n..(c as usize % d + 1) * n];
            for (zr, &x) in z.iter_mut().zip(col) {
                *zr += v * x;
            }
        }
        for (row, &zr) in z.iter().enumerate() {
            if zr > 0.0 {
                for c in 0..k {
                    y[row * k + c] += zr * w2d[j as usize * k + c];
                }
            }
        }
    }
    let data = Arc::new(Data::from_columns(n, d, xt, vec![0.0; n])?);
    Ok(PlantedVector {
        data,
        targets: y,
        w1,
        w2,
    })
}

/// A planted network of `layers ≥ 2` hidden layers (SPEC §4, as the paper's code builds it):
/// layer 0 is d × m, the others m × m, each with `s / layers` N(0, 1) weights at uniform
/// positions; `y = Σ_j relu(H_{L−1} W_{L−1})_j` with `H_{l+1} = relu(H_l W_l)`, `H_0 = X`.
/// Returns the data and the layers' weights (neuron-major, as the solver's iterate).
pub fn generate_deep(spec: &PlantedSpec, layers: usize) -> Result<(Arc<Data>, Vec<SparseVec>)> {
    spec.validate()?;
    if layers == 0 || spec.s < layers {
        return Err(Error::invalid(
            "layers",
            layers,
            format!("needs 1 ≤ layers ≤ s = {}", spec.s),
        ));
    }
    let xt = gaussian_inputs(spec.n, spec.d, spec.seed);
    let inputs = Arc::new(Data::from_columns(spec.n, spec.d, xt, vec![0.0; spec.n])?);
    let mut source: Arc<dyn RowSource> = Arc::new(InMemory(inputs.clone()));
    let mut weights = Vec::with_capacity(layers);
    for l in 0..layers {
        let d_in = if l == 0 { spec.d } else { spec.m };
        let layer_spec = PlantedSpec {
            d: d_in,
            s: (spec.s / layers).min(spec.m * d_in),
            seed: spec.seed.wrapping_add(1000 * l as u64),
            ..*spec
        };
        let w = planted_weights(&layer_spec);
        if l + 1 < layers {
            source = Arc::new(Hidden::new(
                source,
                spec.m,
                w.clone(),
                Generators::Weights(w.clone()),
            )?);
        }
        weights.push(w);
    }
    let last = source.whole().expect("in memory");
    let w = weights.last().expect("layers ≥ 1");
    let op = Operator::new(last, spec.m, Generators::Weights(w.clone()))?;
    let y = scalar::predict(&mut crate::cpu::CpuBackend::new(), &op, w)?;
    let data = Arc::try_unwrap(inputs).unwrap_or_else(|a| (*a).clone());
    Ok((Arc::new(data.with_targets(y)?), weights))
}

/// Generates a planted network of `layers` layers, fits it greedily layer by layer and scores the
/// fit on the training points (`weight_error` is reported for one layer only, `NaN` otherwise).
pub fn run_deep<B: Backend>(
    spec: &PlantedSpec,
    layers: usize,
    config: &IhtConfig,
    mut backend: B,
    on_step: impl FnMut(usize, &scalar::StepRecord),
) -> Result<(Arc<Data>, Deep, Scores)> {
    if layers == 1 {
        let planted = generate(spec, &mut backend)?;
        let data = planted.data.clone();
        let (deep, mut backend) = fit_layers(
            backend,
            Arc::new(InMemory(data.clone())),
            spec.m,
            config,
            1,
            on_step,
        )?;
        let scores = score(&planted, deep.last(), &mut backend)?;
        return Ok((data, deep, scores));
    }
    let (data, _) = generate_deep(spec, layers)?;
    let (deep, mut backend) = fit_layers(
        backend,
        Arc::new(InMemory(data.clone())),
        spec.m,
        config,
        layers,
        on_step,
    )?;
    let rec = deep.last();
    let yhat = scalar::predict_rows(
        &mut backend,
        deep.last_inputs.as_ref(),
        spec.m,
        &rec.generators(),
        &rec.x,
        data.n(),
    )?;
    let y = data.y();
    let scores = Scores {
        psnr: metrics::psnr(y, &yhat),
        rel_error: metrics::rel_error(y, &yhat),
        weight_error: f64::NAN,
        weight_matching: metrics::Matching::Direct,
    };
    Ok((data, deep, scores))
}
