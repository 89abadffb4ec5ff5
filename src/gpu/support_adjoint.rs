//! `support_adjoint` on the device: `A_Tᵀ r` over a block of rows, one workgroup per two support
//! entries (`shaders/support_adjoint.wgsl`; CPU twin `cpu::support_adjoint::twin`).

use super::buffers::{DeviceBuffer, Recorder};
use super::support_forward::SupportBufs;

/// Mirrors `Params` of `shaders/support_adjoint.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub words: u32,
    pub len: u32,
    pub r_row0: u32,
    pub m_row0: u32,
    pub accumulate: u32,
}

/// Records `out ← (accumulate ? out : 0) + A_Tᵀ r` over one block of rows.
pub fn encode(
    rec: &mut Recorder<'_>,
    p: &Params,
    x: &DeviceBuffer,
    t: &SupportBufs<'_>,
    r: &DeviceBuffer,
    out: &DeviceBuffer,
) {
    let pairs = p.len.div_ceil(2);
    let groups = (pairs.min(65_535), pairs.div_ceil(65_535), 1);
    rec.dispatch(
        "support_adjoint.main",
        p,
        &[x, t.cols, t.run_of, r, t.bits, out],
        groups,
    );
}
