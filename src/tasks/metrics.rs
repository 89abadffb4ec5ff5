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

/// Most neurons on a side matched exactly (the Hungarian algorithm is O(k³): about a second here).
pub const EXACT_MATCHING_MAX: usize = 1000;
/// Most candidate pairs the greedy matching weighs (neuron pairs that share an input coordinate).
const GREEDY_PAIRS_MAX: u128 = 50_000_000;

/// How the neurons were matched for [`weight_error_matched`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Matching {
    /// Optimal one-to-one matching (Hungarian algorithm on squared distances).
    Hungarian,
    /// Greedy matching by the largest inner products among neurons sharing an input (at least half
    /// the optimal gain; a neuron left unmatched counts against zero).
    Greedy,
    /// No matching (too many overlapping neurons to weigh): entrywise, as for the convex model.
    Direct,
}

/// `sqrt(min over matchings Σ ‖x_a − w_π(a)‖²) / ‖w‖`: recovered neurons are matched one-to-one to
/// planted neurons (unmatched ones against zero), exactly up to [`EXACT_MATCHING_MAX`] neurons
/// a side, greedily beyond; the method used is returned with the error.
pub fn weight_error_matched(x: &SparseVec, w: &SparseVec, d: usize) -> (f64, Matching) {
    let a = sparse_neurons(x, d);
    let b = sparse_neurons(w, d);
    let k = a.len().max(b.len());
    if k == 0 {
        return (0.0, Matching::Hungarian);
    }
    if k > EXACT_MATCHING_MAX {
        return match greedy_matched(x, w, d) {
            Some(total) => (
                total.sqrt() / w.norm().max(f64::MIN_POSITIVE),
                Matching::Greedy,
            ),
            None => (weight_error_direct(x, w), Matching::Direct),
        };
    }
    // Missing neurons (the shorter side) are zero.
    fn side(v: &[Vec<(u32, f64)>], i: usize) -> &[(u32, f64)] {
        v.get(i).map_or(&[], |n| n.as_slice())
    }
    let mut costs = Vec::with_capacity(k * k);
    for i in 0..k {
        let ai = side(&a, i);
        costs.extend((0..k).map(|jdx| sparse_distance2(ai, side(&b, jdx))));
    }
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
    (
        total.sqrt() / w.norm().max(f64::MIN_POSITIVE),
        Matching::Hungarian,
    )
}

/// `‖p − q‖²` of two sparse neurons (coordinates increasing), summed in coordinate order: the
/// dense sum's value exactly, the coordinates where both are zero adding nothing.
fn sparse_distance2(p: &[(u32, f64)], q: &[(u32, f64)]) -> f64 {
    let (mut i, mut j, mut total) = (0, 0, 0.0f64);
    loop {
        let (u, v) = match (p.get(i), q.get(j)) {
            (Some(&(ci, u)), Some(&(cj, v))) if ci == cj => {
                i += 1;
                j += 1;
                (u, v)
            }
            (Some(&(ci, u)), Some(&(cj, _))) if ci < cj => {
                i += 1;
                (u, 0.0)
            }
            (Some(&(_, u)), None) => {
                i += 1;
                (u, 0.0)
            }
            (_, Some(&(_, v))) => {
                j += 1;
                (0.0, v)
            }
            (None, None) => return total,
        };
        total += (u - v).powi(2);
    }
}

/// Sparse neurons: (neuron, [(coordinate, value)]) in index order.
fn sparse_neurons(x: &SparseVec, d: usize) -> Vec<Vec<(u32, f64)>> {
    let mut out: Vec<(u32, Vec<(u32, f64)>)> = Vec::new();
    for (&c, &v) in x.indices().iter().zip(x.values()) {
        let j = c / d as u32;
        if out.last().map(|b| b.0) != Some(j) {
            out.push((j, Vec::new()));
        }
        out.last_mut()
            .expect("pushed above")
            .1
            .push((c % d as u32, v as f64));
    }
    out.into_iter().map(|b| b.1).collect()
}

