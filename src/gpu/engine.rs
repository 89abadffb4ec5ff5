//! [`GpuBackend`]: the solver's phases on a WebGPU device, each recorded as one submission whose
//! decisions are all taken on the device, with one readback at its end.
//!
//! Gradient phase (SPEC §2 steps 1–2): masks of the old support, `r = A_S x_S − y`, `g = A_Sᵀ r`,
//! `μ = ‖g‖² / (‖A_S g‖² + 1e-8)` into the device state; then tile by tile of live neurons: the
//! tile's dense weights scattered from the sparse iterate, its masks, `x − μ Xᵀ(M ∘ r)` (μ read
//! from the state), merged into the running top-s on the device. Read back: μ and the new set.
//!
//! Support phase (step 3): masks of T, `r₀ = A_T z₀ − y`, `f = ‖r₀‖²`, then per inner step
//! `g = A_Tᵀ r`, `‖g‖²`, `q = A_T g`, all 11 trials `‖r − μ2⁻ʲ q‖²` in one pass, the decision,
//! and the updates of z and r (or the reset to z₀, r₀). Read back: the state and z.
//!
//! Random generators of a gradient pass are uploaded in chunks within the memory budget: one
//! chunk (one submission) unless the live neurons' generators exceed an eighth of the budget.
//! When X streams by row blocks, each block is its own submission.

use super::armijo::{self, Finish, State, STATE_BYTES};
use super::buffers::Recorder;
use super::context::GpuContext;
use super::masked_gradient::{self, GradientBufs};
use super::topk::{self, Running};
use super::workspace::{LiveMasks, Workspace};
use crate::backend::{rules, Backend, Counters, GradientPhase, SupportPhase};
use crate::error::{Error, Result};
use crate::problem::model::{Blocks, Loss, VectorStep};
use crate::problem::operator::{Generators, Operator};
use crate::problem::sparse::SparseVec;
use crate::problem::topk::TopS;
use std::sync::Arc;

/// Most neurons per tile of the gradient pass: all live neurons of a step in one dispatch, up to
/// this and within an eighth of the memory budget.
const MAX_TILE: usize = 4096;

/// The WebGPU engine.
pub struct GpuBackend {
    pub(super) ctx: Arc<GpuContext>,
    pub(super) ws: Workspace,
    /// The largest support a phase has asked for: support buffers are sized for it at once.
    keep_hint: usize,
    /// The support prepared by [`crate::backend::SupportOps::prepare_support`].
    pub(super) prepared: Option<super::workspace::SupportInfo>,
}

impl GpuBackend {
    /// An engine on `ctx` that keeps its device buffers under `budget` bytes where it can
    /// (default: half the adapter's largest buffer, at most 2 GiB).
    pub fn new(ctx: Arc<GpuContext>, budget: Option<u64>) -> Self {
        let budget = budget.unwrap_or_else(|| (ctx.limits.max_buffer_size / 2).min(2 << 30));
        Self {
            ws: Workspace::new(ctx.clone(), budget),
            ctx,
            keep_hint: 0,
            prepared: None,
        }
    }

    /// The context (adapter name, limits, memory counter).
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The memory budget in bytes.
    pub fn budget(&self) -> u64 {
        self.ws.budget
    }

    /// Dense generators of `neurons`, `h[jj·d + i]`.
    pub(super) fn generators(op: &Operator, neurons: &[u32]) -> Vec<f32> {
        neurons.iter().flat_map(|&j| op.generator(j)).collect()
    }

    /// The buffers both phases of a step use: n-vectors (r, r₀, A_T g), support-sized vectors
    /// (g, z, z₀) for supports of up to `cap` entries, the partial sums and the state.
    fn ensure_step_buffers(&mut self, n: usize, cap: usize) -> Result<()> {
        for (name, bytes) in [
            ("r", n * 4),
            ("r0", n * 4),
            ("q", n * 4),
            ("g", cap * 4),
            ("g0", cap * 4),
            ("h", cap * 4),
            ("z", cap * 4),
            ("z0", cap * 4),
            ("part", armijo::MAX_GROUPS * armijo::TRIALS * 8),
            ("state", STATE_BYTES as usize),
        ] {
            self.ws.ensure(name, bytes as u64)?;
        }
        Ok(())
    }

