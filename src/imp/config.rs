//! Settings of an IMP run ([`ImpConfig`]) and their validation against a data set, plus the salt
//! that keeps IMP's random streams apart from the IHT solvers'.
//!
//! Invariants: [`ImpConfig::validate`] rejects every option the trainer could not honour (no hidden
//! layer, zero widths, a batch larger than the data, a non-positive learning rate, a pruning
//! fraction outside (0, 1)) before any weight is allocated.

use crate::error::{Error, Result};
use crate::problem::model::Loss;

/// Xor-ed into the run seed's stream keys so that IMP's init and shuffles are not the IHT solvers'
/// draws from the same streams.
pub(super) const SALT: u64 = 0x494D_5042_4153_454C;

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
