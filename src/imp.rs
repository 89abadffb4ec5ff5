//! The IMP baseline (SPEC §5): a dense bias-free MLP (`Linear d→m, ReLU, [Linear m→m, ReLU]…,
//! Linear m→k`) trained with Adam, then pruned by global magnitude 10% of the remaining weights at
//! a time, survivors rewound to their initial values, and retrained, round after round, until
//! every requested budget s is met. The result for s is the first round whose kept count is ≤ s,
//! scored with that round's trained weights after pruning (as the reference does); optionally also
//! the network retrained once from the rewound init at that mask.
//!
//! Invariants: pruned weights are exactly zero at all times (gradients and weights are masked at
//! every step); every random draw (init, epoch shuffles) is a pure function of the seed, so the
//! same inputs and seed give the same weights bit for bit on the same machine. The trainer holds
//! the dense model — weights, gradients, two Adam moments, init copy and mask, six floats per
//! weight (the point of the comparison with IHT) — plus activations for one batch.

use crate::data::{check_finite, Data};
use crate::error::{Error, Result};
use crate::rng::{self, Stream};
use crate::vector::{residual, Loss};
use gemm::{gemm, Parallelism};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use std::ops::Range;

/// Xor-ed into the run seed's stream keys so that IMP's init and shuffles are not the IHT solvers'
/// draws from the same streams.
const SALT: u64 = 0x494D_5042_4153_454C;

/// Rows per block when predicting on a whole data set: bounds activation memory.
const PREDICT_ROWS: usize = 4096;

/// Settings of an IMP run.
#[derive(Clone, Debug)]
pub struct ImpConfig {
    /// Hidden layers L ≥ 1 (L = 1 is the two-layer network the IHT solvers fit).
    pub hidden_layers: usize,
    /// Hidden width.
    pub m: usize,
    /// Outputs.
    pub k: usize,
    /// Epochs per round (full-batch steps when `batch_size` is `None`).
    pub epochs: usize,
    pub batch_size: Option<usize>,
    pub seed: u64,
    /// Adam's learning rate.
    pub lr: f64,
    pub loss: Loss,
    /// Fraction of the remaining weights pruned per round.
    pub prune_fraction: f64,
    /// Also retrain once from the rewound init at each chosen mask.
    pub retrain: bool,
}

impl ImpConfig {
    /// One hidden layer, 15 full-batch epochs, seed 0, Adam lr 1e-3, pruning 10% per round.
    pub fn new(m: usize, k: usize, loss: Loss) -> Self {
        Self {
            hidden_layers: 1,
            m,
            k,
            epochs: 15,
            batch_size: None,
            seed: 0,
            lr: 1e-3,
            loss,
            prune_fraction: 0.1,
            retrain: false,
        }
    }

    /// Layer widths `[d, m, …, m, k]` for input dimension `d`.
    pub fn widths(&self, d: usize) -> Vec<usize> {
        let mut w = vec![d];
        w.extend(std::iter::repeat_n(self.m, self.hidden_layers));
        w.push(self.k);
        w
    }

    /// Checks every option against a data set of `n` rows.
    pub fn validate(&self, n: usize) -> Result<()> {
        if self.hidden_layers == 0 {
            return Err(Error::invalid(
                "layers",
                0,
                "need at least one hidden layer",
            ));
        }
        if self.m == 0 {
            return Err(Error::invalid("m", 0, "need at least one neuron"));
        }
        if self.k == 0 {
            return Err(Error::invalid("k", 0, "need at least one output"));
        }
        if self.k == 1 && self.loss == Loss::CrossEntropy {
            return Err(Error::invalid("k", 1, "cross-entropy needs k ≥ 2 classes"));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "must be at least 1"));
        }
        if let Some(b) = self.batch_size {
            if b == 0 || b > n {
                return Err(Error::invalid(
                    "batch-size",
                    b,
                    format!("must be in 1..={n}"),
                ));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("lr", self.lr, "must be positive and finite"));
        }
        if !(self.prune_fraction > 0.0 && self.prune_fraction < 1.0) {
            return Err(Error::invalid(
                "prune-fraction",
                self.prune_fraction,
                "must be in (0, 1)",
            ));
        }
        Ok(())
    }
}

