//! [`GpuBackend`]: the solver's operations on a WebGPU device.
//!
//! Resident on the device: the data (whole when it fits half the memory budget and one storage
//! binding, else one block of rows at a time, streamed from the host for every pass), the targets,
//! the support (columns, runs, activation bits) and the n-vectors the solver holds; for the
//! gradient pass one tile of generators, weights, gradients and block masks, plus the top-s
//! buffers. Support-sized results and the survivors of each tile's selection are read back.

use super::buffers::DeviceBuffer;
use super::context::GpuContext;
use super::kernels::*;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::problem::data::Data;
use crate::problem::model::{Blocks, Loss, VectorStep};
use crate::problem::operator::{Generators, Operator, Support};
use crate::problem::sparse::SparseVec;
use crate::problem::topk::TopS;
use std::ops::Range;
use std::sync::{Arc, Weak};

/// Rows a single dispatch of the row kernels may cover (65 535 workgroups of 64; a multiple of 64).
const MAX_DISPATCH_ROWS: usize = 65_535 * 64;
/// Most neurons per tile of the gradient pass (fewer under a small `--device-memory`).
const TILE: usize = 256;

/// An n-vector on the device.
#[derive(Debug)]
pub struct GpuVector {
    buf: DeviceBuffer,
    len: usize,
}

struct Resident {
    key: Weak<Data>,
    /// The whole of X (column-major) when it fits, else `None` and X is streamed by blocks.
    x: Option<DeviceBuffer>,
    /// The reusable block buffer when streaming.
    block: Option<DeviceBuffer>,
    block_rows: usize,
    y: DeviceBuffer,
}

struct SupportDev {
    len: usize,
    runs: usize,
    cols: DeviceBuffer,
    run_start: DeviceBuffer,
    run_of: DeviceBuffer,
    bits: DeviceBuffer,
}

/// Where the rows of one block live: the buffer, its column stride and the block's first row in it.
pub(super) struct XView<'a> {
    pub(super) buf: &'a DeviceBuffer,
    pub(super) stride: u32,
    pub(super) row0: u32,
}

/// The WebGPU engine.
pub struct GpuBackend {
    pub(super) ctx: Arc<GpuContext>,
    pub(super) budget: u64,
    data: Option<Resident>,
    support: Option<SupportDev>,
}

impl GpuBackend {
    /// An engine on `ctx` that keeps its device buffers under `budget` bytes where it can
    /// (default: half the adapter's largest buffer, at most 2 GiB).
    pub fn new(ctx: Arc<GpuContext>, budget: Option<u64>) -> Self {
        let budget = budget.unwrap_or_else(|| (ctx.limits.max_buffer_size / 2).min(2 << 30));
        Self {
            ctx,
            budget,
            data: None,
            support: None,
        }
    }

    /// The context (adapter name, limits, memory counter).
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Uploads the operator's data unless it is already resident.
    pub(super) fn ensure_data(&mut self, op: &Operator) -> Result<()> {
        let data = op.data_arc();
        if let Some(r) = &self.data {
            if r.key.strong_count() > 0 && Weak::ptr_eq(&r.key, &Arc::downgrade(data)) {
                return Ok(());
            }
        }
        self.data = None;
        self.support = None;
        let (n, d) = (data.n(), data.d());
        let x_bytes = (n * d * 4) as u64;
        let binding = self.ctx.limits.max_storage_buffer_binding_size;
        if (n * 4) as u64 > binding {
            return Err(Error::invalid(
                "n",
                n,
                "the targets exceed the adapter's largest storage buffer",
            ));
        }
        let y = self.ctx.storage_init("relu-iht.y", data.y());
        let resident = x_bytes <= self.budget / 2 && x_bytes <= binding;
        let (x, block, block_rows) = if resident {
            let x = self.ctx.storage_init("relu-iht.x", data.xt());
            (Some(x), None, n.min(MAX_DISPATCH_ROWS))
        } else {
            let cap = (self.budget / 4).min(binding) / (4 * d as u64);
            let rows = ((cap as usize / 64) * 64)
                .clamp(64, MAX_DISPATCH_ROWS)
                .min(n.div_ceil(64) * 64);
            let block = self.ctx.storage("relu-iht.x_block", (rows * d * 4) as u64);
            (None, Some(block), rows)
        };
        self.data = Some(Resident {
            key: Arc::downgrade(data),
            x,
            block,
            block_rows,
            y,
        });
        Ok(())
    }

