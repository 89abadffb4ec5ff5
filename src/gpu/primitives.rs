//! The WebGPU engine's support primitives ([`SupportOps`]): `A_T z`, `A_Tᵀ r`, norms and updates
//! of n-vectors, each its own submission. The phases do not use them; refinement, prediction and
//! the tests (dot test, forward against dense references, phases against the reference rules)
//! do.

use super::buffers::{DeviceBuffer, Recorder};
use super::engine::GpuBackend;
use super::reduce::{self, PER_GROUP};
use crate::backend::SupportOps;
use crate::error::{Error, Result};
use crate::problem::operator::Operator;

/// An n-vector on the device.
#[derive(Debug)]
pub struct GpuVector {
    buf: DeviceBuffer,
    len: usize,
}

impl GpuBackend {
    fn prepared(&self) -> Result<super::workspace::SupportInfo> {
        self.prepared.clone().ok_or_else(|| Error::Gpu {
            what: "support",
            message: "no support prepared".into(),
        })
    }

    fn forward_into(&mut self, op: &Operator, z: &[f32], sub_y: bool) -> Result<GpuVector> {
        let t = self.prepared()?;
        Error::check_len("z (support size)", t.len, z.len())?;
        self.ws.put("p_z", z)?;
        let out = self
            .ctx
            .try_storage("relu-iht.forward", (op.n() * 4) as u64)?;
        let ctx = self.ctx.clone();
        let mut rec = Recorder::new(&ctx);
        self.ws
            .record_forward(&mut rec, op, &t, self.ws.get("p_z"), &out, sub_y);
        rec.submit()?;
        Ok(GpuVector {
            buf: out,
            len: op.n(),
        })
    }

    /// `‖a − μ b‖²` (or `‖a‖²`): per-workgroup compensated f32 partials, added in f64 here.
    fn partial_sums(&self, a: &GpuVector, b: Option<&GpuVector>, mu: f64) -> Result<f64> {
        if a.len == 0 {
            return Ok(0.0);
        }
        // At least PER_GROUP elements a workgroup, more when the grid would exceed 65 535.
        let per_group = PER_GROUP.max(a.len.div_ceil(65_535).next_multiple_of(64));
        let groups = a.len.div_ceil(per_group);
        let part = self.ctx.storage("relu-iht.partials", (groups * 4) as u64);
        let p = reduce::Params {
            len: a.len as u32,
            mode: b.is_some() as u32,
            per_group: per_group as u32,
            mu: mu as f32,
        };
        let mut rec = Recorder::new(&self.ctx);
        // The plain norm does not read `b`, but the binding needs a buffer distinct from `a`.
        let scratch;
        let other = match b {
            Some(b) => &b.buf,
            None => {
                scratch = self.ctx.storage("relu-iht.unused", 16);
                &scratch
            }
        };
        reduce::partials(&mut rec, &p, &a.buf, other, &part);
        let parts = rec.read_one::<f32>(&part, 0, groups)?;
        Ok(parts.iter().map(|&v| v as f64).sum())
    }
}

impl SupportOps for GpuBackend {
    type Vector = GpuVector;
    type Elem = f32;

    fn upload(&mut self, host: &[f32]) -> Result<GpuVector> {
        Ok(GpuVector {
            buf: self.ctx.storage_init("relu-iht.vector", host),
            len: host.len(),
        })
    }

    fn download(&mut self, v: &GpuVector) -> Result<Vec<f32>> {
        Recorder::new(&self.ctx).read_one(&v.buf, 0, v.len)
    }

    fn prepare_support(&mut self, op: &Operator, support: &[u32]) -> Result<()> {
        self.prepared = None;
        self.ws.ensure_data(op)?;
        let t = self.ws.upload_support(op, support, support.len())?;
        let ctx = self.ctx.clone();
        let mut rec = Recorder::new(&ctx);
        self.ws.record_masks(&mut rec, op, &t);
        rec.submit()?;
        self.prepared = Some(t);
        Ok(())
    }

    fn forward(&mut self, op: &Operator, z: &[f32]) -> Result<GpuVector> {
        self.forward_into(op, z, false)
    }

    fn adjoint(&mut self, op: &Operator, r: &GpuVector) -> Result<Vec<f32>> {
        let t = self.prepared()?;
        Error::check_len("r (n)", op.n(), r.len)?;
        if t.len == 0 {
            return Ok(Vec::new());
        }
        self.ws.ensure("p_adj", (t.len * 4) as u64)?;
        let ctx = self.ctx.clone();
        let mut rec = Recorder::new(&ctx);
        let out = self.ws.get("p_adj");
        self.ws.record_adjoint(&mut rec, op, &t, &r.buf, out);
        rec.read_one(out, 0, t.len)
    }

    fn residual(&mut self, op: &Operator, z: &[f32]) -> Result<GpuVector> {
        self.forward_into(op, z, true)
    }

    fn norm2(&mut self, v: &GpuVector) -> Result<f64> {
        self.partial_sums(v, None, 0.0)
    }

    fn shifted_norm2(&mut self, r: &GpuVector, q: &GpuVector, mu: f64) -> Result<f64> {
        if r.buf.buf == q.buf.buf {
            // One buffer may not be bound read-write and read-only in one dispatch.
            return Ok((1.0 - mu).powi(2) * self.partial_sums(r, None, 0.0)?);
        }
        self.partial_sums(r, Some(q), mu)
    }

    fn axpy(&mut self, r: &mut GpuVector, q: &GpuVector, mu: f64) -> Result<()> {
        let p = reduce::Params {
            len: r.len as u32,
            mode: 0,
            per_group: 0,
            mu: mu as f32,
        };
        let mut rec = Recorder::new(&self.ctx);
        reduce::axpy(&mut rec, &p, &r.buf, &q.buf);
        rec.submit()?;
        Ok(())
    }
}
