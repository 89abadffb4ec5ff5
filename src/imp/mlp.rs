//! The dense bias-free MLP IMP trains ([`Mlp`]): PyTorch's `Linear` layout and init, prediction
//! and loss on a whole data set, and the batched forward and backward passes behind training.
//!
//! Invariants: all products go through one bounds-checked GEMM wrapper (`matmul`), which asserts
//! that every addressed element lies inside its slice before the unsafe call; activation buffers
//! (`Acts`) are allocated once for a fixed row capacity and reused, so prediction never holds more
//! than `PREDICT_ROWS` rows of activations; a weight's init is a pure function of
//! `(seed, layer, index)`.

use super::config::SALT;
use crate::error::{Error, Result};
use crate::problem::data::Data;
use crate::problem::dense::{matmul, View};
use crate::problem::model::{residual, Loss};
use crate::problem::rng::{self, Stream};
use std::ops::Range;

/// Rows per block when predicting on a whole data set: bounds activation memory.
const PREDICT_ROWS: usize = 4096;

/// A dense bias-free MLP. Layer `l` maps `widths[l]` inputs to `widths[l + 1]` outputs; its
/// weights are `out × in` row-major (PyTorch's `Linear.weight`), all layers back to back in one
/// vector. Every layer but the last is followed by a ReLU.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    pub(super) widths: Vec<usize>,
    pub(super) weights: Vec<f32>,
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

/// Activation buffers for up to `cap` rows, allocated once: each hidden layer's ReLU output and
/// the network output (row-major), and two backward deltas.
pub(super) struct Acts {
    cap: usize,
    hidden: Vec<Vec<f32>>,
    out: Vec<f32>,
    delta: Vec<f32>,
    spare: Vec<f32>,
}

impl Acts {
    pub(super) fn new(widths: &[usize], cap: usize) -> Self {
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
    pub(super) fn loss_and_gradient(
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
    pub(super) fn evaluate(&mut self, mlp: &Mlp, data: &Data, targets: &[f32], loss: Loss) -> f64 {
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
