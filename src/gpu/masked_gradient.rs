//! `masked_gradient` on the device: a tile's gradient `Xᵀ(M ∘ r)` over a block of rows, split over
//! the rows so one dispatch fills a large GPU, its partial sums reduced pairwise and fused with the
//! candidate step `x − μ G`; and `scatter`, which lays the sparse iterate's entries of a tile out
//! densely (`shaders/masked_gradient.wgsl`; CPU twin `cpu::masked_gradient::twin`).

use super::buffers::{rows_grid, DeviceBuffer, Recorder};

/// Blocks of 64 coordinates × 64 neurons a gradient dispatch aims for, where the rows allow it:
/// 1024, several per compute unit of the largest GPUs (an H100 has 132 units). The GPUs' entry
/// `main` takes two such blocks per workgroup ([`TILE_NEURONS`]), so it gets 512 workgroups, and the
/// partial sums stay within `TARGET_GROUPS · 64 · 64` floats (16 MiB).
pub const TARGET_GROUPS: usize = 1024;

/// Neurons of one workgroup of the tiled entry `main` (its coordinates: 64).
pub const TILE_NEURONS: usize = 128;

/// Fewest rows one split sums: below this the staging and the partial sums outweigh the products.
pub const MIN_SPLIT_ROWS: usize = 256;

/// Rows each split of a gradient dispatch sums (a multiple of 32) for a block of `rows` rows, `d`
/// coordinates and `tile` neurons: enough splits for [`TARGET_GROUPS`] blocks, none shorter than
/// [`MIN_SPLIT_ROWS`]. The CPU twin takes the same value.
pub fn split_rows(rows: usize, d: usize, tile: usize) -> usize {
    let tiles = d.div_ceil(64).max(1) * tile.div_ceil(64).max(1);
    let want = TARGET_GROUPS.div_ceil(tiles).max(1);
    rows.div_ceil(want).max(MIN_SPLIT_ROWS).div_ceil(32) * 32
}

/// Splits of a block of `rows` rows (at least one).
pub fn splits(rows: usize, d: usize, tile: usize) -> usize {
    rows.div_ceil(split_rows(rows, d, tile)).max(1)
}

/// Floats of the partial-sum buffer that gradient dispatches over at most `rows` rows and at most
/// `tile` neurons need: about `max(tile·d, TARGET_GROUPS · 64 · 64)` at most, whatever `rows`.
pub fn partial_len(rows: usize, d: usize, tile: usize) -> usize {
    // splits · t grows with t within each 64-neuron step of the grid and drops at the next.
    (1..=tile.div_ceil(64))
        .map(|b| {
            let t = (64 * b).min(tile);
            splits(rows, d, t) * t * d
        })
        .max()
        .unwrap_or(0)
        .max(1)
}

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
    /// First mask word read: `bits[bits0 + jj·words + r/32]`.
    pub bits0: u32,
    /// Set by [`encode`] from [`split_rows`].
    pub split_rows: u32,
    /// Set by [`encode`] from [`splits`].
    pub splits: u32,
    pub pad: u32,
}

impl Params {
    /// Parameters over `rows` rows of a column-major X (stride `x_stride`) for `tile` neurons of
    /// `d` coordinates, masks `words` words per neuron from word 0; no accumulation, no finish.
    pub fn new(rows: usize, d: usize, tile: usize, words: usize, x_stride: u32) -> Self {
        Self {
            rows: rows as u32,
            d: d as u32,
            tile: tile as u32,
            words: words as u32,
            x_stride,
            x_row0: 0,
            r_row0: 0,
            accumulate: 0,
            finish: 0,
            mu: 0.0,
            res_stride: 0,
            mu_from_state: 0,
            bits0: 0,
            split_rows: 0,
            splits: 0,
            pad: 0,
        }
    }
}