/// A dense bias-free MLP. Layer `l` maps `widths[l]` inputs to `widths[l + 1]` outputs; its
/// weights are `out × in` row-major (PyTorch's `Linear.weight`), all layers back to back in one
/// vector. Every layer but the last is followed by a ReLU.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    widths: Vec<usize>,
    weights: Vec<f32>,
}

impl Mlp {
    /// Zero weights for the given widths (at least an input and an output width, all ≥ 1).
    pub fn zeros(widths: &[usize]) -> Result<Self> {
        if widths.len() < 2 {
            return Err(Error::invalid(
                "layers",
                widths.len(),
                "need at least 2 widths",
            ));
        }
        if let Some(l) = widths.iter().position(|&w| w == 0) {
            return Err(Error::invalid(
                "width",
                0,
                format!("layer width {l} is zero"),
            ));
        }
        let len = widths.windows(2).try_fold(0usize, |acc, p| {
            p[0].checked_mul(p[1]).and_then(|v| v.checked_add(acc))
        });
        let len = len.ok_or_else(|| Error::invalid("widths", format!("{widths:?}"), "overflow"))?;
        Ok(Self {
            widths: widths.to_vec(),
            weights: vec![0.0; len],
        })
    }

    /// PyTorch's default `Linear` init (Kaiming-uniform with a = √5, i.e. U(±1/√fan_in)), drawn
    /// from `seed`: weight `idx` of layer `l` is a pure function of `(seed, l, idx)`.
    pub fn init(widths: &[usize], seed: u64) -> Result<Self> {
        let mut mlp = Self::zeros(widths)?;
        let key = rng::key(seed, Stream::Init) ^ SALT;
        for (l, &fan_in) in widths[..mlp.layers()].iter().enumerate() {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let range = mlp.layer_range(l);
            for (idx, w) in mlp.weights[range].iter_mut().enumerate() {
                *w = bound * rng::symmetric(key, l as u64, idx as u64);
            }
        }
        Ok(mlp)
    }

    /// Layer widths `[d, m, …, m, k]`.
    pub fn widths(&self) -> &[usize] {
        &self.widths
    }
    /// Number of linear layers (hidden layers + 1).
    pub fn layers(&self) -> usize {
        self.widths.len() - 1
    }
    /// Where layer `l`'s weights lie in [`Mlp::weights`].
    pub fn layer_range(&self, l: usize) -> Range<usize> {
        let start: usize = self.widths[..=l].windows(2).map(|p| p[0] * p[1]).sum();
        start..start + self.widths[l] * self.widths[l + 1]
    }
    /// Layer `l`'s weights, `out × in` row-major.
    pub fn layer(&self, l: usize) -> &[f32] {
        &self.weights[self.layer_range(l)]
    }
    /// All weights, layer after layer.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }
    /// All weights, mutable (for tests and hand-made networks).
    pub fn weights_mut(&mut self) -> &mut [f32] {
        &mut self.weights
    }
    /// Number of weights.
    pub fn params(&self) -> usize {
        self.weights.len()
    }
    /// Number of nonzero weights.
    pub fn nonzeros(&self) -> usize {
        self.weights.iter().filter(|&&w| w != 0.0).count()
    }

    fn check_inputs(&self, data: &Data) -> Result<()> {
        Error::check_len("input dimension d", self.widths[0], data.d())
    }

