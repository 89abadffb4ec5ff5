//! Row-block and neuron-tile streaming. The full-gradient pass visits the live neurons in tiles
//! of `tile` neurons and, inside a tile, the data in blocks of `block` rows; only one block of
//! pre-activations (`block × tile`) and one tile of gradients (`tile × d`) exist per worker, so the
//! working set is independent of `m` and `n`.

/// Tile and block sizes for one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Neurons per tile.
    pub tile: usize,
    /// Rows per data block.
    pub block: usize,
}

/// Largest tile. With [`BLOCK_ROWS`] this keeps a block of pre-activations at 2 MiB while the
/// GEMM micro-kernels see wide panels; measured on a 2-core EPYC (n = 50 000, d = 100, m = 1000),
/// 256 × 2048 beat 128 × 4096, 128 × 2048, 256 × 1024 and 64 × 4096 by 5–20%.
pub const MAX_TILE: usize = 256;
/// Rows per block in the gradient pass.
pub const BLOCK_ROWS: usize = 2048;

impl Plan {
    /// Chooses a tile of about one worker's share of the live neurons (at most [`MAX_TILE`], a
    /// multiple of 16): each tile packs every block of X for its GEMMs once, so fewer, wider tiles
    /// pack less (with 100 live neurons on 2 workers, 2 tiles of 64 instead of 4 of 32: the
    /// solve 7 % faster on Zen 4); many live neurons still give many tiles to balance.
    pub fn for_pass(live: usize, workers: usize) -> Self {
        let per = live.div_ceil(workers.max(1)).max(1);
        let tile = per.div_ceil(16) * 16;
        Self {
            tile: tile.clamp(16, MAX_TILE),
            block: BLOCK_ROWS,
        }
    }

    /// Bytes of scratch one worker holds for a pass with input dimension `d`: the block of
    /// pre-activations, the generator tile and the gradient tile.
    pub fn scratch_bytes(&self, d: usize) -> usize {
        4 * (self.block * self.tile + 2 * d * self.tile)
    }
}

/// Rows per sub-block when sparse generators (`h = w`) are applied neuron after neuron: a
/// sub-block of all `d` columns fits in about 256 KiB (a core's L2), between 64 and 2048 rows.
pub fn sparse_block_rows(d: usize) -> usize {
    ((65_536 / d.max(1)) / 64 * 64).clamp(64, BLOCK_ROWS)
}

/// Splits `0..n` into consecutive ranges of at most `block` rows.
pub fn row_blocks(n: usize, block: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..n)
        .step_by(block.max(1))
        .map(move |r0| r0..(r0 + block).min(n))
}
