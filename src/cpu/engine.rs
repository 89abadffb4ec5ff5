//! [`CpuBackend`]: the [`Backend`] on the host, multi-threaded with rayon. Its phases are the
//! reference rules of [`crate::backend::rules`] over its own [`SupportOps`] (n-vectors are plain
//! `Vec<f32>`; the prepared support keeps its neuron masks as packed bits), and the streamed
//! gradient pass with per-thread running top-s sets.

use super::relu_mask::Masks;
use super::{masked_gradient, reduce, support_pass, vector_model};
use crate::backend::{rules, Backend, GradientPhase, SupportOps, SupportPhase};
use crate::error::{Error, Result};
use crate::problem::data::Data;
use crate::problem::model::{Blocks, Loss, VectorStep};
use crate::problem::operator::{Generators, Operator, Support};
use crate::problem::sparse::SparseVec;
use std::sync::{Arc, Weak};

/// The CPU engine.
#[derive(Debug, Default)]
pub struct CpuBackend {
    support: Support,
    /// Neurons whose bits `masks` holds, ascending, aligned with its runs: those of `support`,
    /// or after a gradient pass under `h = w` its live neurons (the next support's masks come
    /// from them).
    neurons: Vec<u32>,
    masks: Masks,
    /// `masks` laid out chunk by chunk for the products.
    chunked: support_pass::ChunkMasks,
    /// The data and generators `masks` were computed under: a later support under the same ones
    /// reuses the bits of the neurons it shares (the new support of a step overlaps the old one).
    /// A weak reference, so the cache never keeps a data set alive.
    masks_key: Option<(Weak<Data>, Generators)>,
    /// In a random-generator step, the masks of every live neuron under `masks_key`, formed once
    /// before the step's first product: the old support (the normalized step size), the gradient
    /// pass and the new support all read them instead of forming pre-activations three times.
    /// Kept only while they cost no more memory than X, and across the run's random-generator
    /// steps on the same data (one seed per run; `Backend::forget_kept` drops them).
    live: Option<(Vec<u32>, Masks)>,
}

impl CpuBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the masks held were computed under `op`'s data and generators.
    fn masks_under(&self, op: &Operator) -> bool {
        self.masks_key.as_ref().is_some_and(|(data, gens)| {
            data.strong_count() > 0
                && Weak::ptr_eq(data, &Arc::downgrade(op.data_arc()))
                && gens == op.generators()
        })
    }
}

impl SupportOps for CpuBackend {
    type Vector = Vec<f32>;
    type Elem = f32;

    fn upload(&mut self, host: &[f32]) -> Result<Vec<f32>> {
        Ok(host.to_vec())
    }

    fn download(&mut self, v: &Vec<f32>) -> Result<Vec<f32>> {
        Ok(v.clone())
    }

    fn prepare_support(&mut self, op: &Operator, support: &[u32]) -> Result<()> {
        let t = Support::new(support, op.d());
        if let Some(&c) = t.idx.last() {
            if c as u64 >= op.cols() {
                return Err(Error::invalid(
                    "support index",
                    c,
                    format!("≥ m·d = {}", op.cols()),
                ));
            }
        }
        let neurons: Vec<u32> = t.runs.iter().map(|run| run.0).collect();
        let same = self.masks_under(op);
        if !same {
            self.live = None;
        }
        self.masks = match &self.live {
            Some((live, masks)) => Masks::update(op, &neurons, masks, live),
            None if same => Masks::update(op, &neurons, &self.masks, &self.neurons),
            None => Masks::compute(op, &neurons),
        };
        self.masks_key = Some((Arc::downgrade(op.data_arc()), op.generators().clone()));
        self.chunked =
            support_pass::ChunkMasks::new(&self.masks, neurons.len()).with_classes(op, &t);
        self.neurons = neurons;
        self.support = t;
        Ok(())
    }

    fn forward(&mut self, op: &Operator, z: &[f32]) -> Result<Vec<f32>> {
        Error::check_len("z (support size)", self.support.len(), z.len())?;
        let mut out = vec![0.0; op.n()];
        support_pass::forward(op, &self.support, &self.chunked, z, false, &mut out);
        Ok(out)
    }

    fn adjoint(&mut self, op: &Operator, r: &Vec<f32>) -> Result<Vec<f32>> {
        Error::check_len("r (n)", op.n(), r.len())?;
        let mut out = vec![0.0; self.support.len()];
        support_pass::adjoint(op, &self.support, &self.chunked, r, &mut out);
        Ok(out)
    }

