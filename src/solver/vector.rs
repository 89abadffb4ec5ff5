//! The vector-output solver (SPEC §3): `Ŷ = Σ_j relu(X W1_j) W2_jᵀ` with one sparse vector of
//! length `m·d + m·k` holding W1 (index `j·d + i`) then W2 (index `m·d + j·k + c`) under one budget
//! s. Each step (one batch): residual `R = (Ŷ − Y)/n` (MSE) or `(softmax(Ŷ) − Y)/n` (cross-entropy,
//! max-subtracted), gradients by the chain rule with masks fixed, `G1_j = (D_j X)ᵀ R W2_j` and
//! `G2_j = relu(X W1_j)ᵀ R` (2·n·d·m + O(n·m·k) work, as GEMMs over the live neurons), a fixed step
//! α, and selection of the s entries with the largest count-sketch estimate of their cumulative
//! updates (4 rows, width `s·max(1, ln(N/s))`, as the paper's code) or the largest magnitude.
//! At the first step, blocks whose W1 or W2 part is entirely zero start from U(±1/√(dm)) and
//! U(±1/√(mk)) drawn from the run seed. The passes run on the backend
//! ([`Backend::vector_step`]); selection runs on the host.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::problem::data::Data;
use crate::problem::model::{Blocks, Loss, Select, VectorStep};
use crate::problem::operator::{Generators, Mode, Operator};
use crate::problem::rng::{self, Stream};
use crate::problem::sparse::SparseVec;
use crate::problem::topk::TopS;
use crate::solver::schedule::{self, Schedule};
use std::sync::Arc;

/// Settings of a vector-output solve.
#[derive(Clone, Debug)]
pub struct VectorConfig {
    pub s: usize,
    /// Epochs (steps in full batch).
    pub epochs: usize,
    pub batch_size: Option<usize>,
    pub seed: u64,
    pub mode: Mode,
    pub loss: Loss,
    pub select: Select,
    /// Fixed step size; `None` takes SPEC §3's rule.
    pub step: Option<f32>,
}

impl VectorConfig {
    /// The scalar solver's budget, schedule, seed and mode with the vector model's own choices.
    pub fn from_iht(
        c: &crate::solver::scalar::IhtConfig,
        loss: Loss,
        select: Select,
        step: Option<f32>,
    ) -> Self {
        Self {
            s: c.s,
            epochs: c.steps,
            batch_size: c.batch_size,
            seed: c.seed,
            mode: c.mode,
            loss,
            select,
            step,
        }
    }

    /// Steps a run over `n` rows takes (`epochs` times the batches per epoch).
    pub fn total_steps(&self, n: usize) -> usize {
        self.epochs * schedule::batches_per_epoch(n, self.batch_size)
    }

    /// SPEC §3: 0.001 for cross-entropy; else 2 when `s < 6·m^0.536`, 0.005 otherwise.
    pub fn step_size(&self, m: usize) -> f32 {
        self.step.unwrap_or(match self.loss {
            Loss::CrossEntropy => 0.001,
            Loss::Mse if (self.s as f64) < 6.0 * (m as f64).powf(0.536) => 2.0,
            Loss::Mse => 0.005,
        })
    }
}

/// A count sketch of the cumulative updates: 4 rows of `width` counters; an index's estimate is
/// the median of its 4 signed counters.
#[derive(Clone, Debug)]
pub struct CountSketch {
    width: usize,
    key: u64,
    table: Vec<f32>,
}

impl CountSketch {
    pub const ROWS: usize = 4;

    /// Width `s·max(1, ln(N/s))` for N entries.
    pub fn new(s: usize, len: u64, seed: u64) -> Self {
        let scale = ((len as f64) / (s as f64)).ln().max(1.0);
        let width = ((s as f64 * scale) as usize).max(1);
        Self {
            width,
            key: rng::key(seed, Stream::Sketch),
            table: vec![0.0; Self::ROWS * width],
        }
    }

    #[inline]
    fn slot(&self, row: usize, c: u32) -> (usize, f32) {
        let h = rng::bits(self.key, row as u64, c as u64);
        let at = row * self.width + (h % self.width as u64) as usize;
        (at, if h >> 63 == 0 { 1.0 } else { -1.0 })
    }

    /// Adds `delta` to index `c`.
    pub fn add(&mut self, c: u32, delta: f32) {
        for row in 0..Self::ROWS {
            let (at, sign) = self.slot(row, c);
            self.table[at] += sign * delta;
        }
    }

    /// The estimate of index `c`'s total (median of the 4 rows: the mean of the middle two).
    pub fn estimate(&self, c: u32) -> f32 {
        let mut v = [0.0f32; Self::ROWS];
        for (row, out) in v.iter_mut().enumerate() {
            let (at, sign) = self.slot(row, c);
            *out = sign * self.table[at];
        }
        v.sort_by(f32::total_cmp);
        0.5 * (v[1] + v[2])
    }
}