    /// Row blocks of the current data (multiples of 64 rows, so mask words align).
    pub(super) fn blocks(&self, n: usize) -> Vec<Range<usize>> {
        let rows = self.data.as_ref().map_or(n, |r| r.block_rows).max(1);
        crate::problem::stream::row_blocks(n, rows).collect()
    }

    /// Makes block `rows` visible (uploading it when streaming) and returns its view.
    fn view(&self, op: &Operator, rows: &Range<usize>) -> XView<'_> {
        let r = self.data.as_ref().expect("data resident");
        if let Some(x) = &r.x {
            return XView {
                buf: x,
                stride: op.n() as u32,
                row0: rows.start as u32,
            };
        }
        let block = r.block.as_ref().expect("block buffer");
        let data = op.data();
        let mut host = Vec::with_capacity(rows.len() * op.d());
        for i in 0..op.d() {
            host.extend_from_slice(&data.column(i)[rows.clone()]);
        }
        self.ctx.write(block, 0, &host);
        XView {
            buf: block,
            stride: rows.len() as u32,
            row0: 0,
        }
    }

    fn streaming(&self) -> bool {
        self.data.as_ref().is_some_and(|r| r.x.is_none())
    }

    /// Dense generators of `neurons`, `h[jj·d + i]`.
    pub(super) fn generators(op: &Operator, neurons: &[u32]) -> Vec<f32> {
        neurons.iter().flat_map(|&j| op.generator(j)).collect()
    }

    fn support(&self) -> Result<&SupportDev> {
        self.support.as_ref().ok_or_else(|| Error::Gpu {
            what: "support",
            message: "no support prepared".into(),
        })
    }

    pub(super) fn check_rows(op: &Operator) -> Result<()> {
        if op.n() as u64 * op.d() as u64 >= u32::MAX as u64 {
            return Err(Error::invalid(
                "n·d",
                op.n() * op.d(),
                "exceeds the GPU engine's 32-bit indexing",
            ));
        }
        Ok(())
    }

    /// Records `f` for every row block and returns the encoder holding the unsubmitted rest:
    /// when streaming, each block is submitted as soon as it is recorded (the block buffer is
    /// reused), so the returned encoder is empty.
    pub(super) fn each_block(
        &self,
        op: &Operator,
        mut f: impl FnMut(&mut wgpu::CommandEncoder, &XView<'_>, &Range<usize>, usize),
    ) -> wgpu::CommandEncoder {
        let blocks = self.blocks(op.n());
        let mut enc = self.ctx.encoder();
        for (k, rows) in blocks.iter().enumerate() {
            let view = self.view(op, rows);
            f(&mut enc, &view, rows, k);
            if self.streaming() {
                self.ctx
                    .submit(std::mem::replace(&mut enc, self.ctx.encoder()));
            }
        }
        enc
    }
}

impl Backend for GpuBackend {
    type Vector = GpuVector;

    fn name(&self) -> String {
        format!(
            "gpu ({}, {})",
            self.ctx.adapter.name, self.ctx.adapter.backend
        )
    }

    fn upload(&mut self, host: &[f32]) -> Result<GpuVector> {
        Ok(GpuVector {
            buf: self.ctx.storage_init("relu-iht.vector", host),
            len: host.len(),
        })
    }

    fn download(&mut self, v: &GpuVector) -> Result<Vec<f32>> {
        self.ctx.read(None, &v.buf, 0, v.len)
    }

