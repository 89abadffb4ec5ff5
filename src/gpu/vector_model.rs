//! The vector-output model (SPEC §3) on the device: `shaders/vector_model.wgsl` (hidden, output,
//! residual, backprop) and `masked_gradient` with a per-neuron residual, tile by tile of live
//! neurons. Each tile holds its generators, W1 and W2 rows, whole-batch activation bits and an
//! n × tile buffer of hidden values; tiles are sized from the engine's memory budget, and X streams
//! by row blocks when it does not fit. Only the loss per row and the candidates come back.

use super::buffers::{rows_grid, DeviceBuffer, Recorder};
use super::engine::GpuBackend;
use super::masked_gradient::{self, GradientBufs};
use super::relu_mask;
use super::workspace::Workspace;
use crate::error::{Error, Result};
use crate::problem::model::{Blocks, Loss, VectorStep};
use crate::problem::operator::Operator;
use std::ops::Range;

/// Mirrors `Params` of `shaders/vector_model.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub d: u32,
    pub tile: u32,
    pub k: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub row0: u32,
    pub n: u32,
    pub words: u32,
    pub accumulate: u32,
    /// 1: MSE, 2: softmax cross-entropy.
    pub loss: u32,
    pub _pad: u32,
}

/// Workgroups of 64 for `len` invocations.
fn groups64(len: usize) -> u32 {
    len.div_ceil(64) as u32
}

/// One tile's device buffers of the vector model.
struct VectorTile {
    h: DeviceBuffer,
    w1: DeviceBuffer,
    w2: DeviceBuffer,
    bits: DeviceBuffer,
    hq: DeviceBuffer,
}

impl GpuBackend {
    /// Neurons per tile of the vector model: its n × tile hidden values within a quarter of the
    /// budget and one storage binding.
    fn vector_tile(&self, n: usize, d: usize, t: usize) -> usize {
        let per_neuron = (2 * n + 3 * d + n.div_ceil(32)) as u64 * 4;
        let cap = (self.ws.budget / 4).min(self.ctx.limits.max_storage_buffer_binding_size)
            / per_neuron.max(1);
        (cap as usize).clamp(1, 65_535).min(t.max(1))
    }

    fn vector_buffers(&self, n: usize, d: usize, k: usize, tile: usize) -> VectorTile {
        let ctx = &self.ctx;
        VectorTile {
            h: ctx.storage("relu-iht.vector_h", (tile * d * 4) as u64),
            w1: ctx.storage("relu-iht.vector_w1", (tile * d * 4) as u64),
            w2: ctx.storage("relu-iht.vector_w2", (tile * k * 4) as u64),
            bits: ctx.storage("relu-iht.vector_bits", (tile * n.div_ceil(32) * 4) as u64),
            hq: ctx.storage("relu-iht.vector_hq", (tile * n * 4) as u64),
        }
    }

