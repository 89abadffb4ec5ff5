//! `topk` on the device: merges a tile's candidates into the running top-s without leaving the
//! device — an exact 4-pass radix select and a stable compaction (`shaders/topk.wgsl`; CPU twin
//! `cpu::topk::twin_merge`). The running set ping-pongs between two buffer pairs; its count
//! lives in the control buffer.

use super::buffers::{DeviceBuffer, Recorder};

/// Mirrors `Params` of `shaders/topk.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Params {
    pub len: u32,
    pub keep: u32,
    pub d: u32,
    pub round: u32,
    pub parity: u32,
    pub blocks: u32,
    /// The tile's first neuron in `neurons`.
    pub neuron0: u32,
    pub _pad: u32,
}

/// Words of the control buffer: 256 bins, prefix, need, all, then the two running counts.
pub const CTL_WORDS: usize = 261;
/// The first running-count word (`COUNT` in the shader).
pub const COUNT: usize = 259;
/// Pool entries per block of `count` / `place`.
pub const BLOCK: usize = 1024;

/// The running set's two buffer pairs and the control words.
pub struct Running<'a> {
    pub idx: [&'a DeviceBuffer; 2],
    pub val: [&'a DeviceBuffer; 2],
    pub ctl: &'a DeviceBuffer,
    pub blocks: &'a DeviceBuffer,
}

/// Blocks of a pool of at most `keep + len` entries.
pub fn blocks(keep: usize, len: usize) -> usize {
    (keep + len).div_ceil(BLOCK).max(1)
}

/// Records the merge of tile number `tile` (its `len` candidates `cand`, of the neurons
/// `neurons[neuron0..]`) into the running set: reads pair `tile % 2`, writes pair `1 − tile % 2`.
#[allow(clippy::too_many_arguments)] // the tile, its shape and the running set
pub fn merge(
    rec: &mut Recorder<'_>,
    run: &Running<'_>,
    cand: &DeviceBuffer,
    neurons: &DeviceBuffer,
    neuron0: usize,
    len: usize,
    d: usize,
    keep: usize,
    tile: usize,
) {
    let parity = (tile % 2) as u32;
    let nb = blocks(keep, len) as u32;
    // Bins, prefix, need and the `all` flag start at zero for every tile; the counts persist.
    rec.clear(run.ctl, 0, (COUNT * 4) as u64);
    let (i, o) = (parity as usize, 1 - parity as usize);
    let mut p = Params {
        len: len as u32,
        keep: keep as u32,
        d: d as u32,
        round: 0,
        parity,
        blocks: nb,
        neuron0: neuron0 as u32,
        _pad: 0,
    };
    for pass in 0..4 {
        p.round = pass;
        rec.dispatch(
            "topk.histogram",
            &p,
            &[cand, neurons, run.idx[i], run.val[i], run.ctl],
            (nb, 1, 1),
        );
        rec.dispatch("topk.pick", &p, &[run.ctl], (1, 1, 1));
    }
    let pool = [cand, neurons, run.idx[i], run.val[i]];
    rec.dispatch(
        "topk.count",
        &p,
        &[pool[0], pool[1], pool[2], pool[3], run.ctl, run.blocks],
        (nb, 1, 1),
    );
    rec.dispatch("topk.scan", &p, &[run.ctl, run.blocks], (1, 1, 1));
    rec.dispatch(
        "topk.place",
        &p,
        &[
            pool[0], pool[1], pool[2], pool[3], run.idx[o], run.val[o], run.ctl, run.blocks,
        ],
        (nb, 1, 1),
    );
}