    fn prepare_support(&mut self, op: &Operator, support: &[u32]) -> Result<()> {
        Self::check_rows(op)?;
        self.ensure_data(op)?;
        // Release the previous support's buffers before allocating the new ones.
        self.support = None;
        let (n, d) = (op.n(), op.d());
        let t = Support::new(support, d);
        if let Some(&c) = t.idx.last() {
            if c as u64 >= op.cols() {
                return Err(Error::invalid(
                    "support index",
                    c,
                    format!("≥ m·d = {}", op.cols()),
                ));
            }
        }
        let neurons: Vec<u32> = t.runs.iter().map(|r| r.0).collect();
        if neurons.len() > self.ctx.limits.max_compute_workgroups_per_dimension as usize {
            return Err(Error::invalid(
                "support neurons",
                neurons.len(),
                "exceed one dispatch",
            ));
        }
        let words = n.div_ceil(32);
        let cols: Vec<u32> = t.idx.iter().map(|&c| c % d as u32).collect();
        let mut run_start: Vec<u32> = t.runs.iter().map(|r| r.1 as u32).collect();
        run_start.push(t.len() as u32);
        let run_of: Vec<u32> = t
            .runs
            .iter()
            .enumerate()
            .flat_map(|(k, r)| std::iter::repeat_n(k as u32, r.2 - r.1))
            .collect();
        let ctx = self.ctx.clone();
        let bits = ctx.try_storage("relu-iht.support_bits", (neurons.len() * words * 4) as u64)?;
        if !neurons.is_empty() {
            let h = ctx.storage_init("relu-iht.support_h", &Self::generators(op, &neurons));
            let enc = self.each_block(op, |enc, x, rows, _| {
                let bw = rows.len().div_ceil(32);
                let p = ReluMaskParams {
                    rows: rows.len() as u32,
                    d: d as u32,
                    tile: neurons.len() as u32,
                    words: bw as u32,
                    x_stride: x.stride,
                    x_row0: x.row0,
                    out_stride: words as u32,
                    out_word0: (rows.start / 32) as u32,
                };
                let groups = (groups64(rows.len()), neurons.len().div_ceil(4) as u32, 1);
                ctx.dispatch(
                    enc,
                    &ctx.kernels.relu_mask,
                    &p,
                    &[(1, x.buf), (2, &h), (3, &bits)],
                    groups,
                );
            });
            ctx.submit(enc);
        }
        self.support = Some(SupportDev {
            len: t.len(),
            runs: t.runs.len(),
            cols: ctx.storage_init("relu-iht.support_cols", &cols),
            run_start: ctx.storage_init("relu-iht.support_runs", &run_start),
            run_of: ctx.storage_init("relu-iht.support_run_of", &run_of),
            bits,
        });
        Ok(())
    }

    fn forward(&mut self, op: &Operator, z: &[f32]) -> Result<GpuVector> {
        let ctx = self.ctx.clone();
        let s = self.support()?;
        Error::check_len("z (support size)", s.len, z.len())?;
        let n = op.n();
        let out = ctx.try_storage("relu-iht.forward", (n * 4) as u64)?;
        let zb = ctx.storage_init("relu-iht.z", z);
        let words = n.div_ceil(32) as u32;
        let enc = self.each_block(op, |enc, x, rows, _| {
            let p = SupportForwardParams {
                rows: rows.len() as u32,
                x_stride: x.stride,
                x_row0: x.row0,
                words,
                runs: s.runs as u32,
                out_row0: rows.start as u32,
                m_row0: rows.start as u32,
                _pad: 0,
            };
            let b = [
                (1, x.buf),
                (2, &s.cols),
                (3, &s.run_start),
                (4, &zb),
                (5, &s.bits),
                (6, &out),
            ];
            ctx.dispatch(
                enc,
                &ctx.kernels.support_forward,
                &p,
                &b,
                (groups64(rows.len()), 1, 1),
            );
        });
        ctx.submit(enc);
        Ok(GpuVector { buf: out, len: n })
    }

    fn adjoint(&mut self, op: &Operator, r: &GpuVector) -> Result<Vec<f32>> {
        let ctx = self.ctx.clone();
        let s = self.support()?;
        Error::check_len("r (n)", op.n(), r.len)?;
        if s.len == 0 {
            return Ok(Vec::new());
        }
        let out = ctx.storage("relu-iht.adjoint", (s.len * 4) as u64);
        let words = op.n().div_ceil(32) as u32;
        let groups = ((s.len.min(65_535)) as u32, s.len.div_ceil(65_535) as u32, 1);
        let enc = self.each_block(op, |enc, x, rows, k| {
            let p = SupportAdjointParams {
                rows: rows.len() as u32,
                x_stride: x.stride,
                x_row0: x.row0,
                words,
                len: s.len as u32,
                r_row0: rows.start as u32,
                m_row0: rows.start as u32,
                accumulate: (k > 0) as u32,
            };
            let b = [
                (1, x.buf),
                (2, &s.cols),
                (3, &s.run_of),
                (4, &r.buf),
                (5, &s.bits),
                (6, &out),
            ];
            ctx.dispatch(enc, &ctx.kernels.support_adjoint, &p, &b, groups);
        });
        ctx.read(Some(enc), &out, 0, s.len)
    }

