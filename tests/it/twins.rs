//! The CPU twins of the WGSL kernels against plain references (no GPU needed): the twins carry
//! the kernels' exact arithmetic, the references the mathematical definition.

use super::common::*;
use relu_iht::cpu::masked_gradient::{self, GradientBlock};
use relu_iht::cpu::support_forward::{RowBlock, SupportLayout};
use relu_iht::cpu::vector_model::{self, TileLayout};
use relu_iht::cpu::{reduce, relu_mask, support_adjoint, support_forward, topk};
use relu_iht::gpu::masked_gradient::split_rows;
use relu_iht::problem::model::{Blocks, Loss, VectorStep};
use relu_iht::problem::operator::{Operator, Support};
use relu_iht::problem::topk::{reference_top, TopS};

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
        let packed = op.data().packed_columns();
        let x = &*packed;
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
            let bits = relu_mask::twin(&op.data().packed_columns(), n, 0, n, d, &h, neurons.len());
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
            let got = support_forward::twin(
                &RowBlock::all(&op.data().packed_columns(), n),
                &lay.view(),
                x.values(),
            );
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
            let got = support_adjoint::twin(
                &RowBlock::all(&op.data().packed_columns(), n),
                &lay.view(),
                &v,
                0,
            );
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
            let bits = relu_mask::twin(&op.data().packed_columns(), n, 0, n, d, &h, t);
            let res = nonzero(&mut rng, n);
            let xtile = nonzero(&mut rng, t * d);
            let x = op.data().packed_columns();
            let mu = 0.3;
            let dense = op.dense_adjoint(&res);
            let want: Vec<f64> = neurons
                .iter()
                .enumerate()
                .flat_map(|(jj, &j)| (0..d).map(move |i| (jj, j as usize * d + i, i)))
                .map(|(jj, c, i)| xtile[jj * d + i] as f64 - mu as f64 * dense[c])
                .collect();
            // One split, and split-K with 3, 5, … partial sums added pairwise.
            for split_rows in [n, n.div_ceil(3), n.div_ceil(5).max(1), 7] {
                let block = GradientBlock {
                    x: &x,
                    x_stride: n,
                    x_row0: 0,
                    rows: n,
                    d,
                    res: &res,
                    r_row0: 0,
                    res_stride: 0,
                    bits: &bits,
                    tile: t,
                    split_rows,
                };
                let got = masked_gradient::twin(&block, None, &xtile, Some(mu));
                assert_close(
                    &format!("gradient twin n={n} d={d} m={m} split_rows={split_rows}"),
                    &got,
                    &want,
                    1e-5,
                    1.21 * n as f64,
                );
            }
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
fn topk_twin_merge_is_the_running_top_s() {
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
        // Two tiles through the twin's merge, against the running set of the solver.
        let half = (len / d / 2) * d;
        let first = topk::twin_merge(&[], &cand[..half], &neurons, d, keep);
        let got = topk::twin_merge(&first, &cand[half..], &neurons[half / d..], d, keep);
        let mut top = TopS::new(keep);
        for (k, &v) in cand.iter().enumerate() {
            top.push(neurons[k / d] * d as u32 + (k % d) as u32, v);
        }
        let want = top.finish(u64::MAX >> 1);
        let got_idx: Vec<u32> = got.iter().map(|p| p.0).collect();
        assert_eq!(got_idx, want.indices(), "len {len} keep {keep}");
        assert!(got.iter().zip(want.values()).all(|(p, &v)| p.1 == v));
        // And the plain reference: the same candidates at their global indices, fully sorted.
        let mut vals = vec![0.0f32; (neurons.last().unwrap() + 1) as usize * d];
        for (k, &v) in cand.iter().enumerate() {
            vals[(neurons[k / d] * d as u32) as usize + k % d] = v;
        }
        assert_eq!(got_idx, reference_top(&vals, keep), "len {len} keep {keep}");
    }
}

/// Random blocks of the vector model for the operator's live neurons.
pub fn vector_blocks(rng: &mut impl rand::Rng, op: &Operator, k: usize) -> Blocks {
    let live = op.live_neurons();
    Blocks {
        w1: nonzero(rng, live.len() * op.d()),
        w2: nonzero(rng, live.len() * k),
        live,
    }
}