    /// Uploads the sparse iterate for the gradient pass: indices, values and the live position
    /// of each entry's neuron (`u32::MAX` for a neuron that is not live).
    fn upload_iterate(&mut self, x: &SparseVec, live: &[u32], d: usize, cap: usize) -> Result<()> {
        let pos: Vec<u32> = x
            .indices()
            .iter()
            .map(|&c| {
                live.binary_search(&(c / d as u32))
                    .map_or(u32::MAX, |p| p as u32)
            })
            .collect();
        let cap = cap.max(x.nnz()) as u64 * 4;
        for name in ["x_idx", "x_val", "x_pos"] {
            self.ws.ensure(name, cap)?;
        }
        self.ws.put("x_idx", x.indices())?;
        self.ws.put("x_val", x.values())?;
        self.ws.put("x_pos", &pos)
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        format!(
            "gpu ({}, {})",
            self.ctx.adapter.name, self.ctx.adapter.backend
        )
    }

    fn gradient_phase(
        &mut self,
        op: &Operator,
        x: &SparseVec,
        keep: usize,
    ) -> Result<GradientPhase> {
        Error::check_len("x (m·d)", op.cols() as usize, x.len() as usize)?;
        self.ws.ensure_data(op)?;
        self.keep_hint = self.keep_hint.max(keep);
        let (n, d) = (op.n(), op.d());
        let cap = self.keep_hint;
        let live = op.live_neurons();
        let block_rows = self.ws.blocks(n)[0].len();
        let block_words = block_rows.div_ceil(32);
        // Per neuron of a tile: its dense weights, generators and gradient, and its masks.
        let per_neuron = (3 * d * 4 + block_words * 4) as u64;
        let fit = (self.ws.budget / 8 / per_neuron).max(1) as usize;
        let tile = MAX_TILE.min(fit).min(live.len()).max(1);
        let pool_blocks = topk::blocks(cap, tile * d);
        if pool_blocks > self.ctx.limits.max_compute_workgroups_per_dimension as usize {
            return Err(Error::invalid(
                "s",
                keep,
                "the running top-s exceeds one dispatch of the GPU engine",
            ));
        }
        // Step 1 on the old support.
        let s = self.ws.upload_support(op, x.indices(), cap)?;
        self.ensure_step_buffers(n, cap)?;
        for (name, bytes) in [
            ("tile_x", tile * d * 4),
            ("tile_g", tile * d * 4),
            (
                "grad_part",
                masked_gradient::partial_len(block_rows, d, tile) * 4,
            ),
            ("live", live.len().max(1) * 4),
            ("run_idx0", cap * 4),
            ("run_val0", cap * 4),
            ("run_idx1", cap * 4),
            ("run_val1", cap * 4),
            ("ctl", topk::CTL_WORDS * 4),
            ("blocks", pool_blocks * 16),
        ] {
            self.ws.ensure(name, bytes as u64)?;
        }
        self.ws.put("z", x.values())?;
        self.ws.put("live", &live)?;
        self.ws
            .put("state", &[State::with_mu(rules::EMPTY_MU as f32)])?;
        self.upload_iterate(x, &live, d, cap)?;
        // Generators from the host (random ones, or weights other than the iterate), in chunks of
        // whole tiles within an eighth of the budget; or, when h = w = x (the sequential-convex
        // schedule), the tile's own weights.
        let host_h = match op.generators() {
            Generators::Random { .. } => true,
            Generators::Weights(w) => w != x,
        };
        let chunk = if host_h {
            let per = (d * 4) as u64;
            let fit = ((self.ws.budget / 8 / per) as usize / tile).max(1) * tile;
            fit.min(live.len().max(1))
        } else {
            live.len().max(1)
        };
        if host_h {
            self.ws.ensure("chunk_h", (chunk * d * 4) as u64)?;
        }
        // With h = x the masks of the old support are those of the live neurons, in the same order:
        // the gradient pass reads them instead of forming them again.
        let reuse_masks = !host_h && s.neurons == live;
        // With random generators, all live neurons in one tile and X whole on the device, the
        // step's masks are formed once, first, and kept: the old support's and the new support's
        // (in the support phase) are copied from them.
        let words_n = n.div_ceil(32);
        let seed = match op.generators() {
            Generators::Random { seed } => Some(*seed),
            Generators::Weights(_) => None,
        };
        let keep_masks = seed.is_some()
            && tile == live.len()
            && chunk == live.len()
            && !self.ws.streaming()
            && self.ws.blocks(n).len() == 1;
        // The random generators are the run's own (one seed), so a later random step on the same
        // data and live neurons has the masks an earlier one kept: they are not formed again.
        let kept = keep_masks
            && (self.ws.live_masks.as_ref()).is_some_and(|lm| lm.under(op) && lm.live == live);
        if !kept {
            self.ws.live_masks = None;
        }
        if keep_masks {
            self.ws.ensure("live_bits", (tile * words_n * 4) as u64)?;
        } else if !reuse_masks {
            // Only a tile that forms its own masks needs its generators and bits.
            self.ws.ensure("tile_h", (tile * d * 4) as u64)?;
            self.ws
                .ensure("tile_bits", (tile * block_words * 4) as u64)?;
        }
        let ctx = self.ctx.clone();
        let mut rec = Recorder::new(&ctx);
        if keep_masks && !kept {
            ctx.write(self.ws.get("chunk_h"), 0, &Self::generators(op, &live));
            let xs = super::workspace::x_stride(n) as u32;
            let mp = super::relu_mask::Params::new(n, d, tile, (xs, 0), words_n, 0);
            let xv = self.ws.get("x");
            super::relu_mask::encode(
                &mut rec,
                &mp,
                xv,
                self.ws.get("chunk_h"),
                self.ws.get("live_bits"),
            );
            self.ws.live_masks = Some(LiveMasks {
                seed: seed.unwrap_or_default(),
                key: Arc::downgrade(op.data_arc()),
                live: live.clone(),
            });
        }
        let ws = &self.ws;
        ws.record_masks(&mut rec, op, &s);
        ws.record_forward(&mut rec, op, &s, ws.get("z"), ws.get("r"), true);
        let state = ws.get("state");
        let part = ws.get("part");
        if !x.is_empty() {
            ws.record_adjoint(&mut rec, op, &s, ws.get("r"), ws.get("g"));
            armijo::norm_into(&mut rec, state, part, ws.get("g"), s.len, Finish::Gg);
            ws.record_forward(&mut rec, op, &s, ws.get("g"), ws.get("q"), false);
            armijo::norm_into(&mut rec, state, part, ws.get("q"), n, Finish::Niht);
        }
        // Step 2: the streamed gradient pass and the running top-s, on the device.
        let run = Running {
            idx: [ws.get("run_idx0"), ws.get("run_idx1")],
            val: [ws.get("run_val0"), ws.get("run_val1")],
            ctl: ws.get("ctl"),
            blocks: ws.get("blocks"),
        };
        rec.clear(run.ctl, 0, (topk::CTL_WORDS * 4) as u64);
        let nblocks = ws.blocks(n).len();
        let (xt, tg) = (ws.get("tile_x"), ws.get("tile_g"));
        let mut tiles = 0;
        for (c, chunk_live) in live.chunks(chunk).enumerate() {
            if host_h && !keep_masks {
                if c > 0 {
                    // The chunk buffer is rewritten: what used it must be submitted first.
                    rec.flush();
                }
                ctx.write(ws.get("chunk_h"), 0, &Self::generators(op, chunk_live));
            }
            for (q, neurons) in chunk_live.chunks(tile).enumerate() {
                let t = neurons.len();
                let first = c * chunk + q * tile;
                rec.clear(xt, 0, (t * d * 4) as u64);
                masked_gradient::scatter(
                    &mut rec,
                    x.nnz(),
                    d,
                    first,
                    t,
                    ws.get("x_idx"),
                    ws.get("x_val"),
                    ws.get("x_pos"),
                    xt,
                );
                if !reuse_masks && !keep_masks {
                    // h = x is copied, so that both schedules bind the same buffers (and reuse
                    // the same bind groups).
                    let (src, at) = if host_h {
                        (ws.get("chunk_h"), (q * tile * d * 4) as u64)
                    } else {
                        (xt, 0)
                    };
                    rec.copy(src, at, ws.get("tile_h"), 0, (t * d * 4) as u64);
                }
                ws.each_block(&mut rec, op, |rec, xv, rows, k| {
                    let bw = rows.len().div_ceil(32);
                    let (bits, words, bits0) = if reuse_masks {
                        (ws.get("t_bits"), words_n, first * words_n + rows.start / 32)
                    } else if keep_masks {
                        (ws.get("live_bits"), words_n, 0)
                    } else {
                        let mp = super::relu_mask::Params::new(
                            rows.len(),
                            d,
                            t,
                            (xv.stride, xv.row0),
                            bw,
                            0,
                        );
                        let tb = ws.get("tile_bits");
                        super::relu_mask::encode(rec, &mp, xv.buf, ws.get("tile_h"), tb);
                        (tb, bw, 0)
                    };
                    let gp = masked_gradient::Params {
                        x_row0: xv.row0,
                        r_row0: rows.start as u32,
                        accumulate: (k > 0) as u32,
                        finish: (k + 1 == nblocks) as u32,
                        mu_from_state: 1,
                        bits0: bits0 as u32,
                        ..masked_gradient::Params::new(rows.len(), d, t, words, xv.stride)
                    };
                    let b = GradientBufs {
                        x: xv.buf,
                        x_is_data: true,
                        res: ws.get("r"),
                        bits,
                        xtile: xt,
                        g: tg,
                        state,
                        part: ws.get("grad_part"),
                    };
                    masked_gradient::encode(rec, &gp, &b);
                });
                topk::merge(
                    &mut rec,
                    &run,
                    tg,
                    ws.get("live"),
                    first,
                    t * d,
                    d,
                    keep,
                    tiles,
                );
                tiles += 1;
            }
        }
        let o = tiles % 2;
        let bytes = rec.read(&[
            (state, 0, STATE_BYTES),
            (run.ctl, ((topk::COUNT + o) * 4) as u64, 4),
            (run.idx[o], 0, (keep * 4) as u64),
            (run.val[o], 0, (keep * 4) as u64),
        ])?;
        let st: State = bytemuck::pod_read_unaligned(&bytes[..STATE_BYTES as usize]);
        let at = STATE_BYTES as usize;
        let count = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if count > keep {
            return Err(Error::Gpu {
                what: "gradient phase",
                message: format!("the device kept {count} entries for a budget of {keep}"),
            });
        }
        let words: &[u8] = &bytes[at + 4..];
        let idx: Vec<u32> = bytemuck::pod_collect_to_vec(&words[..count * 4]);
        let val: Vec<f32> = bytemuck::pod_collect_to_vec(&words[keep * 4..keep * 4 + count * 4]);
        let mut z0 = SparseVec::from_sorted(op.cols(), idx, val);
        // Weights on neurons whose generator is zero (possible when the generators are not the
        // iterate itself) have a zero block: they stay candidates with their own value.
        let dead: Vec<(u32, f32)> = x
            .indices()
            .iter()
            .zip(x.values())
            .filter(|(&c, _)| live.binary_search(&(c / d as u32)).is_err())
            .map(|(&c, &v)| (c, v))
            .collect();
        if !dead.is_empty() {
            let mut top = TopS::new(keep);
            for (&c, &v) in z0
                .indices()
                .iter()
                .zip(z0.values())
                .chain(dead.iter().map(|(c, v)| (c, v)))
            {
                top.push(c, v);
            }
            z0 = top.finish(op.cols());
        }
        Ok(GradientPhase {
            z0,
            mu: st.mu as f64,
        })
    }