    fn residual(&mut self, op: &Operator, z: &[f32]) -> Result<GpuVector> {
        let mut out = self.forward(op, z)?;
        let y = &self.data.as_ref().expect("data resident").y;
        let ctx = self.ctx.clone();
        let y = GpuVectorRef {
            buf: y,
            len: op.n(),
        };
        axpy_raw(&ctx, &mut out, y, 1.0);
        Ok(out)
    }

    fn norm2(&mut self, v: &GpuVector) -> Result<f64> {
        partial_sums(&self.ctx, v, None, 0.0)
    }

    fn shifted_norm2(&mut self, r: &GpuVector, q: &GpuVector, mu: f64) -> Result<f64> {
        if r.buf.buf == q.buf.buf {
            // One buffer may not be bound read-write and read-only in one dispatch.
            return Ok((1.0 - mu).powi(2) * partial_sums(&self.ctx, r, None, 0.0)?);
        }
        partial_sums(&self.ctx, r, Some(q), mu)
    }

    fn axpy(&mut self, r: &mut GpuVector, q: &GpuVector, mu: f64) -> Result<()> {
        let ctx = self.ctx.clone();
        axpy_raw(
            &ctx,
            r,
            GpuVectorRef {
                buf: &q.buf,
                len: q.len,
            },
            mu,
        );
        Ok(())
    }

    fn gradient_topk(
        &mut self,
        op: &Operator,
        x: &SparseVec,
        r: &GpuVector,
        mu: f32,
        keep: usize,
    ) -> Result<SparseVec> {
        Self::check_rows(op)?;
        self.ensure_data(op)?;
        let ctx = self.ctx.clone();
        let d = op.d();
        let live = op.live_neurons();
        let mut top = TopS::new(keep);
        let tile = TILE.min(live.len().max(1));
        let block_words = self
            .blocks(op.n())
            .first()
            .map_or(1, |b| b.len().div_ceil(32));
        let h = ctx.storage("relu-iht.tile_h", (tile * d * 4) as u64);
        let xt = ctx.storage("relu-iht.tile_x", (tile * d * 4) as u64);
        let g = ctx.storage("relu-iht.tile_g", (tile * d * 4) as u64);
        let bits = ctx.storage("relu-iht.tile_bits", (tile * block_words * 4) as u64);
        let hist = ctx.storage("relu-iht.topk_hist", 4098 * 4);
        let out_idx = ctx.storage("relu-iht.topk_idx", (tile * d * 4) as u64);
        let out_val = ctx.storage("relu-iht.topk_val", (tile * d * 4) as u64);
        let neurons = ctx.storage("relu-iht.tile_neurons", (tile * 4) as u64);
        let nblocks = self.blocks(op.n()).len();
        for chunk in live.chunks(tile) {
            let t = chunk.len();
            ctx.write(&h, 0, &Self::generators(op, chunk));
            let mut dense = vec![0.0f32; t * d];
            for (jj, &j) in chunk.iter().enumerate() {
                let lo = j * d as u32;
                let range = x.range(lo, lo + d as u32);
                for (&c, &v) in x.indices()[range.clone()].iter().zip(&x.values()[range]) {
                    dense[jj * d + (c - lo) as usize] = v;
                }
            }
            ctx.write(&xt, 0, &dense);
            ctx.write(&neurons, 0, chunk);
            ctx.write(&hist, 0, &[0u32; 4098]);
            let enc = self.each_block(op, |enc, xv, rows, k| {
                let bw = rows.len().div_ceil(32);
                let mp = ReluMaskParams {
                    rows: rows.len() as u32,
                    d: d as u32,
                    tile: t as u32,
                    words: bw as u32,
                    x_stride: xv.stride,
                    x_row0: xv.row0,
                    out_stride: bw as u32,
                    out_word0: 0,
                };
                let b = [(1, xv.buf), (2, &h), (3, &bits)];
                ctx.dispatch(
                    enc,
                    &ctx.kernels.relu_mask,
                    &mp,
                    &b,
                    (groups64(rows.len()), t.div_ceil(4) as u32, 1),
                );
                let gp = MaskedGradientParams {
                    rows: rows.len() as u32,
                    d: d as u32,
                    tile: t as u32,
                    words: bw as u32,
                    x_stride: xv.stride,
                    x_row0: xv.row0,
                    r_row0: rows.start as u32,
                    accumulate: (k > 0) as u32,
                    finish: (k + 1 == nblocks) as u32,
                    mu,
                    res_stride: 0,
                    _pad: 0,
                };
                let b = [(1, xv.buf), (2, &r.buf), (3, &bits), (4, &xt), (5, &g)];
                let groups = (d.div_ceil(64) as u32, t.div_ceil(64) as u32, 1);
                ctx.dispatch(enc, &ctx.kernels.masked_gradient, &gp, &b, groups);
            });
            let mut enc = enc;
            let floor = top.worst().map_or(0, |w| w.1.abs().to_bits());
            let tp = TopkParams {
                len: (t * d) as u32,
                keep: keep as u32,
                floor,
                d: d as u32,
            };
            let k = &ctx.kernels;
            ctx.dispatch(
                &mut enc,
                &k.topk_histogram,
                &tp,
                &[(1, &g), (2, &hist)],
                (groups64(t * d), 1, 1),
            );
            ctx.dispatch(&mut enc, &k.topk_threshold, &tp, &[(2, &hist)], (1, 1, 1));
            let b = [
                (1, &g),
                (2, &hist),
                (3, &out_idx),
                (4, &out_val),
                (5, &neurons),
            ];
            ctx.dispatch(&mut enc, &k.topk_compact, &tp, &b, (groups64(t * d), 1, 1));
            let count = ctx.read::<u32>(Some(enc), &hist, 4097, 1)?[0] as usize;
            let idx = ctx.read::<u32>(None, &out_idx, 0, count)?;
            let val = ctx.read::<f32>(None, &out_val, 0, count)?;
            for (c, v) in idx.into_iter().zip(val) {
                top.push(c, v);
            }
        }
        if let Generators::Weights(_) = op.generators() {
            for (&c, &v) in x.indices().iter().zip(x.values()) {
                if live.binary_search(&(c / d as u32)).is_err() {
                    top.push(c, v);
                }
            }
        }
        Ok(top.finish(op.cols()))
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
}

/// A borrowed n-vector.
struct GpuVectorRef<'a> {
    buf: &'a DeviceBuffer,
    len: usize,
}