    fn residual(&mut self, op: &Operator, z: &[f32]) -> Result<Vec<f32>> {
        Error::check_len("z (support size)", self.support.len(), z.len())?;
        let mut out = vec![0.0; op.n()];
        support_pass::forward(op, &self.support, &self.chunked, z, true, &mut out);
        Ok(out)
    }

    fn forward_adjoint(
        &mut self,
        op: &Operator,
        z: &[f32],
        residual: bool,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        Error::check_len("z (support size)", self.support.len(), z.len())?;
        let (mut q, mut h) = (vec![0.0; op.n()], vec![0.0; self.support.len()]);
        let t = &self.support;
        support_pass::forward_adjoint(op, t, &self.chunked, z, residual, &mut q, &mut h);
        Ok((q, h))
    }

    fn norm2(&mut self, v: &Vec<f32>) -> Result<f64> {
        Ok(reduce::norm2(v))
    }

    fn shifted_norm2(&mut self, r: &Vec<f32>, q: &Vec<f32>, mu: f64) -> Result<f64> {
        Ok(reduce::shifted_norm2(r, q, mu))
    }

    fn axpy(&mut self, r: &mut Vec<f32>, q: &Vec<f32>, mu: f64) -> Result<()> {
        reduce::axpy(r, q, mu);
        Ok(())
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn gradient_phase(
        &mut self,
        op: &Operator,
        x: &SparseVec,
        keep: usize,
    ) -> Result<GradientPhase> {
        Error::check_len("x (m·d)", op.cols() as usize, x.len() as usize)?;
        // The random generators are the run's own (one seed): masks kept by an earlier random
        // step on the same data and live neurons are this step's.
        let kept = (self.live.take())
            .filter(|(live, _)| self.masks_under(op) && *live == op.live_neurons());
        if let Generators::Random { .. } = op.generators() {
            let live = op.live_neurons();
            if live.len() * op.n().div_ceil(64) * 8 <= op.data().bytes() {
                let masks = match kept {
                    Some((_, masks)) => masks,
                    None => Masks::compute(op, &live),
                };
                self.live = Some((live, masks));
                self.neurons.clear();
                self.masks = Masks::default();
                self.masks_key = Some((Arc::downgrade(op.data_arc()), op.generators().clone()));
            }
        }
        let (r, mu) = rules::niht(self, op, x)?;
        let workers = rayon::current_num_threads();
        // After `niht`, the masks held are the old support's under this step's data and
        // generators (under `h = w` its neurons are the live ones), or those of every live neuron.
        let known = match &self.live {
            Some((live, masks)) => Some((live.as_slice(), masks)),
            None => Some((self.neurons.as_slice(), &self.masks)),
        };
        let (z0, masks) = masked_gradient::gradient_topk_keeping_masks(
            op, x, &r, mu as f32, keep, workers, known,
        );
        if let Some((neurons, masks)) = masks {
            // The support phase of this step reuses these bits (see `prepare_support`).
            self.neurons = neurons;
            self.masks = masks;
            self.masks_key = Some((Arc::downgrade(op.data_arc()), op.generators().clone()));
        }
        Ok(GradientPhase { z0, mu })
    }

    fn support_phase(
        &mut self,
        op: &Operator,
        z0: &SparseVec,
        mu: f64,
        inner_steps: usize,
    ) -> Result<SupportPhase> {
        rules::support_phase(self, op, z0, mu, inner_steps)
    }

    fn refine(&mut self, op: &Operator, x: &SparseVec, iters: usize) -> Result<SparseVec> {
        rules::cgls(self, op, x, iters)
    }

    fn predict(&mut self, op: &Operator, x: &SparseVec) -> Result<Vec<f32>> {
        rules::predict(self, op, x)
    }

    fn forget_kept(&mut self) {
        self.live = None;
    }

    fn vector_forward(&mut self, op: &Operator, b: &Blocks, k: usize) -> Result<Vec<f32>> {
        b.check(op.d(), k)?;
        Ok(vector_model::forward(op, b, k))
    }

    fn vector_step(
        &mut self,
        op: &Operator,
        targets: &[f32],
        k: usize,
        loss: Loss,
        cur: &Blocks,
        at: Option<&Blocks>,
        alpha: f32,
    ) -> Result<VectorStep> {
        Error::check_len("targets (n·k)", op.n() * k, targets.len())?;
        cur.check(op.d(), k)?;
        if let Some(at) = at {
            at.check_same_neurons(cur, op.d(), k)?;
        }
        Ok(vector_model::step(op, targets, k, loss, cur, at, alpha))
    }
}
