//! `reduce` on the device: norms and `a ← a − μ b` of n-vectors, for the support primitives
//! (`shaders/reduce.wgsl`; CPU twin `cpu::reduce::twin_partials`). The solver's phases use the
//! double-f32 sums of `armijo` instead.

use super::buffers::{rows_grid, DeviceBuffer, Recorder};

/// Mirrors `Params` of `shaders/reduce.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len: u32,
    pub mode: u32,
    pub per_group: u32,
    pub mu: f32,
}

/// Elements each workgroup of the reduction sums (16 per invocation).
pub const PER_GROUP: usize = 1024;

/// Records the partial sums of `‖a − μ b‖²` (mode 1) or `‖a‖²` (mode 0; `b` is not read but must
/// be a distinct buffer).
pub fn partials(
    rec: &mut Recorder<'_>,
    p: &Params,
    a: &DeviceBuffer,
    b: &DeviceBuffer,
    part: &DeviceBuffer,
) {
    let groups = (p.len as usize).div_ceil(p.per_group.max(1) as usize) as u32;
    rec.dispatch("reduce.partials", p, &[a, b, part], (groups, 1, 1));
}

/// Records `a ← a − μ b`.
pub fn axpy(rec: &mut Recorder<'_>, p: &Params, a: &DeviceBuffer, b: &DeviceBuffer) {
    rec.dispatch("reduce.axpy", p, &[a, b], rows_grid(p.len as usize));
}