/// `a ← a − μ b` on the device.
fn axpy_raw(ctx: &GpuContext, a: &mut GpuVector, b: GpuVectorRef<'_>, mu: f64) {
    let p = ReduceParams {
        len: a.len as u32,
        mode: 0,
        per_group: 0,
        mu: mu as f32,
    };
    let mut enc = ctx.encoder();
    ctx.dispatch(
        &mut enc,
        &ctx.kernels.reduce_axpy,
        &p,
        &[(1, &a.buf), (2, b.buf)],
        (groups64(b.len), 1, 1),
    );
    ctx.submit(enc);
}

/// Elements each workgroup of the reduction sums (16 per invocation).
const PER_GROUP: usize = 1024;

/// `‖a − μ b‖²` (or `‖a‖²`): per-workgroup compensated f32 partials, added in f64 on the host.
fn partial_sums(ctx: &GpuContext, a: &GpuVector, b: Option<&GpuVector>, mu: f64) -> Result<f64> {
    if a.len == 0 {
        return Ok(0.0);
    }
    let groups = a.len.div_ceil(PER_GROUP);
    let part = ctx.storage("relu-iht.partials", (groups * 4) as u64);
    let p = ReduceParams {
        len: a.len as u32,
        mode: b.is_some() as u32,
        per_group: PER_GROUP as u32,
        mu: mu as f32,
    };
    let mut enc = ctx.encoder();
    // The shader does not read `b` for a plain norm, but the binding needs a distinct buffer.
    let dummy;
    let bb = match b {
        Some(b) => &b.buf,
        None => {
            dummy = ctx.storage("relu-iht.unused", 16);
            &dummy
        }
    };
    ctx.dispatch(
        &mut enc,
        &ctx.kernels.reduce_partials,
        &p,
        &[(1, &a.buf), (2, bb), (3, &part)],
        (groups as u32, 1, 1),
    );
    let parts = ctx.read::<f32>(Some(enc), &part, 0, groups)?;
    Ok(parts.iter().map(|&v| v as f64).sum())
}
