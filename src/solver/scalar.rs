//! The scalar-output solver: accelerated (normalized) iterative hard thresholding, SPEC §2,
//! written once against [`Backend`].
//!
//! One step, with the generators fixed during the step:
//! 1. on the old support S: `r = A_S x_S − y`, `g = A_Sᵀ r`, `μ = ‖g‖² / (‖A_S g‖² + 1e-8)`
//!    (`μ = 1e-14` when S is empty);
//! 2. streamed full gradient: top-s̃ of `x − μ Aᵀ r` over every live block → support T, point z₀;
//! 3. up to `inner_steps` gradient steps on T with Armijo backtracking
//!    (`‖A_T z' − y‖² ≤ f − 0.9 μ ‖g‖²`, else halve μ; after 11 failed tries z := z₀).
//!
//! A trial point costs O(n), not a product: `A_T(z − μg) − y = r − μ A_T g`, with `A_T g` formed
//! once per inner step. Generator schedule (sequential-convex): random `h` while the global batch
//! counter `t ≤ batches_per_epoch` (steps 0 and 1 full-batch; epoch 0 and the first batch of epoch 1
//! in minibatch mode), then `h_j := w_j` before every step.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::problem::data::{sum_squares, Data, InMemory, RowSource};
use crate::problem::operator::{self, Generators, Mode, Operator};
use crate::problem::rng;
use crate::problem::sparse::SparseVec;
use crate::problem::topk;
use crate::solver::checkpoint::Checkpoint;
use crate::solver::polish::{OptionOutcome, Polish, Polisher, REFIT_ITERS};
use crate::solver::schedule::{self, Schedule};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Solver settings. Defaults reproduce the paper's planted runs.
#[derive(Clone, Debug, PartialEq)]
pub struct IhtConfig {
    /// Sparsity budget: nonzeros in the result.
    pub s: usize,
    /// Steps (full batch) or epochs (with `batch_size`).
    pub steps: usize,
    /// Convex or sequential-convex generators.
    pub mode: Mode,
    /// Seed of the generators and the shuffles.
    pub seed: u64,
    /// Rows per minibatch; `None` is full batch.
    pub batch_size: Option<usize>,
    /// Armijo gradient steps on the fixed support per IHT step (10 in the paper).
    pub inner_steps: usize,
    /// Stop early when the relative residual `‖r‖/‖y‖` or the relative change of x falls below
    /// this (0 = run every step, as the paper).
    pub tol: f64,
    /// Support inflation: threshold to `s̃ = ceil(inflate·s)` during the run, prune to s at the end.
    pub inflate: f64,
    /// Conjugate-gradient least-squares iterations on the final support (0 = off).
    pub refine: usize,
    /// Sequential-convex: the last global step that uses the random generators. `None` is the
    /// paper's rule (step 1 in full batch; the first batch of epoch 1 with minibatches); a
    /// shorter warm-up leaves more of a streamed run to the `h = w` model.
    pub warmup: Option<usize>,
    /// Safeguards of the default solver (off in the paper's algorithm). See [`Safeguards`].
    pub safeguards: Safeguards,
    /// Tail averaging with minibatches: the returned weights are the `s` largest of the mean of
    /// the iterates after each of the last `average · total` steps (Polyak–Ruppert averaging;
    /// a minibatch iterate jitters around the fit its batches pull it to). `None` (and full
    /// batch, where the iterates converge) returns the last iterate, as the paper.
    pub average: Option<f64>,
}

/// Safeguards added to the paper's sequential-convex solver, chosen by measurement (the paper's
/// MNIST digit, m = 50, s = 500: without them about half the seeds stall below 20 dB, with
/// 40–45 of the 50 neurons each holding a dozen weights). Both act at the switch from the random
/// generators to `h = w`, on the host, so every engine runs them the same way; the step record of
/// the switch names each one that fired, and [`Polish::concentrate`] what the second run gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Safeguards {
    /// Signed neurons: at the switch each live neuron takes an output sign σ_j = ±1 drawn from
    /// the run's seed, and from then on its generator is `σ_j w_j`: the unit is
    /// `σ_j relu(σ_j x·w_j)`, a ReLU with an output weight of either sign (the paper's model
    /// `Σ_j relu(x·w_j)` cannot output a negative number, nor cancel one unit with another).
    pub signed: bool,
    /// Concentration: when the switch finds fewer than `n` weights per live neuron, the solve
    /// runs a second time with the budget concentrated at the switch on the `ceil(s / n)` neurons
    /// of largest `‖w_j‖`, signed, and keeps whichever run fits the training data better. Fits
    /// whose weights stay spread thinly over many neurons stall; those that gather them succeed.
    pub concentrate: Option<usize>,
}