    fn support_phase(
        &mut self,
        op: &Operator,
        z0: &SparseVec,
        mu: f64,
        inner_steps: usize,
    ) -> Result<SupportPhase> {
        Error::check_len("z0 (m·d)", op.cols() as usize, z0.len() as usize)?;
        self.ws.ensure_data(op)?;
        let n = op.n();
        let cap = self.keep_hint.max(z0.nnz());
        let t = self.ws.upload_support(op, z0.indices(), cap)?;
        self.ensure_step_buffers(n, cap)?;
        self.ws.put("z0", z0.values())?;
        self.ws.put("state", &[State::with_mu(mu as f32)])?;
        let ctx = self.ctx.clone();
        let ws = &self.ws;
        let (state, part) = (ws.get("state"), ws.get("part"));
        let (r, r0, q, g, g0, h, z, zs) = (
            ws.get("r"),
            ws.get("r0"),
            ws.get("q"),
            ws.get("g"),
            ws.get("g0"),
            ws.get("h"),
            ws.get("z"),
            ws.get("z0"),
        );
        let mut rec = Recorder::new(&ctx);
        ws.record_masks(&mut rec, op, &t);
        ws.record_forward(&mut rec, op, &t, zs, r0, true);
        ws.record_adjoint(&mut rec, op, &t, r0, g0);
        rec.copy(r0, 0, r, 0, (n * 4) as u64);
        rec.copy(g0, 0, g, 0, (t.len * 4) as u64);
        rec.copy(zs, 0, z, 0, (t.len * 4) as u64);
        armijo::norm_into(&mut rec, state, part, r0, n, Finish::Start);
        // The rules' carried gradient: g ← g − μ A_Tᵀ q on acceptance, g₀ on a reset.
        for _ in 0..inner_steps {
            armijo::norm_into(&mut rec, state, part, g, t.len, Finish::Gg);
            ws.record_forward(&mut rec, op, &t, g, q, false);
            ws.record_adjoint(&mut rec, op, &t, q, h);
            armijo::trials_and_decide(&mut rec, state, part, r, q, n);
            armijo::update(&mut rec, state, z, g, zs, t.len);
            armijo::update(&mut rec, state, g, h, g0, t.len);
            armijo::update(&mut rec, state, r, q, r0, n);
        }
        let bytes = rec.read(&[(state, 0, STATE_BYTES), (z, 0, (t.len * 4) as u64)])?;
        let st: State = bytemuck::pod_read_unaligned(&bytes[..STATE_BYTES as usize]);
        Ok(SupportPhase {
            z: bytemuck::pod_collect_to_vec(&bytes[STATE_BYTES as usize..]),
            f: State::value(st.f),
            mu: st.mu as f64,
            trials: st.trials as usize,
            resets: st.resets as usize,
        })
    }

    fn refine(&mut self, op: &Operator, x: &SparseVec, iters: usize) -> Result<SparseVec> {
        rules::cgls(self, op, x, iters)
    }

    fn predict(&mut self, op: &Operator, x: &SparseVec) -> Result<Vec<f32>> {
        rules::predict(self, op, x)
    }

    fn vector_forward(&mut self, op: &Operator, b: &Blocks, k: usize) -> Result<Vec<f32>> {
        super::vector_model::forward(self, op, b, k)
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
        super::vector_model::step(self, op, targets, k, loss, cur, at, alpha)
    }

    fn peak_device_bytes(&self) -> u64 {
        self.ctx.peak_device_bytes()
    }

    fn forget_kept(&mut self) {
        self.ws.live_masks = None;
    }

    fn start_profile(&mut self) -> bool {
        self.ctx.start_profile()
    }

    fn take_profile(&mut self) -> Option<crate::backend::KernelTimes> {
        self.ctx.take_profile()
    }

    fn counters(&self) -> Counters {
        self.ctx.counters()
    }
}
