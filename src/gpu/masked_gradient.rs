//! `masked_gradient` on the device: a tile's gradient `Xᵀ(M ∘ r)` over a block of rows fused with
//! the candidate step `x − μ G`, and `scatter`, which lays the sparse iterate's entries of a tile
//! out densely (`shaders/masked_gradient.wgsl`; CPU twin `cpu::masked_gradient::twin`).

use super::buffers::{rows_grid, DeviceBuffer, Recorder};

/// Mirrors `Params` of `shaders/masked_gradient.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub d: u32,
    pub tile: u32,
    pub words: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub r_row0: u32,
    pub accumulate: u32,
    pub finish: u32,
    pub mu: f32,
    /// 0: one residual under the masks; else the per-neuron residual's stride.
    pub res_stride: u32,
    /// 1: μ is the device state's (the normalized step size of this step).
    pub mu_from_state: u32,
}

/// The operands of one gradient dispatch.
pub struct GradientBufs<'a> {
    pub x: &'a DeviceBuffer,
    pub res: &'a DeviceBuffer,
    pub bits: &'a DeviceBuffer,
    pub xtile: &'a DeviceBuffer,
    pub g: &'a DeviceBuffer,
    /// Read for μ when `mu_from_state = 1`; any other buffer not written here otherwise.
    pub state: &'a DeviceBuffer,
}

/// Records the tile's gradient over one block of rows.
pub fn encode(rec: &mut Recorder<'_>, p: &Params, b: &GradientBufs<'_>) {
    let groups = (p.d.div_ceil(64), p.tile.div_ceil(64), 1);
    rec.dispatch(
        "masked_gradient.main",
        p,
        &[b.x, b.res, b.bits, b.xtile, b.g, b.state],
        groups,
    );
}

/// Records `xout[(pos[p] − pos0)·d + idx[p] % d] = val[p]` for the `nnz` entries whose live
/// position falls in the tile `[pos0, pos0 + tile)` (the tile was cleared first).
#[allow(clippy::too_many_arguments)] // the sparse iterate's three arrays and the tile's shape
pub fn scatter(
    rec: &mut Recorder<'_>,
    nnz: usize,
    d: usize,
    pos0: usize,
    tile: usize,
    idx: &DeviceBuffer,
    val: &DeviceBuffer,
    pos: &DeviceBuffer,
    xout: &DeviceBuffer,
) {
    if nnz == 0 {
        return;
    }
    let p = Params {
        rows: nnz as u32,
        d: d as u32,
        tile: tile as u32,
        words: pos0 as u32,
        x_stride: 0,
        x_row0: 0,
        r_row0: 0,
        accumulate: 0,
        finish: 0,
        mu: 0.0,
        res_stride: 0,
        mu_from_state: 0,
    };
    rec.dispatch(
        "masked_gradient.scatter",
        &p,
        &[idx, val, pos, xout],
        rows_grid(nnz),
    );
}