/// The vector-output IHT solver on backend `B`.
pub struct VectorIht<B: Backend> {
    backend: B,
    data: Arc<Data>,
    targets: Vec<f32>,
    k: usize,
    m: usize,
    config: VectorConfig,
    x: SparseVec,
    sketch: Option<CountSketch>,
    t: usize,
    schedule: Schedule,
}

impl<B: Backend> VectorIht<B> {
    /// `data` holds X (its `y` is unused); `targets` is n × k row-major.
    pub fn new(
        backend: B,
        data: Arc<Data>,
        targets: Vec<f32>,
        k: usize,
        m: usize,
        config: VectorConfig,
    ) -> Result<Self> {
        let (n, d) = (data.n(), data.d());
        if k == 0 {
            return Err(Error::invalid("k", k, "need at least one output"));
        }
        Error::check_len("targets (n·k)", n * k, targets.len())?;
        crate::problem::data::check_finite("targets", &targets)?;
        let len = schedule::check_width(m, (m * d + m * k) as u128)?;
        if config.s == 0 || config.s as u64 > len {
            return Err(Error::invalid(
                "s",
                config.s,
                format!("must be in 1..={len} (m·d + m·k)"),
            ));
        }
        schedule::check_schedule("epochs", config.epochs, config.batch_size, n)?;
        let sketch =
            (config.select == Select::Sketch).then(|| CountSketch::new(config.s, len, config.seed));
        let schedule = Schedule::new(
            n,
            config.epochs,
            config.batch_size,
            config.seed,
            config.mode,
        );
        Ok(Self {
            backend,
            data,
            targets,
            k,
            m,
            config,
            x: SparseVec::zeros(len),
            sketch,
            t: 0,
            schedule,
        })
    }

    pub fn x(&self) -> &SparseVec {
        &self.x
    }