    /// Outputs on `data` (n × k row-major), in blocks of rows so activations stay bounded.
    pub fn predict(&self, data: &Data) -> Result<Vec<f32>> {
        self.check_inputs(data)?;
        let (n, k) = (data.n(), self.widths[self.layers()]);
        let mut acts = Acts::new(&self.widths, n.min(PREDICT_ROWS));
        let mut out = Vec::with_capacity(n * k);
        for r0 in (0..n).step_by(acts.cap) {
            let rows = acts.cap.min(n - r0);
            acts.forward(self, View::inputs(data, r0), rows);
            out.extend_from_slice(&acts.out[..rows * k]);
        }
        Ok(out)
    }

    /// Mean loss on `data` against `targets` (n × k row-major).
    pub fn loss(&self, data: &Data, targets: &[f32], loss: Loss) -> Result<f64> {
        self.check_inputs(data)?;
        let k = self.widths[self.layers()];
        Error::check_len("targets (n·k)", data.n() * k, targets.len())?;
        let mut acts = Acts::new(&self.widths, data.n().min(PREDICT_ROWS));
        Ok(acts.evaluate(self, data, targets, loss))
    }

    /// Full-batch `(loss, ∂loss/∂weights)` on `data`, unmasked; exposed for gradient checks.
    #[doc(hidden)]
    pub fn loss_and_gradient(
        &self,
        data: &Data,
        targets: &[f32],
        loss: Loss,
    ) -> Result<(f64, Vec<f32>)> {
        self.check_inputs(data)?;
        let (n, k) = (data.n(), self.widths[self.layers()]);
        Error::check_len("targets (n·k)", n * k, targets.len())?;
        let mut acts = Acts::new(&self.widths, n);
        let mut grad = vec![0.0; self.params()];
        let value =
            acts.loss_and_gradient(self, View::inputs(data, 0), targets, n, loss, &mut grad);
        Ok((value, grad))
    }
}

/// Adam with PyTorch's semantics (`torch.optim.Adam`, no weight decay, bias-corrected), masked:
/// a weight whose mask entry is 0 gets a zero gradient and stays exactly zero.
#[derive(Clone, Debug)]
pub struct Adam {
    // Hyper-parameters are doubles, as Python floats are in PyTorch.
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    t: i32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    /// Zero moments for `len` weights; β = (0.9, 0.999), ε = 1e-8.
    pub fn new(len: usize, lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }

    /// Forgets the moments and the step count (a new round starts a fresh optimiser).
    pub fn reset(&mut self) {
        self.t = 0;
        self.m.fill(0.0);
        self.v.fill(0.0);
    }

    /// One step: `g ← g ∘ mask`, moment updates, `w ← (w − lr/bc1 · m / (√v/√bc2 + ε)) ∘ mask`.
    pub fn step(&mut self, w: &mut [f32], g: &mut [f32], mask: &[f32]) {
        assert!(w.len() == self.m.len() && g.len() == w.len() && mask.len() == w.len());
        self.t += 1;
        // PyTorch computes these scalars in double and applies them to float tensors.
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2 = 1.0 - self.beta2.powi(self.t);
        let step_size = (self.lr / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let one_minus_b1 = (1.0 - self.beta1) as f32;
        let one_minus_b2 = (1.0 - self.beta2) as f32;
        let (beta2, eps) = (self.beta2 as f32, self.eps as f32);
        let moments = self.m.iter_mut().zip(self.v.iter_mut());
        for (((wi, gi), &mi), (m, v)) in w.iter_mut().zip(g.iter_mut()).zip(mask).zip(moments) {
            *gi *= mi;
            // exp_avg.lerp_(grad, 1 − β1); exp_avg_sq.mul_(β2).addcmul_(grad, grad, 1 − β2).
            *m += one_minus_b1 * (*gi - *m);
            *v = *v * beta2 + one_minus_b2 * *gi * *gi;
            let denom = v.sqrt() / bc2_sqrt + eps;
            *wi = (*wi + -step_size * (*m / denom)) * mi;
        }
    }
}

/// A strided matrix inside a slice: element (r, c) at `data[r·rs + c·cs]`.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// Row-major with `cols` columns.
    fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// Column-major with columns `stride` apart.
    fn cols(data: &'a [f32], stride: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: stride,
        }
    }
    /// The rows from `r0` on of a data set's X, read in place.
    fn inputs(data: &'a Data, r0: usize) -> Self {
        Self::cols(&data.xt()[r0..], data.n())
    }
    /// Whether every element of a `rows × cols` block lies inside the slice.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = lhs · rhs` with dst m × n row-major, lhs m × k, rhs k × n. Checks that every element lies
