//! The streamed full-gradient pass (masked gradient GEMMs fused with the candidate step and the
//! running top-s) against the dense formula `top-s(x − μ Aᵀ r)`.

use super::common::*;
use relu_iht::cpu::masked_gradient::{gradient_topk, gradient_topk_keeping_masks, tile_gradient};
use relu_iht::cpu::relu_mask::Masks;
use relu_iht::problem::operator::{Generators, Operator};
use relu_iht::SparseVec;
use std::collections::HashSet;

#[test]
fn tile_gradient_matches_dense_adjoint() {
    let mut rng = rng(10);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let r = nonzero(&mut rng, n);
            let live = op.live_neurons();
            // Blocks smaller than n and not a multiple of 8 exercise the accumulation over blocks.
            for block in [n, 5, 64] {
                let mut g = vec![0.0; live.len() * d];
                tile_gradient(&op, &live, &r, block, &mut g);
                let dense = op.dense_adjoint(&r);
                let want: Vec<f64> = live
                    .iter()
                    .flat_map(|&j| dense[j as usize * d..(j as usize + 1) * d].to_vec())
                    .collect();
                // Sums of n terms ≤ 1.21 in f32 GEMMs: 1e-5 relative to n·1.21.
                assert_close(
                    &format!("G n={n} d={d} m={m} block={block}"),
                    &g,
                    &want,
                    1e-5,
                    1.21 * n as f64,
                );
            }
        }
    }
}

/// Checks `got` is a valid top-`keep` of the dense candidates up to a rounding band `tol` at the
/// threshold, and that its values match.
fn check_selection(what: &str, got: &SparseVec, cand: &[f64], keep: usize, tol: f64) {
    let mut order: Vec<usize> = (0..cand.len()).filter(|&c| cand[c] != 0.0).collect();
    order.sort_by(|&a, &b| cand[b].abs().total_cmp(&cand[a].abs()).then(a.cmp(&b)));
    let expect = keep.min(order.len());
    assert_eq!(got.nnz(), expect, "{what}: number selected");
    if expect == 0 {
        return;
    }
    let tau = cand[order[expect - 1]].abs();
    let chosen: HashSet<u32> = got.indices().iter().copied().collect();
    for (c, &v) in cand.iter().enumerate() {
        if chosen.contains(&(c as u32)) {
            assert!(
                v.abs() >= tau - tol,
                "{what}: chose {c} with |{v}| below threshold {tau}"
            );
            let g = got.get(c as u32) as f64;
            assert!(
                (g - v).abs() <= tol,
                "{what}[{c}]: actual {g}, expected {v}, tolerance {tol:e}"
            );
        } else {
            assert!(
                v.abs() <= tau + tol,
                "{what}: skipped {c} with |{v}| above threshold {tau}"
            );
        }
    }
}

#[test]
fn gradient_topk_matches_dense_selection() {
    let mut rng = rng(11);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let md = m * d;
            for (keep, nnz) in [
                (1, 0),
                (md, md / 2),
                (md.div_ceil(2), 1),
                (md.div_ceil(3), md),
            ] {
                let x = sparse(&mut rng, md, nnz);
                let r = nonzero(&mut rng, n);
                let mu = 0.37f32;
                let got = gradient_topk(&op, &x, &r, mu, keep, 2);
                // With every live neuron's masks known (as the engine holds them after the
                // normalized step), the pass reads the bits and selects exactly the same.
                let live = op.live_neurons();
                let masks = Masks::compute(&op, &live);
                let (known, kept) =
                    gradient_topk_keeping_masks(&op, &x, &r, mu, keep, 2, Some((&live, &masks)));
                assert_eq!(known, got, "n={n} d={d} m={m} keep={keep}: known masks");
                assert!(kept.is_none(), "no masks kept when they were given");
                let grad = op.dense_adjoint(&r);
                let xd = x.to_dense();
                let cand: Vec<f64> = (0..md)
                    .map(|c| xd[c] as f64 - mu as f64 * grad[c])
                    .collect();
                let tol = 1e-5 * 1.21 * n as f64;
                check_selection(
                    &format!("n={n} d={d} m={m} keep={keep}"),
                    &got,
                    &cand,
                    keep,
                    tol,
                );
            }
        }
    }
}

#[test]
fn dead_neurons_keep_their_weights() {
    // With h = w, a neuron without generator weights has a zero block: its entries of x are
    // candidates unchanged (and never spring up from zero).
    let mut rng = rng(12);
    let data = data(&mut rng, 50, 3);
    let h = SparseVec::from_pairs(9, vec![(0, 1.0), (1, -0.5)]).unwrap();
    let op = Operator::new(data.clone(), 3, Generators::Weights(h)).unwrap();
    let x = SparseVec::from_pairs(9, vec![(0, 0.25), (7, 2.0)]).unwrap();
    let r = nonzero(&mut rng, 50);
    let got = gradient_topk(&op, &x, &r, 0.1, 9, 2);
    assert_eq!(got.get(7), 2.0, "dead neuron 2 keeps its weight");
    assert!(
        got.indices().iter().all(|&c| c < 3 || c == 7),
        "{:?}",
        got.indices()
    );
}