impl Safeguards {
    /// The paper's algorithm: no safeguard.
    pub const PAPER: Safeguards = Safeguards {
        signed: false,
        concentrate: None,
    };
    /// The default INR solver's: the paper's continuation (whose fits of natural images are the
    /// better ones) beside a concentrated, signed one where weights are spread thin.
    pub const DEFAULT: Safeguards = Safeguards {
        signed: false,
        concentrate: Some(DEFAULT_WEIGHTS_PER_NEURON),
    };
}

/// The default solver's tail averaging with minibatches (see [`IhtConfig::average`]): the last
/// 15 % of the steps (measured on the bundled photo: 8–25 % all gain 0.4–0.8 dB).
pub const DEFAULT_AVERAGE: f64 = 0.15;

/// Weights per neuron below which the switch concentrates the budget on fewer neurons.
pub const DEFAULT_WEIGHTS_PER_NEURON: usize = 50;

impl IhtConfig {
    /// The paper's settings for budget `s` and `steps` steps.
    pub fn new(s: usize, steps: usize) -> Self {
        Self {
            s,
            steps,
            mode: Mode::SequentialConvex,
            seed: 0,
            batch_size: None,
            inner_steps: 10,
            tol: 0.0,
            inflate: 1.0,
            refine: 0,
            warmup: None,
            safeguards: Safeguards::PAPER,
            average: None,
        }
    }

    /// The working budget s̃.
    pub fn s_tilde(&self, cols: u64) -> usize {
        ((self.s as f64 * self.inflate).ceil() as u64).min(cols) as usize
    }

    /// Checks the settings against a problem of `n` points and `cols = m·d` columns.
    pub fn validate(&self, n: usize, cols: u64) -> Result<()> {
        if self.s == 0 {
            return Err(Error::invalid("s", self.s, "must be at least 1"));
        }
        if self.s as u64 > cols {
            return Err(Error::invalid(
                "s",
                self.s,
                format!("exceeds the number of weights m·d = {cols}"),
            ));
        }
        schedule::check_schedule("steps", self.steps, self.batch_size, n)?;
        if !(self.inflate >= 1.0 && self.inflate.is_finite()) {
            return Err(Error::invalid(
                "inflate",
                self.inflate,
                "must be a finite number ≥ 1",
            ));
        }
        if let Some(a) = self.average {
            if !(a > 0.0 && a <= 1.0) {
                return Err(Error::invalid("average", a, "must be in (0, 1]"));
            }
        }
        if self.safeguards.concentrate == Some(0) {
            return Err(Error::invalid("concentrate", 0, "must be at least 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::invalid(
                "tol",
                self.tol,
                "must be a finite number ≥ 0",
            ));
        }
        Ok(())
    }

    /// Steps a run over `n` rows takes: `steps` in full batch, `steps` epochs of
    /// `ceil(n / batch_size)` batches otherwise.
    pub fn total_steps(&self, n: usize) -> usize {
        self.steps * schedule::batches_per_epoch(n, self.batch_size)
    }
}

/// What one step did.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    /// Global step (batch) index.
    pub step: usize,
    /// `‖A_T z − y‖ / ‖y‖` on the step's batch after the step.
    pub rel_residual: f64,
    /// Step size after the line search.
    pub mu: f64,
    /// Nonzeros after the step.
    pub nnz: usize,
    /// Inner steps whose line search gave up and reset z.
    pub resets: usize,
    /// Armijo trials evaluated in the step.
    #[serde(default)]
    pub trials: usize,
    /// Whether the generators were random (false: h = w).
    pub random_h: bool,
    /// The normalized step size of the gradient phase (before the Armijo steps).
    #[serde(default)]
    pub mu_gradient: f64,
    /// Support changes: indices of the new support that were not in the old one.
    #[serde(default)]
    pub entered: usize,
    /// `‖w‖` after the step.
    #[serde(default)]
    pub weight_norm: f64,
    /// Neurons holding weights after the step.
    #[serde(default)]
    pub live: usize,
    /// The safeguards that fired before the step, each with what it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safeguards: Vec<String>,
}