    /// Outputs, neurons and input dimension of the model.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.k, self.m, self.data.d())
    }

    /// The W2 part as a dense `k × live.len()` matrix over the neurons `live` (row-major, PyTorch's
    /// `Linear(m_live, k).weight`).
    pub fn w2_dense(&self, live: &[u32]) -> Vec<f32> {
        let (k, md) = (self.k, self.md());
        let mut out = vec![0.0f32; k * live.len()];
        for (&c, &v) in self.x.indices().iter().zip(self.x.values()) {
            if c >= md {
                let e = (c - md) as usize;
                if let Ok(jj) = live.binary_search(&((e / k) as u32)) {
                    out[(e % k) * live.len() + jj] = v;
                }
            }
        }
        out
    }

    /// The engine (its name, its peak device bytes).
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn md(&self) -> u32 {
        (self.m * self.data.d()) as u32
    }

    /// The engine back, ending the solve.
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// The W1 part as the operator's generator weights (length m·d).
    pub fn w1(&self) -> SparseVec {
        let r = self.x.range(0, self.md());
        SparseVec::from_sorted(
            self.md() as u64,
            self.x.indices()[r.clone()].to_vec(),
            self.x.values()[r].to_vec(),
        )
    }

    /// Batches per epoch (1 in full batch).
    pub fn batches_per_epoch(&self) -> usize {
        self.schedule.batches_per_epoch()
    }

    /// Total steps the run will take.
    pub fn total_steps(&self) -> usize {
        self.schedule.total_steps()
    }

    /// Generators at step `t` (SPEC §1 schedule on W1).
    fn generators_at(&self, t: usize) -> Generators {
        self.schedule.generators_at(t, || self.w1())
    }

    /// The generators that define the fitted model's prediction.
    pub fn prediction_generators(&self) -> Generators {
        self.schedule.model_generators(|| self.w1())
    }

    fn blocks(&self, live: Vec<u32>, init: bool) -> Blocks {
        let (d, k, md) = (self.data.d(), self.k, self.md());
        let mut w1 = vec![0.0f32; live.len() * d];
        let mut w2 = vec![0.0f32; live.len() * k];
        for (&c, &v) in self.x.indices().iter().zip(self.x.values()) {
            if c < md {
                if let Ok(jj) = live.binary_search(&(c / d as u32)) {
                    w1[jj * d + (c as usize % d)] = v;
                }
            } else {
                let e = (c - md) as usize;
                if let Ok(jj) = live.binary_search(&((e / k) as u32)) {
                    w2[jj * k + e % k] = v;
                }
            }
        }
        if init {
            let key = rng::key(self.config.seed, Stream::Init);
            let (a1, a2) = (
                1.0 / ((d * self.m) as f32).sqrt(),
                1.0 / ((self.m * k) as f32).sqrt(),
            );
            for (jj, &j) in live.iter().enumerate() {
                if w1[jj * d..(jj + 1) * d].iter().all(|&v| v == 0.0) {
                    for i in 0..d {
                        w1[jj * d + i] = a1 * rng::symmetric(key, j as u64, i as u64);
                    }
                }
                if w2[jj * k..(jj + 1) * k].iter().all(|&v| v == 0.0) {
                    for c in 0..k {
                        w2[jj * k + c] = a2 * rng::symmetric(key, j as u64, (d + c) as u64);
                    }
                }
            }
        }
        Blocks { live, w1, w2 }
    }

    /// Model output on `data` (n × k row-major) for weights `x`.
    pub fn predict(&mut self, data: Arc<Data>) -> Result<Vec<f32>> {
        let op = Operator::new(data, self.m, self.prediction_generators())?;
        let b = self.blocks(
            self.x
                .neurons(op.d())
                .into_iter()
                .filter(|&j| j < self.m as u32)
                .collect(),
            false,
        );
        self.backend.vector_forward(&op, &b, self.k)
    }

    /// The batch of step `t`.
    fn batch(&mut self, t: usize) -> (Arc<Data>, Vec<f32>) {
        let Some(rows) = self.schedule.rows_at(t) else {
            return (self.data.clone(), self.targets.clone());
        };
        let y = rows
            .iter()
            .flat_map(|&r| self.targets[r * self.k..(r + 1) * self.k].to_vec())
            .collect();
        (Arc::new(self.data.gather_rows(rows)), y)
    }

    /// One step; returns the batch loss before the step.
    pub fn step(&mut self) -> Result<f64> {
        let (k, d, md, m) = (self.k, self.data.d(), self.md(), self.m);
        let t = self.t;
        let (data, y) = self.batch(t);
        let op = Operator::new(data, m, self.generators_at(t))?;
        let live = op.live_neurons();
        let cur = self.blocks(live.clone(), false);
        let init = (t == 0).then(|| self.blocks(live, true));
        let alpha = self.config.step_size(m);
        let VectorStep {
            loss,
            w1: c1,
            w2: c2,
        } = self
            .backend
            .vector_step(&op, &y, k, self.config.loss, &cur, init.as_ref(), alpha)?;
        if !loss.is_finite() {
            return Err(Error::invalid(
                "step-size",
                alpha,
                format!("the fit diverged (non-finite loss at step {t}); use a smaller step"),
            ));
        }
        let b = init.unwrap_or(cur);
        // Candidates and selection.
        let len = self.x.len();
        let mut cand: Vec<(u32, f32, f32)> = Vec::with_capacity(b.live.len() * (d + k));
        for (jj, &j) in b.live.iter().enumerate() {
            for i in 0..d {
                let (v, w) = (c1[jj * d + i], b.w1[jj * d + i]);
                cand.push((j * d as u32 + i as u32, v, v - w));
            }
            for c in 0..k {
                let (v, w) = (c2[jj * k + c], b.w2[jj * k + c]);
                cand.push((md + j * k as u32 + c as u32, v, v - w));
            }
        }
        // Entries of neurons outside the live set keep their values.
        let in_live = |c: u32| {
            let j = if c < md {
                c / d as u32
            } else {
                (c - md) / k as u32
            };
            b.live.binary_search(&j).is_ok()
        };
        for (&c, &v) in self.x.indices().iter().zip(self.x.values()) {
            if !in_live(c) {
                cand.push((c, v, 0.0));
            }
        }
        self.x = match &mut self.sketch {
            None => {
                let mut top = TopS::new(self.config.s);
                for &(c, v, _) in &cand {
                    top.push(c, v);
                }
                top.finish(len)
            }
            Some(sketch) => {
                for &(c, _, delta) in &cand {
                    if delta != 0.0 {
                        sketch.add(c, delta);
                    }
                }
                // Rank the nonzero candidates by their sketch estimates, keep their values.
                let mut top = TopS::new(self.config.s);
                for (pos, &(_, v, _)) in cand.iter().enumerate() {
                    if v != 0.0 {
                        let est = sketch.estimate(cand[pos].0);
                        // Ties (and zero estimates) fall back to index order.
                        top.push(pos as u32, if est == 0.0 { f32::MIN_POSITIVE } else { est });
                    }
                }
                let kept = top.finish(cand.len() as u64);
                let pairs = kept
                    .indices()
                    .iter()
                    .map(|&pos| (cand[pos as usize].0, cand[pos as usize].1))
                    .collect();
                SparseVec::from_pairs(len, pairs)?
            }
        };
        self.t += 1;
        Ok(loss)
    }

    /// Runs every step, calling `on_step(step, loss)`.
    pub fn run(&mut self, mut on_step: impl FnMut(usize, f64)) -> Result<()> {
        while self.t < self.total_steps() {
            let loss = self.step()?;
            on_step(self.t, loss);
        }
        Ok(())
    }
}