    /// Uploads the tile `range` of `b` and records its masks and hidden values
    /// `H = M ∘ (X W1ᵀ)` over every row block.
    fn vector_hidden<'c>(
        &self,
        rec: &mut Recorder<'c>,
        op: &Operator,
        b: &Blocks,
        k: usize,
        range: &Range<usize>,
        bufs: &VectorTile,
    ) {
        let ctx = &self.ctx;
        let (n, d, t) = (op.n(), op.d(), range.len());
        let words = n.div_ceil(32);
        ctx.write(&bufs.h, 0, &Self::generators(op, &b.live[range.clone()]));
        ctx.write(&bufs.w1, 0, &b.w1[range.start * d..range.end * d]);
        ctx.write(&bufs.w2, 0, &b.w2[range.start * k..range.end * k]);
        self.ws.each_block(rec, op, |rec, xv, rows, _| {
            let mp = relu_mask::Params::new(
                rows.len(),
                d,
                t,
                (xv.stride, xv.row0),
                words,
                rows.start / 32,
            );
            let groups = (groups64(rows.len()), t.div_ceil(4) as u32, 1);
            relu_mask::encode(rec, &mp, xv.buf, &bufs.h, &bufs.bits);
            let vp = Params {
                rows: rows.len() as u32,
                x_stride: xv.stride,
                x_row0: xv.row0,
                row0: rows.start as u32,
                ..vector_params(n, d, k, t)
            };
            let bind = [xv.buf, &bufs.w1, &bufs.bits, &bufs.hq];
            rec.dispatch("vector_model.hidden", &vp, &bind, groups);
        });
    }

    /// Records `Ŷ` (k × n column-major, in `out`) of `b`; returns the tile width and, when one
    /// tile covered every neuron, its buffers (hidden values still in `hq`).
    fn vector_yhat(
        &self,
        op: &Operator,
        b: &Blocks,
        k: usize,
        out: &DeviceBuffer,
    ) -> Result<(usize, Option<VectorTile>)> {
        let ctx = &self.ctx;
        let (n, d, t) = (op.n(), op.d(), b.live.len());
        let tile = self.vector_tile(n, d, t);
        if t == 0 {
            ctx.write(out, 0, &vec![0.0f32; n * k]);
            return Ok((tile, None));
        }
        let bufs = self.vector_buffers(n, d, k, tile);
        for (q, lo) in (0..t).step_by(tile).enumerate() {
            let range = lo..(lo + tile).min(t);
            let mut rec = Recorder::new(ctx);
            self.vector_hidden(&mut rec, op, b, k, &range, &bufs);
            let vp = Params {
                accumulate: (q > 0) as u32,
                ..vector_params(n, d, k, range.len())
            };
            let bind = [&bufs.w2, &bufs.hq, out];
            rec.dispatch("vector_model.output", &vp, &bind, rows_grid(n));
            rec.submit()?;
        }
        Ok((tile, (tile >= t).then_some(bufs)))
    }
}

/// The vector model's parameters for a whole-batch pass of a tile (rows and views set by callers).
fn vector_params(n: usize, d: usize, k: usize, tile: usize) -> Params {
    Params {
        rows: n as u32,
        d: d as u32,
        tile: tile as u32,
        k: k as u32,
        x_stride: super::workspace::x_stride(n) as u32,
        x_row0: 0,
        row0: 0,
        n: n as u32,
        words: n.div_ceil(32) as u32,
        accumulate: 0,
        loss: 0,
        _pad: 0,
    }
}

/// [`crate::Backend::vector_forward`] on the device.
pub fn forward(be: &mut GpuBackend, op: &Operator, b: &Blocks, k: usize) -> Result<Vec<f32>> {
    b.check(op.d(), k)?;
    be.ws.ensure_data(op)?;
    let n = op.n();
    let out = be.ctx.storage("relu-iht.vector_out", (n * k * 4) as u64);
    be.vector_yhat(op, b, k, &out)?;
    let yt = Recorder::new(&be.ctx).read_one::<f32>(&out, 0, n * k)?;
    Ok(transpose(&yt, k, n))
}

