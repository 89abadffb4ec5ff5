//! `support_forward` on the device: `A_T z` (or the residual `A_T z − y`) over a block of rows
//! from the support's columns and activation bits (`shaders/support_forward.wgsl`; CPU twin
//! `cpu::support_forward::twin`).

use super::buffers::{DeviceBuffer, Recorder};

/// Mirrors `Params` of `shaders/support_forward.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub words: u32,
    pub runs: u32,
    pub out_row0: u32,
    pub m_row0: u32,
    /// 1: subtract the targets (the residual).
    pub sub_y: u32,
}

/// The support as the kernels read it.
pub struct SupportBufs<'a> {
    pub cols: &'a DeviceBuffer,
    pub run_start: &'a DeviceBuffer,
    pub run_of: &'a DeviceBuffer,
    pub bits: &'a DeviceBuffer,
}

/// Records `out[rows] ← A_T z (− y)` for one block of rows.
pub fn encode(
    rec: &mut Recorder<'_>,
    p: &Params,
    x: &DeviceBuffer,
    t: &SupportBufs<'_>,
    z: &DeviceBuffer,
    out: &DeviceBuffer,
    y: &DeviceBuffer,
) {
    let (entry, groups) = if rec.hardware() {
        ("support_forward.main", (p.rows.div_ceil(256), 1, 1))
    } else {
        let groups = p.rows.div_ceil(128);
        (
            "support_forward.lanes",
            (groups.clamp(1, 65_535), groups.div_ceil(65_535).max(1), 1),
        )
    };
    rec.dispatch(
        entry,
        p,
        &[x, t.cols, t.run_start, z, t.bits, out, y],
        groups,
    );
}
