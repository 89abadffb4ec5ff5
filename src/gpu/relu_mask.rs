//! `relu_mask` on the device: activation bits of a tile of neurons over a block of rows
//! (`shaders/relu_mask.wgsl`; CPU twin `cpu::relu_mask::twin`).

use super::buffers::{DeviceBuffer, Recorder};

/// Mirrors `Params` of `shaders/relu_mask.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub rows: u32,
    pub d: u32,
    pub tile: u32,
    pub words: u32,
    pub x_stride: u32,
    pub x_row0: u32,
    pub out_stride: u32,
    pub out_word0: u32,
}

/// Records `bits ← 1{X_block · h > 0}` for the `p.tile` neurons whose generators `h` holds.
pub fn encode(
    rec: &mut Recorder<'_>,
    p: &Params,
    x: &DeviceBuffer,
    h: &DeviceBuffer,
    bits: &DeviceBuffer,
) {
    let groups = (p.rows.div_ceil(64), p.tile.div_ceil(4), 1);
    rec.dispatch("relu_mask.main", p, &[x, h, bits], groups);
}
