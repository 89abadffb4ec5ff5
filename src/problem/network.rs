//! The fitted network as a PyTorch user builds it: bias-free dense layers over the live neurons
//! only, `Linear(d, m₀) → ReLU → Linear(m₀, m₁) → ReLU → … → Linear(m_last, k)`.
//!
//! The solvers hold a fused sparse vector (`w_j = u_j v_j`, index `j·d + i`) and generators; a
//! [`Network`] is the same function written densely. Neurons without weights are dropped (their
//! units are identically zero), and so are the next layer's columns that read them, so the widths
//! are the live counts. The scalar model `Σ_j relu(x·w_j)` ends in an output layer of ones (−1 for a signed neuron of the default solver); the
//! vector model's output layer is W2 (`k × m_live`). A layer whose units are gated by vectors
//! other than its own weights (the convex mode's fixed random masks) computes
//! `1{x·g_j > 0} · x·w_j` and carries its gates: that is a gated network, not a plain MLP.
//!
//! Prediction runs in f64 ([`Network::predict_f64`]), so a row's output does not depend on the
//! rows predicted with it.
//!
//! Invariants: every layer's `weight` (and `gate`) is `out × inp` row-major (PyTorch's
//! `Linear.weight`), layer `l + 1` reads `layer l`'s `out` units, the output layer is never gated,
//! and [`Network::validate`] checks all of it plus finiteness, so a loaded file that passes it can
//! be evaluated without further checks.

use crate::error::{Error, Result};
use crate::problem::dense::{matmul, View};
use crate::problem::operator::Generators;
use crate::problem::rng;
use crate::problem::sparse::SparseVec;

/// Rows per block of [`Network::predict`]: bounds the activations held at once.
const PREDICT_ROWS: usize = 4096;

/// One bias-free dense layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// Units (rows of `weight`).
    pub out: usize,
    /// Inputs (columns of `weight`).
    pub inp: usize,
    /// `out × inp` row-major.
    pub weight: Vec<f32>,
    /// Gate vectors, `out × inp` row-major: unit j is `1{x·g_j > 0} · x·w_j` instead of
    /// `relu(x·w_j)`. `None`: a plain ReLU layer.
    pub gate: Option<Vec<f32>>,
}

/// A fitted network: hidden layers, each followed by its ReLU (or gate), then a linear output.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub hidden: Vec<Layer>,
    pub output: Layer,
}

/// A hidden layer of `m` neurons from fused weights `w` (length `m·d_in`) under generators `gens`:
/// one row per neuron holding weights, restricted to the input columns `inputs` (the previous
/// layer's live units, in order; `None`: all `d_in`). Returns the layer and its live neurons.
pub fn hidden_layer(
    w: &SparseVec,
    gens: &Generators,
    m: usize,
    d_in: usize,
    inputs: Option<&[u32]>,
) -> Result<(Layer, Vec<u32>)> {
    Error::check_len("fused weights (m·d)", m * d_in, w.len() as usize)?;
    // Column of each original input in the compact layer (None: a dead unit upstream, always 0).
    let columns: Vec<Option<usize>> = match inputs {
        None => (0..d_in).map(Some).collect(),
        Some(live) => {
            let mut col = vec![None; d_in];
            for (c, &i) in live.iter().enumerate() {
                if let Some(slot) = col.get_mut(i as usize) {
                    *slot = Some(c);
                }
            }
            col
        }
    };
    let inp = inputs.map_or(d_in, |l| l.len());
    let live = w.neurons(d_in);
    let mut weight = vec![0.0f32; live.len() * inp];
    let mut row = 0;
    for (&c, &v) in w.indices().iter().zip(w.values()) {
        let (j, i) = (c as usize / d_in, c as usize % d_in);
        while live[row] as usize != j {
            row += 1;
        }
        if let Some(col) = columns[i] {
            weight[row * inp + col] = v;
        }
    }
    let gate = match gens {
        Generators::Weights(g) if g == w => None,
        Generators::Weights(g) => {
            let mut gate = vec![0.0f32; live.len() * inp];
            for (&c, &v) in g.indices().iter().zip(g.values()) {
                let (j, i) = (c as usize / d_in, c as usize % d_in);
                if let (Ok(r), Some(col)) = (live.binary_search(&(j as u32)), columns[i]) {
                    gate[r * inp + col] = v;
                }
            }
            Some(gate)
        }
        Generators::Random { seed } => {
            let key = Generators::random_key(*seed);
            let mut gate = vec![0.0f32; live.len() * inp];
            for (r, &j) in live.iter().enumerate() {
                for (i, col) in columns.iter().enumerate() {
                    if let Some(col) = col {
                        gate[r * inp + col] = rng::gauss(key, j as u64, i as u64);
                    }
                }
            }
            Some(gate)
        }
    };
    let layer = Layer {
        out: live.len(),
        inp,
        weight,
        gate,
    };
    Ok((layer, live))
}

impl Network {
    /// Input dimension.
    pub fn d(&self) -> usize {
        self.hidden.first().map_or(self.output.inp, |l| l.inp)
    }

    /// Outputs per row.
    pub fn k(&self) -> usize {
        self.output.out
    }

    /// Whether any layer is gated (not a plain MLP).
    pub fn gated(&self) -> bool {
        self.hidden.iter().any(|l| l.gate.is_some())
    }