/// Every `(step, loss after the probe)` [`choose_step`] tried (infinite: rejected).
pub type Probes = Vec<(f32, f64)>;

/// A probe's full-batch loss may not climb above this multiple of its lowest.
const RISE: f64 = 1.1;

/// Steps of each probe run of [`choose_step`].
pub const PROBE_STEPS: usize = 8;

/// A fixed step for data of unknown scale, chosen by short runs: for `c` in decades 0.1 … 1000
/// (then the half-decades beside the best), `α = c / mean ‖x‖²` runs [`PROBE_STEPS`] steps of the
/// configured schedule from the same start, and the step with the lowest loss after them wins;
/// a run whose loss climbs 10 % above its lowest after the first update (in full batch; the
/// start of a divergence) loses to any that does not, and one whose loss turns non-finite
/// loses to all. Returns the engine back, the step, and every
/// `(α, loss)` tried. The probes cost `≈ 7 · (PROBE_STEPS + 1)` steps.
pub fn choose_step<B: Backend>(
    backend: B,
    data: Arc<Data>,
    targets: &[f32],
    k: usize,
    m: usize,
    config: &VectorConfig,
) -> Result<(B, f32, Probes)> {
    let n = data.n();
    let mean_sq = (0..data.d())
        .map(|i| crate::problem::data::sum_squares(data.column(i)))
        .sum::<f64>()
        / n as f64;
    let scale = if mean_sq > 0.0 { mean_sq } else { 1.0 };
    // Minibatch losses are of different batches: only a full-batch run is held to descent.
    let full = config.batch_size.is_none();
    let mut backend = Some(backend);
    let mut tried: Vec<(f32, f64)> = Vec::new();
    let mut stability: Vec<bool> = Vec::new();
    let mut probe =
        |c: f64, tried: &mut Vec<(f32, f64)>, stability: &mut Vec<bool>| -> Result<()> {
            let alpha = (c / scale) as f32;
            if !(alpha.is_finite() && alpha > 0.0) || tried.iter().any(|t| t.0 == alpha) {
                return Ok(());
            }
            let cfg = VectorConfig {
                step: Some(alpha),
                ..config.clone()
            };
            let be = backend
                .take()
                .expect("the engine comes back after every probe");
            let mut solver = VectorIht::new(be, data.clone(), targets.to_vec(), k, m, cfg)?;
            let steps = solver.total_steps().min(PROBE_STEPS + 1);
            let (mut loss, mut low, mut stable) = (f64::INFINITY, f64::INFINITY, true);
            for t in 0..steps {
                match solver.step() {
                    Ok(l) => {
                        // A loss that climbs well above its lowest is the start of a divergence the
                        // short run would hide (a selection that changes the support may raise it a
                        // little). The first loss is of the model before its blocks were
                        // initialized: not counted.
                        if full && t >= 2 && l > RISE * low {
                            stable = false;
                        }
                        loss = l;
                        if t >= 1 {
                            low = low.min(l);
                        }
                    }
                    Err(Error::Invalid {
                        name: "step-size", ..
                    }) => {
                        loss = f64::INFINITY;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            backend = Some(solver.into_backend());
            let loss = if loss.is_finite() {
                loss
            } else {
                f64::INFINITY
            };
            tried.push((alpha, loss));
            stability.push(stable);
            Ok(())
        };
    for e in -1..=3 {
        probe(10f64.powi(e), &mut tried, &mut stability)?;
    }
    // The lowest loss among the stable probes, else (all climbed) among all.
    let best = |tried: &[(f32, f64)], stability: &[bool]| {
        let any_stable = stability.iter().any(|&s| s);
        tried
            .iter()
            .zip(stability)
            .filter(|&(_, &s)| s || !any_stable)
            .map(|(&t, _)| t)
            .min_by(|a, b| a.1.total_cmp(&b.1).then(b.0.total_cmp(&a.0)))
            .expect("at least one probe")
    };
    let c = best(&tried, &stability).0 as f64 * scale;
    for f in [10f64.sqrt(), 1.0 / 10f64.sqrt()] {
        probe(c * f, &mut tried, &mut stability)?;
    }
    let (alpha, loss) = best(&tried, &stability);
    if !loss.is_finite() {
        return Err(Error::invalid(
            "step-size",
            "auto",
            "every probed step diverged; pass --step-size",
        ));
    }
    Ok((backend.expect("engine back"), alpha, tried))
}
