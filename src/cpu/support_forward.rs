//! CPU twin of `shaders/support_forward.wgsl` (`A_T z = Σ_{j ∈ T} D_j X[:, T_j] z_j`) with the
//! kernel's arithmetic, and the layouts the GPU kernels read. The CPU engine's own products are
//! in [`super::support_pass`].

/// A support laid out as the GPU kernels read it: per entry its column and run, per run its
/// start, and the masks `bits[k·words + row/32]` over all rows.
pub struct SupportLayout<'a> {
    pub cols: &'a [u32],
    pub run_start: &'a [u32],
    pub run_of: &'a [u32],
    pub bits: &'a [u32],
    pub words: usize,
}

impl SupportLayout<'_> {
    #[inline]
    pub fn bit(&self, k: usize, row: usize) -> bool {
        (self.bits[k * self.words + row / 32] >> (row % 32)) & 1 == 1
    }
}

/// A block of rows as the GPU kernels see it: column-major `X[r, i] = x[i·x_stride + x_row0 + r]`
/// for `r < rows`, whose first row is row `m_row0` of the whole data (for the masks).
pub struct RowBlock<'a> {
    pub x: &'a [f32],
    pub x_stride: usize,
    pub x_row0: usize,
    pub rows: usize,
    pub m_row0: usize,
}

impl<'a> RowBlock<'a> {
    /// All rows of a column-major n-row matrix.
    pub fn all(x: &'a [f32], n: usize) -> Self {
        Self {
            x,
            x_stride: n,
            x_row0: 0,
            rows: n,
            m_row0: 0,
        }
    }
}

/// CPU twin of `shaders/support_forward.wgsl` with its arithmetic: the block's rows of `A_T z`,
/// inner sums by f32 `fma` in support order, outer sums in run order.
pub fn twin(b: &RowBlock<'_>, s: &SupportLayout<'_>, z: &[f32]) -> Vec<f32> {
    let RowBlock {
        x,
        x_stride,
        x_row0,
        rows,
        m_row0,
    } = *b;
    let runs = s.run_start.len() - 1;
    (0..rows)
        .map(|r| {
            let mut acc = 0.0f32;
            for k in 0..runs {
                if !s.bit(k, m_row0 + r) {
                    continue;
                }
                let mut sum = 0.0f32;
                for p in s.run_start[k] as usize..s.run_start[k + 1] as usize {
                    sum = z[p].mul_add(x[s.cols[p] as usize * x_stride + x_row0 + r], sum);
                }
                acc += sum;
            }
            acc
        })
        .collect()
}