    /// Nonzero weights of the hidden layers (the output layer of the scalar model is ±1).
    pub fn nnz(&self) -> usize {
        self.hidden
            .iter()
            .map(|l| l.weight.iter().filter(|&&v| v != 0.0).count())
            .sum()
    }

    /// Checks the shapes chain, the buffers match them, the output is not gated, and every value
    /// is finite; `what` names the network in errors (e.g. the file it came from).
    pub fn validate(&self, what: &str) -> Result<()> {
        let bad = |why: String| Error::Format {
            path: what.to_string(),
            why,
        };
        let mut inp = self.d();
        for (l, layer) in self.hidden.iter().chain([&self.output]).enumerate() {
            if layer.inp != inp {
                return Err(bad(format!(
                    "layer {l} reads {} inputs where the previous layer gives {inp}",
                    layer.inp
                )));
            }
            let len = layer.out.checked_mul(layer.inp);
            for (name, buf) in [
                ("weight", Some(&layer.weight)),
                ("gate", layer.gate.as_ref()),
            ] {
                let Some(buf) = buf else { continue };
                if Some(buf.len()) != len {
                    return Err(bad(format!(
                        "layer {l} {name} has {} values for {} × {}",
                        buf.len(),
                        layer.out,
                        layer.inp
                    )));
                }
                if let Some(i) = buf.iter().position(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "layer {l} {name} holds {} at index {i}",
                        buf[i]
                    )));
                }
            }
            inp = layer.out;
        }
        if self.output.gate.is_some() {
            return Err(bad("the output layer cannot be gated".into()));
        }
        if self.d() == 0 || self.k() == 0 {
            return Err(bad(format!(
                "a network needs inputs and outputs (d = {}, k = {})",
                self.d(),
                self.k()
            )));
        }
        Ok(())
    }

    /// Outputs (`n × k` row-major) for `n` rows of inputs `x` (`n × d`, any strides), rounded
    /// to f32 from [`Network::predict_f64`].
    pub fn predict(&self, x: View, n: usize) -> Vec<f32> {
        self.predict_f64(x, n)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }

    /// Outputs in f64: every product in f64 through the GEMM, in blocks of rows. A row's output
    /// does not depend on the other rows of its block beyond f64 rounding (the f32 GEMM's
    /// kernels sum in an order that depends on the block's height), so predicting a subset of
    /// rows gives the same values.
    pub fn predict_f64(&self, x: View, n: usize) -> Vec<f64> {
        let k = self.k();
        let wide = |v: &[f32]| -> Vec<f64> { v.iter().map(|&a| a as f64).collect() };
        let weights: Vec<(Vec<f64>, Option<Vec<f64>>)> = self
            .hidden
            .iter()
            .map(|l| (wide(&l.weight), l.gate.as_deref().map(wide)))
            .collect();
        let output = wide(&self.output.weight);
        let mut out = vec![0.0f64; n * k];
        let widest = self.hidden.iter().map(|l| l.out).max().unwrap_or(0);
        let d = self.d();
        let mut input = vec![0.0f64; PREDICT_ROWS * d];
        let (mut src, mut next) = (
            vec![0.0f64; PREDICT_ROWS * widest],
            vec![0.0f64; PREDICT_ROWS * widest],
        );
        let mut gates = vec![0.0f64; PREDICT_ROWS * widest];
        for (block, dst) in out.chunks_mut(PREDICT_ROWS * k).enumerate() {
            let rows = dst.len() / k;
            let r0 = block * PREDICT_ROWS;
            for r in 0..rows {
                for i in 0..d {
                    input[r * d + i] = x.at(r0 + r, i) as f64;
                }
            }
            // Width of the units in `src` (None: the input block itself).
            let mut width: Option<usize> = None;
            for (layer, (w, g)) in self.hidden.iter().zip(&weights) {
                let cur = match width {
                    None => View::rows(&input[..rows * d], d),
                    Some(wd) => View::rows(&src[..rows * wd], wd),
                };
                let h = &mut next[..rows * layer.out];
                product(h, cur, rows, layer, w);
                match g {
                    None => h.iter_mut().for_each(|v| *v = v.max(0.0)),
                    Some(g) => {
                        let gz = &mut gates[..rows * layer.out];
                        product(gz, cur, rows, layer, g);
                        for (v, &z) in h.iter_mut().zip(gz.iter()) {
                            if z <= 0.0 {
                                *v = 0.0;
                            }
                        }
                    }
                }
                std::mem::swap(&mut src, &mut next);
                width = Some(layer.out);
            }
            let cur = match width {
                None => View::rows(&input[..rows * d], d),
                Some(wd) => View::rows(&src[..rows * wd], wd),
            };
            product(dst, cur, rows, &self.output, &output);
        }
        out
    }
}

/// `dst = input · Wᵀ` (`rows × out`) for a layer's `out × inp` matrix `w`.
fn product(dst: &mut [f64], input: View<f64>, rows: usize, layer: &Layer, w: &[f64]) {
    if layer.inp == 0 || rows == 0 || layer.out == 0 {
        dst.fill(0.0);
        return;
    }
    matmul(
        (rows, layer.out, layer.inp),
        dst,
        input,
        View::cols(w, layer.inp),
    );
}
