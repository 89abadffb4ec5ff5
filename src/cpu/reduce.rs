//! CPU twin of `reduce`: norms, dot products and the Armijo quantities, accumulated in f64 in a
//! fixed order (deterministic, independent of the thread count). The product kernels use the
//! faster eight-lane f32 `lanes::dot` inside their chunks instead.

/// `⟨a, b⟩` with every product and sum in f64 (the solver's scalars: step sizes and losses
/// must agree with [`shifted_norm2`] to the last bits for the Armijo test to be meaningful).
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `‖a‖²` in f64, equal to `shifted_norm2(a, _, 0.0)`.
pub fn norm2(a: &[f32]) -> f64 {
    dot(a, a)
}

/// `‖r − μ q‖²` with every term in f64: the Armijo test compares nearly equal losses, so this
/// one is computed at full precision (it is O(n) and cheap next to the products).
pub fn shifted_norm2(r: &[f32], q: &[f32], mu: f64) -> f64 {
    r.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let e = a as f64 - mu * b as f64;
            e * e
        })
        .sum()
}

/// `r ← r − μ q`, each element rounded once from f64.
pub fn axpy(r: &mut [f32], q: &[f32], mu: f64) {
    for (a, &b) in r.iter_mut().zip(q) {
        *a = (*a as f64 - mu * b as f64) as f32;
    }
}

/// CPU twin of the `partials` entry of `shaders/reduce.wgsl`: per group of `per_group` elements,
/// 64 Kahan-compensated f32 lanes of `(a − μ b)²` (or `a²`), then the fixed tree.
pub fn twin_partials(a: &[f32], b: Option<&[f32]>, mu: f32, per_group: usize) -> Vec<f32> {
    a.chunks(per_group)
        .enumerate()
        .map(|(gi, chunk)| {
            let mut lanes = [0.0f32; 64];
            for (lane, out) in lanes.iter_mut().enumerate() {
                let (mut sum, mut comp) = (0.0f32, 0.0f32);
                for r in (lane..chunk.len()).step_by(64) {
                    let mut e = chunk[r];
                    if let Some(b) = b {
                        e -= mu * b[gi * per_group + r];
                    }
                    let term = e * e - comp;
                    let t = sum + term;
                    comp = (t - sum) - term;
                    sum = t;
                }
                *out = sum;
            }
            super::support_adjoint::tree_sum(&mut lanes)
        })
        .collect()
}