/// One vector-model step composed from the kernels' twins, in the engine's order: masks, hidden,
/// output, residual, G2 (masked_gradient on R with H as per-neuron residual), backprop, G1.
pub fn vector_twin_step(
    op: &Operator,
    targets: &[f32],
    k: usize,
    loss: Loss,
    b: &Blocks,
    alpha: f32,
) -> VectorStep {
    let (n, d, t) = (op.n(), op.d(), b.live.len());
    let packed = op.data().packed_columns();
    let x = &*packed;
    let h: Vec<f32> = b.live.iter().flat_map(|&j| op.generator(j)).collect();
    let bits = relu_mask::twin(x, n, 0, n, d, &h, t);
    let l = TileLayout {
        n,
        tile: t,
        k,
        words: n.div_ceil(32),
        bits: &bits,
    };
    let mut hq = vec![0.0f32; n * t];
    vector_model::hidden_twin(&l, x, n, 0, n, 0, d, &b.w1, &mut hq);
    let mut out = vec![0.0f32; k * n];
    vector_model::output_twin(&l, &hq, &b.w2, false, &mut out);
    let yt: Vec<f32> = (0..k * n).map(|e| targets[(e % n) * k + e / n]).collect();
    let lossv = vector_model::residual_twin(n, k, loss, &yt, &mut out);
    let g2 = GradientBlock {
        x: &out,
        x_stride: n,
        x_row0: 0,
        rows: n,
        d: k,
        res: &hq,
        r_row0: 0,
        res_stride: n,
        bits: &bits,
        tile: t,
        split_rows: split_rows(n, k, t),
    };
    let w2 = masked_gradient::twin(&g2, None, &b.w2, Some(alpha));
    let mut q = vec![0.0f32; n * t];
    vector_model::backprop_twin(&l, &out, &b.w2, &mut q);
    let g1 = GradientBlock {
        x,
        x_stride: n,
        x_row0: 0,
        rows: n,
        d,
        res: &q,
        r_row0: 0,
        res_stride: n,
        bits: &bits,
        tile: t,
        split_rows: split_rows(n, d, t),
    };
    let w1 = masked_gradient::twin(&g1, None, &b.w1, Some(alpha));
    VectorStep {
        loss: lossv.iter().map(|&v| v as f64).sum::<f64>() / n as f64,
        w1,
        w2,
    }
}

/// Targets for the vector model: one-hot rows (cross-entropy) or Gaussian values (MSE).
pub fn vector_targets(rng: &mut impl rand::Rng, n: usize, k: usize, loss: Loss) -> Vec<f32> {
    match loss {
        Loss::Mse => nonzero(rng, n * k),
        Loss::CrossEntropy => (0..n)
            .flat_map(|r| (0..k).map(move |c| if c == (r * 7) % k { 1.0 } else { 0.0 }))
            .collect(),
    }
}

#[test]
fn vector_model_twins_compose_to_the_cpu_engine_step() {
    let mut rng = rng(60);
    for &(n, d, m) in SHAPES {
        let data = data(&mut rng, n, d);
        for op in operators(&mut rng, data, m) {
            for (k, loss) in [(1, Loss::Mse), (3, Loss::CrossEntropy), (10, Loss::Mse)] {
                let b = vector_blocks(&mut rng, &op, k);
                let y = vector_targets(&mut rng, n, k, loss);
                let twin = vector_twin_step(&op, &y, k, loss, &b, 0.7);
                let engine = vector_model::step(&op, &y, k, loss, &b, None, 0.7);
                let what = format!("n={n} d={d} m={m} k={k} {loss:?}");
                assert!(
                    (twin.loss - engine.loss).abs() <= 1e-4 * (1.0 + engine.loss),
                    "{what}: loss {} vs {}",
                    twin.loss,
                    engine.loss
                );
                let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
                let scale = 1.0
                    + engine
                        .w1
                        .iter()
                        .chain(&engine.w2)
                        .fold(0.0f32, |a, v| a.max(v.abs())) as f64;
                assert_close(
                    &format!("{what} W1"),
                    &twin.w1,
                    &f64s(&engine.w1),
                    1e-4,
                    scale,
                );
                assert_close(
                    &format!("{what} W2"),
                    &twin.w2,
                    &f64s(&engine.w2),
                    1e-4,
                    scale,
                );
                // The forward pass alone agrees with the step's residual inputs.
                let yhat = vector_model::forward(&op, &b, k);
                let (_, l2) = relu_iht::problem::model::residual(&yhat, &y, k, loss);
                assert!(
                    (l2 - engine.loss).abs() <= 1e-9 * (1.0 + l2),
                    "{what}: forward"
                );
            }
        }
    }
}