/// The greedy matching's total squared distance: all neurons against zero, less `2⟨a, b⟩` for
/// each matched pair, pairs taken by decreasing inner product among those sharing a coordinate.
/// `None` when there are too many such pairs to weigh.
fn greedy_matched(x: &SparseVec, w: &SparseVec, d: usize) -> Option<f64> {
    let (a, b) = (sparse_neurons(x, d), sparse_neurons(w, d));
    let mut by_coord: Vec<Vec<(u32, f64)>> = vec![Vec::new(); d];
    for (jb, nb) in b.iter().enumerate() {
        for &(i, v) in nb {
            by_coord[i as usize].push((jb as u32, v));
        }
    }
    let pairs: u128 = a
        .iter()
        .flat_map(|na| na.iter().map(|&(i, _)| by_coord[i as usize].len() as u128))
        .sum();
    if pairs > GREEDY_PAIRS_MAX {
        return None;
    }
    let mut dots: std::collections::HashMap<(u32, u32), f64> = std::collections::HashMap::new();
    for (ja, na) in a.iter().enumerate() {
        for &(i, u) in na {
            for &(jb, v) in &by_coord[i as usize] {
                *dots.entry((ja as u32, jb)).or_insert(0.0) += u * v;
            }
        }
    }
    let mut pairs: Vec<((u32, u32), f64)> = dots.into_iter().filter(|p| p.1 > 0.0).collect();
    // Largest gain first; ties by the pair, so the result does not depend on the hash order.
    pairs.sort_by(|p, q| q.1.total_cmp(&p.1).then(p.0.cmp(&q.0)));
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let norm2 = |v: &[(u32, f64)]| v.iter().map(|p| p.1 * p.1).sum::<f64>();
    let mut total: f64 =
        a.iter().map(|n| norm2(n)).sum::<f64>() + b.iter().map(|n| norm2(n)).sum::<f64>();
    for ((ja, jb), dot) in pairs {
        if !used_a[ja as usize] && !used_b[jb as usize] {
            used_a[ja as usize] = true;
            used_b[jb as usize] = true;
            total -= 2.0 * dot;
        }
    }
    Some(total.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_ignores_permutation() {
        // Neuron 0 of x is neuron 2 of w and vice versa (d = 2).
        let x = SparseVec::from_pairs(6, vec![(0, 1.0), (1, 2.0), (4, -3.0)]).unwrap();
        let w = SparseVec::from_pairs(6, vec![(4, 1.0), (5, 2.0), (0, -3.0)]).unwrap();
        assert!(weight_error_matched(&x, &w, 2).0 < 1e-12);
        // The greedy matching finds the same permutation.
        assert!(greedy_matched(&x, &w, 2).unwrap() < 1e-12);
        assert!(weight_error_direct(&x, &w) > 1.0);
        // Beyond the exact limit (10 000 neurons, one weight each, permuted): greedy, still exact
        // here, and quick (a dense Hungarian on 10⁴ neurons would take hours).
        let (m, d) = (20_000u32, 100u32);
        let xw: Vec<(u32, f32)> = (0..10_000u32)
            .map(|j| (j * d + j % d, 1.0 + j as f32))
            .collect();
        let ww: Vec<(u32, f32)> = (0..10_000u32)
            .map(|j| (((j * 7 + 3) % m) * d + j % d, 1.0 + j as f32))
            .collect();
        let (x2, w2) = (
            SparseVec::from_pairs((m * d) as u64, xw).unwrap(),
            SparseVec::from_pairs((m * d) as u64, ww).unwrap(),
        );
        let (err, how) = weight_error_matched(&x2, &w2, d as usize);
        assert_eq!(how, Matching::Greedy);
        assert!(err < 1e-12, "{err}");
        let y = [1.0f32, -2.0, 0.5];
        assert_eq!(rel_error(&y, &y), 0.0);
        assert!(psnr(&y, &[1.0, -2.0, 0.4]) > 20.0);
    }
}
