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
use crate::data::Data;
use crate::error::{Error, Result};
use crate::operator::{Generators, Operator, Support};
use crate::sparse::SparseVec;
use crate::topk::TopS;
use crate::vector::{Blocks, Loss, VectorStep};
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
struct XView<'a> {
    buf: &'a DeviceBuffer,
    stride: u32,
    row0: u32,
}

/// The WebGPU engine.
pub struct GpuBackend {
    ctx: Arc<GpuContext>,
    budget: u64,
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
    fn ensure_data(&mut self, op: &Operator) -> Result<()> {
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
    fn blocks(&self, n: usize) -> Vec<Range<usize>> {
        let rows = self.data.as_ref().map_or(n, |r| r.block_rows).max(1);
        crate::stream::row_blocks(n, rows).collect()
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
    fn generators(op: &Operator, neurons: &[u32]) -> Vec<f32> {
        neurons.iter().flat_map(|&j| op.generator(j)).collect()
    }

    fn support(&self) -> Result<&SupportDev> {
        self.support.as_ref().ok_or_else(|| Error::Gpu {
            what: "support",
            message: "no support prepared".into(),
        })
    }

    fn check_rows(op: &Operator) -> Result<()> {
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
    fn each_block(
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
        let cap = (self.budget / 4).min(self.ctx.limits.max_storage_buffer_binding_size)
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
    /// `H = M ∘ (X W1ᵀ)` over every row block. Returns the encoder with the unsubmitted rest.
    fn vector_hidden(
        &self,
        op: &Operator,
        b: &Blocks,
        k: usize,
        range: &Range<usize>,
        bufs: &VectorTile,
    ) -> wgpu::CommandEncoder {
        let ctx = &self.ctx;
        let (n, d, t) = (op.n(), op.d(), range.len());
        let words = n.div_ceil(32);
        ctx.write(&bufs.h, 0, &Self::generators(op, &b.live[range.clone()]));
        ctx.write(&bufs.w1, 0, &b.w1[range.start * d..range.end * d]);
        ctx.write(&bufs.w2, 0, &b.w2[range.start * k..range.end * k]);
        self.each_block(op, |enc, xv, rows, _| {
            let mp = ReluMaskParams {
                rows: rows.len() as u32,
                d: d as u32,
                tile: t as u32,
                words: rows.len().div_ceil(32) as u32,
                x_stride: xv.stride,
                x_row0: xv.row0,
                out_stride: words as u32,
                out_word0: (rows.start / 32) as u32,
            };
            let groups = (groups64(rows.len()), t.div_ceil(4) as u32, 1);
            let bind = [(1, xv.buf), (2, &bufs.h), (3, &bufs.bits)];
            ctx.dispatch(enc, &ctx.kernels.relu_mask, &mp, &bind, groups);
            let vp = VectorModelParams {
                rows: rows.len() as u32,
                x_stride: xv.stride,
                x_row0: xv.row0,
                row0: rows.start as u32,
                ..vector_params(n, d, k, t)
            };
            let bind = [(1, xv.buf), (2, &bufs.w1), (3, &bufs.bits), (4, &bufs.hq)];
            ctx.dispatch(enc, &ctx.kernels.vector_hidden, &vp, &bind, groups);
        })
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
            let mut enc = self.vector_hidden(op, b, k, &range, &bufs);
            let vp = VectorModelParams {
                accumulate: (q > 0) as u32,
                ..vector_params(n, d, k, range.len())
            };
            let bind = [(2, &bufs.w2), (4, &bufs.hq), (5, out)];
            ctx.dispatch(
                &mut enc,
                &ctx.kernels.vector_output,
                &vp,
                &bind,
                (groups64(n), 1, 1),
            );
            ctx.submit(enc);
        }
        Ok((tile, (tile >= t).then_some(bufs)))
    }
}

/// The vector model's parameters for a whole-batch pass of a tile (rows and views set by callers).
fn vector_params(n: usize, d: usize, k: usize, tile: usize) -> VectorModelParams {
    VectorModelParams {
        rows: n as u32,
        d: d as u32,
        tile: tile as u32,
        k: k as u32,
        x_stride: n as u32,
        x_row0: 0,
        row0: 0,
        n: n as u32,
        words: n.div_ceil(32) as u32,
        accumulate: 0,
        loss: 0,
        _pad: 0,
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
        b.check(op.d(), k)?;
        Self::check_rows(op)?;
        self.ensure_data(op)?;
        let n = op.n();
        let out = self.ctx.storage("relu-iht.vector_out", (n * k * 4) as u64);
        self.vector_yhat(op, b, k, &out)?;
        let yt = self.ctx.read::<f32>(None, &out, 0, n * k)?;
        Ok(transpose(&yt, k, n))
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
        let (n, d) = (op.n(), op.d());
        Error::check_len("targets (n·k)", n * k, targets.len())?;
        cur.check(d, k)?;
        if let Some(at) = at {
            at.check_same_neurons(cur, d, k)?;
        }
        Self::check_rows(op)?;
        self.ensure_data(op)?;
        let ctx = self.ctx.clone();
        // Forward at `cur`, then the residual in place of Ŷ and the per-row losses.
        let out = ctx.storage("relu-iht.vector_out", (n * k * 4) as u64);
        let (tile, kept) = self.vector_yhat(op, cur, k, &out)?;
        let y = ctx.storage_init("relu-iht.vector_y", &transpose(targets, n, k));
        let lossv = ctx.storage("relu-iht.vector_loss", (n * 4) as u64);
        let vp = VectorModelParams {
            loss: match loss {
                Loss::Mse => 1,
                Loss::CrossEntropy => 2,
            },
            ..vector_params(n, d, k, 0)
        };
        let mut enc = ctx.encoder();
        let bind = [(5, &out), (6, &y), (7, &lossv)];
        ctx.dispatch(
            &mut enc,
            &ctx.kernels.vector_residual,
            &vp,
            &bind,
            (groups64(n), 1, 1),
        );
        let total: f64 = ctx
            .read::<f32>(Some(enc), &lossv, 0, n)?
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
            None => self.vector_buffers(n, d, k, tile),
        };
        let q = ctx.storage("relu-iht.vector_q", (tile.min(t.max(1)) * n * 4) as u64);
        let g1 = ctx.storage("relu-iht.vector_g1", (tile * d * 4) as u64);
        let g2 = ctx.storage("relu-iht.vector_g2", (tile * k * 4) as u64);
        let nblocks = self.blocks(n).len();
        for lo in (0..t).step_by(tile) {
            let range = lo..(lo + tile).min(t);
            let tt = range.len();
            let mut enc = if reuse {
                ctx.encoder()
            } else {
                self.vector_hidden(op, b, k, &range, &bufs)
            };
            let gp = MaskedGradientParams {
                rows: n as u32,
                d: k as u32,
                tile: tt as u32,
                words: n.div_ceil(32) as u32,
                x_stride: n as u32,
                x_row0: 0,
                r_row0: 0,
                accumulate: 0,
                finish: 1,
                mu: alpha,
                res_stride: n as u32,
                _pad: 0,
            };
            let bind = [
                (1, &out),
                (2, &bufs.hq),
                (3, &bufs.bits),
                (4, &bufs.w2),
                (5, &g2),
            ];
            let groups = (k.div_ceil(64) as u32, tt.div_ceil(64) as u32, 1);
            ctx.dispatch(&mut enc, &ctx.kernels.masked_gradient, &gp, &bind, groups);
            let vp = vector_params(n, d, k, tt);
            let bind = [(2, &bufs.w2), (3, &bufs.bits), (4, &q), (5, &out)];
            let groups = (groups64(n), tt as u32, 1);
            ctx.dispatch(&mut enc, &ctx.kernels.vector_backprop, &vp, &bind, groups);
            ctx.submit(enc);
            let enc = self.each_block(op, |enc, xv, rows, blk| {
                let gp = MaskedGradientParams {
                    rows: rows.len() as u32,
                    d: d as u32,
                    tile: tt as u32,
                    words: n.div_ceil(32) as u32,
                    x_stride: xv.stride,
                    x_row0: xv.row0,
                    r_row0: rows.start as u32,
                    accumulate: (blk > 0) as u32,
                    finish: (blk + 1 == nblocks) as u32,
                    mu: alpha,
                    res_stride: n as u32,
                    _pad: 0,
                };
                let bind = [
                    (1, xv.buf),
                    (2, &q),
                    (3, &bufs.bits),
                    (4, &bufs.w1),
                    (5, &g1),
                ];
                let groups = (d.div_ceil(64) as u32, tt.div_ceil(64) as u32, 1);
                ctx.dispatch(enc, &ctx.kernels.masked_gradient, &gp, &bind, groups);
            });
            let c1 = ctx.read::<f32>(Some(enc), &g1, 0, tt * d)?;
            let c2 = ctx.read::<f32>(None, &g2, 0, tt * k)?;
            w1[lo * d..range.end * d].copy_from_slice(&c1);
            w2[lo * k..range.end * k].copy_from_slice(&c2);
        }
        Ok(VectorStep {
            loss: total / n.max(1) as f64,
            w1,
            w2,
        })
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
