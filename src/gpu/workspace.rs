//! What the WebGPU engine keeps on its device between phases: the data (whole when it fits half
//! the memory budget and one storage binding, else one block of rows at a time, streamed from the
//! host), the targets, and named buffers that only grow. A run asks for the same sizes every step,
//! so after the first steps no buffer (and, the bind groups being cached by buffer, no bind group)
//! is created. Also here: the row blocks, and the upload of a support (columns, runs, generators).

use super::buffers::{DeviceBuffer, Recorder};
use super::context::GpuContext;
use super::relu_mask;
use super::support_forward::SupportBufs;
use crate::error::{Error, Result};
use crate::problem::data::Data;
use crate::problem::operator::{Generators, Operator, Support};
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Weak};

/// Rows a single dispatch of the row kernels may cover (65 535 workgroups of 64; a multiple of 64).
pub const MAX_DISPATCH_ROWS: usize = 65_535 * 64;

/// The column stride of X on the device for `rows` rows: a multiple of 4, so that kernels read X
/// four rows at a time (`xat4`), the padding rows zero.
pub fn x_stride(rows: usize) -> usize {
    rows.next_multiple_of(4)
}

/// Rows `rows` of X column-major with the device's column stride ([`x_stride`]), zero-padded:
/// the data's own columns, without a copy, when they are all rows at that stride already.
pub fn device_columns(data: &Data, rows: Range<usize>) -> Cow<'_, [f32]> {
    let stride = x_stride(rows.len());
    if rows == (0..data.n()) && data.ld() == stride {
        return Cow::Borrowed(data.xt());
    }
    let mut out = vec![0.0f32; stride * data.d()];
    if stride == 0 {
        return Cow::Owned(out);
    }
    for (i, col) in out.chunks_exact_mut(stride).enumerate() {
        col[..rows.len()].copy_from_slice(&data.column(i)[rows.clone()]);
    }
    Cow::Owned(out)
}

/// Where the rows of one block live: the buffer, its column stride and the block's first row in it.
pub struct XView<'a> {
    pub buf: &'a DeviceBuffer,
    pub stride: u32,
    pub row0: u32,
}

/// The data set on the device.
struct Resident {
    key: Weak<Data>,
    /// Whether X is whole on the device (`x`) or streamed through the block buffer.
    whole: bool,
    block_rows: usize,
}

/// A support uploaded to the workspace (`t_cols`, `t_runs`, `t_run_of`, `t_bits`, and the
/// generators of its neurons: dense in `t_h`, or as runs of nonzeros in `t_hstart`, `t_hcols`,
/// `t_hvals` when they are a network's weights).
#[derive(Clone, Debug, Default)]
pub struct SupportInfo {
    pub len: usize,
    pub runs: usize,
    /// The neuron of each run, increasing.
    pub neurons: Vec<u32>,
    /// Whether the generators went up sparse.
    pub sparse: bool,
}

/// What the buffer `live_bits` holds: the masks of `live` (over all n rows, `ceil(n/32)` words per
/// neuron) under the random generators of `seed` on the data `key`, formed by a gradient pass.
#[derive(Clone, Debug)]
pub struct LiveMasks {
    pub seed: u64,
    pub key: Weak<Data>,
    pub live: Vec<u32>,
}

impl LiveMasks {
    /// Whether these are masks under `op`'s generators and data.
    pub fn under(&self, op: &Operator) -> bool {
        matches!(op.generators(), Generators::Random { seed } if *seed == self.seed)
            && self.key.strong_count() > 0
            && Weak::ptr_eq(&self.key, &Arc::downgrade(op.data_arc()))
    }
}

/// Named, grow-only device buffers and the resident data.
pub struct Workspace {
    pub ctx: Arc<GpuContext>,
    pub budget: u64,
    bufs: HashMap<&'static str, DeviceBuffer>,
    data: Option<Resident>,
    /// Set while `live_bits` holds a step's masks; a support of that step copies its masks from
    /// them instead of forming them again.
    pub live_masks: Option<LiveMasks>,
}

