//! What the scalar and the vector solver share about the course of a run (SPEC §1, §3): the checks
//! of width, budget-independent schedule settings and batch size; which generators a global step
//! uses; which rows a minibatch step sees; and the generators that define the fitted model.
//!
//! Invariants both solvers rely on: a step's rows and generators are pure functions of
//! (seed, step, mode, n, batch size) and of the iterate, never of earlier calls, so a resumed run
//! sees the same batches as an uninterrupted one. Epoch `e` visits the rows in the order of a
//! ChaCha8 shuffle keyed by `key(seed, Shuffle) ^ e`, in consecutive slices of `batch_size` (the
//! last one short). Sequential-convex runs use the random generators while the global batch
//! counter `t ≤ batches_per_epoch` (steps 0 and 1 in full batch; epoch 0 and the first batch of
//! epoch 1 with minibatches; through step `warmup` when one is set), then `h = w`.

use crate::error::{Error, Result};
use crate::problem::operator::{Generators, Mode};
use crate::problem::rng::{self, Stream};
use crate::problem::sparse::SparseVec;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Batches per epoch: 1 in full batch, else `ceil(n / batch_size)`.
pub fn batches_per_epoch(n: usize, batch_size: Option<usize>) -> usize {
    batch_size.map_or(1, |b| n.div_ceil(b))
}

/// Checks a width of `m` neurons whose iterate has `len` entries: at least one neuron, and an
/// index space that fits the engines' 32-bit indices. Returns `len`.
pub fn check_width(m: usize, len: u128) -> Result<u64> {
    if m == 0 {
        return Err(Error::invalid("m", m, "need at least one neuron"));
    }
    if len >= u32::MAX as u128 {
        return Err(Error::TooLarge(len));
    }
    Ok(len as u64)
}

/// Checks the length of a run (`steps` under the name `name`, at least 1) and a batch size in
/// `1..=n`.
pub fn check_schedule(
    name: &'static str,
    steps: usize,
    batch_size: Option<usize>,
    n: usize,
) -> Result<()> {
    if steps == 0 {
        return Err(Error::invalid(name, steps, "must be at least 1"));
    }
    if let Some(b) = batch_size {
        if b == 0 || b > n {
            return Err(Error::invalid(
                "batch-size",
                b,
                format!("must be in 1..={n}"),
            ));
        }
    }
    Ok(())
}

/// The generators that define a fitted model's output: `h = w` (sequential-convex, the model
/// `Σ_j relu(X w_j)`) or the run's fixed random ones (convex). `weights` is asked for only when
/// needed.
pub fn model_generators(mode: Mode, seed: u64, weights: impl FnOnce() -> SparseVec) -> Generators {
    match mode {
        Mode::SequentialConvex => Generators::Weights(weights()),
        Mode::Convex => Generators::Random { seed },
    }
}

/// The course of one run over `n` rows: epochs, batches, shuffles and the generator schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    n: usize,
    epochs: usize,
    batch_size: Option<usize>,
    seed: u64,
    mode: Mode,
    /// The shuffle of `perm_epoch` (empty in full batch).
    perm: Vec<usize>,
    perm_epoch: Option<usize>,
    /// The last random-generator step under sequential-convex (`None`: the paper's rule).
    warmup: Option<usize>,
}

impl Schedule {
    /// `epochs` passes over `n` rows (steps, in full batch); settings checked by the caller
    /// ([`check_schedule`]).
    pub fn new(n: usize, epochs: usize, batch_size: Option<usize>, seed: u64, mode: Mode) -> Self {
        Self {
            n,
            epochs,
            batch_size,
            seed,
            mode,
            perm: Vec::new(),
            perm_epoch: None,
            warmup: None,
        }
    }

    /// Ends the sequential-convex warm-up (the random generators) after global step `warmup`
    /// instead of the paper's step `batches_per_epoch` (`None` keeps the paper's).
    pub fn with_warmup(mut self, warmup: Option<usize>) -> Self {
        self.warmup = warmup;
        self
    }

    /// Batches per epoch (1 in full batch).
    pub fn batches_per_epoch(&self) -> usize {
        batches_per_epoch(self.n, self.batch_size)
    }

    /// Steps the whole run takes.
    pub fn total_steps(&self) -> usize {
        self.epochs * self.batches_per_epoch()
    }

    /// Whether global step `t` uses the random generators.
    pub fn random_at(&self, t: usize) -> bool {
        match self.mode {
            Mode::Convex => true,
            Mode::SequentialConvex => t <= self.warmup.unwrap_or(self.batches_per_epoch()),
        }
    }

    /// The generators of global step `t`; `weights` (the current W1 or fused weights) is asked
    /// for only once the schedule has switched to `h = w`.
    pub fn generators_at(&self, t: usize, weights: impl FnOnce() -> SparseVec) -> Generators {
        if self.random_at(t) {
            Generators::Random { seed: self.seed }
        } else {
            Generators::Weights(weights())
        }
    }

    /// The generators that define the fitted model (see [`model_generators`]).
    pub fn model_generators(&self, weights: impl FnOnce() -> SparseVec) -> Generators {
        model_generators(self.mode, self.seed, weights)
    }

    /// The rows of global step `t`, in order: `None` in full batch (every row), else batch
    /// `t % nb` of epoch `t / nb`'s shuffle. The shuffle is drawn when the epoch changes.
    pub fn rows_at(&mut self, t: usize) -> Option<&[usize]> {
        let b = self.batch_size?;
        let nb = self.batches_per_epoch();
        let epoch = t / nb;
        if self.perm_epoch != Some(epoch) {
            let key = rng::key(self.seed, Stream::Shuffle) ^ epoch as u64;
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(key);
            self.perm = (0..self.n).collect();
            self.perm.shuffle(&mut rng);
            self.perm_epoch = Some(epoch);
        }
        let k = t % nb;
        Some(&self.perm[k * b..((k + 1) * b).min(self.n)])
    }
}
