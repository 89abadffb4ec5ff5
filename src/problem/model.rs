//! The model types the engines and the solvers share (SPEC §3): the loss and selection rule of
//! the vector-output model, the dense per-neuron weights of a set of live neurons ([`Blocks`]),
//! what one chain-rule step returns ([`VectorStep`]), and the host-side helpers every engine and
//! baseline uses the same way: the loss residual and the per-row argmax. Pure functions of their
//! inputs; nothing here knows an engine or a solver.

use crate::error::{Error, Result};

/// Training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// `(1/2n)‖Ŷ − Y‖²`.
    Mse,
    /// Softmax cross-entropy against one-hot rows of Y.
    CrossEntropy,
}

/// How the s kept entries are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Select {
    /// Largest count-sketch estimates of the cumulative updates (the paper's code).
    Sketch,
    /// Largest magnitudes.
    Magnitude,
}

/// The vector-output model's weights of a set of neurons, dense per neuron.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocks {
    /// The neurons, sorted.
    pub live: Vec<u32>,
    /// `w1[jj·d + i]`, `w2[jj·k + c]` for neuron `live[jj]`.
    pub w1: Vec<f32>,
    pub w2: Vec<f32>,
}

impl Blocks {
    /// Checks the block lengths against `live`, d and k.
    pub fn check(&self, d: usize, k: usize) -> Result<()> {
        Error::check_len("W1 blocks (t·d)", self.live.len() * d, self.w1.len())?;
        Error::check_len("W2 blocks (t·k)", self.live.len() * k, self.w2.len())
    }

    /// Checks that `self` covers the same neurons as `other`, with valid lengths.
    pub fn check_same_neurons(&self, other: &Blocks, d: usize, k: usize) -> Result<()> {
        self.check(d, k)?;
        if self.live != other.live {
            return Err(Error::invalid(
                "blocks",
                self.live.len(),
                "the gradient blocks must cover the forward blocks' neurons",
            ));
        }
        Ok(())
    }
}

/// What one step's chain rule returns: the batch loss at the current weights and the candidates
/// `W − α G` (same layout as [`Blocks`]).
#[derive(Clone, Debug)]
pub struct VectorStep {
    pub loss: f64,
    pub w1: Vec<f32>,
    pub w2: Vec<f32>,
}

/// `(R, loss)`: MSE `R = (Ŷ − Y)/n`, loss `‖Ŷ − Y‖²/2n`; cross-entropy `R = (softmax(Ŷ) − Y)/n`
/// with the max subtracted per row, loss the mean cross-entropy.
pub fn residual(yhat: &[f32], y: &[f32], k: usize, loss: Loss) -> (Vec<f32>, f64) {
    let n = (y.len() / k).max(1);
    let mut r = vec![0.0f32; y.len()];
    let mut total = 0.0f64;
    for ((rr, yh), yy) in r.chunks_mut(k).zip(yhat.chunks(k)).zip(y.chunks(k)) {
        match loss {
            Loss::Mse => {
                for c in 0..k {
                    let e = yh[c] - yy[c];
                    rr[c] = e / n as f32;
                    total += 0.5 * (e as f64) * (e as f64);
                }
            }
            Loss::CrossEntropy => {
                let max = yh.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let exps: Vec<f64> = yh.iter().map(|&v| ((v - max) as f64).exp()).collect();
                let sum: f64 = exps.iter().sum();
                for c in 0..k {
                    let p = exps[c] / sum;
                    rr[c] = ((p - yy[c] as f64) / n as f64) as f32;
                    if yy[c] > 0.0 {
                        total -= yy[c] as f64 * p.max(1e-300).ln();
                    }
                }
            }
        }
    }
    (r, total / n as f64)
}

/// Index of the largest output per row.
pub fn argmax_rows(yhat: &[f32], k: usize) -> Vec<usize> {
    yhat.chunks(k)
        .map(|row| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |p| p.0)
        })
        .collect()
}