/// The result of a solve.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The recovered sparse fused weights (index j·d + i).
    pub x: SparseVec,
    /// Steps (batches) taken.
    pub steps: usize,
    /// Per-step records.
    pub history: Vec<StepRecord>,
    /// Wall time of the solve.
    pub seconds: f64,
    /// Peak resident memory of the process when the solve ended (data generation or loading and
    /// the solve, but not the evaluation that follows).
    pub peak_host_bytes: u64,
    /// Peak bytes the backend held on its device (0 on the CPU).
    pub peak_device_bytes: u64,
    /// Whether the run stopped early because the `tol` test was met before its last step (false
    /// when it ran every step, including when the test is met only at the last one).
    pub converged: bool,
    /// Training MSE of the returned network and what each option beyond the paper did to it.
    pub polish: Polish,
    mode: Mode,
    seed: u64,
    m: usize,
    /// Neurons of output sign −1 (signed neurons); `None` or empty: every sign +1.
    negated: Option<Vec<u32>>,
}

impl Recovery {
    /// The generators that define the recovered model's prediction: `h = w` (sequential-convex:
    /// `Σ_j relu(X w_j)`) or the fixed random ones (convex).
    pub fn generators(&self) -> Generators {
        schedule::model_generators(self.mode, self.seed, || {
            signed_copy(&self.x, self.m, self.negated.as_deref())
        })
    }

    /// The neurons of output sign −1 (sorted; empty without signed neurons).
    pub fn negated(&self) -> &[u32] {
        self.negated.as_deref().unwrap_or(&[])
    }

    /// Neurons of the fitted model.
    pub fn m(&self) -> usize {
        self.m
    }

    /// The recovered model's output on the rows of `data` (which must have the fit's input
    /// dimension), computed on the host without any engine ([`operator::apply_sparse`]): agrees
    /// with an engine's prediction to rounding.
    pub fn predict(&self, data: &Data) -> Result<Vec<f32>> {
        let d = (self.x.len() / self.m as u64) as usize;
        Error::check_len("data columns (the fit's d)", d, data.d())?;
        operator::apply_sparse(data, &self.generators(), &self.x)
    }
}

/// Called after every step of a solve.
type OnStep<'a> = Box<dyn FnMut(&StepRecord) + 'a>;

/// Called every so many steps with the step count and the model so far (its generators and
/// weights, as [`Recovery::generators`] and [`Recovery::x`]).
type OnSnapshot<'a> = Box<dyn FnMut(usize, &Generators, &SparseVec) + 'a>;

/// The IHT solver over a backend; `'a` bounds what a progress callback ([`Iht::on_step`]) may
/// borrow.
pub struct Iht<'a, B: Backend> {
    backend: B,
    source: Arc<dyn RowSource>,
    m: usize,
    config: IhtConfig,
    keep: usize,
    x: SparseVec,
    t: usize,
    history: Vec<StepRecord>,
    schedule: Schedule,
    checkpoint: Option<(PathBuf, usize, String)>,
    on_step: Option<OnStep<'a>>,
    on_snapshot: Option<(usize, OnSnapshot<'a>)>,
    /// Time spent in snapshot callbacks, left out of the solve's seconds.
    excluded: std::time::Duration,
    converged: bool,
    /// Neurons with output sign −1 (sorted), fixed at the switch to h = w.
    /// Neurons of output sign −1 (sorted), fixed at the switch when signed neurons are on.
    negated: Option<Vec<u32>>,
    /// This is the concentrated run (see [`Safeguards::concentrate`]).
    concentrated: bool,
    /// Tail averaging's running sums (index → sum of the iterates' values) and their count.
    tail: Tail,
}

/// The running sums of tail averaging ([`IhtConfig::average`]): at most the union of the tail's
/// supports, so it grows with s (and the support's churn), never with m·d.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tail {
    pub sums: std::collections::BTreeMap<u32, f64>,
    pub count: usize,
}

impl Tail {
    fn add(&mut self, x: &SparseVec) {
        for (&c, &v) in x.indices().iter().zip(x.values()) {
            *self.sums.entry(c).or_default() += v as f64;
        }
        self.count += 1;
    }