/// inside its slice, so the GEMM call is sound.
fn matmul((m, n, k): (usize, usize, usize), dst: &mut [f32], lhs: View, rhs: View) {
    assert!(m * n <= dst.len(), "matmul: dst out of bounds");
    assert!(
        lhs.holds(m, k) && rhs.holds(k, n),
        "matmul: operand out of bounds"
    );
    // SAFETY: the asserts above keep every addressed element inside its slice; dst is a unique
    // borrow, so it aliases neither operand.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        );
    }
}

/// Activation buffers for up to `cap` rows, allocated once: each hidden layer's ReLU output and
/// the network output (row-major), and two backward deltas.
struct Acts {
    cap: usize,
    hidden: Vec<Vec<f32>>,
    out: Vec<f32>,
    delta: Vec<f32>,
    spare: Vec<f32>,
}

impl Acts {
    fn new(widths: &[usize], cap: usize) -> Self {
        let inner = &widths[1..widths.len() - 1];
        let widest = widths[1..].iter().copied().max().unwrap_or(1);
        Self {
            cap,
            hidden: inner.iter().map(|&w| vec![0.0; cap * w]).collect(),
            out: vec![0.0; cap * widths[widths.len() - 1]],
            delta: vec![0.0; cap * widest],
            spare: vec![0.0; cap * widest],
        }
    }

    /// The input of layer `l` (`x` or the previous hidden layer).
    fn layer_input<'a>(hidden: &'a [Vec<f32>], x: View<'a>, l: usize, fan_in: usize) -> View<'a> {
        if l == 0 {
            x
        } else {
            View::rows(&hidden[l - 1], fan_in)
        }
    }

    /// `H_{l+1} = relu(H_l W_lᵀ)` layer by layer; the last layer has no ReLU and writes `out`.
    fn forward(&mut self, mlp: &Mlp, x: View, rows: usize) {
        let layers = mlp.layers();
        for l in 0..layers {
            let (fan_in, fan_out) = (mlp.widths[l], mlp.widths[l + 1]);
            let (before, after) = self.hidden.split_at_mut(l);
            let input = Self::layer_input(before, x, l, fan_in);
            let dst: &mut [f32] = if l + 1 < layers {
                &mut after[0]
            } else {
                &mut self.out
            };
            // Wᵀ is in × out with (i, o) at w[o·in + i].
            let wt = View::cols(mlp.layer(l), fan_in);
            matmul((rows, fan_out, fan_in), dst, input, wt);
            if l + 1 < layers {
                for v in &mut dst[..rows * fan_out] {
                    *v = v.max(0.0);
                }
            }
        }
    }

    /// Chain rule from `delta` = ∂loss/∂Ŷ (rows × k) after [`Acts::forward`] on the same input:
    /// `G_l = Δ_lᵀ H_l`, `Δ_{l−1} = (Δ_l W_l) ∘ 1{H_l > 0}`; the input's gradient is never formed.
    fn backward(&mut self, mlp: &Mlp, x: View, rows: usize, grad: &mut [f32]) {
        for l in (0..mlp.layers()).rev() {
            let (fan_in, fan_out) = (mlp.widths[l], mlp.widths[l + 1]);
            let range = mlp.layer_range(l);
            let input = Self::layer_input(&self.hidden, x, l, fan_in);
            // Δᵀ is out × rows with (o, r) at delta[r·out + o].
            let delta_t = View::cols(&self.delta, fan_out);
            matmul(
                (fan_out, fan_in, rows),
                &mut grad[range.clone()],
                delta_t,
                input,
            );
            if l > 0 {
                let (delta, w) = (
                    View::rows(&self.delta, fan_out),
                    View::rows(&mlp.weights[range], fan_in),
                );
                matmul((rows, fan_in, fan_out), &mut self.spare, delta, w);
                let h = &self.hidden[l - 1][..rows * fan_in];
                for (s, &hv) in self.spare[..rows * fan_in].iter_mut().zip(h) {
                    if hv <= 0.0 {
                        *s = 0.0;
                    }
                }
                std::mem::swap(&mut self.delta, &mut self.spare);
            }
        }
    }