/// [`crate::Backend::vector_step`] on the device: forward at `cur`, the residual kernel, then per
/// tile of `at`: G2 (`masked_gradient` over R with H as per-neuron residual), `backprop`, and G1
/// (`masked_gradient` over X with Q, streamed by row blocks when X is).
#[allow(clippy::too_many_arguments)]
pub fn step(
    be: &mut GpuBackend,
    op: &Operator,
    targets: &[f32],
    k: usize,
    loss: Loss,
    cur: &Blocks,
    at: Option<&Blocks>,
    alpha: f32,
) -> Result<VectorStep> {
    let (n, d) = (op.n(), op.d());
    Error::check_len("targets (n·k)", n * k, targets.len())?;
    cur.check(d, k)?;
    if let Some(at) = at {
        at.check_same_neurons(cur, d, k)?;
    }
    Workspace::check_rows(op)?;
    be.ws.ensure_data(op)?;
    let ctx = be.ctx.clone();
    // Forward at `cur`, then the residual in place of Ŷ and the per-row losses.
    let out = ctx.storage("relu-iht.vector_out", (n * k * 4) as u64);
    let (tile, kept) = be.vector_yhat(op, cur, k, &out)?;
    let y = ctx.storage_init("relu-iht.vector_y", &transpose(targets, n, k));
    let lossv = ctx.storage("relu-iht.vector_loss", (n * 4) as u64);
    let vp = Params {
        loss: match loss {
            Loss::Mse => 1,
            Loss::CrossEntropy => 2,
        },
        ..vector_params(n, d, k, 0)
    };
    let mut rec = Recorder::new(&ctx);
    let bind = [&out, &y, &lossv];
    rec.dispatch("vector_model.residual", &vp, &bind, rows_grid(n));
    let total: f64 = rec
        .read_one::<f32>(&lossv, 0, n)?
        .iter()
        .map(|&v| v as f64)
        .sum();
    // Gradients at `at`, tile by tile: G2 = Hᵀ R, Q = M ∘ (R W2ᵀ), G1 = Qᵀ X; candidates.
    let b = at.unwrap_or(cur);
    let t = b.live.len();
    let (mut w1, mut w2) = (vec![0.0f32; t * d], vec![0.0f32; t * k]);
    let reuse = at.is_none() && kept.is_some();
    let bufs = match kept {
        Some(bufs) => bufs,
        None => be.vector_buffers(n, d, k, tile),
    };
    let q = ctx.storage("relu-iht.vector_q", (tile.min(t.max(1)) * n * 4) as u64);
    let g1 = ctx.storage("relu-iht.vector_g1", (tile * d * 4) as u64);
    let g2 = ctx.storage("relu-iht.vector_g2", (tile * k * 4) as u64);
    let nblocks = be.ws.blocks(n).len();
    let block_rows = be.ws.blocks(n)[0].len();
    let part_len = masked_gradient::partial_len(n, k, tile)
        .max(masked_gradient::partial_len(block_rows, d, tile));
    let part = ctx.storage("relu-iht.vector_part", (part_len * 4) as u64);
    for lo in (0..t).step_by(tile) {
        let range = lo..(lo + tile).min(t);
        let tt = range.len();
        let mut rec = Recorder::new(&ctx);
        if !reuse {
            be.vector_hidden(&mut rec, op, b, k, &range, &bufs);
        }
        let gp = masked_gradient::Params {
            finish: 1,
            mu: alpha,
            res_stride: n as u32,
            ..masked_gradient::Params::new(n, k, tt, n.div_ceil(32), n as u32)
        };
        let gb = GradientBufs {
            x: &out,
            x_is_data: false,
            res: &bufs.hq,
            bits: &bufs.bits,
            xtile: &bufs.w2,
            g: &g2,
            state: &bufs.w2,
            part: &part,
        };
        masked_gradient::encode(&mut rec, &gp, &gb);
        let vp = vector_params(n, d, k, tt);
        let bind = [&bufs.w2, &bufs.bits, &q, &out];
        let groups = (rows_grid(n).0, rows_grid(n).1, tt as u32);
        rec.dispatch("vector_model.backprop", &vp, &bind, groups);
        be.ws.each_block(&mut rec, op, |rec, xv, rows, blk| {
            let gp = masked_gradient::Params {
                x_row0: xv.row0,
                r_row0: rows.start as u32,
                accumulate: (blk > 0) as u32,
                finish: (blk + 1 == nblocks) as u32,
                mu: alpha,
                res_stride: n as u32,
                ..masked_gradient::Params::new(rows.len(), d, tt, n.div_ceil(32), xv.stride)
            };
            let gb = GradientBufs {
                x: xv.buf,
                x_is_data: true,
                res: &q,
                bits: &bufs.bits,
                xtile: &bufs.w1,
                g: &g1,
                state: &bufs.w1,
                part: &part,
            };
            masked_gradient::encode(rec, &gp, &gb);
        });
        let c = rec.read(&[(&g1, 0, (tt * d * 4) as u64), (&g2, 0, (tt * k * 4) as u64)])?;
        let c1: Vec<f32> = bytemuck::pod_collect_to_vec(&c[..tt * d * 4]);
        let c2: Vec<f32> = bytemuck::pod_collect_to_vec(&c[tt * d * 4..]);
        w1[lo * d..range.end * d].copy_from_slice(&c1);
        w2[lo * k..range.end * k].copy_from_slice(&c2);
    }
    Ok(VectorStep {
        loss: total / n.max(1) as f64,
        w1,
        w2,
    })
}

/// `rows × cols` row-major to `cols × rows` row-major.
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}
