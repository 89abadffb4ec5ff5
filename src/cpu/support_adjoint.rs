//! CPU twin of `shaders/support_adjoint.wgsl`: `(A_Tᵀ r)_c = Σ_r X[r, i] · 1{row r active for j}
//! · r_r` for each `c = (j, i) ∈ T`, with the kernel's arithmetic. The CPU engine's own products
//! are in [`super::support_pass`].

/// CPU twin of `shaders/support_adjoint.wgsl` with its arithmetic: for each support entry, 64
/// lanes over the groups of four rows `lane, lane + 64, …` (group g: rows 4g .. 4g + 3), each lane
/// a Kahan-compensated f32 sum per row of the group, added in order; then a fixed tree over the
/// lanes.
pub fn twin(
    b: &crate::cpu::support_forward::RowBlock<'_>,
    s: &crate::cpu::support_forward::SupportLayout<'_>,
    res: &[f32],
    r_row0: usize,
) -> Vec<f32> {
    let crate::cpu::support_forward::RowBlock {
        x,
        x_stride,
        x_row0,
        rows,
        m_row0,
    } = *b;
    (0..s.cols.len())
        .map(|p| {
            let col = s.cols[p] as usize * x_stride + x_row0;
            let k = s.run_of[p] as usize;
            let mut lanes = [0.0f32; 64];
            for (lane, out) in lanes.iter_mut().enumerate() {
                let (mut sum, mut comp) = ([0.0f32; 4], [0.0f32; 4]);
                for g in (lane..rows.div_ceil(4)).step_by(64) {
                    for c in 0..4 {
                        let r = 4 * g + c;
                        if r < rows && s.bit(k, m_row0 + r) {
                            let term = x[col + r] * res[r_row0 + r] - comp[c];
                            let t = sum[c] + term;
                            comp[c] = (t - sum[c]) - term;
                            sum[c] = t;
                        }
                    }
                }
                *out = ((sum[0] + sum[1]) + sum[2]) + sum[3];
            }
            tree_sum(&mut lanes)
        })
        .collect()
}

/// The workgroup tree reduction of the kernels: strides 32, 16, …, 1.
pub fn tree_sum(lanes: &mut [f32; 64]) -> f32 {
    let mut stride = 32;
    while stride > 0 {
        for l in 0..stride {
            lanes[l] += lanes[l + stride];
        }
        stride /= 2;
    }
    lanes[0]
}