    /// Forward, residual, backward on one batch; returns the batch's mean loss.
    fn loss_and_gradient(
        &mut self,
        mlp: &Mlp,
        x: View,
        y: &[f32],
        rows: usize,
        loss: Loss,
        grad: &mut [f32],
    ) -> f64 {
        let k = mlp.widths[mlp.layers()];
        self.forward(mlp, x, rows);
        let (r, value) = residual(&self.out[..rows * k], &y[..rows * k], k, loss);
        self.delta[..rows * k].copy_from_slice(&r);
        self.backward(mlp, x, rows, grad);
        value
    }

    /// Mean loss over a whole data set, `cap` rows at a time.
    fn evaluate(&mut self, mlp: &Mlp, data: &Data, targets: &[f32], loss: Loss) -> f64 {
        let (n, k) = (data.n(), mlp.widths[mlp.layers()]);
        let mut total = 0.0;
        for r0 in (0..n).step_by(self.cap) {
            let rows = self.cap.min(n - r0);
            self.forward(mlp, View::inputs(data, r0), rows);
            let y = &targets[r0 * k..(r0 + rows) * k];
            total += residual(&self.out[..rows * k], y, k, loss).1 * rows as f64;
        }
        total / n as f64
    }
}

/// Number of weights one round prunes from `remaining`: `round(fraction · remaining)` with ties
/// to even, as `torch.nn.utils.prune` rounds an amount, but at least 1 so that rounds progress.
pub fn prune_count(remaining: usize, fraction: f64) -> usize {
    let p = (fraction * remaining as f64).round_ties_even() as usize;
    p.max(1).min(remaining)
}

/// Zeroes the mask entries and weights of the `count` surviving weights of smallest magnitude
/// (ties go to the lower index). `scratch` must hold at least the number of survivors.
fn prune(w: &mut [f32], mask: &mut [f32], count: usize, scratch: &mut [f32]) {
    if count == 0 {
        return;
    }
    let mut live = 0;
    for (&wi, &mi) in w.iter().zip(mask.iter()) {
        if mi != 0.0 {
            scratch[live] = wi.abs();
            live += 1;
        }
    }
    let (_, &mut threshold, _) = scratch[..live].select_nth_unstable_by(count - 1, f32::total_cmp);
    let below = scratch[..live]
        .iter()
        .filter(|a| a.total_cmp(&threshold).is_lt())
        .count();
    let mut ties = count - below;
    for (wi, mi) in w.iter_mut().zip(mask.iter_mut()) {
        if *mi == 0.0 {
            continue;
        }
        let order = wi.abs().total_cmp(&threshold);
        if order.is_lt() || (order.is_eq() && ties > 0) {
            if order.is_eq() {
                ties -= 1;
            }
            *mi = 0.0;
            *wi = 0.0;
        }
    }
}

/// What one round did: it trained `trained` weights (the rest pruned earlier), then pruned down
/// to `kept` (`None` for a final round run only to retrain a chosen mask).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RoundReport {
    pub round: usize,
    pub trained: usize,
    pub kept: Option<usize>,
    /// Mean minibatch loss of each epoch (taken before each step, as training loops log it).
    pub epoch_losses: Vec<f64>,
    /// Loss of the trained network on the whole training set, before pruning.
    pub train_loss: f64,
}

