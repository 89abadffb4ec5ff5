//! The options beyond the paper, made safe: they may only make the returned network fit better.
//!
//! The objective is the training mean squared error of the network actually returned — under the
//! sequential-convex mode `Σ_j relu(X w_j)`, whose masks follow the weights, under the convex mode
//! the fixed random masks. A least-squares refinement is computed with the masks of the current
//! weights; under sequential-convex the masks then move with the weights, so its result is only
//! accepted, in full or along a backtracked segment, when the objective falls, and rounds repeat
//! with the new masks while it keeps falling. Under the convex mode one round is the exact
//! least-squares solve and is kept when it helps. Every option records the objective before and
//! after, and whether its result was kept.

use crate::backend::Backend;
use crate::error::Result;
use crate::problem::data::{rows_per_chunk, RowSource};
use crate::problem::operator::{Generators, Mode, Operator};
use crate::problem::sparse::SparseVec;
use crate::solver::scalar::predict_rows;
use crate::solver::schedule;
use std::sync::Arc;

/// Least-squares iterations of the re-fit after an inflated support is pruned, when `--refine`
/// does not say.
pub const REFIT_ITERS: usize = 20;
/// Most refinement rounds under sequential-convex (each with the masks of the last accepted one).
const ROUNDS: usize = 6;
/// Fractions of a refinement step tried, in order, before a round gives up.
const BACKTRACK: [f32; 4] = [1.0, 0.5, 0.25, 0.125];

/// What one option did to the training objective.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OptionOutcome {
    /// Training MSE before the option.
    pub before: f64,
    /// Training MSE of what the option proposed (the better of the inflated and plain runs for
    /// `inflate`).
    pub after: f64,
    /// Whether the option's result was kept (false: it would have made the fit worse).
    pub kept: bool,
}

/// The options' record: training MSE of the run's own result and what each option did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Polish {
    /// Training MSE of the returned network.
    pub objective: f64,
    /// Pruning the inflated support to s and re-fitting on it (`before`: the pruned iterate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refit: Option<OptionOutcome>,
    /// Inflation against the plain run (`before`: the plain run; `after`: the inflated one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inflate: Option<OptionOutcome>,
    /// The final refinement.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refine: Option<OptionOutcome>,
    /// The concentrated run against the plain one (`before`: the plain run; `after`: the
    /// concentrated one; see [`crate::solver::scalar::Safeguards::concentrate`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concentrate: Option<OptionOutcome>,
}

/// Evaluates and refines the returned network of a fit over `source` with `m` neurons.
pub struct Polisher<'s> {
    pub source: &'s Arc<dyn RowSource>,
    pub m: usize,
    pub mode: Mode,
    pub seed: u64,
    /// Neurons of output sign −1.
    pub negated: Option<Vec<u32>>,
}

impl Polisher<'_> {
    /// The generators of the network `x` stands for.
    pub fn generators(&self, x: &SparseVec) -> Generators {
        schedule::model_generators(self.mode, self.seed, || {
            crate::solver::scalar::signed_copy(x, self.m, self.negated.as_deref())
        })
    }

    /// Training MSE of the network `x`, `(1/n) Σ (ŷ − y)²`, accumulated in f64.
    pub fn objective<B: Backend>(&self, be: &mut B, x: &SparseVec) -> Result<f64> {
        let n = self.source.n();
        let gens = self.generators(x);
        let chunk = rows_per_chunk(self.source.d());
        let yhat = predict_rows(be, self.source.as_ref(), self.m, &gens, x, chunk)?;
        let mut sum = 0.0f64;
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            for (k, &t) in self.source.targets(start, end)?.iter().enumerate() {
                let e = yhat[start + k] as f64 - t as f64;
                sum += e * e;
            }
        }
        Ok(sum / n.max(1) as f64)
    }

    /// Least squares on the support of `x` (`iters` CGLS iterations a round), kept only where it
    /// lowers the objective `f` of `x`: returns the better network, its objective and the outcome.
    /// Needs the whole data set in memory.
    pub fn refine<B: Backend>(
        &self,
        be: &mut B,
        x: &SparseVec,
        f: f64,
        iters: usize,
    ) -> Result<(SparseVec, f64, OptionOutcome)> {
        let whole = self
            .source
            .whole()
            .expect("refinement is validated to need whole data");
        let (mut best, mut f_best) = (x.clone(), f);
        let mut proposed = f;
        let rounds = if self.mode == Mode::Convex { 1 } else { ROUNDS };
        for round in 0..rounds {
            if best.is_empty() {
                break;
            }
            let op = Operator::new(whole.clone(), self.m, self.generators(&best))?;
            let cand = be.refine(&op, &best, iters)?;
            let mut improved = false;
            for alpha in BACKTRACK {
                let values: Vec<f32> = best
                    .values()
                    .iter()
                    .zip(cand.values())
                    .map(|(&a, &b)| a + alpha * (b - a))
                    .collect();
                let trial = SparseVec::from_sorted(best.len(), best.indices().to_vec(), values);
                let f_trial = self.objective(be, &trial)?;
                if round == 0 && alpha == 1.0 {
                    proposed = f_trial;
                }
                if f_trial < f_best {
                    (best, f_best, improved) = (trial, f_trial, true);
                    break;
                }
            }
            if !improved {
                break;
            }
        }
        let kept = f_best < f;
        let outcome = OptionOutcome {
            before: f,
            after: if kept { f_best } else { proposed },
            kept,
        };
        Ok((best, f_best, outcome))
    }
}