    /// The `keep` largest entries of the mean.
    fn mean(&self, len: u64, keep: usize) -> SparseVec {
        let n = self.count.max(1) as f64;
        let mut top = topk::TopS::new(keep);
        for (&c, &v) in &self.sums {
            top.push(c, (v / n) as f32);
        }
        top.finish(len)
    }
}

impl<'a, B: Backend> Iht<'a, B> {
    /// Sets up a solve of `op` (whose data and width are used; its generators are replaced by the
    /// schedule's) with a validated config.
    pub fn new(backend: B, op: Operator, config: IhtConfig) -> Result<Self> {
        let source = Arc::new(InMemory(op.data_arc().clone()));
        Self::from_source(backend, source, op.m(), config)
    }

    /// Sets up a solve over rows from `source` with `m` neurons. A source that does not hold its
    /// data in memory needs minibatches, and cannot be refined on (refinement needs every row).
    pub fn from_source(
        backend: B,
        source: Arc<dyn RowSource>,
        m: usize,
        config: IhtConfig,
    ) -> Result<Self> {
        let cols = schedule::check_width(m, m as u128 * source.d() as u128)?;
        config.validate(source.n(), cols)?;
        if source.whole().is_none() {
            if config.batch_size.is_none() {
                return Err(Error::invalid(
                    "batch-size",
                    "none",
                    "rows generated on demand need minibatches",
                ));
            }
            if config.refine > 0 {
                return Err(Error::invalid(
                    "refine",
                    config.refine,
                    "refinement needs the whole data set in memory",
                ));
            }
        }
        let keep = config.s_tilde(cols);
        let x = SparseVec::zeros(cols);
        let schedule = Schedule::new(
            source.n(),
            config.steps,
            config.batch_size,
            config.seed,
            config.mode,
        )
        .with_warmup(config.warmup);
        Ok(Self {
            backend,
            source,
            m,
            config,
            keep,
            x,
            t: 0,
            history: Vec::new(),
            schedule,
            checkpoint: None,
            on_step: None,
            on_snapshot: None,
            excluded: std::time::Duration::ZERO,
            converged: false,
            negated: None,
            concentrated: false,
            tail: Tail::default(),
        })
    }

    /// Saves a checkpoint to `path` every `every` steps (and after the last), stamped with
    /// `fingerprint` (a description of the problem and settings that a resume must match).
    pub fn checkpoint_every(&mut self, path: &Path, every: usize, fingerprint: &str) -> Result<()> {
        if every == 0 {
            return Err(Error::invalid(
                "checkpoint-every",
                every,
                "must be at least 1",
            ));
        }
        self.checkpoint = Some((path.to_path_buf(), every, fingerprint.to_string()));
        Ok(())
    }