/// The operands of one gradient dispatch.
pub struct GradientBufs<'a> {
    pub x: &'a DeviceBuffer,
    /// Whether `x` holds the data X (stored in f16 under `--gpu-f16`) rather than other f32
    /// values bound in its place (the vector model's output-layer gradient binds the hidden
    /// values there), which are read by the f32 kernels.
    pub x_is_data: bool,
    pub res: &'a DeviceBuffer,
    pub bits: &'a DeviceBuffer,
    pub xtile: &'a DeviceBuffer,
    pub g: &'a DeviceBuffer,
    /// Read for μ when `mu_from_state = 1`; any other buffer not written here otherwise.
    pub state: &'a DeviceBuffer,
    /// Partial sums, at least [`partial_len`] floats.
    pub part: &'a DeviceBuffer,
}

/// Records the tile's gradient over one block of rows: the split products, then their pairwise
/// sum with the accumulation and the candidate step.
pub fn encode(rec: &mut Recorder<'_>, p: &Params, b: &GradientBufs<'_>) {
    let entry = match (rec.hardware(), rec.lane_subgroups()) {
        (true, _) => Entry::Tiled,
        (false, false) => Entry::Lanes,
        (false, true) => Entry::LanesSubgroup,
    };
    encode_with(rec, p, b, entry);
}

/// The entry that forms the splits' partial sums; all give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// `main`: tiled in workgroup memory and registers, for GPUs.
    Tiled,
    /// `lanes`: no workgroup memory and no barrier, for CPU adapters (Lavapipe), which run a
    /// workgroup's invocations as SIMD lanes and switch between them at every barrier.
    Lanes,
    /// `lanes_sg`: `lanes` with the rows' residuals and the mask words loaded once per subgroup
    /// and broadcast, for CPU adapters with 8-lane subgroups ([`Recorder::lane_subgroups`]).
    LanesSubgroup,
}

/// [`encode`] with the given entry (tests run each on any adapter that has it).
pub fn encode_with(rec: &mut Recorder<'_>, p: &Params, b: &GradientBufs<'_>, entry: Entry) {
    let (rows, d, tile) = (p.rows as usize, p.d as usize, p.tile as usize);
    let p = Params {
        split_rows: split_rows(rows, d, tile) as u32,
        splits: splits(rows, d, tile) as u32,
        ..*p
    };
    assert!(
        b.part.bytes() >= (p.splits as usize * tile * d * 4) as u64,
        "masked_gradient: partial sums need {} floats",
        p.splits as usize * tile * d
    );
    let groups = match entry {
        Entry::Tiled => (
            p.d.div_ceil(64),
            p.tile.div_ceil(TILE_NEURONS as u32),
            p.splits,
        ),
        Entry::Lanes | Entry::LanesSubgroup => (p.d.div_ceil(64), p.tile.div_ceil(16), p.splits),
    };
    // f32 values bound in X's place under `--gpu-f16` go to the f32 build of the kernels.
    let name = match (entry, !b.x_is_data && rec.x_f16()) {
        (Entry::Tiled, false) => "masked_gradient.main",
        (Entry::Tiled, true) => "masked_gradient_f32.main",
        (Entry::Lanes, false) => "masked_gradient.lanes",
        (Entry::Lanes, true) => "masked_gradient_f32.lanes",
        (Entry::LanesSubgroup, false) => "masked_gradient.lanes_sg",
        (Entry::LanesSubgroup, true) => "masked_gradient_f32.lanes_sg",
    };
    rec.dispatch(name, &p, &[b.x, b.res, b.bits, b.part], groups);
    rec.dispatch(
        "masked_gradient.reduce",
        &p,
        &[b.xtile, b.g, b.state, b.part],
        rows_grid(tile * d),
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
    let p = Params::new(nnz, d, tile, pos0, 0);
    rec.dispatch(
        "masked_gradient.scatter",
        &p,
        &[idx, val, pos, xout],
        rows_grid(nnz),
    );
}
