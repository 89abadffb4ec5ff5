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