    /// Continues from a checkpoint of the same run; returns the step it resumes at.
    pub fn resume(&mut self, path: &Path, fingerprint: &str) -> Result<usize> {
        let ck = Checkpoint::load(path, fingerprint)?;
        let bad = |why: String| Error::Format {
            path: path.display().to_string(),
            why,
        };
        // The iterate as this run writes it: strictly increasing indices, finite values, at most
        // the working budget s̃ of them.
        if let Some(w) = ck.idx.windows(2).find(|w| w[0] >= w[1]) {
            return Err(bad(format!(
                "iterate indices not strictly increasing ({} then {})",
                w[0], w[1]
            )));
        }
        if let Some((k, v)) = ck.val.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(bad(format!("non-finite iterate value {v} at entry {k}")));
        }
        if ck.idx.len() > self.keep {
            return Err(bad(format!(
                "{} iterate entries for a budget of {}",
                ck.idx.len(),
                self.keep
            )));
        }
        let x = ck.x().map_err(|e| bad(e.to_string()))?;
        if x.len() != self.x.len() || ck.t > self.total_steps() {
            return Err(bad(format!(
                "checkpoint at step {} of length {} does not fit this run",
                ck.t,
                x.len()
            )));
        }
        self.x = x;
        self.t = ck.t;
        if let Some(neg) = &ck.negated {
            let m = self.m as u32;
            if neg.windows(2).any(|w| w[0] >= w[1]) || neg.last().is_some_and(|&j| j >= m) {
                return Err(bad(format!(
                    "negative neurons not strictly increasing below m = {m}"
                )));
            }
        }
        self.tail = Tail {
            sums: ck
                .tail_idx
                .iter()
                .copied()
                .zip(ck.tail_sums.iter().copied())
                .collect(),
            count: ck.tail_count,
        };
        if self.tail.sums.len() != ck.tail_idx.len() || ck.tail_idx.len() != ck.tail_sums.len() {
            return Err(bad("tail sums: indices repeated or lengths differ".into()));
        }
        self.negated = ck.negated;
        self.history = ck.history;
        Ok(self.t)
    }

    /// The current iterate.
    pub fn x(&self) -> &SparseVec {
        &self.x
    }

    /// The backend (its counters, its device).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend (for evaluation after the solve).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Gives the backend back.
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// Steps (batches) taken so far.
    pub fn steps_taken(&self) -> usize {
        self.t
    }

    /// Batches per epoch (1 in full batch).
    pub fn batches_per_epoch(&self) -> usize {
        self.schedule.batches_per_epoch()
    }

    /// Total steps the run will take.
    pub fn total_steps(&self) -> usize {
        self.schedule.total_steps()
    }

    /// Generators for global step `t` (SPEC §1 schedule).
    /// The generators that define the model of the current iterate (its signs included).
    fn model_generators(&self) -> Generators {
        (self.schedule).model_generators(|| signed_copy(&self.x, self.m, self.negated.as_deref()))
    }

    fn generators_at(&self, t: usize) -> Generators {
        let neg = self.negated.as_deref();
        self.schedule
            .generators_at(t, || signed_copy(&self.x, self.m, neg))
    }

    /// Whether global step `t` is the switch from the random generators to `h = w`.
    fn switch_at(&self, t: usize) -> bool {
        !self.schedule.random_at(t) && (t == 0 || self.schedule.random_at(t - 1))
    }

    /// The neurons the concentration keeps and `n`, when it is due: `ceil(s / n)` where fewer
    /// than `n` weights fall on each of `live` neurons.
    fn concentrate_to(&self, live: usize) -> Option<(usize, usize)> {
        let per = self.config.safeguards.concentrate?;
        let keep = self.config.s.div_ceil(per).max(1);
        (live > keep).then_some((keep, per))
    }

    /// Runs the safeguards due before global step `t` (at the switch): the concentration of the
    /// budget in the concentrated run, then the neurons' signs. Returns what fired.
    fn safeguard(&mut self, t: usize) -> Vec<String> {
        if !self.switch_at(t) {
            return Vec::new();
        }
        let d = (self.x.len() / self.m as u64) as u32;
        let live = self.x.neurons(d as usize);
        let mut fired = Vec::new();
        if let Some((keep, per)) = self.concentrate_to(live.len()) {
            if self.concentrated {
                self.x = strongest_neurons(&self.x, d, &live, keep);
                fired.push(format!(
                    "concentrate: {} → {keep} neurons (under {per} weights each)",
                    live.len()
                ));
            } else {
                fired.push(format!(
                    "concentrate: due ({} neurons, under {per} weights each); a concentrated run follows",
                    live.len()
                ));
            }
        }
        if self.config.safeguards.signed || self.concentrated {
            let neg = random_signs(&self.x, d, self.config.seed);
            fired.push(format!(
                "signs: {} of {} neurons negative",
                neg.len(),
                self.x.neurons(d as usize).len()
            ));
            self.negated = Some(neg);
        }
        fired
    }

    /// Whether the run's switch found the concentration due (read off the step records, so a
    /// resumed run knows it too).
    fn concentration_due(&self) -> bool {
        let Some(k) = (0..self.t).find(|&k| self.switch_at(k)) else {
            return false;
        };
        let live_before = match k {
            0 => 0,
            _ => self.history.get(k - 1).map_or(0, |r| r.live),
        };
        self.concentrate_to(live_before).is_some()
    }

    /// The data of global step `t`: everything in full batch, else the rows of the schedule's
    /// batch.
    fn batch_at(&mut self, t: usize) -> Result<Arc<Data>> {
        match self.schedule.rows_at(t) {
            None => Ok(self.source.whole().expect("checked in from_source")),
            Some(rows) => Ok(Arc::new(self.source.rows(rows)?)),
        }
    }

    /// One IHT step on the next batch.
    pub fn step(&mut self) -> Result<StepRecord> {
        let t = self.t;
        let fired = self.safeguard(t);
        let gens = self.generators_at(t);
        let random_h = matches!(gens, Generators::Random { .. });
        let data = self.batch_at(t)?;
        let op = Operator::new(data, self.m, gens)?;
        // Steps 1–2 (normalized step size, streamed gradient and thresholding), then step 3
        // (Armijo steps on the new support): each one operation of the engine.
        let grad = self.backend.gradient_phase(&op, &self.x, self.keep)?;
        let phase = self
            .backend
            .support_phase(&op, &grad.z0, grad.mu, self.config.inner_steps)?;
        let entered = count_new(self.x.indices(), grad.z0.indices());
        self.x = SparseVec::from_sorted(op.cols(), grad.z0.indices().to_vec(), phase.z);
        let yy = sum_squares(op.data().y());
        let f = phase.f;
        let rec = StepRecord {
            step: t,
            rel_residual: if yy > 0.0 { (f / yy).sqrt() } else { f.sqrt() },
            mu: phase.mu,
            nnz: self.x.nnz(),
            resets: phase.resets,
            trials: phase.trials,
            random_h,
            mu_gradient: grad.mu,
            entered,
            weight_norm: self.x.norm(),
            live: self.x.neurons(op.d()).len(),
            safeguards: fired,
        };
        self.history.push(rec.clone());
        self.t += 1;
        Ok(rec)
    }

    /// Calls `f(t, generators, weights)` after every `every` steps of [`run`](Self::run) (and
    /// after its last) with the model so far, e.g. to score it along the way; the time `f` takes
    /// is left out of the solve's seconds. It follows every run of a solve (the plain run at
    /// budget s of `inflate`, the concentrated run of [`Safeguards`]), each from its step 0.
    pub fn on_snapshot(
        &mut self,
        every: usize,
        f: impl FnMut(usize, &Generators, &SparseVec) + 'a,
    ) -> &mut Self {
        self.on_snapshot = Some((every.max(1), Box::new(f)));
        self
    }

    /// Calls `f` after every step of [`run`](Self::run) and [`solve`](Self::solve) (progress
    /// reporting), replacing any earlier callback.
    pub fn on_step(&mut self, f: impl FnMut(&StepRecord) + 'a) -> &mut Self {
        self.on_step = Some(Box::new(f));
        self
    }

    /// Runs every step (or until the tolerance is met), calling the [`on_step`](Self::on_step)
    /// callback after each.
    pub fn run(&mut self) -> Result<()> {
        let total = self.total_steps();
        let tail_from = match (self.config.average, self.config.batch_size) {
            (Some(a), Some(_)) => {
                Some(total - ((a * total as f64).ceil() as usize).clamp(1, total))
            }
            _ => None,
        };
        while self.t < total {
            let before = self.x.clone();
            let mut rec = self.step()?;
            if tail_from.is_some_and(|from| self.t > from) {
                self.tail.add(&self.x);
                if self.t == total {
                    self.x = self.tail.mean(self.x.len(), self.keep);
                    rec.nnz = self.x.nnz();
                    let note = format!(
                        "average: the {} largest of the mean of the last {} iterates ({} indices)",
                        self.keep,
                        self.tail.count,
                        self.tail.sums.len()
                    );
                    rec.safeguards.push(note);
                    if let Some(last) = self.history.last_mut() {
                        *last = rec.clone();
                    }
                }
            }
            if let Some(on_step) = &mut self.on_step {
                on_step(&rec);
            }
            if let Some((every, _)) = &self.on_snapshot {
                if self.t.is_multiple_of(*every) || self.t == total {
                    let start = Instant::now();
                    let gens = self.model_generators();
                    if let Some((_, f)) = &mut self.on_snapshot {
                        f(self.t, &gens, &self.x);
                    }
                    self.excluded += start.elapsed();
                }
            }
            if let Some((path, every, fingerprint)) = &self.checkpoint {
                if self.t.is_multiple_of(*every) || self.t == total {
                    Checkpoint::new(
                        fingerprint,
                        self.t,
                        &self.x,
                        &self.history,
                        self.negated.as_deref(),
                    )
                    .with_tail(&self.tail)
                    .save(path)?;
                }
            }
            if self.config.tol > 0.0 && self.config.batch_size.is_none() {
                let change = self.x.distance(&before) / self.x.norm().max(f64::MIN_POSITIVE);
                if rec.rel_residual < self.config.tol || change < self.config.tol {
                    self.converged = self.t < total;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Runs, prunes an inflated support back to s, and returns the recovery. The options beyond
    /// the paper may only improve the training fit of the returned network (see [`polish`]):
    /// - `inflate > 1`: the pruned iterate is re-fitted on its support (when the data is in
    ///   memory), then compared with the plain run at budget s (run here too, without progress
    ///   callbacks or checkpoints), and the better is kept;
    /// - `refine > 0`: least squares on the final support, kept where it lowers the objective.
    ///
    /// [`polish`]: crate::solver::polish
    ///
    /// Where the concentration safeguard is due ([`Safeguards::concentrate`]), the concentrated
    /// run follows (without progress callbacks or checkpoints) and the better of the two is kept
    /// ([`Polish::concentrate`]).
    pub fn solve(&mut self) -> Result<Recovery> {
        let start = Instant::now();
        let mut rec = self.solve_once()?;
        if !self.concentrated && self.concentration_due() {
            let (on_step, checkpoint) = (self.on_step.take(), self.checkpoint.take());
            let cols = self.x.len();
            self.x = SparseVec::zeros(cols);
            (self.t, self.converged, self.concentrated) = (0, false, true);
            self.history.clear();
            self.negated = None;
            self.tail = Tail::default();
            self.keep = self.config.s_tilde(cols);
            let second = self.solve_once();
            (self.on_step, self.checkpoint) = (on_step, checkpoint);
            let second = second?;
            let kept = second.polish.objective < rec.polish.objective;
            let outcome = OptionOutcome {
                before: rec.polish.objective,
                after: second.polish.objective,
                kept,
            };
            if kept {
                rec = second;
            } else {
                self.x = rec.x.clone();
                (self.t, self.converged) = (rec.steps, rec.converged);
                self.history = rec.history.clone();
                self.negated = rec.negated.clone();
            }
            rec.polish.concentrate = Some(outcome);
        }
        rec.seconds = start.elapsed().saturating_sub(self.excluded).as_secs_f64();
        rec.peak_host_bytes = crate::mem::peak_host_bytes();
        Ok(rec)
    }

    /// One run and its polish (see [`solve`](Self::solve)).
    fn solve_once(&mut self) -> Result<Recovery> {
        let start = Instant::now();
        self.run()?;
        let s = self.config.s;
        let inflated = self.keep > s;
        if self.x.nnz() > s {
            self.x = topk::prune(&self.x, s);
        }
        let source = self.source.clone();
        let mut p = Polisher {
            source: &source,
            m: self.m,
            mode: self.config.mode,
            seed: self.config.seed,
            negated: self.negated.clone(),
        };
        let mut polish = Polish::default();
        let whole = source.whole().is_some();
        let mut f = p.objective(&mut self.backend, &self.x)?;
        if inflated && whole && !self.x.is_empty() {
            let iters = match self.config.refine {
                0 => REFIT_ITERS,
                r => r,
            };
            let (x, fx, outcome) = p.refine(&mut self.backend, &self.x, f, iters)?;
            (self.x, f, polish.refit) = (x, fx, Some(outcome));
        }
        if inflated {
            let cols = self.x.len();
            let kept = (
                std::mem::replace(&mut self.x, SparseVec::zeros(cols)),
                std::mem::take(&mut self.history),
                self.t,
                self.converged,
                self.negated.take(),
            );
            let (on_step, checkpoint) = (self.on_step.take(), self.checkpoint.take());
            (self.keep, self.t, self.converged) = (s, 0, false);
            self.tail = Tail::default();
            let plain = self.run();
            (self.on_step, self.checkpoint) = (on_step, checkpoint);
            plain?;
            p.negated = self.negated.clone();
            let f_plain = p.objective(&mut self.backend, &self.x)?;
            let better = f < f_plain;
            polish.inflate = Some(OptionOutcome {
                before: f_plain,
                after: f,
                kept: better,
            });
            if better {
                (self.x, self.history, self.t, self.converged, self.negated) = kept;
                p.negated = self.negated.clone();
            } else {
                f = f_plain;
            }
        }
        if self.config.refine > 0 && !self.x.is_empty() {
            let (x, fx, outcome) = p.refine(&mut self.backend, &self.x, f, self.config.refine)?;
            (self.x, f, polish.refine) = (x, fx, Some(outcome));
        }
        polish.objective = f;
        Ok(Recovery {
            x: self.x.clone(),
            steps: self.t,
            history: self.history.clone(),
            seconds: start.elapsed().as_secs_f64(),
            peak_host_bytes: crate::mem::peak_host_bytes(),
            peak_device_bytes: self.backend.peak_device_bytes(),
            converged: self.converged,
            polish,
            mode: self.config.mode,
            seed: self.config.seed,
            m: self.m,
            negated: self.negated.clone(),
        })
    }
}

/// Model output over every row of `source`: in place when it is held in memory, else `chunk` rows
/// at a time (memory bounded by a chunk).
pub fn predict_rows<B: Backend>(
    be: &mut B,
    source: &dyn RowSource,
    m: usize,
    gens: &Generators,
    x: &SparseVec,
    chunk: usize,
) -> Result<Vec<f32>> {
    let n = source.n();
    // An in-memory source is read in place, not gathered into chunk copies.
    if let Some(data) = source.whole() {
        let op = Operator::new(data, m, gens.clone())?;
        return predict(be, &op, x);
    }
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(chunk.max(1)) {
        let rows: Vec<usize> = (start..(start + chunk).min(n)).collect();
        let data = Arc::new(source.rows(&rows)?);
        let op = Operator::new(data, m, gens.clone())?;
        out.extend(predict(be, &op, x)?);
    }
    Ok(out)
}

/// Model output on `op`'s data for weights `x` under `gens` (see [`Recovery::generators`]).
pub fn predict<B: Backend>(be: &mut B, op: &Operator, x: &SparseVec) -> Result<Vec<f32>> {
    be.predict(op, x)
}

/// `x` with the weights of the neurons in `negated` (sorted) negated: the generators `σ_j w_j`
/// of signed neurons (a plain copy when no neuron is negative).
pub fn signed_copy(x: &SparseVec, m: usize, negated: Option<&[u32]>) -> SparseVec {
    let Some(neg) = negated.filter(|n| !n.is_empty()) else {
        return x.clone();
    };
    let d = (x.len() / m as u64) as u32;
    let values = (x.indices().iter().zip(x.values()))
        .map(|(&c, &v)| match neg.binary_search(&(c / d)) {
            Ok(_) => -v,
            Err(_) => v,
        })
        .collect();
    SparseVec::from_sorted(x.len(), x.indices().to_vec(), values)
}

/// Signed neurons' signs: σ_j = −1 for the live neurons of `x` whose bit from the run's seed
/// (a pure function of (seed, j)) is set. Returns the negative ones, sorted.
pub fn random_signs(x: &SparseVec, d: u32, seed: u64) -> Vec<u32> {
    let key = rng::key(seed, rng::Stream::Signs);
    (x.neurons(d as usize).into_iter())
        .filter(|&j| rng::bits(key, j as u64, 0) & 1 == 1)
        .collect()
}

/// `x` restricted to its `keep` live neurons of largest `‖w_j‖` (ties: the smaller index).
fn strongest_neurons(x: &SparseVec, d: u32, live: &[u32], keep: usize) -> SparseVec {
    let mut norms: Vec<(f64, u32)> = (live.iter())
        .map(|&j| {
            let r = x.range(j * d, (j + 1) * d);
            let nn = x.values()[r].iter().map(|&v| v as f64 * v as f64).sum();
            (nn, j)
        })
        .collect();
    norms.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut kept: Vec<u32> = norms[..keep].iter().map(|p| p.1).collect();
    kept.sort_unstable();
    let (idx, val): (Vec<u32>, Vec<f32>) = (x.indices().iter().zip(x.values()))
        .filter(|(&c, _)| kept.binary_search(&(c / d)).is_ok())
        .map(|(&c, &v)| (c, v))
        .unzip();
    SparseVec::from_sorted(x.len(), idx, val)
}

/// Entries of the sorted `new` that are not in the sorted `old`.
fn count_new(old: &[u32], new: &[u32]) -> usize {
    let (mut i, mut count) = (0, 0);
    for &c in new {
        while i < old.len() && old[i] < c {
            i += 1;
        }
        if old.get(i) != Some(&c) {
            count += 1;
        }
    }
    count
}