impl Workspace {
    pub fn new(ctx: Arc<GpuContext>, budget: u64) -> Self {
        Self {
            ctx,
            budget,
            bufs: HashMap::new(),
            data: None,
            live_masks: None,
        }
    }

    /// Makes the buffer `name` hold at least `bytes` (its contents are kept only when it is
    /// already large enough).
    pub fn ensure(&mut self, name: &'static str, bytes: u64) -> Result<()> {
        let bytes = bytes.max(16);
        if self.bufs.get(name).is_some_and(|b| b.bytes() >= bytes) {
            return Ok(());
        }
        self.bufs.remove(name);
        let buf = self.ctx.try_storage(name, bytes)?;
        self.bufs.insert(name, buf);
        Ok(())
    }

    /// The buffer `name` (ensured before).
    pub fn get(&self, name: &'static str) -> &DeviceBuffer {
        self.bufs
            .get(name)
            .unwrap_or_else(|| panic!("workspace buffer {name} used before it was ensured"))
    }

    /// Ensures `name` and writes `data` at its start.
    pub fn put<T: bytemuck::Pod>(&mut self, name: &'static str, data: &[T]) -> Result<()> {
        self.ensure(name, std::mem::size_of_val(data) as u64)?;
        self.ctx.write(self.get(name), 0, data);
        Ok(())
    }

    /// Rejects data the 32-bit indexing of the kernels cannot address.
    pub fn check_rows(op: &Operator) -> Result<()> {
        if op.n() as u64 * op.d() as u64 >= u32::MAX as u64 {
            return Err(Error::invalid(
                "n·d",
                op.n() * op.d(),
                "exceeds the GPU engine's 32-bit indexing",
            ));
        }
        Ok(())
    }

    /// Uploads the operator's data (into the existing buffers when they are large enough) unless
    /// it is already resident.
    pub fn ensure_data(&mut self, op: &Operator) -> Result<()> {
        Self::check_rows(op)?;
        let data = op.data_arc();
        if let Some(r) = &self.data {
            if r.key.strong_count() > 0 && Weak::ptr_eq(&r.key, &Arc::downgrade(data)) {
                return Ok(());
            }
        }
        self.data = None;
        let (n, d) = (data.n(), data.d());
        // Bytes per element of X on the device: 2 when stored in f16.
        let elem = if self.ctx.x_f16 { 2 } else { 4 };
        let x_bytes = (x_stride(n) * d * elem) as u64;
        let binding = self.ctx.limits.max_storage_buffer_binding_size;
        if (n * 4) as u64 > binding {
            return Err(Error::invalid(
                "n",
                n,
                "the targets exceed the adapter's largest storage buffer",
            ));
        }
        self.put("y", data.y())?;
        let whole = x_bytes <= self.budget / 2 && x_bytes <= binding;
        let block_rows = if whole {
            let cols = device_columns(data, 0..n);
            if self.ctx.x_f16 {
                self.put("x", &super::shaders::f16_bits(&cols))?;
            } else {
                self.put("x", &cols)?;
            }
            n.min(MAX_DISPATCH_ROWS)
        } else {
            let cap = (self.budget / 4).min(binding) / (elem * d) as u64;
            let rows = ((cap as usize / 64) * 64)
                .clamp(64, MAX_DISPATCH_ROWS)
                .min(n.div_ceil(64) * 64);
            self.ensure("x_block", (rows * d * elem) as u64)?;
            rows
        };
        self.data = Some(Resident {
            key: Arc::downgrade(data),
            whole,
            block_rows,
        });
        Ok(())
    }

    /// Row blocks of the current data (multiples of 64 rows, so mask words align).
    pub fn blocks(&self, n: usize) -> Vec<Range<usize>> {
        let rows = self.data.as_ref().map_or(n, |r| r.block_rows).max(1);
        crate::problem::stream::row_blocks(n, rows).collect()
    }