/// The answer for one budget s.
#[derive(Clone, Debug)]
pub struct BudgetPick {
    pub budget: usize,
    /// The first round whose kept count is ≤ s.
    pub round: usize,
    /// Weights that round kept (the mask's count; the model may hold a few exact zeros more).
    pub kept: usize,
    /// That round's trained weights after its pruning (how the reference scores IMP).
    pub pruned: Mlp,
    /// Retrained from the rewound init at that mask, when asked for.
    pub retrained: Option<Mlp>,
}

/// Everything an IMP run produced.
#[derive(Clone, Debug)]
pub struct ImpResult {
    /// The dense network after round 0's training: what shows the baseline itself is strong.
    pub dense: Mlp,
    /// One report per round, in order.
    pub rounds: Vec<RoundReport>,
    /// One pick per budget, in the order the budgets were given.
    pub picks: Vec<BudgetPick>,
}

/// The dense model's training state: weights, gradient, Adam moments, init, mask, one batch of
/// activations and the gathered batch.
struct Trainer<'a> {
    data: &'a Data,
    targets: &'a [f32],
    config: &'a ImpConfig,
    model: Mlp,
    init: Vec<f32>,
    mask: Vec<f32>,
    grad: Vec<f32>,
    adam: Adam,
    acts: Acts,
    perm: Vec<usize>,
    batch_x: Vec<f32>,
    batch_y: Vec<f32>,
}

impl<'a> Trainer<'a> {
    fn new(data: &'a Data, targets: &'a [f32], config: &'a ImpConfig) -> Result<Self> {
        let model = Mlp::init(&config.widths(data.d()), config.seed)?;
        let (len, cap) = (model.params(), config.batch_size.unwrap_or(data.n()));
        let batch = config.batch_size.unwrap_or(0);
        Ok(Self {
            data,
            targets,
            config,
            init: model.weights.clone(),
            mask: vec![1.0; len],
            grad: vec![0.0; len],
            adam: Adam::new(len, config.lr),
            acts: Acts::new(&model.widths, cap),
            perm: Vec::new(),
            batch_x: vec![0.0; batch * data.d()],
            batch_y: vec![0.0; batch * config.k],
            model,
        })
    }

    /// Rewinds to the init under the current mask and trains `epochs` epochs with a fresh Adam;
    /// returns each epoch's mean loss.
    fn train(&mut self, round: usize) -> Result<Vec<f64>> {
        for ((w, &w0), &mi) in self
            .model
            .weights
            .iter_mut()
            .zip(&self.init)
            .zip(&self.mask)
        {
            *w = w0 * mi;
        }
        self.adam.reset();
        let (n, d, k) = (self.data.n(), self.data.d(), self.config.k);
        let shuffle_key = rng::key(self.config.seed, Stream::Shuffle) ^ SALT;
        let mut losses = Vec::with_capacity(self.config.epochs);
        for epoch in 0..self.config.epochs {
            let mut total = 0.0;
            match self.config.batch_size {
                None => total += self.step(n, false) * n as f64,
                Some(b) => {
                    let key = rng::bits(shuffle_key, round as u64, epoch as u64);
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(key);
                    self.perm.clear();
                    self.perm.extend(0..n);
                    self.perm.shuffle(&mut rng);
                    for start in (0..n).step_by(b) {
                        let rows = b.min(n - start);
                        // Row order within a batch changes only rounding; ascending rows make
                        // the gather from column-major X a forward sweep the prefetcher follows
                        // (random order made it cost as much as the GEMMs on MNIST shapes).
                        let batch = &mut self.perm[start..start + rows];
                        batch.sort_unstable();
                        let (batch, data) = (&*batch, self.data);
                        self.batch_x[..rows * d]
                            .par_chunks_mut(rows)
                            .enumerate()
                            .for_each(|(i, dst)| {
                                let col = data.column(i);
                                for (v, &r) in dst.iter_mut().zip(batch) {
                                    *v = col[r];
                                }
                            });
                        for (dst, &r) in self.batch_y.chunks_mut(k).zip(batch) {
                            dst.copy_from_slice(&self.targets[r * k..(r + 1) * k]);
                        }
                        total += self.step(rows, true) * rows as f64;
                    }
                }
            }
            let mean = total / n as f64;
            if !mean.is_finite() {
                return Err(Error::invalid(
                    "lr",
                    self.config.lr,
                    format!("training diverged (non-finite loss in round {round}, epoch {epoch})"),
                ));
            }
            losses.push(mean);
        }
        Ok(losses)
    }

