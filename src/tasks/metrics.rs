//! Metrics of SPEC §4: PSNR, relative error, and the weight error after matching neurons
//! (a two-layer network is only identifiable up to a permutation of its neurons).

use crate::problem::sparse::SparseVec;
use pathfinding::kuhn_munkres::kuhn_munkres_min;
use pathfinding::matrix::Matrix;

/// `20·log10(max|y|) − 10·log10(MSE)`; `+∞` for an exact fit.
pub fn psnr(y: &[f32], yhat: &[f32]) -> f64 {
    let peak = y.iter().fold(0.0f64, |a, &v| a.max((v as f64).abs()));
    let mse = y
        .iter()
        .zip(yhat)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum::<f64>()
        / y.len().max(1) as f64;
    20.0 * peak.log10() - 10.0 * mse.log10()
}

/// `‖ŷ − y‖ / ‖y‖`.
pub fn rel_error(y: &[f32], yhat: &[f32]) -> f64 {
    let num: f64 = y
        .iter()
        .zip(yhat)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    let den: f64 = y.iter().map(|&a| (a as f64).powi(2)).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

/// `‖x − w‖ / ‖w‖` entrywise (the convex model, where neurons have fixed identities).
pub fn weight_error_direct(x: &SparseVec, w: &SparseVec) -> f64 {
    x.distance(w) / w.norm().max(f64::MIN_POSITIVE)
}

/// Dense d-vectors of the neurons holding weights.
fn neuron_blocks(x: &SparseVec, d: usize) -> Vec<Vec<f64>> {
    let mut out: Vec<(u32, Vec<f64>)> = Vec::new();
    for (&c, &v) in x.indices().iter().zip(x.values()) {
        let j = c / d as u32;
        if out.last().map(|b| b.0) != Some(j) {
            out.push((j, vec![0.0; d]));
        }
        out.last_mut().expect("pushed above").1[c as usize % d] = v as f64;
    }
    out.into_iter().map(|b| b.1).collect()
}

/// `sqrt(min over matchings Σ ‖x_a − w_π(a)‖²) / ‖w‖`: recovered neurons are matched one-to-one to
/// planted neurons (unmatched ones against zero) by the Hungarian algorithm on squared distances.
pub fn weight_error_matched(x: &SparseVec, w: &SparseVec, d: usize) -> f64 {
    let a = neuron_blocks(x, d);
    let b = neuron_blocks(w, d);
    let k = a.len().max(b.len());
    if k == 0 {
        return 0.0;
    }
    let zero = vec![0.0; d];
    let get = |v: &Vec<Vec<f64>>, i: usize| v.get(i).cloned().unwrap_or_else(|| zero.clone());
    let cost = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(u, v)| (u - v).powi(2)).sum::<f64>();
    let costs: Vec<f64> = (0..k)
        .flat_map(|i| {
            let ai = get(&a, i);
            (0..k).map(move |jdx| (ai.clone(), jdx))
        })
        .map(|(ai, jdx)| cost(&ai, &get(&b, jdx)))
        .collect();
    // The Hungarian solver wants integer weights: scale so the largest cost is 2^52 (exact in
    // f64); the assignment is then optimal up to a 2^-52 relative tie, and the error itself is
    // recomputed in f64 from the assignment.
    let max = costs.iter().cloned().fold(0.0f64, f64::max);
    let scale = if max > 0.0 {
        (1u64 << 52) as f64 / max
    } else {
        1.0
    };
    let ints = Matrix::from_vec(
        k,
        k,
        costs.iter().map(|&c| (c * scale).round() as i64).collect(),
    )
    .expect("k × k costs");
    let (_, assign) = kuhn_munkres_min(&ints);
    let total: f64 = assign
        .iter()
        .enumerate()
        .map(|(i, &jdx)| costs[i * k + jdx])
        .sum();
    total.sqrt() / w.norm().max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_ignores_permutation() {
        // Neuron 0 of x is neuron 2 of w and vice versa (d = 2).
        let x = SparseVec::from_pairs(6, vec![(0, 1.0), (1, 2.0), (4, -3.0)]).unwrap();
        let w = SparseVec::from_pairs(6, vec![(4, 1.0), (5, 2.0), (0, -3.0)]).unwrap();
        assert!(weight_error_matched(&x, &w, 2) < 1e-12);
        assert!(weight_error_direct(&x, &w) > 1.0);
        let y = [1.0f32, -2.0, 0.5];
        assert_eq!(rel_error(&y, &y), 0.0);
        assert!(psnr(&y, &[1.0, -2.0, 0.4]) > 20.0);
    }
}
