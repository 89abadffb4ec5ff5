//! Training and pruning: Adam with PyTorch's semantics, global magnitude pruning, the trainer that
//! holds the dense model's state, and [`imp`], the prune–rewind–retrain loop with its reports.
//!
//! Invariants: the mask is applied to gradients and weights at every Adam step, so pruned weights
//! stay exactly zero; each round rewinds the survivors to their init and starts a fresh Adam; epoch
//! shuffles are a pure function of `(seed, round, epoch)`.

use super::config::{ImpConfig, SALT};
use super::mlp::{Acts, Mlp};
use crate::error::{Error, Result};
use crate::problem::data::{check_finite, Data};
use crate::problem::dense::View;
use crate::problem::rng::{self, Stream};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;

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
