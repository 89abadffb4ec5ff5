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
}

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
}

impl Recovery {
    /// The generators that define the recovered model's prediction: `h = w` (sequential-convex:
    /// `Σ_j relu(X w_j)`) or the fixed random ones (convex).
    pub fn generators(&self) -> Generators {
        schedule::model_generators(self.mode, self.seed, || self.x.clone())
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
    converged: bool,
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
            converged: false,
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
    fn generators_at(&self, t: usize) -> Generators {
        self.schedule.generators_at(t, || self.x.clone())
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
        };
        self.history.push(rec.clone());
        self.t += 1;
        Ok(rec)
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
        while self.t < total {
            let before = self.x.clone();
            let rec = self.step()?;
            if let Some(on_step) = &mut self.on_step {
                on_step(&rec);
            }
            if let Some((path, every, fingerprint)) = &self.checkpoint {
                if self.t.is_multiple_of(*every) || self.t == total {
                    Checkpoint::new(fingerprint, self.t, &self.x, &self.history).save(path)?;
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
    pub fn solve(&mut self) -> Result<Recovery> {
        let start = Instant::now();
        self.run()?;
        let s = self.config.s;
        let inflated = self.keep > s;
        if self.x.nnz() > s {
            self.x = topk::prune(&self.x, s);
        }
        let source = self.source.clone();
        let p = Polisher {
            source: &source,
            m: self.m,
            mode: self.config.mode,
            seed: self.config.seed,
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
            );
            let (on_step, checkpoint) = (self.on_step.take(), self.checkpoint.take());
            (self.keep, self.t, self.converged) = (s, 0, false);
            let plain = self.run();
            (self.on_step, self.checkpoint) = (on_step, checkpoint);
            plain?;
            let f_plain = p.objective(&mut self.backend, &self.x)?;
            let better = f < f_plain;
            polish.inflate = Some(OptionOutcome {
                before: f_plain,
                after: f,
                kept: better,
            });
            if better {
                (self.x, self.history, self.t, self.converged) = kept;
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
