//! The CPU twins of the WGSL kernels against plain references (no GPU needed): the twins carry
//! the kernels' exact arithmetic, the references the mathematical definition.

use super::common::*;
use relu_iht::cpu::masked_gradient::{self, GradientBlock};
use relu_iht::cpu::support_forward::{RowBlock, SupportLayout};
use relu_iht::cpu::{reduce, relu_mask, support_adjoint, support_forward, topk};
use relu_iht::operator::{Operator, Support};
use relu_iht::topk::{reference_top, TopS};

/// The GPU layout of a support: columns, run starts, run of each entry, masks (u32 words).
pub struct Layout {
    pub cols: Vec<u32>,
    pub run_start: Vec<u32>,
    pub run_of: Vec<u32>,
    pub bits: Vec<u32>,
    pub words: usize,
}

impl Layout {
    pub fn new(op: &Operator, support: &[u32]) -> Self {
        let d = op.d();
        let t = Support::new(support, d);
        let neurons: Vec<u32> = t.runs.iter().map(|r| r.0).collect();
        let h: Vec<f32> = neurons.iter().flat_map(|&j| op.generator(j)).collect();
        let x = op.data().xt();
        let bits = relu_mask::twin(x, op.n(), 0, op.n(), d, &h, neurons.len());
        let mut run_start: Vec<u32> = t.runs.iter().map(|r| r.1 as u32).collect();
        run_start.push(t.len() as u32);
        Self {
            cols: t.idx.iter().map(|&c| c % d as u32).collect(),
            run_start,
            run_of: t
                .runs
                .iter()
                .enumerate()
                .flat_map(|(k, r)| std::iter::repeat_n(k as u32, r.2 - r.1))
                .collect(),
            bits,
            words: op.n().div_ceil(32),
        }
    }
    pub fn view(&self) -> SupportLayout<'_> {
        SupportLayout {
            cols: &self.cols,
            run_start: &self.run_start,
            run_of: &self.run_of,
            bits: &self.bits,
            words: self.words,
        }
    }
}

#[test]
fn relu_mask_twin_follows_the_definition() {
    let mut rng = rng(20);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let neurons = op.live_neurons();
            let h: Vec<f32> = neurons.iter().flat_map(|&j| op.generator(j)).collect();
            let bits = relu_mask::twin(op.data().xt(), n, 0, n, d, &h, neurons.len());
            let words = n.div_ceil(32);
            for (jj, &j) in neurons.iter().enumerate() {
                let hj = op.generator(j);
                for r in 0..n {
                    let z: f64 = (0..d)
                        .map(|i| op.data().at(r, i) as f64 * hj[i] as f64)
                        .sum();
                    let scale: f64 = (0..d)
                        .map(|i| (op.data().at(r, i) * hj[i]).abs() as f64)
                        .sum();
                    if z.abs() > 1e-5 * scale {
                        let bit = (bits[jj * words + r / 32] >> (r % 32)) & 1 == 1;
                        assert_eq!(bit, z > 0.0, "n={n} neuron {j} row {r}: z = {z}");
                    }
                }
            }
        }
    }
}

#[test]
fn support_twins_match_dense_formula() {
    let mut rng = rng(21);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let x = sparse(&mut rng, m * d, (m * d).div_ceil(2));
            let lay = Layout::new(&op, x.indices());
            let got =
                support_forward::twin(&RowBlock::all(op.data().xt(), n), &lay.view(), x.values());
            let want = op.dense_forward(&x.to_dense());
            let scale = x.values().iter().map(|v| v.abs() as f64).sum::<f64>() * 1.1;
            assert_close(
                &format!("forward twin n={n} d={d} m={m}"),
                &got,
                &want,
                1e-5,
                scale,
            );
            let v = nonzero(&mut rng, n);
            let got = support_adjoint::twin(&RowBlock::all(op.data().xt(), n), &lay.view(), &v, 0);
            let dense = op.dense_adjoint(&v);
            let want: Vec<f64> = x.indices().iter().map(|&c| dense[c as usize]).collect();
            assert_close(
                &format!("adjoint twin n={n} d={d} m={m}"),
                &got,
                &want,
                1e-5,
                1.21 * n as f64,
            );
        }
    }
}

