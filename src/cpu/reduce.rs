//! CPU twin of `reduce`: norms, dot products and the Armijo quantities, accumulated in f64 in a
//! fixed order (deterministic, independent of the thread count). [`dot_chunk`] is the fast
//! variant the product kernels use inside one chunk: f32 across 8 independent lanes over at most a
//! few thousand elements (so it vectorizes and the error stays ~√chunk·ε), then f64.

/// Elements per f32 partial sum.
pub const CHUNK: usize = 4096;

#[inline]
fn lanes_sum(acc: [f32; 8]) -> f64 {
    acc.iter().map(|&v| v as f64).sum()
}

/// `Σ a[k]·b[k]` over one chunk, in f32 lanes.
#[inline]
pub fn dot_chunk(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ar.iter().zip(br).enumerate() {
        acc[l] += x * y;
    }
    lanes_sum(acc)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_chunk_matches_f64_reference() {
        let a: Vec<f32> = (0..10_007)
            .map(|k| ((k * 37 % 101) as f32 - 50.0) * 0.01)
            .collect();
        let b: Vec<f32> = (0..10_007)
            .map(|k| ((k * 53 % 97) as f32 - 48.0) * 0.02)
            .collect();
        let exact: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let got: f64 = a
            .chunks(CHUNK)
            .zip(b.chunks(CHUNK))
            .map(|(x, y)| dot_chunk(x, y))
            .sum();
        assert_eq!(dot(&a, &b), exact);
        // f32 lanes over ≤ 4096 terms: relative error well under 1e-5 of the sum of |terms|.
        let scale: f64 = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| (x as f64 * y as f64).abs())
            .sum();
        assert!(
            (got - exact).abs() <= 1e-6 * scale,
            "got {got} exact {exact}"
        );
    }
}