    /// Whether X streams through the block buffer.
    pub fn streaming(&self) -> bool {
        self.data.as_ref().is_some_and(|r| !r.whole)
    }

    /// Records `f` for every row block. When X streams, each block is written to the block buffer
    /// just before its commands and submitted with them (what was recorded before goes first).
    pub fn each_block<'c>(
        &self,
        rec: &mut Recorder<'c>,
        op: &Operator,
        mut f: impl FnMut(&mut Recorder<'c>, &XView<'_>, &Range<usize>, usize),
    ) {
        let blocks = self.blocks(op.n());
        if !self.streaming() {
            let view = XView {
                buf: self.get("x"),
                stride: x_stride(op.n()) as u32,
                row0: 0,
            };
            for (k, rows) in blocks.iter().enumerate() {
                let v = XView {
                    row0: rows.start as u32,
                    ..view
                };
                f(rec, &v, rows, k);
            }
            return;
        }
        let block = self.get("x_block");
        let data = op.data();
        for (k, rows) in blocks.iter().enumerate() {
            rec.flush();
            let host = device_columns(data, rows.clone());
            if self.ctx.x_f16 {
                self.ctx.write(block, 0, &super::shaders::f16_bits(&host));
            } else {
                self.ctx.write(block, 0, &host);
            }
            let view = XView {
                buf: block,
                stride: x_stride(rows.len()) as u32,
                row0: 0,
            };
            f(rec, &view, rows, k);
        }
    }

    /// Uploads the support `idx` (sorted, unique) with room for `cap` entries: columns, runs (one
    /// per neuron), the run of each entry, and the generators of its neurons; ensures room for
    /// their activation bits over all n rows.
    pub fn upload_support(
        &mut self,
        op: &Operator,
        idx: &[u32],
        cap: usize,
    ) -> Result<SupportInfo> {
        let (n, d) = (op.n(), op.d());
        let t = Support::new(idx, d);
        if let Some(&c) = t.idx.last() {
            if c as u64 >= op.cols() {
                return Err(Error::invalid(
                    "support index",
                    c,
                    format!("≥ m·d = {}", op.cols()),
                ));
            }
        }
        if t.runs.len() > self.ctx.limits.max_compute_workgroups_per_dimension as usize {
            return Err(Error::invalid(
                "support neurons",
                t.runs.len(),
                "exceed one dispatch",
            ));
        }
        let cap = cap.max(t.len()).max(1);
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
        self.ensure("t_cols", (cap * 4) as u64)?;
        self.ensure("t_runs", ((cap + 1) * 4) as u64)?;
        self.ensure("t_run_of", (cap * 4) as u64)?;
        self.ensure("t_bits", (cap * words * 4) as u64)?;
        self.put("t_cols", &cols)?;
        self.put("t_runs", &run_start)?;
        self.put("t_run_of", &run_of)?;
        let neurons: Vec<u32> = t.runs.iter().map(|r| r.0).collect();
        let sparse = matches!(op.generators(), Generators::Weights(_));
        if sparse {
            // A network's weights: runs of nonzeros, memory in the generators' nonzeros.
            let (mut start, mut hcols, mut hvals) = (vec![0u32], Vec::new(), Vec::new());
            for &j in &neurons {
                for (i, v) in op.generator(j).into_iter().enumerate() {
                    if v != 0.0 {
                        hcols.push(i as u32);
                        hvals.push(v);
                    }
                }
                start.push(hcols.len() as u32);
            }
            self.put("t_hstart", &start)?;
            self.put("t_hcols", &hcols)?;
            self.put("t_hvals", &hvals)?;
        } else {
            let h: Vec<f32> = neurons.iter().flat_map(|&j| op.generator(j)).collect();
            self.put("t_h", &h)?;
        }
        Ok(SupportInfo {
            len: t.len(),
            runs: t.runs.len(),
            neurons,
            sparse,
        })
    }

    /// The uploaded support as the kernels bind it.
    pub fn support(&self) -> SupportBufs<'_> {
        SupportBufs {
            cols: self.get("t_cols"),
            run_start: self.get("t_runs"),
            run_of: self.get("t_run_of"),
            bits: self.get("t_bits"),
        }
    }

    /// Where `live_bits` holds the masks of every neuron of `t` under `op`'s generators: each run's
    /// position among the live neurons.
    fn live_positions(&self, op: &Operator, t: &SupportInfo) -> Option<Vec<usize>> {
        let lm = self.live_masks.as_ref()?;
        if !lm.under(op) {
            return None;
        }
        t.neurons
            .iter()
            .map(|j| lm.live.binary_search(j).ok())
            .collect()
    }

    /// Records the activation bits of the uploaded support's neurons over every row: copied from
    /// the step's masks when a gradient pass formed them ([`LiveMasks`]), else formed here.
    pub fn record_masks(&self, rec: &mut Recorder<'_>, op: &Operator, t: &SupportInfo) {
        if t.runs == 0 {
            return;
        }
        let (n, d) = (op.n(), op.d());
        let words = n.div_ceil(32);
        let bits = self.get("t_bits");
        if let Some(pos) = self.live_positions(op, t) {
            let (src, bytes) = (self.get("live_bits"), (words * 4) as u64);
            for (k, p) in pos.into_iter().enumerate() {
                rec.copy(src, p as u64 * bytes, bits, k as u64 * bytes, bytes);
            }
            return;
        }
        self.each_block(rec, op, |rec, x, rows, _| {
            let p = relu_mask::Params::new(
                rows.len(),
                d,
                t.runs,
                (x.stride, x.row0),
                words,
                rows.start / 32,
            );
            if t.sparse {
                let h = relu_mask::SparseGenerators {
                    start: self.get("t_hstart"),
                    cols: self.get("t_hcols"),
                    vals: self.get("t_hvals"),
                };
                relu_mask::encode_sparse(rec, &p, x.buf, &h, bits);
            } else {
                relu_mask::encode(rec, &p, x.buf, self.get("t_h"), bits);
            }
        });
    }

    /// Records `out ← A_T z (− y)` for the uploaded support.
    pub fn record_forward(
        &self,
        rec: &mut Recorder<'_>,
        op: &Operator,
        t: &SupportInfo,
        z: &DeviceBuffer,
        out: &DeviceBuffer,
        sub_y: bool,
    ) {
        let words = op.n().div_ceil(32) as u32;
        let (sup, y) = (self.support(), self.get("y"));
        self.each_block(rec, op, |rec, x, rows, _| {
            let p = super::support_forward::Params {
                rows: rows.len() as u32,
                x_stride: x.stride,
                x_row0: x.row0,
                words,
                runs: t.runs as u32,
                out_row0: rows.start as u32,
                m_row0: rows.start as u32,
                sub_y: sub_y as u32,
            };
            super::support_forward::encode(rec, &p, x.buf, &sup, z, out, y);
        });
    }

    /// Records `out ← A_Tᵀ r` for the uploaded support.
    pub fn record_adjoint(
        &self,
        rec: &mut Recorder<'_>,
        op: &Operator,
        t: &SupportInfo,
        r: &DeviceBuffer,
        out: &DeviceBuffer,
    ) {
        if t.len == 0 {
            return;
        }
        let words = op.n().div_ceil(32) as u32;
        let sup = self.support();
        self.each_block(rec, op, |rec, x, rows, k| {
            let p = super::support_adjoint::Params {
                rows: rows.len() as u32,
                x_stride: x.stride,
                x_row0: x.row0,
                words,
                len: t.len as u32,
                r_row0: rows.start as u32,
                m_row0: rows.start as u32,
                accumulate: (k > 0) as u32,
            };
            super::support_adjoint::encode(rec, &p, x.buf, &sup, r, out);
        });
    }
}