#[test]
fn masked_gradient_twin_matches_dense_adjoint_and_step() {
    let mut rng = rng(22);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            let neurons = op.live_neurons();
            let t = neurons.len();
            let h: Vec<f32> = neurons.iter().flat_map(|&j| op.generator(j)).collect();
            let bits = relu_mask::twin(op.data().xt(), n, 0, n, d, &h, t);
            let res = nonzero(&mut rng, n);
            let xtile = nonzero(&mut rng, t * d);
            let block = GradientBlock {
                x: op.data().xt(),
                x_stride: n,
                x_row0: 0,
                rows: n,
                d,
                res: &res,
                r_row0: 0,
                bits: &bits,
                tile: t,
            };
            let mu = 0.3;
            let got = masked_gradient::twin(&block, None, &xtile, Some(mu));
            let dense = op.dense_adjoint(&res);
            let want: Vec<f64> = neurons
                .iter()
                .enumerate()
                .flat_map(|(jj, &j)| (0..d).map(move |i| (jj, j as usize * d + i, i)))
                .map(|(jj, c, i)| xtile[jj * d + i] as f64 - mu as f64 * dense[c])
                .collect();
            assert_close(
                &format!("gradient twin n={n} d={d} m={m}"),
                &got,
                &want,
                1e-5,
                1.21 * n as f64,
            );
        }
    }
}

#[test]
fn reduce_twin_matches_f64() {
    let mut rng = rng(23);
    for len in [1, 63, 64, 1000, 5000] {
        let a = nonzero(&mut rng, len);
        let b = nonzero(&mut rng, len);
        for per_group in [64, 1024] {
            let parts = reduce::twin_partials(&a, Some(&b), 0.7, per_group);
            let got: f64 = parts.iter().map(|&v| v as f64).sum();
            let want = reduce::shifted_norm2(&a, &b, 0.7f32 as f64);
            // Compensated f32 lanes: well inside 1e-5 relative.
            assert!(
                (got - want).abs() <= 1e-5 * want,
                "len {len}: {got} vs {want}"
            );
            let plain: f64 = reduce::twin_partials(&a, None, 0.0, per_group)
                .iter()
                .map(|&v| v as f64)
                .sum();
            assert!((plain - reduce::norm2(&a)).abs() <= 1e-5 * reduce::norm2(&a));
        }
    }
}

#[test]
fn topk_twin_keeps_a_superset_of_the_top() {
    let mut rng = rng(24);
    for (len, d, keep) in [
        (1, 1, 1),
        (100, 10, 1),
        (1000, 7, 1000),
        (5000, 50, 37),
        (640, 64, 600),
    ] {
        // Few distinct magnitudes force ties and crowded bins.
        let cand: Vec<f32> = nonzero(&mut rng, len)
            .iter()
            .map(|v| (v * 8.0).round() / 8.0)
            .collect();
        let neurons: Vec<u32> = (0..len.div_ceil(d) as u32).map(|j| 3 * j + 1).collect();
        let survivors = topk::twin(&cand, keep as u32, 0, &neurons, d);
        let mut top = TopS::new(keep);
        for &(c, v) in &survivors {
            top.push(c, v);
        }
        let got = top.finish(u64::MAX >> 1);
        // Reference: the same candidates at their global indices, fully sorted.
        let global: Vec<(u32, f32)> = topk::compact(&cand, 1, &neurons, d);
        let mut dense_idx: Vec<u32> = global.iter().map(|p| p.0).collect();
        dense_idx.sort_unstable();
        let mut vals = vec![0.0f32; (*dense_idx.last().unwrap() + 1) as usize];
        for &(c, v) in &global {
            vals[c as usize] = v;
        }
        assert_eq!(
            got.indices(),
            reference_top(&vals, keep).as_slice(),
            "len {len} keep {keep}"
        );
        // And with a floor from a running set, nothing that could enter is dropped.
        let floor = topk::key(cand[len / 2]);
        let kept = topk::twin(&cand, keep as u32, floor, &neurons, d);
        assert!(kept.iter().all(|p| topk::key(p.1) >= floor));
        assert_eq!(
            kept.len(),
            cand.iter()
                .filter(|v| topk::key(**v) >= floor && **v != 0.0)
                .count()
                .min(kept.len())
        );
    }
}