    /// One Adam step on `rows` rows: the gathered batch, or the whole data set. Returns the loss
    /// before the step.
    fn step(&mut self, rows: usize, gathered: bool) -> f64 {
        let (x, y) = if gathered {
            (View::cols(&self.batch_x, rows), &self.batch_y[..])
        } else {
            (View::inputs(self.data, 0), self.targets)
        };
        let (model, loss) = (&mut self.model, self.config.loss);
        let value = self
            .acts
            .loss_and_gradient(model, x, y, rows, loss, &mut self.grad);
        self.adam
            .step(&mut model.weights, &mut self.grad, &self.mask);
        value
    }
}

/// Runs IMP on `data` (its X; its `y` is unused) against `targets` (n × k row-major) until every
/// budget in `budgets` is met, calling `on_round` after each round.
pub fn imp(
    data: &Data,
    targets: &[f32],
    config: &ImpConfig,
    budgets: &[usize],
    mut on_round: impl FnMut(&RoundReport),
) -> Result<ImpResult> {
    config.validate(data.n())?;
    Error::check_len("targets (n·k)", data.n() * config.k, targets.len())?;
    check_finite("targets", targets)?;
    if budgets.is_empty() {
        return Err(Error::invalid(
            "budgets",
            "[]",
            "need at least one target s",
        ));
    }
    if budgets.contains(&0) {
        return Err(Error::invalid("s", 0, "every budget must be at least 1"));
    }
    let mut t = Trainer::new(data, targets, config)?;
    let mut kept = t.model.params();
    let mut picks: Vec<Option<BudgetPick>> = vec![None; budgets.len()];
    let mut rounds = Vec::new();
    let mut dense = None;
    for round in 0.. {
        let trained = kept;
        let epoch_losses = t.train(round)?;
        let train_loss = t.acts.evaluate(&t.model, data, targets, config.loss);
        if round == 0 {
            dense = Some(t.model.clone());
        }
        // Retraining at the mask round r pruned to is exactly round r + 1's training.
        if config.retrain {
            for p in picks.iter_mut().flatten() {
                if p.round + 1 == round {
                    p.retrained = Some(t.model.clone());
                }
            }
        }
        let all_picked = picks.iter().all(Option::is_some);
        let pruned_to = (!all_picked).then(|| {
            let count = prune_count(kept, config.prune_fraction);
            prune(&mut t.model.weights, &mut t.mask, count, &mut t.grad);
            kept -= count;
            for (slot, &s) in picks.iter_mut().zip(budgets) {
                if slot.is_none() && kept <= s {
                    *slot = Some(BudgetPick {
                        budget: s,
                        round,
                        kept,
                        pruned: t.model.clone(),
                        retrained: None,
                    });
                }
            }
            kept
        });
        let report = RoundReport {
            round,
            trained,
            kept: pruned_to,
            epoch_losses,
            train_loss,
        };
        on_round(&report);
        rounds.push(report);
        if all_picked || (!config.retrain && picks.iter().all(Option::is_some)) {
            break;
        }
    }
    Ok(ImpResult {
        dense: dense.expect("round 0 always runs"),
        rounds,
        picks: picks
            .into_iter()
            .map(|p| p.expect("loop ends once all are picked"))
            .collect(),
    })
}
