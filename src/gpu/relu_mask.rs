//! `relu_mask` on the device: activation bits of a tile of neurons over a block of rows, from dense
//! generators (a GEMM) or from a network's own sparse weights (`shaders/relu_mask.wgsl`; CPU twins
//! `cpu::relu_mask::twin` and `cpu::relu_mask::twin_sparse`).

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
    /// Sparse generators: the tile's first run.
    pub run0: u32,
    pub pad: [u32; 3],
}

impl Params {
    /// Parameters for `tile` neurons over `rows` rows of a column-major X (stride `x_stride`,
    /// from row `x_row0`), written `out_stride` words per neuron from word `out_word0`.
    pub fn new(
        rows: usize,
        d: usize,
        tile: usize,
        x: (u32, u32),
        out_stride: usize,
        out_word0: usize,
    ) -> Self {
        Self {
            rows: rows as u32,
            d: d as u32,
            tile: tile as u32,
            words: rows.div_ceil(32) as u32,
            x_stride: x.0,
            x_row0: x.1,
            out_stride: out_stride as u32,
            out_word0: out_word0 as u32,
            run0: 0,
            pad: [0; 3],
        }
    }
}

/// Generators as runs of nonzeros, one run per neuron: `start` (runs + 1 offsets), `cols`
/// (increasing within a run) and `vals`.
pub struct SparseGenerators<'a> {
    pub start: &'a DeviceBuffer,
    pub cols: &'a DeviceBuffer,
    pub vals: &'a DeviceBuffer,
}

/// Whether the GEMM entry serves a tile of `tile` neurons with `d` coordinates: below these a
/// 64 × 64 tile of 16-coordinate steps is mostly padding, and the per-row entry does less work.
pub fn tiled(d: u32, tile: u32) -> bool {
    d >= 16 && tile >= 32
}

/// Records `bits ← 1{X_block · h > 0}` for the `p.tile` neurons whose dense generators `h` holds:
/// the GEMM entry, or the per-row one for a small d or tile ([`tiled`]); on a CPU adapter the entry
/// without workgroup memory, in its subgroup form where the device has one
/// ([`Recorder::lane_subgroups`]).
pub fn encode(
    rec: &mut Recorder<'_>,
    p: &Params,
    x: &DeviceBuffer,
    h: &DeviceBuffer,
    bits: &DeviceBuffer,
) {
    if !rec.hardware() {
        match rec.lane_subgroups() {
            true => rec.dispatch("relu_mask.lanes_sg", p, &[x, h, bits], lanes_sg_grid(p)),
            false => rec.dispatch("relu_mask.lanes", p, &[x, h, bits], lanes_grid(p)),
        }
    } else if tiled(p.d, p.tile) {
        let groups = (p.rows.div_ceil(64), p.tile.div_ceil(64), 1);
        rec.dispatch("relu_mask.main", p, &[x, h, bits], groups);
    } else {
        let groups = (p.rows.div_ceil(64), p.tile.div_ceil(4), 1);
        rec.dispatch("relu_mask.rows", p, &[x, h, bits], groups);
    }
}

/// The grid of the `lanes` entry (for CPU adapters): one workgroup per mask word of the block
/// and 64 neurons, the words laid out over x and z.
pub fn lanes_grid(p: &Params) -> (u32, u32, u32) {
    (
        p.words.clamp(1, 65_535),
        p.tile.div_ceil(64),
        p.words.div_ceil(65_535).max(1),
    )
}

/// The grid of the `lanes_sg` entry: as [`lanes_grid`], with 128 neurons per workgroup.
pub fn lanes_sg_grid(p: &Params) -> (u32, u32, u32) {
    let (x, _, z) = lanes_grid(p);
    (x, p.tile.div_ceil(128), z)
}

/// Records the same bits for the neurons of runs `p.run0..p.run0 + p.tile` of sparse generators
/// (on a CPU adapter by the entry without workgroup memory or atomics).
pub fn encode_sparse(
    rec: &mut Recorder<'_>,
    p: &Params,
    x: &DeviceBuffer,
    h: &SparseGenerators<'_>,
    bits: &DeviceBuffer,
) {
    let (entry, groups) = if rec.hardware() {
        (
            "relu_mask.sparse",
            (p.rows.div_ceil(64), p.tile.div_ceil(16), 1),
        )
    } else {
        (
            "relu_mask.sparse_lanes",
            (p.words.div_ceil(64).max(1), p.tile, 1),
        )
    };
    rec.dispatch(entry, p, &[x, bits, h.start, h.cols, h.vals], groups);
}
